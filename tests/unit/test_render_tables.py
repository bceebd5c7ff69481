"""The table model: fitting to 80/100/132 columns (goldens), both writers, escaping, layers.

Goldens are built from fixed rows and a fake owner map (no live sockets); the live tests
(real loopback listeners, a process with a hostile name, the TUI-style reuse) are in
tests/integration/test_render_tables_live.py.
"""

from __future__ import annotations

import ast
import io
import os
import re
from pathlib import Path

import pytest

from portscope.cli import Env
from portscope.models import Proto, TcpState
from portscope.render import safe
from portscope.render._table import Column, Table, fit, to_rich, write_plain
from portscope.render.sockets import render_listen, render_ls
from portscope.sockets._diag_codec import Row
from portscope.sockets._owners import OwnerMap, ProcessInfo

S = TcpState
SRC = Path(__file__).resolve().parents[2] / "src" / "portscope"


def row(
    proto: Proto,
    family: int,
    state: TcpState,
    local: tuple[str, int],
    remote: tuple[str, int] | None = None,
    *,
    queues: tuple[int, int] = (0, 0),
    uid: int | None = 0,
    inode: int | None = None,
    iface: str | None = None,
    v6only: bool | None = None,
) -> Row:
    return Row(
        proto,
        family,
        state,
        local[0],
        local[1],
        None if remote is None else remote[0],
        None if remote is None else remote[1],
        queues[0],
        queues[1],
        uid,
        inode,
        iface,
        v6only,
    )


LISTENERS = [
    row(Proto.TCP, 4, S.LISTEN, ("127.0.0.53", 53), queues=(0, 4096), inode=1),
    row(Proto.TCP, 4, S.LISTEN, ("0.0.0.0", 2024), queues=(0, 128), inode=2),
    row(Proto.TCP, 6, S.LISTEN, ("::", 5432), queues=(3, 244), uid=105, inode=3, v6only=False),
    row(Proto.TCP, 6, S.LISTEN, ("fe80::1c2e:aff:fe00:1%eth0", 8080), queues=(0, 511),
        inode=4, iface="eth0", v6only=True),
    row(Proto.UDP, 4, S.UNCONN, ("192.168.122.1", 67), inode=5),
    row(Proto.TCP, 4, S.LISTEN, ("127.0.0.1", 65535), queues=(0, 4096), uid=1000, inode=6),
]  # fmt: skip
CONNECTIONS = [
    *LISTENERS[:2],
    row(Proto.TCP, 4, S.ESTABLISHED, ("10.0.0.5", 22), ("198.51.100.77", 50122),
        queues=(0, 36), inode=7),
    row(Proto.TCP, 6, S.ESTABLISHED, ("2001:db8::10", 443), ("2001:db8:ffff::1234", 61000),
        queues=(0, 0), uid=33, inode=8),
    row(Proto.TCP, 4, S.TIME_WAIT, ("127.0.0.1", 41000), ("127.0.0.1", 2024), uid=None),
    row(Proto.TCP, 4, S.CLOSE_WAIT, ("127.0.0.1", 2024), ("127.0.0.1", 41002),
        queues=(1, 0), inode=9),
]  # fmt: skip
OWNERS = OwnerMap.from_holders(
    {1: [(612, 14)], 2: [(4242, 3)], 3: [(901, 5), (902, 5)], 4: [(1311, 7)],
     5: [(1400, 4)], 6: [(20001, 9)], 7: [(7777, 4)], 8: [(1311, 9)], 9: [(4242, 6)]},
    {612: ProcessInfo("systemd-resolve", "systemd-resolve", None, None),
     4242: ProcessInfo("langgraph-api", "root", None, None),
     901: ProcessInfo("postgres", "postgres", None, None),
     902: ProcessInfo("postgres", "postgres", None, None),
     1311: ProcessInfo("nginx", "www-data", None, None),
     1400: ProcessInfo("dnsmasq", "libvirt-dnsmasq", None, None),
     20001: ProcessInfo("python3", "alice", None, None),
     7777: ProcessInfo("sshd", "root", None, None)},
)  # fmt: skip
SERVICES = {53: "domain", 2024: None, 5432: "postgresql", 8080: "http-alt", 67: "dhcps",
            65535: None, 22: "ssh", 443: "https"}  # fmt: skip


def service(r: Row) -> str | None:
    rport = r.remote_port
    port = r.local_port if rport is None or r.local_port <= rport else rport
    return SERVICES.get(port)


def shown(table: Table, width: int | None, *, wide: bool = False) -> str:
    out = io.StringIO()
    Env(stdout=out, stderr=io.StringIO(), width=width).show(table, wide=wide)
    return "\n".join(line.rstrip() for line in out.getvalue().splitlines()) + "\n"


def listen_table() -> Table:
    return render_listen(LISTENERS, owners=OWNERS, service=service)


def ls_table() -> Table:
    return render_ls(CONNECTIONS, owners=OWNERS, service=service)


GOLDENS = Path(__file__).resolve().parents[1] / "fixtures" / "tables"
VIEWS = {"listen": listen_table, "ls-p": ls_table}


@pytest.mark.parametrize("width", [80, 100, 132])
@pytest.mark.parametrize("view", sorted(VIEWS))
def test_golden(view: str, width: int) -> None:
    """``portscope`` and ``portscope ls -p`` at 80/100/132 columns (regenerate: see below).

    PORTSCOPE_WRITE_GOLDENS=1 python -m pytest tests/unit/test_render_tables.py -k golden
    """
    text = shown(VIEWS[view](), width)
    path = GOLDENS / f"{view}-{width}.txt"
    if os.environ.get("PORTSCOPE_WRITE_GOLDENS"):
        path.parent.mkdir(exist_ok=True)
        path.write_text(text, encoding="utf-8")
    assert text == path.read_text(encoding="utf-8")


def _endpoint_cells(table: Table) -> list[str]:
    keys = {"Port", "Address", "Local", "Peer"}
    cols = [i for i, c in enumerate(table.columns) if c.header in keys]
    return [r[i] for r in table.rows for i in cols]


@pytest.mark.parametrize("width", [80, 100, 120, 132])
@pytest.mark.parametrize("view", sorted(VIEWS))
def test_ports_protos_and_endpoints_are_never_cut_or_hidden(view: str, width: int) -> None:
    table = VIEWS[view]()
    text = shown(table, width)
    lines = text.splitlines()
    assert lines[0].split()[0] == "Proto"
    for r, cells in zip(LISTENERS if view == "listen" else CONNECTIONS, table.rows, strict=True):
        line = next(
            li for li in lines if all(c in li.split() for c in _endpoint_cells_of(table, cells))
        )
        assert line.split()[0] == cells[0]  # the transport, whole, on the same line
        assert str(r.local_port) in re.split(r"[\s:\]]+", line)
    for cell in _endpoint_cells(table):
        assert cell in text.split()
    assert max(map(len, lines[:-1])) <= width  # the table; the footer is a sentence


def _endpoint_cells_of(table: Table, cells: list[str]) -> list[str]:
    keys = {"Port", "Address", "Local", "Peer"}
    return [c for col, c in zip(table.columns, cells, strict=True) if col.header in keys]


def test_hidden_columns_are_named_once_and_wide_shows_all() -> None:
    text = shown(listen_table(), 80)
    assert text.count("hidden at 80 columns") == 1
    assert text.splitlines()[-1] == (
        "(Scope, Service, User, Queue hidden at 80 columns; use --wide or --json)"
    )
    wide = shown(listen_table(), 80, wide=True)
    assert "hidden" not in wide
    assert wide.splitlines()[0].split() == [
        "Proto", "Port", "Address", "Scope", "Service", "Process", "User", "Queue"
    ]  # fmt: skip
    assert wide == shown(listen_table(), None)  # a pipe: no limit, every column


def test_a_pipe_gets_the_whole_table() -> None:
    env = Env(stdout=io.StringIO(), stderr=io.StringIO())
    assert env.columns() is None
    assert Env(stdout=io.StringIO(), stderr=io.StringIO(), width=80).columns() == 80


def test_drop_order_then_narrowing() -> None:
    table = Table(
        (
            Column("A"),
            Column("B", drop=2, min_width=4),
            Column("C", drop=1),
            Column("D", "right"),
        ),
        [["a" * 10, "word word word word", "c" * 10, "12345"]],
    )
    assert fit(table, None).widths == (10, 19, 10, 5)
    f = fit(table, 40)  # 10+19+10+5 + 6 = 50: C goes, then B fits narrowed? 10+19+5+4 = 38
    assert f.hidden == ("C",) and f.widths == (10, 19, 5)
    f = fit(table, 30)
    assert f.hidden == ("C",) and f.widths == (10, 11, 5)
    f = fit(table, 10)  # essentials alone are wider: kept whole, the line is longer
    assert f.hidden == ("B", "C") and f.widths == (10, 5) and f.total == 17
    assert f.footer("use --wide") == "(B, C hidden at 10 columns; use --wide)"
    assert fit(table, 50).hidden == ()


@pytest.mark.parametrize("width", [None, 30, 40, 60])
def test_both_writers_draw_the_same_fitted_table(width: int | None) -> None:
    from rich.console import Console

    table = Table(
        (
            Column("Proto"),
            Column("Port", "right"),
            Column("Scope", drop=2, min_width=8),
            Column("Process", drop=1, overflow="ellipsis", min_width=8),
        ),
        [
            ["tcp", "22", "all interfaces (IPv4)", "sshd[1]"],
            ["tcp6", "65535", "loopback only", "a-very-long-process-name[12345]"],
            ["udp", "5353", "-", "evil\x1b[31m\u202e[1]"],
            ["udp", "5355", "名前名前名前名前名前 x", "名前名前名前名前名前[77]"],
        ],
    )
    f = fit(table, width)
    out = io.StringIO()
    Console(file=out, width=max(f.total, 1), color_system=None).print(to_rich(table, fitted=f))
    rich_lines = [line.rstrip() for line in out.getvalue().splitlines()]
    plain = io.StringIO()
    write_plain(table, plain.write, fitted=f)
    plain_lines = [line.rstrip() for line in plain.getvalue().splitlines()]
    # the same header, cells and line breaks; only the rule under the header differs
    assert rich_lines[0] == plain_lines[0]
    assert rich_lines[2:] == plain_lines[2:]
    assert "\x1b" not in out.getvalue() + plain.getvalue()
    assert "\u202e" not in out.getvalue() + plain.getvalue()


@pytest.mark.parametrize(
    ("text", "want"),
    [
        ("nginx", "nginx"),
        ("a b", "a b"),
        ("\x1b]0;x\x07", "\\x1b]0;x\\x07"),
        ("new\nline\ttab\r", "new\\x0aline\\x09tab\\x0d"),
        ("del\x7f c1\x9b", "del\\x7f c1\\x9b"),
        ("\u202eevil\u2066x\u2069", "\\u202eevil\\u2066x\\u2069"),
        ("naïve 名前", "naïve 名前"),
        ("\U000e0041tag", "\\U000e0041tag"),
    ],
)
def test_safe_shows_controls_and_bidi_visibly(text: str, want: str) -> None:
    assert safe(text) == want


def test_cells_are_never_markup() -> None:
    table = Table((Column("Process"),), [["[bold red]x[/] [link=http://e]y"]])
    out = io.StringIO()
    Env(stdout=out, stderr=io.StringIO(), width=80).show(table)
    assert "[bold red]x[/] [link=http://e]y" in out.getvalue()


def test_big_tables_fit_too() -> None:
    """Above RICH_MAX_ROWS the plain writer draws the same fitted columns."""
    rows = LISTENERS * 1000
    text = shown(render_listen(rows, owners=OWNERS, service=service), 80)
    lines = text.splitlines()
    assert len(lines) == 2 + 6000 + 1
    assert lines[0].split() == ["Proto", "Port", "Address", "Process"]
    assert lines[3].split() == ["tcp", "2024", "0.0.0.0", "langgraph-api[4242]"]
    assert lines[-1].startswith("(Scope, Service, User, Queue hidden at 80 columns")


# --- layers: render without the CLI ----------------------------------------------------------


def _imports_cli(path: Path) -> bool:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        else:
            continue
        if any(n == "portscope.cli" or n.startswith("portscope.cli.") for n in names):
            return True
    return False


def test_render_sockets_and_the_table_model_do_not_import_the_cli() -> None:
    for name in ("render/__init__.py", "render/_table.py", "render/sockets.py"):
        assert not _imports_cli(SRC / name), name


def test_no_module_outside_cli_imports_the_cli() -> None:
    # __main__ is the entry point (``python -m portscope``): it is the CLI.
    offenders = [
        str(p.relative_to(SRC))
        for p in sorted(SRC.rglob("*.py"))
        if p.relative_to(SRC).parts[0] != "cli" and p.name != "__main__.py" and _imports_cli(p)
    ]
    assert offenders == []


def _show_items(items: list[object], width: int) -> str:
    out = io.StringIO()
    Env(stdout=out, stderr=io.StringIO(), width=width).show(*items)  # type: ignore[arg-type]
    return out.getvalue()


@pytest.mark.parametrize("width", [50, 60, 80, 132])
def test_probe_and_scan_tables_keep_address_port_and_state_whole(width: int) -> None:
    from portscope.models import PortState, ProbeResult
    from portscope.render.scan import render_host, render_probe
    from portscope.scanner import HostSummary

    results = [
        ProbeResult("a-long-host-name.example", "2001:db8::1", 45680, Proto.TCP,
                    PortState.OPEN, "syn-ack", None, 0.0002),
        ProbeResult("a-long-host-name.example", "2001:db8::1", 45681, Proto.TCP,
                    PortState.CLOSED, "conn-refused", 111, 0.0001),
    ]  # fmt: skip
    text = _show_items(list(render_probe(results)), width)
    for needle in ("2001:db8::1", "45680/tcp", "45681/tcp", "open", "closed"):
        assert needle in text, (width, text)
    table_lines = [line for line in text.splitlines() if "/tcp" in line or "PORT" in line]
    assert all(len(line.rstrip()) <= width for line in table_lines), text
    summary = HostSummary(
        "h", "2001:db8::1", "up", 2, {"open": 1, "closed": 1}, 0, 0, 0, 0.0002, 0.0001, 0.2, 0.01
    )
    text = _show_items(list(render_host(summary, results)), width)
    assert "45680/tcp" in text and "open" in text


@pytest.mark.parametrize("width", [40, 60, 100])
def test_who_keeps_local_endpoints_whole(width: int) -> None:
    from portscope.diagnose import holders_from_table
    from portscope.models import Endpoint, Owner, Socket, SocketTable
    from portscope.render.diagnose import render_who

    owner = Owner(812, "nginx", "www-data", ("nginx",), 0.0, 3)
    sock = Socket(Proto.TCP, 6, TcpState.LISTEN, Endpoint("2001:db8::1234", 8443), None,
                  0, 128, 33, 4242, None, False, owners=(owner,))  # fmt: skip
    result = holders_from_table(SocketTable((sock,), "test", owners_complete=True), 8443)
    text = _show_items(list(render_who(result)), width)
    assert "[2001:db8::1234]:8443" in text, text
