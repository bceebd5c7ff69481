"""``portscope top``: the live socket table in a Textual app.

The app polls a snapshot source (``render.live.read_snapshot`` in a worker thread) once a
second and redraws the table keeping the cursor on the same socket (by ``LiveRow.key``)
and the chosen sort. Every cell is a Rich ``Text`` built from ``render.safe`` of the exact
value: a process named ``[link=http://x]`` or ``[/]`` is text, never markup.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

from rich.text import Text
from textual import on, work
from textual.app import App, ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Footer, Input, Static

from portscope.registry._ranges import KernelPorts
from portscope.render import safe
from portscope.render.live import (
    AGGREGATE_ABOVE,
    CONNECTION_COLUMNS,
    LISTEN_COLUMNS,
    Aggregates,
    LiveRow,
    Snapshot,
    View,
    describe,
    group_by_process,
    kill_row_holders,
    read_snapshot,
    shown,
    socket_json,
    sort_rows,
)
from portscope.tui._table import MAX_WIDTH, RowTable, TableRow, measure

Source = Callable[[View], Snapshot]
Killer = Callable[[LiveRow], Any]

_STATE_STYLE = {
    "LISTEN": "green",
    "UNCONN": "green",
    "ESTABLISHED": "cyan",
    "TIME-WAIT": "dim",
    "CLOSE-WAIT": "yellow",
    "SYN-SENT": "yellow",
}
_SCOPE_STYLE = {"all": "bold red", "loopback": "green", "one": "yellow"}
# On a narrow terminal (80 columns over SSH) wide columns are first cut to these widths
# (an ellipsis; the detail pane shows all), then columns are hidden in this order.
_NARROW = {"Scope": 16, "Process": 20, "Service": 10, "Address": 15, "User": 8,
           "Local": 21, "Peer": 21}  # fmt: skip
_DROP_ORDER = {
    "listen": ("Netns", "User", "Queue", "Service", "Scope"),
    "connections": ("Netns", "User", "Send-Q", "Recv-Q", "Service", "State"),
}


def _text(value: str, style: str = "") -> Text:
    """Exact, untrusted text as a Rich ``Text`` (control characters escaped)."""
    return Text(safe(value), style=style, no_wrap=True, overflow="ellipsis")


def _row_key(row: LiveRow) -> str:
    return row.key


class ConfirmScreen(ModalScreen[bool]):
    """A yes/no question; dismissed with ``True`` only by the confirm button or ``y``."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("y", "answer(True)", "Yes"),
        Binding("n,escape", "answer(False)", "No"),
    ]
    DEFAULT_CSS = """
    ConfirmScreen { align: center middle; }
    ConfirmScreen > Vertical { width: 74; height: auto; max-height: 20; border: thick $warning;
        background: $surface; padding: 0 1; }
    ConfirmScreen #question { height: auto; max-height: 14; overflow-y: auto; }
    ConfirmScreen Horizontal { height: 3; align: center middle; }
    ConfirmScreen Button { margin: 0 2; }
    """

    def __init__(self, question: Text, yes: str) -> None:
        super().__init__()
        self._question = question
        self._yes = yes

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static(self._question, id="question")
            with Horizontal():
                yield Button(self._yes, variant="error", id="yes")
                yield Button("Cancel (n)", variant="primary", id="no")

    def on_mount(self) -> None:
        self.query_one("#no", Button).focus()

    def action_answer(self, answer: bool) -> None:
        self.dismiss(answer)

    @on(Button.Pressed)
    def _pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "yes")


class TopApp(App[None]):
    """The live view of this host's sockets.

    Args:
        source: view -> snapshot (a seam for tests; default: read this host's table).
        refresh_s: seconds between reads; 0 reads once.
        killer: what the kill action calls (``render.live.kill_row_holders``).
        view: the view at start, ``listen`` or ``connections``.
        aggregate_above: rows above which the view shows counts.
        kernel: port settings for the detail pane (read from ``/proc`` when ``None``).
    """

    TITLE = "portscope top"
    ENABLE_COMMAND_PALETTE = False
    CSS = """
    Screen { layout: vertical; }
    #filter { height: 1; border: none; padding: 0 1; background: $boost; }
    #filter:focus { border: none; background: $primary 30%; }
    #table { height: 1fr; }
    #detail { height: auto; max-height: 8; padding: 0 1; border-top: solid $primary; }
    #detail.hidden { display: none; }
    #status { height: 1; padding: 0 1; background: $panel; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("q", "quit", "Quit"),
        Binding("slash", "focus_filter", "Filter"),
        Binding("c", "toggle_view", "Conns"),
        Binding("s", "next_sort", "Sort"),
        Binding("r", "reverse_sort", "Rev"),
        Binding("g", "toggle_group", "Group"),
        Binding("d", "toggle_detail", "Detail"),
        Binding("k", "kill", "Kill"),
        Binding("y", "copy_json", "JSON"),
        Binding("escape", "leave_filter", "Table", show=False),
    ]

    def __init__(
        self,
        *,
        source: Source = read_snapshot,
        refresh_s: float = 1.0,
        killer: Killer = kill_row_holders,
        view: View = "listen",
        aggregate_above: int = AGGREGATE_ABOVE,
        kernel: KernelPorts | None = None,
    ) -> None:
        super().__init__()
        self._kernel = kernel
        self._source = source
        self._refresh_s = refresh_s
        self._killer = killer
        self.view: View = view
        self._aggregate_above = aggregate_above
        self.snapshot: Snapshot | None = None
        self.query_text = ""
        self.sort_column = "Port" if view == "listen" else "Local"
        self.sort_reverse = False
        self.grouped = False
        self.rows: list[LiveRow] = []
        self._by_key: dict[str, LiveRow] = {}
        self._cursor_key: str | None = None
        self._listening_ports: frozenset[int] = frozenset()
        self._widths: list[int] | None = None
        self._visible: tuple[int, ...] = ()
        self._fitted_width = -1
        self._drawn: dict[str, tuple[str, tuple[str, ...], tuple[str, ...], LiveRow]] = {}

    # layout -------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        yield Input(placeholder="/ filter: port, address, process, state, netns", id="filter")
        yield RowTable(id="table")
        yield Static("", id="detail")
        yield Static("", id="status")
        yield Footer()

    def on_resize(self) -> None:
        self.call_after_refresh(self.redraw)

    def on_mount(self) -> None:
        self.query_one(RowTable).focus()
        self.reload()
        if self._refresh_s > 0:
            self.set_interval(self._refresh_s, self.reload)

    # data ---------------------------------------------------------------------------

    @work(thread=True, exclusive=True, group="read")
    def reload(self) -> None:
        """Read a snapshot in a worker thread, then redraw on the app's thread."""
        view = self.view
        snap = self._source(view)
        self.call_from_thread(self._apply, snap)

    def _apply(self, snap: Snapshot) -> None:
        if snap.view != self.view:
            return  # read before a view toggle
        self.snapshot = snap
        self._widths = None
        self._drawn = {}
        if snap.view == "listen":
            self._listening_ports = frozenset(r.sock.local.port for r in snap.rows)
        self.redraw()

    def columns(self) -> tuple[str, ...]:
        return LISTEN_COLUMNS if self.view == "listen" else CONNECTION_COLUMNS

    def redraw(self) -> None:
        """Rebuild the table from the snapshot, the filter, the sort and the grouping."""
        table = self.query_one(RowTable)
        snap = self.snapshot
        if snap is None:
            return
        rows, counts = shown(snap, self.query_text, aggregate_above=self._aggregate_above)
        self._by_key = {}
        if counts is not None:
            self.rows = []
            self._draw_counts(table, counts)
        elif self.grouped:
            self.rows = rows
            self._draw_groups(table)
        else:
            self.rows = sort_rows(rows, self.sort_column, self.sort_reverse)
            self._draw_rows(table)
        self._status(snap, counts)
        self._show_detail()

    def _cells(self, row: LiveRow) -> TableRow:
        drawn = self._drawn.get(row.key)
        if drawn is not None and drawn[3] is row:
            return drawn[:3]
        columns = self.columns()
        styles = []
        for name, value in zip(columns, row.cells, strict=True):
            if name == "Scope":
                styles.append(_SCOPE_STYLE.get(row.scope_class, ""))
            elif name == "State":
                styles.append(_STATE_STYLE.get(value, ""))
            else:
                styles.append("")
        keep = self._visible
        cells = (
            row.key,
            tuple(safe(row.cells[i]) for i in keep),
            tuple(styles[i] for i in keep),
        )
        self._drawn[row.key] = (*cells, row)
        return cells

    def _fit(self, table: RowTable) -> None:
        """Choose the visible columns for the table's width from the snapshot's cells."""
        columns = self.columns()
        rows = self.snapshot.rows if self.snapshot is not None else ()
        self._visible = tuple(range(len(columns)))
        self._drawn = {}
        full = measure([(r.key, r.cells, ()) for r in rows], len(columns))
        full = [min(max(w, len(c) + 2), MAX_WIDTH) for w, c in zip(full, columns, strict=True)]
        hidden = {i for i, w in enumerate(full) if columns[i] == "Netns" and not any(
            r.cells[i] for r in rows)}  # fmt: skip
        room = max(table.size.width, 40) - 1
        if sum(w + 1 for i, w in enumerate(full) if i not in hidden) > room:
            full = [min(w, _NARROW.get(c, w)) for w, c in zip(full, columns, strict=True)]
        for name in _DROP_ORDER[self.view]:
            if sum(w + 1 for i, w in enumerate(full) if i not in hidden) <= room:
                break
            hidden.add(columns.index(name))
        self._visible = tuple(i for i in range(len(columns)) if i not in hidden)
        self._widths = [full[i] for i in self._visible]
        self._fitted_width = table.size.width

    def _draw_rows(self, table: RowTable) -> None:
        if self._widths is None or self._fitted_width != table.size.width:
            self._fit(table)
        names = self.columns()
        columns = [names[i] for i in self._visible]
        labels = [
            name + ((" v" if self.sort_reverse else " ^") if name == self.sort_column else "")
            for name in columns
        ]
        self._by_key = {row.key: row for row in self.rows}
        table.set_rows(
            columns,
            self.rows,
            cells=self._cells,
            key=_row_key,
            labels=labels,
            right=("Port", "Recv-Q", "Send-Q", "Queue"),
            keep=self._cursor_key,
            widths=self._widths,
        )

    def _draw_groups(self, table: RowTable) -> None:
        body: list[TableRow] = []
        for group in group_by_process(self.rows, self.view):
            ports = ",".join(str(p) for p in group.ports[:12])
            if len(group.ports) > 12:
                ports += f",... ({len(group.ports)})"
            cells = (safe(group.process), safe(group.user), str(group.count), ports)
            body.append((f"group|{group.process}", cells, ("", "", "", "")))
        table.set_rows(("Process", "User", "Sockets", "Ports"), body, right=("Sockets",))

    def _draw_counts(self, table: RowTable, counts: Aggregates) -> None:
        body: list[TableRow] = []
        for label, items in (
            ("state", counts.by_state),
            ("remote", counts.by_remote),
            ("process", counts.by_process),
        ):
            for value, n in items:
                body.append((f"{label}|{value}", (label, safe(value), f"{n:,}"), ("", "", "")))
        table.set_rows(("By", "Value", "Sockets"), body, right=("Sockets",))

    def _status(self, snap: Snapshot, counts: Aggregates | None) -> None:
        what = "listeners" if self.view == "listen" else "connections"
        if counts is not None:
            text = f"{snap.total:,} {what}: aggregated (over {self._aggregate_above:,})"
        else:
            text = f"{len(self.rows):,}/{snap.total:,} {what}"
        if self.query_text:
            text += f"  filter: {self.query_text}"
        text += f"  sort: {self.sort_column}{' desc' if self.sort_reverse else ''}"
        if self.grouped:
            text += "  grouped by process"
        if snap.notes:
            text += f"  note: {snap.notes[0]}"
        self.query_one("#status", Static).update(_text(text))

    def selected(self) -> LiveRow | None:
        """The row under the cursor, or ``None`` (empty, grouped or aggregated view)."""
        key = self.query_one(RowTable).cursor_key
        return self._by_key.get(key) if key is not None else None

    def _show_detail(self) -> None:
        pane = self.query_one("#detail", Static)
        row = self.selected()
        if row is None:
            pane.update(Text("no socket selected", style="dim"))
            return
        text = Text()
        for label, value in describe(row, self._listening_ports, self._kernel):
            text.append(f"{label:>9} ", style="bold")
            text.append(safe(value))
            text.append("\n")
        text.rstrip()
        pane.update(text)

    # events -------------------------------------------------------------------------

    @on(RowTable.Highlighted)
    def _highlighted(self, event: RowTable.Highlighted) -> None:
        self._cursor_key = event.key
        self._show_detail()

    @on(RowTable.Selected)
    def _selected(self, event: RowTable.Selected) -> None:
        """Enter on a process group (or a count by process): its sockets, ungrouped."""
        kind, _, value = event.key.partition("|")
        if kind in ("group", "process") and value != "-":
            self.grouped = False
            self.query_one("#filter", Input).value = value  # Input.Changed redraws
            self.query_text = value
            self.redraw()

    @on(RowTable.HeaderClicked)
    def _header(self, event: RowTable.HeaderClicked) -> None:
        name = event.column
        if name not in self.columns():
            return
        if name == self.sort_column:
            self.sort_reverse = not self.sort_reverse
        else:
            self.sort_column, self.sort_reverse = name, False
        self.redraw()

    @on(Input.Changed, "#filter")
    def _filter(self, event: Input.Changed) -> None:
        self.query_text = event.value
        self.redraw()

    @on(Input.Submitted, "#filter")
    def _filter_done(self, event: Input.Submitted) -> None:
        self.query_one(RowTable).focus()

    # actions ------------------------------------------------------------------------

    def action_focus_filter(self) -> None:
        self.query_one("#filter", Input).focus()

    def action_leave_filter(self) -> None:
        self.query_one(RowTable).focus()

    def action_toggle_view(self) -> None:
        self.view = "connections" if self.view == "listen" else "listen"
        self.sort_column = "Port" if self.view == "listen" else "Local"
        self.sort_reverse = False
        self._cursor_key = None
        self.snapshot = None
        self.query_one(RowTable).set_rows((), [])
        self.reload()

    def action_next_sort(self) -> None:
        columns = [c for c in self.columns() if c != "Netns"]
        i = columns.index(self.sort_column) if self.sort_column in columns else -1
        self.sort_column = columns[(i + 1) % len(columns)]
        self.sort_reverse = False
        self.redraw()

    def action_reverse_sort(self) -> None:
        self.sort_reverse = not self.sort_reverse
        self.redraw()

    def action_toggle_group(self) -> None:
        self.grouped = not self.grouped
        self.redraw()

    def action_toggle_detail(self) -> None:
        self.query_one("#detail", Static).toggle_class("hidden")

    def action_kill(self) -> None:
        row = self.selected()
        if row is None or not row.pids:
            self.notify(
                "no process to kill: select a socket with a visible owner", severity="warning"
            )
            return
        owners = ", ".join(f"{o.name}[{o.pid}]" for o in row.sock.owners or ())
        question = Text()
        question.append("Send SIGTERM to ", style="bold")
        question.append(safe(owners))
        question.append(f"?\nIt holds {row.sock.proto.value} {row.sock.local}")
        question.append(
            "; every other socket of the process closes too. The start time is checked "
            "again first (a reused pid is never signalled)."
        )

        def done(answer: bool | None) -> None:
            if answer:
                self._do_kill(row)

        self.push_screen(ConfirmScreen(question, "Kill (y)"), done)

    @work(thread=True, exclusive=True, group="kill")
    def _do_kill(self, row: LiveRow) -> None:
        report = self._killer(row)
        if report is None:
            message = "nothing signalled: the process no longer holds the port"
        else:
            message = "; ".join(f"{r.name}[{r.pid}]: {r.outcome.value}" for r in report.results)
        self.call_from_thread(self.notify, safe(message), markup=False)
        self.call_from_thread(self.reload)

    def action_copy_json(self) -> None:
        row = self.selected()
        if row is None:
            return
        text = socket_json(row.sock)
        preview = Text("Copy this socket as JSON to the clipboard (OSC 52)?\n\n", style="bold")
        preview.append(text)

        def done(answer: bool | None) -> None:
            if answer:
                self.copy_to_clipboard(text)
                self.notify(f"copied {len(text)} characters of JSON")

        self.push_screen(ConfirmScreen(preview, "Copy (y)"), done)
