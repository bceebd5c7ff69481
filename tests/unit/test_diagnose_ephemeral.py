"""Ephemeral usage per destination: the 4-tuple math over hand-made sockets."""

from __future__ import annotations

import pytest

from portscope.diagnose import ephemeral_from_sockets
from portscope.errors import InvalidInput
from portscope.models import Proto, TcpState
from portscope.registry._ranges import KernelPorts

from .test_diagnose_helpers import sock

# A tiny range (10 ports) keeps the numbers readable: 50000-50009, 50005 reserved -> 9.
KERNEL = KernelPorts((50000, 50009), frozenset({50005}), 1024, True)
EST, TW = TcpState.ESTABLISHED, TcpState.TIME_WAIT


def conn(src: str, sport: int, dst: str, dport: int, state: TcpState = EST):  # type: ignore[no-untyped-def]
    return sock(src, sport, state, remote=(dst, dport))


def test_counts_per_destination_and_capacity() -> None:
    socks = [conn("127.0.0.1", 50000 + i, "127.0.0.9", 6379) for i in range(4)]
    socks += [conn("127.0.0.1", 50004, "127.0.0.9", 6379, TW)]
    socks += [conn("127.0.0.1", 50000, "127.0.0.8", 80)]  # same port, other destination
    usage = ephemeral_from_sockets(socks, KERNEL)
    assert usage.capacity == 9 and usage.reserved == 1
    assert (usage.in_use, usage.time_wait, usage.distinct_ports) == (5, 1, 5)
    first = usage.destinations[0]
    assert (first.address, first.port, first.in_use, first.time_wait) == ("127.0.0.9", 6379, 4, 1)
    assert first.max_per_source == 5 and first.usage == pytest.approx(5 / 9, abs=1e-4)
    assert not first.warning and usage.warnings == ()


def test_warning_near_exhaustion_names_the_destination() -> None:
    socks = [conn("127.0.0.1", 50000 + i, "127.0.0.9", 6379, TW) for i in range(8)]
    usage = ephemeral_from_sockets(socks, KERNEL, warn_ratio=0.8, tcp_tw_reuse=2)
    assert usage.destinations[0].warning
    assert any("127.0.0.9:6379" in w and "EADDRNOTAVAIL" in w for w in usage.warnings)
    assert any("tcp_tw_reuse=1" in w for w in usage.warnings)


def test_limit_is_per_source_address() -> None:
    # 6 connections split over two source addresses: 3 per 4-tuple space, not 6
    socks = [conn(f"127.0.0.{1 + i % 2}", 50000 + i // 2, "127.0.0.9", 443) for i in range(6)]
    d = ephemeral_from_sockets(socks, KERNEL).destinations[0]
    assert (d.sources, d.max_per_source, d.in_use) == (2, 3, 6)


def test_server_side_and_out_of_range_sockets_are_not_ephemeral() -> None:
    listener = sock("0.0.0.0", 50001)
    accepted = conn("127.0.0.1", 50001, "127.0.0.5", 33333)
    outside = conn("127.0.0.1", 40000, "127.0.0.9", 80)
    udp = sock("0.0.0.0", 50002, TcpState.ESTABLISHED, proto=Proto.UDP, remote=("127.0.0.53", 53))
    usage = ephemeral_from_sockets([listener, accepted, outside, udp], KERNEL)
    assert usage.destinations == () and usage.in_use == 0 and usage.udp_in_use == 1


def test_bad_ratio() -> None:
    with pytest.raises(InvalidInput):
        ephemeral_from_sockets([], KERNEL, warn_ratio=0)
