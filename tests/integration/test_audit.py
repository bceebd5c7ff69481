"""audit over this machine's real listeners: an exposed Redis-like one is flagged."""

from __future__ import annotations

import io
import json
import os
from pathlib import Path

from portscope.cli import Env, main
from portscope.diagnose import Severity, audit, free_ports


def run_cli(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    status = main(list(argv), Env(stdout=out, stderr=err))
    return status, out.getvalue(), err.getvalue()


def test_exposed_redis_like_listener_flagged_loopback_one_not() -> None:
    # Test ports, not 6379: the hint tells audit what they are. Held sockets, so no
    # other process can take the ports first.
    with free_ports(1, hold=True) as wild, free_ports(1, address="127.0.0.1", hold=True) as lo:
        exposed_port, local_port = wild.ports[0], lo.ports[0]
        exposed, local = wild.release(exposed_port), lo.release(local_port)
    exposed.listen()
    local.listen()
    with exposed, local:
        hints = {exposed_port: "redis", local_port: "redis"}
        findings = audit(service_hints=hints)
    on_exposed = [f for f in findings if f.socket.local.port == exposed_port]
    assert {(f.rule, f.severity) for f in on_exposed} >= {
        ("datastore-exposed", Severity.HIGH),
        ("exposed", Severity.INFO),
    }
    redis = next(f for f in on_exposed if f.rule == "datastore-exposed")
    assert redis.scope == "all interfaces (IPv4)" and redis.socket.local.address == "0.0.0.0"
    assert redis.socket.owners and redis.socket.owners[0].pid == os.getpid()
    assert not [f for f in findings if f.socket.local.port == local_port]
    # most severe first
    ranks = [f.severity.rank for f in findings]
    assert ranks == sorted(ranks, reverse=True)


def test_cli_fail_on_sets_the_exit_status() -> None:
    with free_ports(1, hold=True) as held:
        port = held.ports[0]
        server = held.release(port)
    server.listen()
    with server:
        hint = f"{port}=redis"
        status, out, err = run_cli("audit", "--hint", hint, "--fail-on", "high", "--json")
        human_status, human, _ = run_cli("audit", "--hint", f"{port}=redis", "--no-info")
        crit_status, crit_out, _ = run_cli("audit", "--fail-on", "critical", "--json")
    assert status == 1 and err == ""
    data = json.loads(out)
    assert data["failed"] is True and data["fail_on"] == "high"
    mine = [f for f in data["findings"] if f["socket"]["local"]["port"] == port]
    assert {f["rule"] for f in mine} >= {"datastore-exposed", "exposed"}
    assert data["counts"]["high"] >= 1
    assert human_status == 0
    comm = Path(f"/proc/{os.getpid()}/comm").read_text().strip()
    assert f"Redis ({comm}[{os.getpid()}]) reachable on tcp 0.0.0.0:{port} (all inter" in human
    crit = json.loads(crit_out)
    assert crit["failed"] is (crit["counts"]["critical"] > 0)
    assert crit_status == (1 if crit["failed"] else 0)


def test_cli_bad_severity_and_hint() -> None:
    for argv in (["--fail-on", "urgent"], ["--hint", "6379"], ["--hint", "70000=redis"]):
        status, out, err = run_cli("audit", *argv)
        assert status == 2 and out == "" and err.count("\n") == 1
    status, _, err = run_cli("audit", "--hint", "16379=nosuchdb")
    assert status == 2 and "nosuchdb" in err and err.count("\n") == 1


def test_cli_json_scope_and_process_are_the_listening_views() -> None:
    # issue 8: audit --json said "all" where the listening view says "all interfaces
    # (IPv4)", and titles named the registry's service as if it were the process.
    from portscope.sockets import SocketFilter, bind_scope, list_sockets

    with free_ports(1, hold=True) as held:
        port = held.ports[0]
        sock = held.release(port)
    sock.listen()
    with sock:
        status, out, _ = run_cli("audit", "--json")
        view = list_sockets(
            states=["listen"], owners=True, where=SocketFilter(sports=frozenset({port}))
        )
    assert status == 0
    data = json.loads(out)
    mine = [f for f in data["findings"] if f["socket"]["local"]["port"] == port]
    assert mine and {f["scope"] for f in mine} == {bind_scope(s) for s in view.sockets}
    exposed = next(f for f in mine if f["rule"] == "exposed")
    me = f"[{os.getpid()}]"
    assert exposed["process"].endswith(me) and me in exposed["title"]
    assert exposed["title"].startswith(exposed["process"] + " listens on tcp 0.0.0.0:")
