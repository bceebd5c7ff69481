"""The pure core of diff and watch: events by identity, scope pairs, owners, debounce."""

from __future__ import annotations

import io

import pytest

from portscope.cli._base import Env
from portscope.errors import InvalidInput
from portscope.history import (
    Action,
    Listener,
    ScanHost,
    ScanPort,
    StoredSocket,
    diff_listeners,
    diff_scans,
    fold_listeners,
    index_listeners,
    parse_duration,
)
from portscope.history._watch import Watcher
from portscope.models import Owner, PortState, Proto, TcpState
from portscope.render.history import event_json, event_line, listener_from_json, listener_json
from portscope.sockets import Row

NS = 4026531840


def owner(pid: int, name: str = "python3", cmd: tuple[str, ...] | None = None) -> Owner:
    return Owner(pid, name, "root", cmd or (name, "-m", "http.server"), 1.0, 3)


def listener(
    address: str,
    port: int,
    *,
    proto: Proto = Proto.TCP,
    owners: tuple[Owner, ...] | None = None,
    v6only: bool | None = None,
) -> Listener:
    family = 6 if ":" in address else 4
    state = TcpState.LISTEN if proto is Proto.TCP else TcpState.UNCONN
    return Listener(NS, proto, family, address, port, state, v6only, None, 1, owners)


def actions(events: list) -> list[tuple[str, str, int]]:  # type: ignore[type-arg]
    return [(e.action.value, e.subject.address, e.subject.port) for e in events]


def test_added_and_removed_by_identity() -> None:
    a = index_listeners([listener("0.0.0.0", 22), listener("127.0.0.1", 631)])
    b = index_listeners([listener("0.0.0.0", 22), listener("0.0.0.0", 9999)])
    events = diff_listeners(a, b)
    assert actions(events) == [("removed", "127.0.0.1", 631), ("added", "0.0.0.0", 9999)]
    assert events[0].before is not None and events[0].after is None
    assert events[1].before is None and events[1].after is not None


def test_pid_and_queue_changes_are_no_event() -> None:
    before = listener("0.0.0.0", 80, owners=(owner(100, "nginx", ("nginx", "-g", "x")),))
    after = listener("0.0.0.0", 80, owners=(owner(200, "nginx", ("nginx", "-g", "x")),))
    assert diff_listeners(index_listeners([before]), index_listeners([after])) == []


def test_owner_changed_means_another_program() -> None:
    before = listener("0.0.0.0", 80, owners=(owner(100, "nginx", ("nginx",)),))
    after = listener("0.0.0.0", 80, owners=(owner(100, "caddy", ("caddy", "run")),))
    (event,) = diff_listeners(index_listeners([before]), index_listeners([after]))
    assert event.action is Action.OWNER_CHANGED
    assert event_line(event) == "owner-changed tcp 0.0.0.0:80 nginx[100] -> caddy[100]"
    # unknown owners on one side (not root, or not looked up): no claim
    hidden = listener("0.0.0.0", 80, owners=())
    assert diff_listeners(index_listeners([before]), index_listeners([hidden])) == []


@pytest.mark.parametrize(
    ("old", "new", "action"),
    [
        ("127.0.0.1", "0.0.0.0", Action.SCOPE_WIDENED),
        ("0.0.0.0", "127.0.0.1", Action.SCOPE_NARROWED),
        ("::1", "::", Action.SCOPE_WIDENED),
        ("192.0.2.7", "0.0.0.0", Action.SCOPE_WIDENED),
        ("127.0.0.1", "192.0.2.7", Action.SCOPE_WIDENED),
    ],
)
def test_scope_changes(old: str, new: str, action: Action) -> None:
    events = diff_listeners(
        index_listeners([listener(old, 8000)]), index_listeners([listener(new, 8000)])
    )
    assert [e.action for e in events] == [action]
    assert events[0].before is not None and events[0].before.address == old  # type: ignore[union-attr]


def test_scope_pairs_stay_within_a_family_first() -> None:
    a = index_listeners([listener("127.0.0.1", 8000), listener("::1", 8000)])
    b = index_listeners([listener("0.0.0.0", 8000), listener("::", 8000, v6only=True)])
    events = diff_listeners(a, b)
    pairs = sorted((e.before.address, e.after.address) for e in events)  # type: ignore[union-attr]
    assert pairs == [("127.0.0.1", "0.0.0.0"), ("::1", "::")]
    assert {e.action for e in events} == {Action.SCOPE_WIDENED}


def test_dual_stack_is_wider_than_ipv4_wildcard() -> None:
    events = diff_listeners(
        index_listeners([listener("0.0.0.0", 53, proto=Proto.UDP)]),
        index_listeners([listener("::", 53, proto=Proto.UDP, v6only=False)]),
    )
    assert [e.action for e in events] == [Action.SCOPE_WIDENED]


def test_other_port_or_transport_is_not_a_scope_change() -> None:
    a = index_listeners([listener("127.0.0.1", 8000)])
    b = index_listeners([listener("0.0.0.0", 8000, proto=Proto.UDP), listener("0.0.0.0", 8001)])
    assert sorted(e.action.value for e in diff_listeners(a, b)) == ["added", "added", "removed"]


def stored(address: str, port: int, inode: int, pid: int, state: str = "LISTEN") -> StoredSocket:
    return StoredSocket(
        NS, Proto.TCP, 4, TcpState(state), address, port, None, None, 0, 128, 0, inode, None,
        None, (owner(pid, "nginx", ("nginx: worker",)),),
    )  # fmt: skip


def test_reuseport_group_folds_into_one_listener() -> None:
    rows = [stored("0.0.0.0", 80, 10 + i, 100 + i) for i in range(4)]
    rows.append(stored("127.0.0.1", 5000, 99, 7, state="ESTABLISHED"))  # not a listener
    (item,) = fold_listeners(rows)
    assert item.sockets == 4
    assert item.owners is not None and [o.pid for o in item.owners] == [100, 101, 102, 103]
    # one worker fewer is no change
    fewer = fold_listeners(rows[:3])
    assert diff_listeners(index_listeners([item]), index_listeners(fewer)) == []


def test_listener_json_round_trip_keeps_exact_strings() -> None:
    evil = owner(5, "x\x1b[31mred\u202e", ("x\x1b]0;title\x07", "--flag"))
    item = listener("::1", 22, owners=(evil,))
    assert listener_from_json(listener_json(item)) == item
    line = event_line(diff_listeners({}, index_listeners([item]))[0])
    assert "\x1b" not in line and "\u202e" not in line and "\\x1b" in line
    doc = event_json(diff_listeners({}, index_listeners([item]))[0], stamp=True)
    assert doc["schema"] == "portscope.event/1" and doc["action"] == "added"
    assert doc["socket"]["owners"][0]["name"] == "x\x1b[31mred\u202e"
    assert doc["before"] is None and doc["after"] == doc["socket"]


def scan_port(port: int, state: PortState, address: str = "198.18.0.2") -> ScanPort:
    return ScanPort(address, address, Proto.TCP, port, state, "syn-ack")


def test_scan_state_changes_like_ndiff() -> None:
    host = [ScanHost("198.18.0.2", "198.18.0.2", "up", PortState.CLOSED)]
    a = [scan_port(22, PortState.OPEN), scan_port(80, PortState.OPEN)]
    b = [
        scan_port(22, PortState.OPEN),
        scan_port(443, PortState.OPEN),
        scan_port(80, PortState.FILTERED),
    ]
    events = diff_scans(host, a, host, b)
    got = [
        (e.action.value, e.subject.port, e.before.state.value, e.after.state.value) for e in events
    ]  # type: ignore[union-attr]
    assert got == [
        ("state-changed", 80, "open", "filtered"),
        ("state-changed", 443, "closed", "open"),
    ]
    assert event_line(events[0]) == "state-changed tcp 198.18.0.2:80 open -> filtered"
    # a host only in one scan: its ports are added/removed
    other = [ScanHost("198.18.0.3", "198.18.0.3", "up")]
    events = diff_scans(host, a, [*host, *other], [*a, scan_port(22, PortState.OPEN, "198.18.0.3")])
    assert actions(events) == [("added", "198.18.0.3", 22)]


class FakeSource:
    """Listings given by the test, one per poll."""

    def __init__(self) -> None:
        self.now: list[Row] = []
        self.owner_lookups = 0

    def rows(self) -> list[Row]:
        return list(self.now)

    def owners(self, rows: object) -> dict[int, tuple[Owner, ...]]:
        self.owner_lookups += 1
        return {r.inode: (owner(r.inode, f"p{r.inode}"),) for r in rows}  # type: ignore[attr-defined]


def row(address: str, port: int, inode: int, proto: Proto = Proto.TCP) -> Row:
    state = TcpState.LISTEN if proto is Proto.TCP else TcpState.UNCONN
    family = 6 if ":" in address else 4
    return Row(proto, family, state, address, port, None, None, 0, 0, 0, inode, None, None)


def test_watcher_debounces_added_removed_and_transient() -> None:
    src = FakeSource()
    src.now = [row("0.0.0.0", 22, 1)]
    w = Watcher(src, clock=lambda: 1000.0)
    assert [i.port for i in w.prime()] == [22]
    assert w.poll() == []
    src.now.append(row("0.0.0.0", 9999, 2))
    assert w.poll() == []  # seen once: pending
    assert actions(w.poll()) == [("added", "0.0.0.0", 9999)]
    assert w.poll() == []
    lookups = src.owner_lookups
    src.now.append(row("127.0.0.1", 5353, 3))
    assert w.poll() == []
    src.now.pop()
    (event,) = w.poll()
    assert event.action is Action.TRANSIENT and event.before.owners[0].name == "p3"  # type: ignore[union-attr]
    assert src.owner_lookups == lookups + 1  # only the new inode was looked up
    src.now.append(row("0.0.0.0", 41234, 5, Proto.UDP))  # a resolver's query socket
    assert w.poll() == []
    src.now.pop()
    assert w.poll() == []  # a UDP socket seen once is no listener
    src.now = [row("0.0.0.0", 22, 1)]
    assert w.poll() == []
    assert actions(w.poll()) == [("removed", "0.0.0.0", 9999)]


def test_watcher_restart_within_an_interval_is_no_event_unless_another_program() -> None:
    src = FakeSource()
    src.now = [row("127.0.0.1", 8000, 1)]
    w = Watcher(src, transient=False)
    w.prime()
    src.now = []
    assert w.poll() == []  # gone once: pending
    src.now = [row("127.0.0.1", 8000, 2)]  # back, another inode, another program
    (event,) = w.poll()
    assert event.action is Action.OWNER_CHANGED
    src.now = [row("0.0.0.0", 8000, 4)]  # rebound on every address
    assert w.poll() == []
    (event,) = w.poll()
    assert event.action is Action.SCOPE_WIDENED
    assert (event.before.address, event.after.address) == ("127.0.0.1", "0.0.0.0")  # type: ignore[union-attr]


def test_watcher_no_transient_hides_them() -> None:
    src = FakeSource()
    w = Watcher(src, transient=False)
    w.prime()
    src.now = [row("0.0.0.0", 1234, 9)]
    assert w.poll() == []
    src.now = []
    assert w.poll() == []


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("30d", 2592000), ("12h", 43200), ("90m", 5400), ("1.5s", 1.5), ("2w", 1209600), ("45", 45)],
)
def test_parse_duration(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "d", "-3d", "0", "nan", "inf", "3y", "1e400d"])
def test_parse_duration_refuses(text: str) -> None:
    with pytest.raises(InvalidInput, match="bad duration"):
        parse_duration(text)


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["prune", "--older-than", "3y"], "bad duration '3y'"),
        (["snapshot", "--keep", "soon"], "bad duration 'soon'"),
        (["history", "300.1.1.1:80"], "bad address '300.1.1.1'"),
        (["history", "::1:80"], "as [ADDRESS]:PORT"),
        (["history", "70000"], "out of range"),
        (["watch", "--interval", "0"], "--interval '0'"),
        (["watch", "--exec", "'unclosed"], "--exec"),
        (["diff", "now", "now"], "diff now now"),
    ],
)
def test_bad_input_is_one_line_exit_2(argv: list[str], needle: str, tmp_path: object) -> None:
    from portscope.cli import main

    err = io.StringIO()
    env = Env(stdout=io.StringIO(), stderr=err)
    assert main([*argv, "--db", f"{tmp_path}/h.db"], env) == 2
    lines = err.getvalue().splitlines()
    assert len(lines) == 1 and lines[0].startswith("portscope: error:") and needle in lines[0]


@pytest.mark.parametrize("command", ["snapshot", "diff", "watch", "history", "prune", "import"])
def test_help_loads_no_store_or_socket_code(command: str) -> None:
    import subprocess
    import sys

    out = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "portscope", command, "--help"],
        capture_output=True,
        text=True,
        check=True,
    )
    imported = {line.split("|")[-1].strip() for line in out.stderr.splitlines() if "|" in line}
    assert not {"sqlite3", "asyncio", "rich", "portscope.history"} & imported
    assert "--db PATH" in out.stdout
