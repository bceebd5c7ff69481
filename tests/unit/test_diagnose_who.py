"""who's grouping, the connect verdicts, and the renderers (golden text)."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

from portscope.cli._base import Env
from portscope.diagnose import ConnectVerdict, holders_from_table
from portscope.diagnose.why_connect import explain_connect
from portscope.models import PortState, ProbeResult, Proto, SocketTable, TcpState
from portscope.render.diagnose import render_audit, render_who

from .test_diagnose_helpers import owner, sock


def table(*socks, complete: bool | None = True) -> SocketTable:  # type: ignore[no-untyped-def]
    return SocketTable(tuple(socks), "test", owners_complete=complete)


def test_groups_sockets_by_process_listeners_first(tmp_path: Path) -> None:
    (tmp_path / "812").mkdir()
    (tmp_path / "812" / "cgroup").write_text("0::/system.slice/nginx.service\n")
    nginx = owner(812, "nginx", "www-data")
    socks = [
        sock("127.0.0.1", 80, TcpState.ESTABLISHED, remote=("127.0.0.1", 5000), owners=(nginx,)),
        sock("0.0.0.0", 80, owners=(nginx,)),
        sock("::", 80, owners=(nginx,)),
        sock("127.0.0.1", 80, TcpState.TIME_WAIT, remote=("127.0.0.1", 5001), uid=None),
        sock("127.0.0.1", 5000, TcpState.ESTABLISHED, remote=("127.0.0.1", 80), owners=(nginx,)),
        sock("0.0.0.0", 80, TcpState.UNCONN, proto=Proto.UDP, owners=(owner(7, "quic"),)),
    ]
    result = holders_from_table(table(*socks), 80, Proto.TCP, proc=tmp_path)
    assert [h.pid for h in result.holders] == [812]
    h = result.holders[0]
    assert h.unit == "nginx.service" and h.user == "www-data"
    assert [(s.local.address, s.state) for s in h.sockets] == [
        ("0.0.0.0", TcpState.LISTEN),
        ("::", TcpState.LISTEN),
        ("127.0.0.1", TcpState.ESTABLISHED),
    ]
    assert [s.state for s in result.unowned] == [TcpState.TIME_WAIT]
    assert result.held
    both = holders_from_table(table(*socks), 80, None, proc=tmp_path)
    assert [h.pid for h in both.holders] == [7, 812]


def test_stop_hint_for_managed_processes() -> None:
    from portscope.render.diagnose import stop_hint

    assert stop_hint("nginx.service", None) == (
        "systemctl stop nginx.service  (a kill may be undone by Restart=)"
    )
    assert (stop_hint("session-3.scope", None)) is None
    assert (stop_hint(None, "docker:4f1c2a9b8e7d") or "").startswith("docker stop 4f1c2a9b8e7d")
    assert stop_hint(None, None) is None


def test_time_wait_alone_is_not_held_other_users_socket_is() -> None:
    tw = sock("127.0.0.1", 9000, TcpState.TIME_WAIT, remote=("127.0.0.1", 1), uid=None)
    assert not holders_from_table(table(tw), 9000).held
    theirs = sock("0.0.0.0", 9000, uid=33)
    result = holders_from_table(table(theirs, complete=False), 9000)
    assert result.held and result.holders == ()
    assert any("root" in n for n in result.notes)


def test_render_who_golden() -> None:
    nginx = owner(812, "nginx", "www-data")
    result = holders_from_table(table(sock("0.0.0.0", 8080, owners=(nginx,))), 8080)
    text = shown(render_who(result), 100)
    assert "nginx[812] user www-data" in text
    assert "command  nginx --flag" in text
    assert "0.0.0.0:8080" in text and "all interfaces (IPv4)" in text and "LISTEN" in text
    assert shown(render_who(holders_from_table(table(), 8080)), 100) == "nobody holds port 8080\n"


def test_render_who_escapes_hostile_names() -> None:
    evil = owner(813, "\x1b[2K\rsshd\nFAKE", "www-data")
    text = shown(render_who(holders_from_table(table(sock("0.0.0.0", 8080, owners=(evil,))), 8080)))
    assert "\x1b" not in text and "\r" not in text
    assert "\\x1b[2K\\x0dsshd\\x0aFAKE[813]" in text


def shown(items: list[Any], width: int = 100) -> str:
    out = io.StringIO()
    Env(stdout=out, stderr=io.StringIO(), width=width).show(*items)
    return out.getvalue()


def test_render_audit_blocks() -> None:
    from portscope.diagnose import audit_sockets

    redis = sock("0.0.0.0", 6379, owners=(owner(5, "redis-server", "redis"),))
    found = audit_sockets([redis], service_name=lambda p, q: None)
    text = shown(render_audit(found), 200)
    assert (
        "HIGH     Redis (redis-server[5]) reachable on tcp 0.0.0.0:6379 (all interfaces (IPv4))"
        "  [datastore-exposed]" in text
    )
    assert "fix     set 'bind 127.0.0.1 ::1'" in text
    assert text.rstrip().endswith("audit: 1 high, 1 info")


def probe(state: PortState, reason: str) -> ProbeResult:
    return ProbeResult("h", "127.0.0.2", 8080, Proto.TCP, state, reason)


def test_connect_verdicts() -> None:
    lo = sock("127.0.0.1", 8080)

    def verdict(state: PortState, *, local: bool = True, listeners=()) -> ConnectVerdict:  # type: ignore[no-untyped-def]
        v, text, cmds = explain_connect(
            "h", 8080, Proto.TCP, "127.0.0.2", probe(state, "x"), local=local, listeners=listeners
        )
        assert text and cmds
        return v

    assert verdict(PortState.OPEN) is ConnectVerdict.OPEN
    assert verdict(PortState.CLOSED) is ConnectVerdict.REFUSED
    assert verdict(PortState.CLOSED, listeners=[lo]) is ConnectVerdict.LISTENS_ELSEWHERE
    covering = [sock("0.0.0.0", 8080)]
    assert verdict(PortState.CLOSED, listeners=covering) is ConnectVerdict.FIREWALL_REJECT
    assert verdict(PortState.CLOSED, local=False) is ConnectVerdict.REFUSED
    assert verdict(PortState.FILTERED) is ConnectVerdict.FILTERED
    assert verdict(PortState.UNREACHABLE) is ConnectVerdict.UNREACHABLE
    for reason in ("admin-prohibited", "host-prohibited", "local-firewall"):
        v, text, _ = explain_connect(
            "h", 8080, Proto.TCP, "198.18.0.2", probe(PortState.UNREACHABLE, reason),
            local=False, listeners=(),
        )  # fmt: skip
        assert v is ConnectVerdict.FIREWALL_REJECT and reason in text
    _, text, cmds = explain_connect(
        "h", 8080, Proto.TCP, "127.0.0.2", probe(PortState.CLOSED, "conn-refused"),
        local=True, listeners=[lo],
    )  # fmt: skip
    assert "127.0.0.1:8080 (loopback only)" in text
    assert cmds[0] == "portscope who 8080"


def test_hidden_master_of_forked_workers_is_said() -> None:
    # Not root, nginx-like: the listener was opened by root (socket uid 0), the visible
    # holders are www-data workers; their parent (the master, root) is invisible.
    from dataclasses import replace

    from portscope.diagnose.who import hidden_master

    workers = (owner(812, "nginx", "www-data"), owner(813, "nginx", "www-data"))
    lsn = sock("0.0.0.0", 8080, owners=workers, uid=0)
    found = holders_from_table(table(lsn, complete=False), 8080, proc=Path("/nonexistent"))
    result = replace(found, holders=tuple(replace(h, ppid=700) for h in found.holders))
    users = {0: "root", 33: "www-data"}.__getitem__
    procs = {700: ("nginx", 0), 701: ("bash", 33)}.get
    note = hidden_master(result, users, procs)
    assert note is not None
    assert "opened by user root" in note and "nginx[700]" in note
    assert "will not free the port" in note and "nginx[812], nginx[813]" in note
    # root sees everything; a listener opened by the visible user is not suspicious; a
    # parent of another user is not the opener
    assert hidden_master(replace(result, owners_complete=True), users, procs) is None
    mine = sock("0.0.0.0", 8080, owners=workers, uid=33)
    same = holders_from_table(table(mine, complete=False), 8080, proc=Path("/nonexistent"))
    same = replace(same, holders=tuple(replace(h, ppid=700) for h in same.holders))
    assert hidden_master(same, users, procs) is None
    other_parent = replace(result, holders=tuple(replace(h, ppid=701) for h in result.holders))
    assert hidden_master(other_parent, users, procs) is None
    # a daemon that dropped privileges itself, started by init: no master to point at
    by_init = replace(result, holders=tuple(replace(h, ppid=1) for h in result.holders))
    assert hidden_master(by_init, users, procs) is None


def test_queue_full_and_udp_silence_verdicts() -> None:
    from dataclasses import replace

    full = sock("127.0.0.1", 8080, owners=(owner(9, "slow"),))
    full = replace(full, recv_q=2, send_q=1)
    v, text, _ = explain_connect(
        "h", 8080, Proto.TCP, "127.0.0.1", probe(PortState.FILTERED, "no-response"),
        local=True, listeners=[full],
    )  # fmt: skip
    assert v is ConnectVerdict.ACCEPT_QUEUE_FULL and "firewall drops" not in text
    assert "slow[9]" in text and "127.0.0.1:8080" in text and "backlog of 1" in text
    # backlog not reached (Recv-Q == backlog still accepts: sk_acceptq_is_full uses >)
    ok = replace(full, recv_q=1)
    v, _, _ = explain_connect(
        "h", 8080, Proto.TCP, "127.0.0.1", probe(PortState.FILTERED, "no-response"),
        local=True, listeners=[ok],
    )  # fmt: skip
    assert v is ConnectVerdict.FILTERED
    udp = sock("0.0.0.0", 5353, TcpState.UNCONN, proto=Proto.UDP, owners=(owner(4, "mdns"),))
    silent = ProbeResult("h", "127.0.0.1", 5353, Proto.UDP, PortState.OPEN_FILTERED, "no-response")
    v, text, _ = explain_connect(
        "h", 5353, Proto.UDP, "127.0.0.1", silent, local=True, listeners=[udp]
    )
    assert v is ConnectVerdict.OPEN_FILTERED and "mdns[4]" in text and "0.0.0.0:5353" in text
    v, text, _ = explain_connect(
        "h", 5353, Proto.UDP, "198.18.0.2", silent, local=False, listeners=()
    )
    assert v is ConnectVerdict.OPEN_FILTERED and "open|filtered" in text


def test_check_host_refuses_malformed_literals() -> None:
    import pytest

    from portscope.diagnose._common import check_host
    from portscope.errors import InvalidTarget

    assert check_host("[::1]") == "::1" and check_host(" example.invalid ") == "example.invalid"
    for bad in ("300.1.1.1", "1.2.3", "10", "::1::2", "1.2.3.4.5", "", "fe80::1%lo"):
        with pytest.raises(InvalidTarget):
            check_host(bad)


# --- issue 18: who at scale, --kill roles, orphans ----------------------------------------


def test_grouping_never_compares_sockets(monkeypatch: Any) -> None:
    # `sock not in list` compared dataclasses: quadratic in the connections on the port
    import dataclasses

    from portscope.models import Socket

    compared = []

    def counting_eq(self: Socket, other: object) -> bool:
        compared.append(1)
        return self is other

    server = owner(700, "srv")
    socks = [sock("0.0.0.0", 8080, owners=(server, dataclasses.replace(server, fd=4)))]
    socks += [
        sock("127.0.0.1", 8080, TcpState.ESTABLISHED, remote=("127.0.0.1", 10_000 + i),
             owners=(dataclasses.replace(server, fd=10 + i),))
        for i in range(3000)
    ]  # fmt: skip
    monkeypatch.setattr(Socket, "__eq__", counting_eq)
    result = holders_from_table(table(*socks), 8080)
    assert compared == []
    (h,) = result.holders
    assert len(h.sockets) == 3001 and h.sockets[0].state is TcpState.LISTEN
    assert len(h.fds) == 3002  # the listener on two fds, listed once


def test_kill_acts_on_listeners_never_on_a_client_source_port() -> None:
    from portscope.diagnose import HolderRole, KillOutcome, kill_holders, kill_targets
    from portscope.diagnose.who import holder_roles

    client = owner(901, "curl")
    # port 51036 is only curl's ephemeral source port: nobody listens on it
    out = sock("127.0.0.1", 51036, TcpState.ESTABLISHED, remote=("127.0.0.1", 80),
               owners=(client,))  # fmt: skip
    result = holders_from_table(table(out), 51036)
    assert holder_roles(result, (32768, 60999)) == {901: HolderRole.CLIENT}
    # outside the ephemeral range nobody's source port: a server whose listener is gone
    assert holder_roles(result, (52000, 60999)) == {901: HolderRole.ACCEPTED}
    assert kill_targets(result) == [] and kill_targets(result, accepted=True) == []
    report = kill_holders(result, recheck=False)
    assert [(r.pid, r.outcome, r.signals) for r in report.results] == [
        (901, KillOutcome.CLIENT, ())
    ]
    # a listener, a worker holding an accepted connection, a client from the same port
    srv, worker = owner(902, "sshd"), owner(903, "sshd")
    mixed = table(
        sock("0.0.0.0", 22, owners=(srv,)),
        sock("10.0.0.1", 22, TcpState.ESTABLISHED, remote=("10.0.0.9", 5000), owners=(worker,)),
    )
    roles = holder_roles(holders_from_table(mixed, 22))
    assert roles == {902: HolderRole.LISTENER, 903: HolderRole.ACCEPTED}
    assert [h.pid for h in kill_targets(holders_from_table(mixed, 22))] == [902]
    both = kill_targets(holders_from_table(mixed, 22), accepted=True)
    assert [h.pid for h in both] == [902, 903]


def test_an_orphaned_fin_wait_2_is_not_held_and_expires_by_itself(tmp_path: Path) -> None:
    import dataclasses

    (tmp_path / "sys" / "net" / "ipv4").mkdir(parents=True)
    (tmp_path / "sys" / "net" / "ipv4" / "tcp_fin_timeout").write_text("37\n")
    orphan = dataclasses.replace(
        sock("127.0.0.1", 41000, TcpState.FIN_WAIT_2, remote=("127.0.0.1", 80), uid=1000),
        inode=None,
    )
    result = holders_from_table(table(orphan, complete=False), 41000, proc=tmp_path)
    assert not result.held and result.orphans == (orphan,)
    (note,) = result.notes  # no "run as root": nobody is hidden
    assert "belong to no process" in note and "within 37 s (net.ipv4.tcp_fin_timeout)" in note
    assert "nothing to kill" in note
    # an invisible process's FIN-WAIT-2 socket still has its inode: held, not an orphan
    theirs = sock("127.0.0.1", 41000, TcpState.FIN_WAIT_2, remote=("127.0.0.1", 80))
    assert holders_from_table(table(theirs, complete=False), 41000, proc=tmp_path).held


def test_who_json_lists_a_holders_sockets_without_repeating_the_owner() -> None:
    from portscope.render.diagnose import who_json

    srv = owner(700, "srv")
    result = holders_from_table(
        table(
            sock("0.0.0.0", 8080, owners=(srv,)),
            sock("127.0.0.1", 8080, TcpState.ESTABLISHED, remote=("127.0.0.1", 9), owners=(srv,)),
        ),
        8080,
    )
    doc = who_json(result)
    (holder,) = doc["holders"]
    assert holder["pid"] == 700 and holder["cmdline"] == ["srv", "--flag"]
    assert [s["state"] for s in holder["sockets"]] == ["LISTEN", "ESTABLISHED"]
    assert all("owners" not in s for s in holder["sockets"])
    assert holder["sockets"][0]["local"] == {"address": "0.0.0.0", "port": 8080}
    assert doc["held"] is True and holder["other_sockets"] is None
