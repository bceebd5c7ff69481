"""probe on loopback: real listeners, real refusals, real silence; library and CLI."""

# ruff: noqa: F811  (fixtures imported from test_probe_fixtures are redefined as arguments)

from __future__ import annotations

import errno
import io
import json
import socket
import subprocess
import sys

import pytest

from portscope.cli import Env, main
from portscope.models import PortState, Proto
from portscope.scanner import _payloads, probe
from portscope.scanner._udp import dns_query

from .test_probe_fixtures import (  # noqa: F401  (fixtures)
    BANNER,
    banner_server,
    free_port,
    full_backlog_port,
    tcp6_server,
    tcp_server,
    udp_responder,
    udp_silent,
)


def run(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    status = main(list(argv), Env(stdout=out, stderr=err))
    return status, out.getvalue(), err.getvalue()


def test_open_port_has_rtt(tcp_server: int) -> None:
    [r] = probe("127.0.0.1", tcp_server)
    assert (r.state, r.reason, r.errno) == (PortState.OPEN, "syn-ack", None)
    assert r.address == "127.0.0.1" and r.port == tcp_server and r.proto is Proto.TCP
    assert r.rtt_s is not None and 0 < r.rtt_s < 1.0


def test_closed_port_is_conn_refused() -> None:
    port = free_port()
    [r] = probe("127.0.0.1", [port])
    assert (r.state, r.reason, r.errno) == (PortState.CLOSED, "conn-refused", errno.ECONNREFUSED)


def test_dropped_syn_is_filtered_after_the_timeout(full_backlog_port: int) -> None:
    [r] = probe("127.0.0.1", full_backlog_port, timeout_s=0.3)
    assert (r.state, r.reason) == (PortState.FILTERED, "no-response")


def test_ipv6_and_family_choice(tcp6_server: int) -> None:
    [r] = probe("::1", tcp6_server, family=6)
    assert r.state is PortState.OPEN and r.address == "::1"
    with pytest.raises(Exception, match="IPv4"):
        probe("::1", tcp6_server, family=4)


def test_banner_is_read(banner_server: int) -> None:
    [r] = probe("127.0.0.1", banner_server, banner=True)
    assert r.state is PortState.OPEN and r.banner == BANNER


def test_udp_answer_is_open_with_the_service_payload(
    udp_responder, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    port = udp_responder.port
    monkeypatch.setitem(_payloads.PAYLOAD_SETS, port, (dns_query(),))  # as if it were port 53
    [r] = probe("127.0.0.1", port, proto=Proto.UDP, timeout_s=1.0)
    assert (r.state, r.reason) == (PortState.OPEN, "udp-response")
    assert udp_responder.received[0] == dns_query()
    assert r.banner is not None and r.banner[2] & 0x80  # the DNS answer (QR bit set)


def test_udp_closed_and_silent(udp_silent: int) -> None:
    closed = free_port(socket.SOCK_DGRAM)
    results = probe("127.0.0.1", [closed, udp_silent], proto=Proto.UDP, timeout_s=0.6)
    by_port = {r.port: r for r in results}
    assert by_port[closed].state is PortState.CLOSED
    assert by_port[closed].reason == "port-unreach" and by_port[closed].errno == errno.ECONNREFUSED
    assert by_port[udp_silent].state is PortState.OPEN_FILTERED
    assert by_port[udp_silent].reason == "no-response"


def test_cli_exit_0_only_when_every_port_is_open(tcp_server: int) -> None:
    status, out, _ = run("probe", "127.0.0.1", str(tcp_server))
    assert status == 0
    assert f"{tcp_server}/tcp" in out and "open" in out and "syn-ack" in out
    closed = free_port()
    status, out, _ = run("probe", "127.0.0.1", f"{tcp_server},{closed}")
    assert status == 1
    assert "conn-refused" in out and "ECONNREFUSED" in out
    assert "nothing listens on that port" in out  # the advice


def test_cli_json(tcp_server: int, banner_server: int) -> None:
    closed = free_port()
    status, out, _ = run(
        "probe", "localhost", f"{tcp_server},{banner_server},{closed}", "-4", "--banner", "--json"
    )
    assert status == 1
    doc = json.loads(out)
    assert doc["host"] == "localhost" and doc["all_open"] is False
    rows = {r["port"]: r for r in doc["results"]}
    assert set(rows) == {tcp_server, banner_server, closed}
    assert rows[tcp_server]["state"] == "open" and rows[tcp_server]["rtt_s"] > 0
    assert rows[banner_server]["banner"] == BANNER.decode()
    c = rows[closed]
    assert (c["state"], c["reason"], c["errno"], c["errno_name"]) == (
        "closed", "conn-refused", errno.ECONNREFUSED, "ECONNREFUSED",
    )  # fmt: skip
    assert "nothing listens" in c["advice"]
    assert all(r["address"] == "127.0.0.1" for r in doc["results"])


def test_cli_udp(udp_silent: int) -> None:
    status, out, _ = run("probe", "127.0.0.1", str(udp_silent), "-u", "--timeout", "0.3", "--json")
    assert status == 1
    [r] = json.loads(out)["results"]
    assert (r["proto"], r["state"]) == ("udp", "open|filtered")


def test_probe_respects_the_fd_budget_under_ulimit_n_1024(tcp_server: int) -> None:
    # `ulimit -n 1024` (soft and hard), then 1,101 ports at once: it ended in an
    # ExceptionGroup traceback (EMFILE); on the scheduler every port gets a state
    import resource

    def low_limit() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (1024, 1024))

    lo = 44000 if not 44000 <= tcp_server <= 45100 else 46000
    ports = f"{lo}-{lo + 1100},{tcp_server}"
    proc = subprocess.run(
        [sys.executable, "-m", "portscope", "probe", "127.0.0.1", ports, "--timeout", "2",
         "--json"],
        capture_output=True, text=True, timeout=120, preexec_fn=low_limit,
    )  # fmt: skip
    assert proc.returncode == 1, proc.stderr  # 1: not every port is open
    assert "Traceback" not in proc.stderr and proc.stderr == ""
    rows = json.loads(proc.stdout)["results"]
    assert sorted(r["port"] for r in rows) == sorted([*range(lo, lo + 1101), tcp_server])
    states = {r["port"]: r["state"] for r in rows}
    assert states[tcp_server] == "open"
    assert set(states.values()) <= {"open", "closed"}  # loopback: no port left undecided


def test_probe_keeps_every_port_and_the_unreachable_state(tcp_server: int) -> None:
    # a probe is a small scan, but reports closed ports and resolver/port order
    closed = free_port()
    results = probe("localhost", [closed, tcp_server], family=4)
    assert [(r.port, r.state) for r in results] == sorted(
        [(closed, PortState.CLOSED), (tcp_server, PortState.OPEN)]
    )
