"""Parity with ``ss``: the TCP 5-tuples and states portscope reports are the ones ``ss``
reports on the same machine at the same moment (sockets that change in between allowed)."""

from __future__ import annotations

import io
import re
import shutil
import socket
import subprocess
from collections.abc import Iterator

import pytest

from portscope.models import TcpState
from portscope.sockets import list_sockets

pytestmark = pytest.mark.skipif(shutil.which("ss") is None, reason="needs ss (iproute2)")

# ss's names (misc/ss.c sstate_name) -> ours; ss calls a TCP CLOSE socket UNCONN
SS_STATES = {
    "ESTAB": "ESTABLISHED",
    "SYN-SENT": "SYN-SENT",
    "SYN-RECV": "SYN-RECV",
    "FIN-WAIT-1": "FIN-WAIT-1",
    "FIN-WAIT-2": "FIN-WAIT-2",
    "TIME-WAIT": "TIME-WAIT",
    "UNCONN": "CLOSE",
    "CLOSE-WAIT": "CLOSE-WAIT",
    "LAST-ACK": "LAST-ACK",
    "LISTEN": "LISTEN",
    "CLOSING": "CLOSING",
}

Key = tuple[str, str, int, str | None, int | None]


def split_endpoint(text: str) -> tuple[str | None, int | None]:
    host, _, port = text.rpartition(":")
    if port == "*":
        return None, None
    host = host.strip("[]")
    host = host.partition("%")[0]  # ss adds %iface for a bound device
    if host == "*":
        host = "::"  # ss prints a dual-stack [::] listener as *
    return host.strip("[]"), int(port)


# ss -u: an unconnected UDP socket is UNCONN, a connected one ESTAB
SS_UDP_STATES = {"UNCONN": "UNCONN", "ESTAB": "ESTABLISHED"}


def ss_tcp(proto: str = "tcp") -> set[Key]:
    flag = "-tanH" if proto == "tcp" else "-uanH"
    names = SS_STATES if proto == "tcp" else SS_UDP_STATES
    out = subprocess.run(
        ["ss", flag], capture_output=True, text=True, check=True, timeout=120
    ).stdout
    keys: set[Key] = set()
    for line in out.splitlines():
        fields = line.split()
        if len(fields) < 5:
            continue
        state, local, peer = names[fields[0]], fields[3], fields[4]
        la, lp = split_endpoint(local)
        ra, rp = split_endpoint(peer)
        assert la is not None and lp is not None
        keys.add((state, normal(la), lp, None if ra is None else normal(ra), rp))
    return keys


def normal(address: str) -> str:
    # one spelling for every address (ss and inet_ntop agree, but be safe about v6)
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    return socket.inet_ntop(family, socket.inet_pton(family, address))


def ours(proto: str = "tcp", backend: str | None = None) -> set[Key]:
    table = list_sockets(protos=[proto], states="all", backend=backend)
    keys: set[Key] = set()
    for s in table.sockets:
        assert proto == "udp" or s.state is not TcpState.UNCONN
        r = s.remote
        keys.add(
            (
                s.state.value,
                normal(s.local.address.partition("%")[0]),
                s.local.port,
                None if r is None else normal(r.address.partition("%")[0]),
                None if r is None else r.port,
            )
        )
    return keys


@pytest.fixture
def some_traffic() -> Iterator[dict[str, set[Key]]]:
    """Listeners and connections over IPv4 and IPv6, a TIME-WAIT, and UDP sockets (bound
    and connected, both families), so the table is never trivial and every (transport,
    family) a backend could drop is in it. Yields the keys this test itself made."""
    made: dict[str, set[Key]] = {"tcp": set(), "udp": set()}
    socks: list[socket.socket] = []
    try:
        for host, family in (("127.0.0.1", socket.AF_INET), ("::1", socket.AF_INET6)):
            listener = socket.create_server((host, 0), family=family)
            socks.append(listener)
            port = listener.getsockname()[1]
            made["tcp"].add(("LISTEN", normal(host), port, None, None))
            for i in range(5):
                client = socket.create_connection((host, port))
                server, _ = listener.accept()
                socks.append(server)
                if i == 0 and family == socket.AF_INET:
                    client.close()  # a TIME-WAIT on the way (the server's end: CLOSE-WAIT)
                    continue
                socks.append(client)
                cport = client.getsockname()[1]
                made["tcp"].add(("ESTABLISHED", normal(host), cport, normal(host), port))
                made["tcp"].add(("ESTABLISHED", normal(host), port, normal(host), cport))
            u = socket.socket(family, socket.SOCK_DGRAM)
            u.bind((host, 0))
            c = socket.socket(family, socket.SOCK_DGRAM)
            c.connect((host, u.getsockname()[1]))  # no datagram is sent
            socks += [u, c]
            made["udp"].add(("UNCONN", normal(host), u.getsockname()[1], None, None))
            made["udp"].add(
                ("ESTABLISHED", normal(host), c.getsockname()[1], normal(host), u.getsockname()[1])
            )
        yield made
    finally:
        for sock in socks:
            sock.close()


@pytest.mark.parametrize("backend", ["netlink", "procfs"])
@pytest.mark.parametrize("proto", ["tcp", "udp"])
def test_socket_table_equals_ss(
    some_traffic: dict[str, set[Key]], proto: str, backend: str
) -> None:
    # other processes churn the table: three tries, as reading /proc/net while hash
    # buckets change can skip a socket (seq_file), and ss can miss one too
    for _ in range(3):
        before = ss_tcp(proto)
        mine = ours(proto, backend)
        after = ss_tcp(proto)
        stable = before & after
        missing = stable - mine
        extra = mine - (before | after)
        if not missing and not extra:
            break
    assert not missing, sorted(missing, key=repr)[:20]
    assert not extra, sorted(extra, key=repr)[:20]
    # this test's own sockets, IPv4 and IPv6: a backend that drops a family is caught
    made = some_traffic[proto]
    assert made <= mine, sorted(made - mine, key=repr)
    assert {k for k in made if ":" in k[1]}, "no IPv6 socket made"


def ss_listening() -> dict[tuple[str, str, int], set[int]]:
    out = subprocess.run(
        ["ss", "-tulpnH"], capture_output=True, text=True, check=True, timeout=120
    ).stdout
    found: dict[tuple[str, str, int], set[int]] = {}
    for line in out.splitlines():
        fields = line.split()
        if len(fields) < 5:
            continue
        proto, local = fields[0], fields[4]
        la, lp = split_endpoint(local)
        assert la is not None and lp is not None
        pids = {int(p) for p in re.findall(r"pid=(\d+)", line)}
        found[(proto, normal(la), lp)] = pids
    return found


def test_listening_view_equals_ss_tulpn_with_pids() -> None:
    import json
    import os

    from portscope.cli import Env, main

    listener = socket.create_server(("127.0.0.1", 0))
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind(("127.0.0.1", 0))
    try:
        before = ss_listening()
        out = io.StringIO()
        assert main(["--json"], Env(stdout=out, stderr=io.StringIO())) == 0
        after = ss_listening()
        mine = {
            (s["proto"], normal(s["local"]["address"].partition("%")[0]), s["local"]["port"]): {
                o["pid"] for o in s["owners"]
            }
            for s in json.loads(out.getvalue())["sockets"]
        }
        stable = {k: v for k, v in before.items() if after.get(k) == v}
        for key, pids in stable.items():
            assert key in mine, key
            if os.geteuid() == 0:
                assert mine[key] == pids, key
        assert set(mine) <= set(before) | set(after)
        port = listener.getsockname()[1]
        assert mine[("tcp", "127.0.0.1", port)] == {os.getpid()}
        assert ("udp", "127.0.0.1", udp.getsockname()[1]) in mine
    finally:
        listener.close()
        udp.close()
