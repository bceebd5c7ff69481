"""A virtual table for ``portscope top``: it draws only the rows on screen.

Textual's ``DataTable`` builds and measures every row it is given: 10,000 rows took
seconds per re-sort here (bench/bench_tui.py). This widget keeps the rows as plain
tuples of escaped text and renders, through Textual's line API (``render_line``), the
header and the visible rows only, so a keystroke costs what the screen shows plus one
pass over the rows for the column widths.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, ClassVar

from rich.cells import cell_len
from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual import events
from textual.binding import Binding, BindingType
from textual.geometry import Size
from textual.message import Message
from textual.scroll_view import ScrollView
from textual.strip import Strip

#: Widest a column is drawn (cells cut with an ellipsis; the detail pane shows all).
MAX_WIDTH = 36


#: (key, cells, styles): cells already escaped (``render.safe``), a style per cell.
TableRow = tuple[str, tuple[str, ...], tuple[str, ...]]


def _identity(row: Any) -> TableRow:
    return row  # type: ignore[no-any-return]


def measure(rows: Sequence[TableRow], count: int) -> list[int]:
    """The widest cell per column of ``rows`` (in characters)."""
    widths = [0] * count
    for _, cells, _ in rows:
        for i, cell in enumerate(cells):
            n = len(cell)
            if n > widths[i]:
                widths[i] = n
    return widths


class RowTable(ScrollView, can_focus=True):
    """Rows of text with a header, a row cursor, and only the visible lines drawn."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("up", "cursor(-1)", "Up", show=False),
        Binding("down", "cursor(1)", "Down", show=False),
        Binding("pageup", "page(-1)", "Page up", show=False),
        Binding("pagedown", "page(1)", "Page down", show=False),
        Binding("home", "jump(0)", "First", show=False),
        Binding("end", "jump(-1)", "Last", show=False),
        Binding("enter", "select", "Select", show=False),
    ]
    COMPONENT_CLASSES: ClassVar[set[str]] = {
        "rowtable--header",
        "rowtable--cursor",
        "rowtable--odd",
    }
    DEFAULT_CSS = """
    RowTable { background: $surface; }
    RowTable > .rowtable--header { text-style: bold; background: $panel; }
    RowTable > .rowtable--cursor { background: $accent 60%; }
    RowTable:blur > .rowtable--cursor { background: $accent 30%; }
    RowTable > .rowtable--odd { background: $boost; }
    """

    class Highlighted(Message):
        """The cursor moved to the row ``key`` (``None``: the table is empty)."""

        def __init__(self, key: str | None) -> None:
            super().__init__()
            self.key = key

    class Selected(Message):
        """Enter was pressed on the row ``key``."""

        def __init__(self, key: str) -> None:
            super().__init__()
            self.key = key

    class HeaderClicked(Message):
        """The header of ``column`` was clicked."""

        def __init__(self, column: str) -> None:
            super().__init__()
            self.column = column

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.columns: tuple[str, ...] = ()
        self.labels: tuple[str, ...] = ()
        self.rows: Sequence[Any] = ()
        self._cells_of: Callable[[Any], TableRow] = _identity
        self._key_of: Callable[[Any], str] = lambda row: str(row[0])
        self.right: frozenset[int] = frozenset()
        self.widths: list[int] = []
        self.cursor = 0
        self._index: dict[str, int] = {}

    @property
    def row_count(self) -> int:
        return len(self.rows)

    @property
    def cursor_key(self) -> str | None:
        return self._key_of(self.rows[self.cursor]) if self.rows else None

    def set_rows(
        self,
        columns: Sequence[str],
        rows: Sequence[Any],
        *,
        cells: Callable[[Any], TableRow] | None = None,
        key: Callable[[Any], str] | None = None,
        labels: Sequence[str] | None = None,
        right: Sequence[str] = (),
        keep: str | None = None,
        widths: Sequence[int] | None = None,
    ) -> None:
        """Show ``rows`` under ``columns``; the cursor stays on the row ``keep`` if present,
        else at its position (clamped). ``cells`` turns a row into a ``TableRow`` when it
        is drawn (only visible rows are; default: rows are ``TableRow`` already); ``key``
        gives a row's key without drawing it. ``widths``: the columns' widths, measured
        over ``rows`` when not given (a face passes the whole snapshot's, so columns do
        not jump while a filter narrows the rows)."""
        self.columns = tuple(columns)
        self.labels = tuple(labels or columns)
        self.rows = rows
        self._cells_of = cells or _identity
        self._key_of = key or (lambda row: self._cells_of(row)[0])
        self.right = frozenset(i for i, c in enumerate(columns) if c in right)
        if widths is None:
            widths = measure([self._cells_of(r) for r in rows], len(self.columns))
        self.widths = [
            min(max(w, cell_len(label)), MAX_WIDTH)
            for w, label in zip(widths, self.labels, strict=True)
        ]
        self._index = {}
        if keep is not None:
            key_of = self._key_of
            for i, row in enumerate(rows):
                if key_of(row) == keep:
                    self.cursor = i
                    break
        self.cursor = max(0, min(self.cursor, len(rows) - 1))
        total = sum(self.widths) + len(self.widths)
        self.virtual_size = Size(total, len(rows) + 1)
        self._scroll_cursor_visible()
        self.refresh()

    # drawing ------------------------------------------------------------------------

    def _line(self, cells: Sequence[str], styles: Sequence[str], base: Style) -> Strip:
        text = Text(no_wrap=True, end="")
        for i, (cell, width) in enumerate(zip(cells, self.widths, strict=False)):
            if len(cell) > width:
                cell = cell[: max(0, width - 1)] + "…"
            pad = " " * max(0, width - cell_len(cell))
            style = styles[i] if i < len(styles) else ""
            if i in self.right:
                text.append(pad)
                text.append(cell, style)
            else:
                text.append(cell, style)
                text.append(pad)
            text.append(" ")
        segments = [
            Segment(seg.text, base + seg.style if seg.style else base)
            for seg in text.render(self.app.console)
        ]
        return Strip(segments)

    def render_line(self, y: int) -> Strip:
        scroll_x, scroll_y = self.scroll_offset
        width = self.size.width
        base = self.rich_style
        if y == 0:
            style = base + self.get_component_rich_style("rowtable--header")
            strip = self._line(self.labels, (), style)
            return strip.crop_extend(scroll_x, scroll_x + width, style)
        index = scroll_y + y - 1
        if index >= len(self.rows):
            return Strip.blank(width, base)
        _, cells, styles = self._cells_of(self.rows[index])
        if index == self.cursor:
            style = base + self.get_component_rich_style("rowtable--cursor")
        elif index % 2:
            style = base + self.get_component_rich_style("rowtable--odd")
        else:
            style = base
        return self._line(cells, styles, style).crop_extend(scroll_x, scroll_x + width, style)

    # cursor -------------------------------------------------------------------------

    def _visible_rows(self) -> int:
        return max(1, self.scrollable_content_region.height - 1)

    def _scroll_cursor_visible(self) -> None:
        top = round(self.scroll_offset.y)
        shown = self._visible_rows()
        if self.cursor < top:
            self.scroll_to(y=self.cursor, animate=False, immediate=True)
        elif self.cursor >= top + shown:
            self.scroll_to(y=self.cursor - shown + 1, animate=False, immediate=True)

    def move_cursor(self, index: int) -> None:
        if not self.rows:
            self.post_message(self.Highlighted(None))
            return
        self.cursor = max(0, min(index, len(self.rows) - 1))
        self._scroll_cursor_visible()
        self.refresh()
        self.post_message(self.Highlighted(self.cursor_key))

    def action_cursor(self, step: int) -> None:
        self.move_cursor(self.cursor + step)

    def action_select(self) -> None:
        key = self.cursor_key
        if key is not None:
            self.post_message(self.Selected(key))

    def action_page(self, step: int) -> None:
        self.move_cursor(self.cursor + step * self._visible_rows())

    def action_jump(self, where: int) -> None:
        self.move_cursor(len(self.rows) - 1 if where < 0 else 0)

    def on_click(self, event: events.Click) -> None:
        x, y = event.x + round(self.scroll_offset.x), event.y
        if y == 0:
            edge = 0
            for name, width in zip(self.columns, self.widths, strict=False):
                edge += width + 1
                if x < edge:
                    self.post_message(self.HeaderClicked(name))
                    return
            return
        self.move_cursor(round(self.scroll_offset.y) + y - 1)
