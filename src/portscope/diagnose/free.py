"""Ports a bind would accept now, found by binding them (never listening)."""

from __future__ import annotations

import builtins
import errno
import os
import socket
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from types import TracebackType
from typing import Literal, overload

from portscope._ports import parse_port_range
from portscope.diagnose._common import family_of, parse_address
from portscope.errors import (
    InvalidInput,
    InvalidPort,
    InvalidPortSpec,
    InvalidTarget,
    PortscopeError,
)
from portscope.models import Proto
from portscope.registry._ranges import KernelPorts, kernel_ports


def parse_range(text: str) -> tuple[int, int]:
    """Parse ``A-B`` (inclusive), a single port ``A`` or a service name, through
    ``portscope._ports`` (the one port parser).

    Raises:
        InvalidPortSpec: not ``A-B`` with 1 <= A <= B <= 65535 (the message says why).
    """
    try:
        return parse_port_range(text)
    except InvalidPort as err:
        raise InvalidPortSpec(f"{err}; e.g. 20000-21000") from None


@dataclass(frozen=True, slots=True)
class FreePort:
    """A port that a bind accepted when checked.

    Attributes:
        port: the port.
        proto: TCP or UDP.
        address: the address the bind was tried on.
    """

    port: int
    proto: Proto
    address: str


class HeldPorts:
    """Free ports with their bound sockets still open: nobody can take them meanwhile.

    Use as a context manager, or call ``close()``. ``release(port)`` hands one socket to
    the caller (who then closes it); TCP sockets are bound, not listening.
    """

    def __init__(self, proto: Proto, address: str, sockets: list[socket.socket]) -> None:
        self.proto = proto
        self.address = address
        self._sockets = {int(s.getsockname()[1]): s for s in sockets}

    @property
    def ports(self) -> list[int]:
        """The held ports, in the order they were found."""
        return list(self._sockets)

    @property
    def sockets(self) -> list[socket.socket]:
        """The bound sockets still held, in the order of ``ports``."""
        return list(self._sockets.values())

    def socket_for(self, port: int) -> socket.socket:
        """The bound socket of ``port`` (still owned by this object)."""
        return self._sockets[port]

    def release(self, port: int) -> socket.socket:
        """Hand over the bound socket of ``port``; the caller must close it."""
        return self._sockets.pop(port)

    def close(self) -> None:
        """Close every socket not released."""
        for sock in self._sockets.values():
            sock.close()
        self._sockets.clear()

    def __iter__(self) -> Iterator[int]:
        return iter(self.ports)

    def __len__(self) -> int:
        return len(self._sockets)

    def __enter__(self) -> HeldPorts:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"HeldPorts({self.proto.value}, {self.address}, ports={self.ports})"


def _bind(address: str, port: int, proto: Proto, *, v6only: bool = False) -> socket.socket | None:
    fam = socket.AF_INET6 if family_of(address) == 6 else socket.AF_INET
    kind = socket.SOCK_STREAM if proto is Proto.TCP else socket.SOCK_DGRAM
    try:
        sock = socket.socket(fam, kind)
    except OSError:
        return None
    try:
        if v6only:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind((address, port))
    except OSError:
        sock.close()
        return None
    return sock


def _check_local(address: str, proto: Proto) -> None:
    """Refuse an address this host does not have: every bind on it would fail with
    EADDRNOTAVAIL, which says nothing about the ports (ip(7), ``ip_nonlocal_bind``)."""
    sock = _bind(address, 0, proto)
    if sock is not None:
        sock.close()
        return
    fam = socket.AF_INET6 if family_of(address) == 6 else socket.AF_INET
    kind = socket.SOCK_STREAM if proto is Proto.TCP else socket.SOCK_DGRAM
    with socket.socket(fam, kind) as probe:
        try:
            probe.bind((address, 0))
        except OSError as err:
            if err.errno == errno.EADDRNOTAVAIL:
                raise InvalidTarget(
                    f"address {address} is not local to this host (EADDRNOTAVAIL): give one "
                    "of its addresses (ip -br addr), 127.0.0.1, or none for all"
                ) from None
            raise InvalidTarget(
                f"cannot bind on address {address}: {os.strerror(err.errno or 0)}"
            ) from None


def _ipv6_available() -> bool:
    try:
        socket.socket(socket.AF_INET6, socket.SOCK_DGRAM).close()
    except OSError:
        return False
    return True


@overload
def free_ports(
    count: int = ...,
    *,
    range: tuple[int, int] | str | None = ...,
    proto: Proto = ...,
    address: str | None = ...,
    avoid_ephemeral: bool = ...,
    avoid_registered: bool = ...,
    hold: Literal[False] = ...,
    kernel: KernelPorts | None = ...,
    seed: int | None = ...,
    family: int | None = ...,
    partial: bool = ...,
) -> list[FreePort]: ...
@overload
def free_ports(
    count: int = ...,
    *,
    range: tuple[int, int] | str | None = ...,
    proto: Proto = ...,
    address: str | None = ...,
    avoid_ephemeral: bool = ...,
    avoid_registered: bool = ...,
    hold: Literal[True],
    kernel: KernelPorts | None = ...,
    seed: int | None = ...,
    family: int | None = ...,
    partial: bool = ...,
) -> HeldPorts: ...
def free_ports(
    count: int = 1,
    *,
    range: tuple[int, int] | str | None = None,
    proto: Proto = Proto.TCP,
    address: str | None = None,
    avoid_ephemeral: bool = True,
    avoid_registered: bool = True,
    hold: bool = False,
    kernel: KernelPorts | None = None,
    seed: int | None = None,
    family: int | None = None,
    partial: bool = False,
) -> list[FreePort] | HeldPorts:
    """Ports that a bind would accept now, each confirmed by a real bind.

    Candidates are tried from a random point of the range (so parallel callers rarely
    collide) and wrap around. A port is free when ``bind()`` without SO_REUSEADDR
    accepts it, so ports with TIME-WAIT connections are skipped too. Without ``address``
    the port must be free on ``0.0.0.0`` and, where IPv6 works, on ``[::]`` as well.

    Args:
        count: how many ports, >= 1.
        range: ``(first, last)`` inclusive or ``"A-B"``; default: from
            ``ip_unprivileged_port_start`` to 65535.
        proto: TCP or UDP.
        address: bind address to check and hold on (``127.0.0.1`` for a test server);
            default ``0.0.0.0`` (and ``::``).
        avoid_ephemeral: skip the kernel's ephemeral range (``ip_local_port_range``):
            outgoing connections may take those ports at any moment.
        avoid_registered: skip ports the registry names a service for.
        hold: return the bound sockets still open (``HeldPorts``), so no other process
            can take a port between this call and its use.
        kernel: the port sysctls (default: read now).
        seed: a seed for the random start (tests).
        family: without ``address``: 4 checks ``0.0.0.0`` only, 6 ``[::]`` only (IPv6
            only); default both where IPv6 works. With ``address``, it must match.
        partial: return the ports found even when fewer than ``count`` (the caller
            compares the length); default raise.

    Returns:
        ``list[FreePort]``, or ``HeldPorts`` with ``hold=True``.

    Raises:
        InvalidInput: ``count`` < 1, a bad range, family or address.
        InvalidTarget: ``address`` is not an address of this host (EADDRNOTAVAIL).
        PortscopeError: fewer than ``count`` free ports in the range (without ``partial``).
    """
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise InvalidInput(f"count {count!r} is not accepted: give a number >= 1")
    if proto not in (Proto.TCP, Proto.UDP):
        raise InvalidInput(f"transport {proto.value!r} cannot be bound here: use tcp or udp")
    kernel = kernel or kernel_ports()
    if range is None:
        lo, hi = max(1, kernel.unprivileged_start), 65535
    elif isinstance(range, str):
        lo, hi = parse_range(range)
    else:
        lo, hi = parse_range(f"{range[0]}-{range[1]}")
    if family not in (None, 4, 6):
        raise InvalidInput(f"family {family!r} is not accepted: give 4, 6 or None")
    if address is None:
        bind_address = "::" if family == 6 else "0.0.0.0"
    else:
        bind_address = parse_address(address)
        if family is not None and family_of(bind_address) != family:
            raise InvalidInput(f"address {bind_address} is not an IPv{family} address")
        _check_local(bind_address, proto)
    also_v6 = address is None and family is None and _ipv6_available()
    registered: Callable[[int, str], str | None] | None = None
    if avoid_registered:
        from portscope.registry import service_name

        registered = service_name
    spans = [(lo, hi)]
    if avoid_ephemeral:
        elo, ehi = kernel.ephemeral
        spans = [(a, b) for a, b in ((lo, min(hi, elo - 1)), (max(lo, ehi + 1), hi)) if a <= b]
    # A random start among the candidates (not the whole range, which would send every
    # start inside the ephemeral range to its first port after it).
    candidates = [builtins.range(a, b + 1) for a, b in spans]
    total = sum(len(r) for r in candidates)
    import random

    start = random.Random(seed).randrange(total) if total else 0
    found: list[socket.socket] = []
    checked = 0
    for port in _rotate(candidates, start):
        if avoid_ephemeral and kernel.is_ephemeral(port):
            continue
        if registered is not None and registered(port, proto.value) is not None:
            continue
        checked += 1
        sock = _bind(bind_address, port, proto, v6only=family == 6 and address is None)
        if sock is None:
            continue
        if also_v6:
            v6 = _bind("::", port, proto, v6only=True)
            if v6 is None:
                sock.close()
                continue
            v6.close()
        found.append(sock)
        if len(found) == count:
            break
    if len(found) < count and not partial:
        for sock in found:
            sock.close()
        raise PortscopeError(
            f"only {len(found)} of {count} free {proto.value} port(s) in {lo}-{hi} "
            f"({checked} candidates after avoiding"
            f"{' ephemeral' if avoid_ephemeral else ''}"
            f"{' registered' if avoid_registered else ''} ports); widen --range or allow them"
        )
    if hold:
        return HeldPorts(proto, bind_address, found)
    ports = [int(s.getsockname()[1]) for s in found]
    for sock in found:
        sock.close()
    return [FreePort(p, proto, bind_address) for p in ports]


def _rotate(ranges: list[builtins.range], start: int) -> Iterator[int]:
    """Every port of ``ranges`` once, beginning at the ``start``-th and wrapping around."""
    ports = [p for r in ranges for p in r]
    yield from ports[start:]
    yield from ports[:start]
