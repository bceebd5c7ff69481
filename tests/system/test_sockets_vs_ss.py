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


def ss_tcp() -> set[Key]:
    out = subprocess.run(
        ["ss", "-tanH"], capture_output=True, text=True, check=True, timeout=120
    ).stdout
    keys: set[Key] = set()
    for line in out.splitlines():
        fields = line.split()
        if len(fields) < 5:
            continue
        state, local, peer = SS_STATES[fields[0]], fields[3], fields[4]
        la, lp = split_endpoint(local)
        ra, rp = split_endpoint(peer)
        assert la is not None and lp is not None
        keys.add((state, normal(la), lp, None if ra is None else normal(ra), rp))
    return keys


def normal(address: str) -> str:
    # one spelling for every address (ss and inet_ntop agree, but be safe about v6)
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    return socket.inet_ntop(family, socket.inet_pton(family, address))


def ours() -> set[Key]:
    table = list_sockets(protos=["tcp"], states="all")
    keys: set[Key] = set()
    for s in table.sockets:
        assert s.state is not TcpState.UNCONN
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
def some_traffic() -> Iterator[None]:
    """A listener, a few connections and a TIME-WAIT, so the table is never trivial."""
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    ends = []
    for _ in range(5):
        ends.append(socket.create_connection(("127.0.0.1", port)))
        ends.append(listener.accept()[0])
    ends.pop(0).close()
    try:
        yield
    finally:
        for e in ends:
            e.close()
        listener.close()


@pytest.mark.usefixtures("some_traffic")
def test_tcp_table_equals_ss() -> None:
    before = ss_tcp()
    mine = ours()
    after = ss_tcp()
    stable = before & after
    missing = stable - mine
    extra = mine - (before | after)
    assert not missing, sorted(missing, key=repr)[:20]
    assert not extra, sorted(extra, key=repr)[:20]
    assert len(stable) >= 10


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
