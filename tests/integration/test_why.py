"""why bind / why connect against real loopback sockets (this machine's addresses only)."""

from __future__ import annotations

import errno
import importlib
import io
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from portscope.cli import Env, main
from portscope.diagnose import BindCause, ConnectVerdict, free_ports, why_bind, why_connect
from portscope.models import PortState, Proto, TcpState
from portscope.sockets import SocketFilter, list_sockets


def run_cli(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    status = main(list(argv), Env(stdout=out, stderr=err))
    return status, out.getvalue(), err.getvalue()


@pytest.fixture
def port() -> int:
    return free_ports(1)[0].port


def listener(
    address: str, port: int, *, v6only: bool | None = None, reuseaddr: bool = False
) -> socket.socket:
    fam = socket.AF_INET6 if ":" in address else socket.AF_INET
    sock = socket.socket(fam, socket.SOCK_STREAM)
    if reuseaddr:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if v6only is not None:
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, int(v6only))
    sock.bind((address, port))
    sock.listen()
    return sock


def causes(diag) -> list[BindCause]:  # type: ignore[no-untyped-def]
    return [r.cause for r in diag.reasons if r.blocking]


def test_wildcard_listener_blocks_a_specific_bind(port: int) -> None:
    with listener("0.0.0.0", port):
        diag = why_bind(port, addr="127.0.0.1")
    assert (diag.predicted_ok, diag.ok, diag.errno) == (False, False, errno.EADDRINUSE)
    assert diag.confirmed and causes(diag) == [BindCause.WILDCARD_HOLDS]
    evidence = diag.reasons[0].sockets[0]
    assert str(evidence.local) == f"0.0.0.0:{port}" and evidence.state is TcpState.LISTEN
    assert evidence.owners and evidence.owners[0].pid == os.getpid()


def test_specific_listener_blocks_the_wildcard_only(port: int) -> None:
    with listener("127.0.0.1", port):
        wild = why_bind(port)
        other = why_bind(port, addr="127.0.0.2")
    assert (wild.ok, wild.predicted_ok) == (False, False)
    assert causes(wild) == [BindCause.SPECIFIC_HOLDS]
    assert (other.ok, other.predicted_ok, other.errno) == (True, True, None)


def test_dual_stack_v6_listener_takes_ipv4(port: int) -> None:
    if not socket.has_ipv6:
        pytest.skip("no IPv6")
    with listener("::", port, v6only=False):
        dual = why_bind(port)
    assert (dual.ok, dual.predicted_ok) == (False, False)
    assert causes(dual) == [BindCause.DUAL_STACK]
    with listener("::", port, v6only=True):
        v6only = why_bind(port)
    assert v6only.ok and v6only.predicted_ok


def _time_wait_on(port: int, *, reuseaddr: bool) -> None:
    """Leave a TIME-WAIT socket whose local port is ``port`` (the server closes first)."""
    with listener("127.0.0.1", port, reuseaddr=reuseaddr) as srv:
        client = socket.create_connection(("127.0.0.1", port), timeout=5)
        conn, _ = srv.accept()
        conn.close()  # active close: this side goes to TIME-WAIT after the client's FIN
        client.recv(1)
        client.close()
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        table = list_sockets(states=["TIME-WAIT"], where=SocketFilter(sports=frozenset({port})))
        if table.sockets:
            return
        time.sleep(0.02)
    raise AssertionError("no TIME-WAIT socket appeared")


def test_time_wait_blocks_a_plain_bind_not_reuseaddr(port: int) -> None:
    # A server that set SO_REUSEADDR leaves TIME-WAIT sockets that also have it.
    _time_wait_on(port, reuseaddr=True)
    plain = why_bind(port, addr="127.0.0.1")
    assert (plain.predicted_ok, plain.ok, plain.errno) == (False, False, errno.EADDRINUSE)
    assert causes(plain) == [BindCause.TIME_WAIT]
    assert plain.reasons[0].sockets[0].state is TcpState.TIME_WAIT
    reuse = why_bind(port, addr="127.0.0.1", reuseaddr=True)
    assert (reuse.predicted_ok, reuse.ok) == (True, True)
    assert [r.cause for r in reuse.reasons][:1] == [BindCause.TIME_WAIT]
    assert not reuse.reasons[0].blocking


def test_time_wait_of_a_server_without_reuseaddr_blocks_even_with_it(port: int) -> None:
    _time_wait_on(port, reuseaddr=False)
    diag = why_bind(port, addr="127.0.0.1", reuseaddr=True)
    assert (diag.predicted_ok, diag.ok, diag.errno) == (True, False, errno.EADDRINUSE)
    assert not diag.confirmed and causes(diag) == [BindCause.TIME_WAIT]
    assert "needs both" in diag.reasons[0].explanation


def test_address_not_on_this_host(port: int) -> None:
    if Path("/proc/sys/net/ipv4/ip_nonlocal_bind").read_text().strip() != "0":
        pytest.skip("ip_nonlocal_bind allows any address")
    # Binding sends nothing; 198.18.0.0/15 is the benchmarking range, on no interface here.
    diag = why_bind(port, addr="198.18.0.99")
    assert (diag.ok, diag.errno) == (False, errno.EADDRNOTAVAIL)
    assert causes(diag) == [BindCause.ADDR_NOT_AVAILABLE] and diag.confirmed


@pytest.mark.root
def test_privileged_port_without_cap_net_bind_service() -> None:
    start = int(Path("/proc/sys/net/ipv4/ip_unprivileged_port_start").read_text())
    setpriv = shutil.which("setpriv")
    if start <= 1 or setpriv is None:
        pytest.skip("every port is unprivileged here, or no setpriv(1)")
    low = start - 1
    # Root without CAP_NET_BIND_SERVICE: drop it from the bounding set, then exec.
    cmd = [setpriv, "--bounding-set", "-net_bind_service", sys.executable, "-m", "portscope"]
    done = subprocess.run(
        [*cmd, "why", "bind", str(low), "--addr", "127.0.0.1", "--json"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1, done.stderr
    data = json.loads(done.stdout)
    assert data["errno"] == errno.EACCES and data["confirmed"] is True
    assert data["reasons"][0]["cause"] == "privileged"
    assert "CAP_NET_BIND_SERVICE" in data["reasons"][0]["explanation"]


def test_udp_conflict_and_sharing(port: int) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        udp.bind(("127.0.0.1", port))
        plain = why_bind(port, addr="127.0.0.1", proto=Proto.UDP)
        tcp = why_bind(port, addr="127.0.0.1")
    assert (plain.ok, plain.predicted_ok, plain.errno) == (False, False, errno.EADDRINUSE)
    assert causes(plain) == [BindCause.IN_USE]
    assert plain.reasons[0].sockets[0].state is TcpState.UNCONN
    assert tcp.ok and tcp.predicted_ok  # TCP and UDP ports are separate
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        udp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        udp.bind(("127.0.0.1", port))
        shared = why_bind(port, addr="127.0.0.1", proto=Proto.UDP, reuseaddr=True)
    assert shared.ok and shared.predicted_ok and shared.confirmed


def test_cli_why_bind_conflict(port: int) -> None:
    with listener("0.0.0.0", port):
        status, out, _ = run_cli("why", "bind", str(port), "--addr", "127.0.0.1")
        jstatus, jout, _ = run_cli("why", "bind", str(port), "--addr", "127.0.0.1", "--json")
    assert status == 1
    assert f"bind tcp 127.0.0.1:{port}: would FAIL" in out
    assert "EADDRINUSE" in out and "wildcard-holds" in out
    assert jstatus == 1 and json.loads(jout)["reasons"][0]["cause"] == "wildcard-holds"
    status, out, _ = run_cli("why", "bind", str(port), "--udp")
    assert status == 0 and "would succeed" in out


# --- why connect ---------------------------------------------------------------------


def test_service_on_loopback_probed_through_another_loopback_address(port: int) -> None:
    with listener("127.0.0.1", port):
        diag = why_connect("127.0.0.2", port, timeout_s=2)
    assert diag.local and diag.address == "127.0.0.2"
    assert diag.probe is not None and diag.probe.state is PortState.CLOSED
    assert diag.verdict is ConnectVerdict.LISTENS_ELSEWHERE
    assert [str(s.local) for s in diag.listeners] == [f"127.0.0.1:{port}"]
    assert "loopback only" in diag.explanation
    assert [s.name for s in diag.steps] == ["resolve", "route", "probe", "listeners"]
    assert diag.next_commands[0] == f"portscope who {port}"


_IN_NAMESPACE = """
import json, socket, sys
from portscope.diagnose import why_connect
port = int(sys.argv[1])
srv = socket.socket(); srv.bind(("127.0.0.1", port)); srv.listen()
d = why_connect("198.18.9.1", port, timeout_s=2)
print(json.dumps({"local": d.local, "route_ok": d.steps[1].ok,
                  "route": d.steps[1].summary, "verdict": d.verdict.value}))
"""


@pytest.mark.root
def test_service_on_loopback_probed_through_this_hosts_own_address() -> None:
    # The host's "own other address" lives in a namespace this test makes (a veth pair
    # with both ends inside it, one holding 198.18.9.1), so no packet can reach a network.
    if shutil.which("ip") is None:
        pytest.skip("iproute2 (ip) is not installed")
    ns = f"ps-why-{os.getpid()}"
    subprocess.run(["ip", "netns", "add", ns], check=True)
    try:
        for cmd in (
            "ip link set lo up",
            "ip link add d0 type veth peer name d1",
            "ip addr add 198.18.9.1/24 dev d0",
            "ip link set d0 up",
            "ip link set d1 up",
        ):
            subprocess.run(["ip", "-n", ns, *cmd.split()[1:]], check=True)
        out = subprocess.run(
            ["ip", "netns", "exec", ns, sys.executable, "-c", _IN_NAMESPACE, "41234"],
            capture_output=True, text=True, check=True, timeout=60,
        )  # fmt: skip
    finally:
        subprocess.run(["ip", "netns", "del", ns], check=False)
    result = json.loads(out.stdout)
    # An address of this host is delivered locally: the probe never leaves the machine.
    assert result["local"] and result["route_ok"] and "local" in result["route"]
    assert result["verdict"] == "listens-elsewhere"


def test_open_and_refused(port: int) -> None:
    with listener("127.0.0.1", port):
        ok = why_connect("127.0.0.1", port, timeout_s=2)
    assert ok.verdict is ConnectVerdict.OPEN and ok.source == "127.0.0.1"
    refused = why_connect("localhost", port, timeout_s=2)
    assert refused.verdict is ConnectVerdict.REFUSED
    assert refused.addresses and refused.listeners == ()


def test_cli_why_connect_ipv6_brackets(port: int) -> None:
    if not socket.has_ipv6:
        pytest.skip("no IPv6")
    with listener("::1", port):
        status, out, _ = run_cli("why", "connect", f"[::1]:{port}", "--json")
        human_status, human, _ = run_cli("why", "connect", f"[::1]:{port}")
    data = json.loads(out)
    assert status == 0 and data["verdict"] == "open" and data["address"] == "::1"
    assert human_status == 0 and "diagnosis: open" in human and "1. resolve" in human


def test_name_open_on_ipv4_only_is_open_with_a_note(
    port: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    if not socket.has_ipv6:
        pytest.skip("no IPv6")
    # As /etc/hosts often has it: "localhost" -> ::1 first, then 127.0.0.1 (real probes).
    why = importlib.import_module(
        "portscope.diagnose.why_connect"
    )  # the package exports a function of that name

    monkeypatch.setattr(why, "_resolve", lambda host, port, proto: (["::1", "127.0.0.1"], None))
    with listener("127.0.0.1", port):
        diag = why_connect("localhost", port, timeout_s=2)
    states = {r.address: r.state for r in diag.probes}
    assert states == {"127.0.0.1": PortState.OPEN, "::1": PortState.CLOSED}
    assert diag.verdict is ConnectVerdict.OPEN and diag.address == "127.0.0.1"
    assert "::1 is closed" in diag.explanation
    assert diag.steps[2].evidence[0].startswith("::1: closed")


def test_name_that_does_not_resolve(monkeypatch: pytest.MonkeyPatch) -> None:
    # the resolver is mocked (no DNS query leaves the machine): it knows no such name
    asked = []

    def unknown(host: str, *args: object, **kwargs: object) -> object:
        asked.append(host)
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", unknown)
    diag = why_connect("no-such-host.invalid", 80)
    assert diag.verdict is ConnectVerdict.NOT_RESOLVED and diag.probe is None
    assert asked == ["no-such-host.invalid"]


# --- issue 8 ---------------------------------------------------------------------------


def test_full_accept_queue_is_named_not_blamed_on_a_firewall(port: int) -> None:
    # A listener with backlog 1 that never calls accept(): two connections fill its queue
    # (the kernel keeps backlog + 1), then SYNs are dropped and the probe times out.
    srv = socket.socket()
    srv.bind(("127.0.0.1", port))
    srv.listen(1)
    clients: list[socket.socket] = []
    try:
        where = SocketFilter(sports=frozenset({port}))
        deadline = time.monotonic() + 5
        full = False
        while not full and time.monotonic() < deadline and len(clients) < 6:
            c = socket.socket()
            c.setblocking(False)
            c.connect_ex(("127.0.0.1", port))
            clients.append(c)
            time.sleep(0.05)
            (lsn,) = list_sockets(states=["listen"], where=where).sockets
            full = lsn.recv_q > lsn.send_q
        assert full, "the accept queue did not fill"
        diag = why_connect("127.0.0.1", port, timeout_s=0.5)
    finally:
        for c in clients:
            c.close()
        srv.close()
    assert diag.verdict is ConnectVerdict.ACCEPT_QUEUE_FULL
    assert "firewall drops" not in diag.explanation
    assert f"127.0.0.1:{port}" in diag.explanation and f"[{os.getpid()}]" in diag.explanation
    assert "accept()" in diag.explanation and "backlog of 1" in diag.explanation


def test_udp_silence_is_open_filtered_with_the_local_socket_named(port: int) -> None:
    # A bound UDP socket that never reads: the datagram is queued, nothing answers.
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as quiet:
        quiet.bind(("127.0.0.1", port))
        diag = why_connect("127.0.0.1", port, proto=Proto.UDP, timeout_s=0.3)
        status, out, _ = run_cli("why", "connect", f"127.0.0.1:{port}", "-u", "--timeout", "0.3")
    assert diag.probe is not None and diag.probe.state is PortState.OPEN_FILTERED
    assert diag.verdict is ConnectVerdict.OPEN_FILTERED
    assert "firewall drops" not in diag.explanation
    assert f"127.0.0.1:{port}" in diag.explanation and f"[{os.getpid()}]" in diag.explanation
    assert status == 1 and "diagnosis: open|filtered" in out


def test_malformed_address_literals_are_refused_before_any_resolution(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from portscope.errors import InvalidTarget

    def no_dns(*args: object, **kwargs: object) -> None:
        raise AssertionError("getaddrinfo called")

    monkeypatch.setattr(socket, "getaddrinfo", no_dns)
    for bad in ("300.1.1.1", "1.2.3", "1.2.3.4.5", "::1::2"):
        with pytest.raises(InvalidTarget):
            why_connect(bad, 80)
    _, _, probe_err = run_cli("probe", "300.1.1.1", "80")
    status, out, err = run_cli("why", "connect", "300.1.1.1:80")
    assert status == 2 and out == "" and err == probe_err
    assert "300.1.1.1" in err


def test_service_names_in_why(port: int) -> None:
    _, out, _ = run_cli("why", "bind", "http-alt", "--addr", "127.0.0.1", "--json")
    assert json.loads(out)["port"] == 8080
    _, out, _ = run_cli("why", "connect", "127.0.0.1:http-alt", "--json", "--timeout", "0.5")
    assert json.loads(out)["port"] == 8080


def test_family_flags_and_brackets(port: int, monkeypatch: pytest.MonkeyPatch) -> None:
    if not socket.has_ipv6:
        pytest.skip("no IPv6")
    why = importlib.import_module(
        "portscope.diagnose.why_connect"
    )  # the package exports a function of that name

    monkeypatch.setattr(why, "_resolve", lambda host, port, proto: (["::1", "127.0.0.1"], None))
    with listener("::1", port):
        four = why_connect("dual.invalid", port, timeout_s=1, family=4)
        six = why_connect("dual.invalid", port, timeout_s=1, family=6)
        status, out, _ = run_cli("why", "connect", f"[::1]:{port}")
        _, bind_out, _ = run_cli("why", "bind", str(port), "-6")
    assert four.addresses == ("127.0.0.1",) and four.verdict is not ConnectVerdict.OPEN
    assert six.addresses == ("::1",) and six.verdict is ConnectVerdict.OPEN
    assert status == 0 and out.startswith(f"connect tcp [::1]:{port}\n")
    assert bind_out.startswith(f"bind tcp [::]:{port}: would FAIL")
    assert f"[::1]:{port}" in bind_out
