"""A table of plain text cells that every face can draw, and the fitting to a screen width.

A ``Table`` is a tuple of ``Column`` specs and rows of plain strings, built from models by
the renderers (``render.sockets``); it knows nothing of terminals. ``fit(table, width)``
decides which columns stay and how wide each one is; two writers draw a fitted table the
same way: ``to_rich`` (a ``rich.table.Table`` of ``rich.text.Text`` cells, never markup)
for terminals and small tables, ``write_plain`` (padded columns, no rich) for tables of
tens of thousands of rows, where rich takes seconds. A TUI or a web page reads the same
``Table`` and ``Fit``.

Fitting, for a width ``W`` (``None``: no limit, every column at its widest cell):

1. A column's *natural* width is its widest cell or header; its *least* width is
   ``min_width`` (at least the header's length) if it may wrap or be elided, else natural.
2. If the natural widths plus the gaps (two spaces between columns) exceed ``W``, the
   droppable columns are taken in ``drop`` rank (1 first): if narrowing that column (and
   the columns never dropped that may be narrowed) to its least width makes the table
   fit, it is narrowed and fitting stops; else it is hidden and the next one is taken.
   So a less important column goes before a more important one is wrapped, and a
   wrapped column is the last candidate, never one of several.
3. Columns with ``drop=None`` and no ``min_width`` are never hidden nor narrowed: if they
   alone exceed ``W``, the line is longer than ``W`` (the terminal wraps it); a port is
   never cut.

Every cell passes through ``safe`` in both writers (and in the width measure): process,
user and interface names are other people's strings.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import repeat
from typing import TYPE_CHECKING, Literal

from portscope.render import safe

if TYPE_CHECKING:
    from rich.table import Table as RichTable

#: Above this many rows the CLI draws a table with ``write_plain``: rich takes seconds
#: for tens of thousands of rows (a measured choice, 200k sockets in ``ls -a``).
RICH_MAX_ROWS = 5000

#: Spaces between two columns (rich's default padding of one on each side).
GAP = 2

Justify = Literal["left", "right"]
Overflow = Literal["wrap", "ellipsis"]


@dataclass(frozen=True, slots=True)
class Column:
    """How one column looks and gives way on a narrow screen.

    Attributes:
        header: the column's title.
        justify: ``left`` or ``right`` (numbers).
        drop: rank in which the column is hidden when the screen is too narrow (1 first);
            ``None``: never hidden.
        min_width: narrowest width (columns of text cells) the column may be wrapped or
            elided to; ``None``: never narrower than its widest cell.
        overflow: how a cell wider than the column is shown: ``wrap`` (more lines; at
            spaces when it can) or ``ellipsis`` (cut, with ``…``).
        styles: a rich style per exact cell value (``{"open": "green"}``), for a closed
            vocabulary such as port states; colour only, the text is the same without it
            (the plain writer ignores it).
    """

    header: str
    justify: Justify = "left"
    drop: int | None = None
    min_width: int | None = None
    overflow: Overflow = "wrap"
    styles: Mapping[str, str] | None = None


@dataclass(slots=True)
class Table:
    """Columns and rows of plain text cells (exact values; writers escape them).

    Attributes:
        columns: the column specs, in display order.
        rows: one list of ``len(columns)`` strings per row.
        title: a line above the table, or ``None``.
    """

    columns: tuple[Column, ...]
    rows: list[list[str]] = field(default_factory=list)
    title: str | None = None

    @property
    def headers(self) -> list[str]:
        """The headers of every column."""
        return [c.header for c in self.columns]


@dataclass(frozen=True, slots=True)
class Fit:
    """Which columns of a table are shown, and how wide, for one screen width.

    Attributes:
        keep: indexes of the columns shown, in display order.
        widths: width in terminal cells of each column shown.
        hidden: headers of the columns hidden, in display order.
        width: the width fitted to (``None``: no limit).
        natural: each shown column's widest cell; ``cells`` (escaped, column by column)
            and ``wide`` (non-ASCII columns) are the writers' working data.
    """

    keep: tuple[int, ...]
    widths: tuple[int, ...]
    hidden: tuple[str, ...]
    width: int | None
    natural: tuple[int, ...] = field(repr=False, compare=False, default=())
    cells: list[list[str]] = field(repr=False, compare=False, default_factory=list)
    wide: list[bool] = field(repr=False, compare=False, default_factory=list)

    @property
    def total(self) -> int:
        """The width of a line of the table (columns and gaps)."""
        return sum(self.widths) + GAP * max(len(self.widths) - 1, 0)

    def footer(self, hint: str | None = None) -> str | None:
        """``(User, Queue hidden at 80 columns; HINT)``, or ``None`` when nothing is hidden."""
        if not self.hidden:
            return None
        text = f"({', '.join(self.hidden)} hidden at {self.width} columns"
        return text + (f"; {hint})" if hint else ")")


def _cell_len(text: str) -> int:
    from rich.cells import cell_len

    return cell_len(text)


def _prepared(table: Table) -> tuple[list[list[str]], list[bool]]:
    """Escaped cells column by column, and whether each column has non-ASCII text."""
    rows = table.rows
    # a comprehension per column: three times faster than zip(*rows) at 200,000 rows
    columns = [[row[i] for row in rows] for i in range(len(table.columns))]
    wide = []
    for i, col in enumerate(columns):
        joined = "".join(col)
        if not joined.isprintable():
            columns[i] = col = [safe(c) for c in col]
            joined = "".join(col)
        wide.append(not joined.isascii())
    return columns, wide


def fit(table: Table, width: int | None) -> Fit:
    """Fit ``table`` to ``width`` terminal columns (``None``: no limit); see the module doc."""
    cells, wide = _prepared(table)
    columns = table.columns
    natural = []
    for col, cs, w in zip(columns, cells, wide, strict=True):
        measure = _cell_len if w else len
        head = measure(col.header)
        natural.append(max(head, max(map(measure, cs), default=0)))
    least = [
        nat if col.min_width is None else min(nat, max(col.min_width, len(col.header)))
        for col, nat in zip(columns, natural, strict=True)
    ]
    keep = list(range(len(columns)))
    widths = dict(enumerate(natural))
    if width is not None:
        # columns that may always be narrowed (never dropped), then one droppable column at
        # a time: narrowed if that makes the table fit, else hidden
        narrow = [k for k in keep if columns[k].drop is None and least[k] < natural[k]]
        droppable = sorted(
            (k for k, c in enumerate(columns) if c.drop is not None),
            key=lambda k: (columns[k].drop, -k),
        )
        excess = sum(natural) + GAP * (len(keep) - 1) - width
        for k in droppable:
            room = sum(natural[n] - least[n] for n in narrow)
            if excess <= room + natural[k] - least[k]:
                narrow.insert(0, k)
                break
            keep.remove(k)
            del widths[k]
            excess -= natural[k] + GAP
        for k in narrow:
            if excess <= 0:
                break
            cut = min(excess, natural[k] - least[k])
            widths[k] -= cut
            excess -= cut
    hidden = tuple(c.header for i, c in enumerate(columns) if i not in widths)
    return Fit(
        keep=tuple(keep),
        widths=tuple(widths[k] for k in keep),
        hidden=hidden,
        width=width,
        natural=tuple(natural[k] for k in keep),
        cells=cells,
        wide=wide,
    )


def to_rich(table: Table, width: int | None = None, *, fitted: Fit | None = None) -> RichTable:
    """``table`` fitted to ``width`` as a borderless ``rich.table.Table``.

    Cells are ``rich.text.Text`` of ``safe`` text: nothing in a cell is read as markup.
    Print it on a console at least ``fit(...).total`` wide (else rich cuts columns).
    """
    from rich import box
    from rich.table import Table as RichTable
    from rich.text import Text

    f = fitted or fit(table, width)
    out = RichTable(
        title=table.title,
        box=box.SIMPLE_HEAD,
        show_edge=False,
        pad_edge=False,
        padding=(0, 1, 0, 0),  # with the box's blank divider: GAP spaces between columns
        header_style="bold",
        title_justify="left",
    )
    for k, w in zip(f.keep, f.widths, strict=True):
        col = table.columns[k]
        narrowed = col.min_width is not None
        out.add_column(
            col.header,
            justify=col.justify,
            width=w,
            no_wrap=not narrowed or col.overflow == "ellipsis",
            overflow="ellipsis" if col.overflow == "ellipsis" else "fold",
        )
    columns = [f.cells[k] for k in f.keep]
    styles = [table.columns[k].styles or {} for k in f.keep]
    for row in zip(*columns, strict=True):
        out.add_row(*[Text(c, style=st.get(c, "")) for c, st in zip(row, styles, strict=True)])
    return out


def _wrap(text: str, width: int, overflow: Overflow, wide: bool) -> list[str]:
    """``text`` in lines of at most ``width`` cells: at spaces, long words folded (as rich)."""
    measure = _cell_len if wide else len
    if overflow == "ellipsis":
        while measure(text) > width - 1:
            text = text[:-1]
        return [text + " " * (width - 1 - measure(text)) + "…"]  # a wide char cut: a space
    lines: list[str] = []
    line = ""
    for word in text.split(" "):
        candidate = f"{line} {word}" if line else word
        if measure(candidate) <= width:
            line = candidate
            continue
        if line:
            lines.append(line)
        while measure(word) > width:
            cut, used = 0, 0
            for char in word:
                used += measure(char)
                if used > width:
                    break
                cut += 1
            cut = max(cut, 1)
            lines.append(word[:cut])
            word = word[cut:]
        line = word
    lines.append(line)
    return lines


def write_plain(
    table: Table,
    write: Callable[[str], object],
    width: int | None = None,
    *,
    fitted: Fit | None = None,
) -> None:
    """Write ``table`` fitted to ``width`` as padded text columns, through ``write``.

    The same columns and widths as ``to_rich``, without rich: fast enough for 200,000
    rows (whole columns are padded at once; rows are written in chunks).
    """
    f = fitted or fit(table, width)
    columns = [f.cells[k] for k in f.keep]
    specs = [table.columns[k] for k in f.keep]
    wides = [f.wide[k] for k in f.keep]
    last = len(columns) - 1

    def pad(text: str, w: int, spec: Column, wide: bool, is_last: bool) -> str:
        room = w - (_cell_len(text) if wide else len(text))
        if room <= 0:
            return text
        if spec.justify == "right":
            return " " * room + text
        return text if is_last else text + " " * room

    if table.title:
        write(table.title + "\n")
    heads = [
        pad(s.header, w, s, False, i == last)
        for i, (s, w) in enumerate(zip(specs, f.widths, strict=True))
    ]
    write("  ".join(heads).rstrip() + "\n")
    write("  ".join("─" * w for w in f.widths).rstrip() + "\n")
    if not columns or not columns[0]:
        return
    padded: list[Sequence[str]] = []
    long_rows: set[int] = set()
    narrowed = [w < n for w, n in zip(f.widths, f.natural, strict=True)]
    for i, (col, spec, w, wide) in enumerate(zip(columns, specs, f.widths, wides, strict=True)):
        if narrowed[i]:  # only a narrowed column has cells wider than itself
            measure = _cell_len if wide else len
            long_rows.update(j for j, c in enumerate(col) if measure(c) > w)
        if wide:
            padded.append([pad(c, w, spec, True, i == last) for c in col])
        elif spec.justify == "right":
            padded.append(list(map(str.rjust, col, repeat(w))))
        elif i == last:
            padded.append(col)
        else:
            padded.append(list(map(str.ljust, col, repeat(w))))
    lines = list(map("  ".join, zip(*padded, strict=True)))
    if "" in columns[last]:
        lines = [line.rstrip() for line in lines]
    for j in long_rows:
        lines[j] = _long_row(j, columns, specs, f.widths, wides)
    for start in range(0, len(lines), 2000):
        write("\n".join(lines[start : start + 2000]) + "\n")


def _long_row(
    j: int, columns: list[list[str]], specs: list[Column], widths: Sequence[int], wides: list[bool]
) -> str:
    """Row ``j`` as one or more lines, its too-wide cells wrapped or elided."""
    parts = []
    for col, spec, w, wide in zip(columns, specs, widths, wides, strict=True):
        text = col[j]
        fits = (_cell_len(text) if wide else len(text)) <= w
        parts.append(
            [text] if fits or spec.min_width is None else _wrap(text, w, spec.overflow, wide)
        )
    height = max(map(len, parts))
    last = len(parts) - 1
    out = []
    for line in range(height):
        cells = []
        for i, (lines, spec, w, wide) in enumerate(zip(parts, specs, widths, wides, strict=True)):
            text = lines[line] if line < len(lines) else ""
            room = w - (_cell_len(text) if wide else len(text))
            if room > 0 and spec.justify == "right":
                text = " " * room + text
            elif room > 0 and i != last:
                text += " " * room
            cells.append(text)
        out.append("  ".join(cells).rstrip())
    return "\n".join(out)
