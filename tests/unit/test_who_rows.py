"""``who`` over rows: the same holders, JSON and text as over ``Socket`` objects, with
connections summarised per peer and ``--json`` written straight from the rows."""

from __future__ import annotations

import io
import json
from pathlib import Path

from portscope.cli._base import Env
from portscope.diagnose import holders_from_table
from portscope.diagnose.who import SocketRows, holders_from_rows
from portscope.models import Proto, SocketTable, TcpState
from portscope.render.diagnose import render_who, who_json, write_who_json
from portscope.sockets import Row, row_to_socket
from portscope.sockets._owners import OwnerMap, ProcessInfo


def _row(local: str, port: int, state: TcpState, inode: int | None, remote=None, **kw):  # type: ignore[no-untyped-def]
    return Row(
        proto=kw.get("proto", Proto.TCP),
        family=6 if ":" in local else 4,
        state=state,
        local_address=local,
        local_port=port,
        remote_address=None if remote is None else remote[0],
        remote_port=None if remote is None else remote[1],
        recv_q=0,
        send_q=128 if state is TcpState.LISTEN else 0,
        uid=None if inode is None else 0,
        inode=inode,
        interface=kw.get("interface"),
        v6only=kw.get("v6only"),
        cookie=kw.get("cookie", inode),
    )


def _table() -> tuple[list[Row], OwnerMap]:
    rows = [
        _row("127.0.0.1", 80, TcpState.ESTABLISHED, 100 + i, (f"127.20.0.{i % 3 + 1}", 40000 + i))
        for i in range(30)
    ]
    rows.insert(7, _row("0.0.0.0", 80, TcpState.LISTEN, 10))
    rows.insert(9, _row("::", 80, TcpState.LISTEN, 11, v6only=False, interface="e\x1bvil"))
    rows.append(_row("127.0.0.1", 80, TcpState.TIME_WAIT, None, ("127.20.0.9", 5), cookie=7))
    rows.append(_row("127.0.0.1", 80, TcpState.CLOSE_WAIT, 500, ("127.20.0.9", 6)))  # unseen
    rows.append(_row("127.0.0.1", 5000, TcpState.ESTABLISHED, 600, ("127.0.0.1", 80)))  # other
    holders: dict[int, list[tuple[int, int]]] = {10: [(812, 3), (813, 3)], 11: [(812, 4)]}
    for i in range(30):
        holders[100 + i] = [(812 if i % 5 else 813, 10 + i)]
    holders[600] = [(900, 5)]
    processes = {
        812: ProcessInfo("nginx", "root", ("nginx", "-g", "daemon off;"), 1.7e9),
        813: ProcessInfo("nginx\u202e", "www-data", None, None),
        900: ProcessInfo("curl", "alice", ("curl",), 1.7e9),
    }
    return rows, OwnerMap.from_holders(holders, processes)


def test_rows_give_the_holders_sockets_give(tmp_path: Path) -> None:
    rows, omap = _table()
    fast = holders_from_rows(rows, omap, 80, owners_complete=True, proc=tmp_path)
    sockets = tuple(row_to_socket(r, omap) for r in rows)
    slow = holders_from_table(SocketTable(sockets, "test", True), 80, proc=tmp_path)
    assert [h.pid for h in fast.holders] == [h.pid for h in slow.holders] == [812, 813]
    for a, b in zip(fast.holders, slow.holders, strict=True):
        assert isinstance(a.sockets, SocketRows)
        assert (a.name, a.user, a.fds) == (b.name, b.user, b.fds)
        # the same sockets in the same order (owners aside: a holder owns its sockets)
        assert [s.cookie for s in a.sockets] == [s.cookie for s in b.sockets]
        assert list(a.sockets) == list(b.sockets)  # owners included
    assert [s.cookie for s in fast.unowned] == [s.cookie for s in slow.unowned] == [7, 500]
    assert list(fast.unowned) == list(slow.unowned)  # owners () alike
    assert fast.notes == slow.notes and fast.held and slow.held
    assert [s.state for s in fast.holders[0].sockets[:2]] == [TcpState.LISTEN, TcpState.LISTEN]


def test_streamed_json_is_the_who_document(tmp_path: Path) -> None:
    rows, omap = _table()
    fast = holders_from_rows(rows, omap, 80, owners_complete=True, proc=tmp_path)
    sockets = tuple(row_to_socket(r, omap) for r in rows)
    slow = holders_from_table(SocketTable(sockets, "test", True), 80, proc=tmp_path)
    for result in (fast, slow):
        out = io.StringIO()
        write_who_json(result, out, {"identities": []})
        text = out.getvalue()
        assert text.endswith("}\n") and text.count("\n") == 1
        expected = who_json(result)
        expected["identities"] = []
        assert json.loads(text) == json.loads(json.dumps(expected))
        assert list(json.loads(text)) == list(expected)
    a, b = io.StringIO(), io.StringIO()
    write_who_json(fast, a)
    write_who_json(slow, b)
    assert a.getvalue() == b.getvalue()
    assert "e\\u001bvil" in a.getvalue()  # JSON keeps the exact (escaped) interface name


def _shown(items: list[object]) -> str:
    buf = io.StringIO()
    Env(stdout=buf, stderr=io.StringIO(), width=120).show(*items)  # type: ignore[arg-type]
    return buf.getvalue()


def test_connections_are_summarised_per_peer_unless_asked(tmp_path: Path) -> None:
    rows, omap = _table()
    result = holders_from_rows(rows, omap, 80, owners_complete=True, proc=tmp_path)
    text = _shown(render_who(result))
    # 812 holds both listeners and 24 connections: listed per peer, not one by one
    assert "24 connections on port 80 (ESTABLISHED 24) from 3 peers:" in text
    assert "127.20.0.1" in text and "40001" not in text
    assert "e\\x1bvil" in text and "\x1b" not in text
    assert "nginx\\u202e[813]" in text
    every = _shown(render_who(result, every_connection=True))
    assert all(f":{40000 + i}" in every for i in range(30))
    assert "connections on port" not in every
