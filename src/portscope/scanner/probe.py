"""``probe``: is HOST:PORT open, closed, filtered or unreachable, and why (like ``nc -zv``).

A probe is a small scan on the same scheduler (``_schedule``), so it keeps to the same fd
budget (``RLIMIT_NOFILE``, ``EMFILE`` back-off) and window: ``probe 127.0.0.1 8000-9100``
under ``ulimit -n 1024`` gives every port a state. What differs from a scan: a TCP port
gets one ``connect()`` with a fixed ``timeout_s`` and retransmission is left to the kernel,
which resends the SYN after 1 s and 3 s (RFC 6298 2.1, ``TCP_TIMEOUT_INIT``), so the
default 3 s covers two lost SYNs; ICMP unreachable answers stay ``unreachable`` (a scan
says ``filtered``, as nmap), with the reason read from the socket's error queue
(``IP_RECVERR``, ip(7)), e.g. ``admin-prohibited`` (ICMP type 3 code 13, RFC 1812); no host
is given up; every port is reported, closed ones too. With ``banner``, the connection that
found a port open is kept and read (up to ``banner_timeout_s``) while the probe goes on.
"""

from __future__ import annotations

import _socket
import asyncio
import dataclasses
import errno
import socket
from collections.abc import Iterable

from portscope._ports import check_port
from portscope.errors import InvalidInput, InvalidPort, InvalidTarget
from portscope.models import ProbeResult, Proto
from portscope.scanner._connect import ConnectProber
from portscope.scanner._schedule import Prober, Scheduler, Try
from portscope.scanner._types import HostSummary, ScanOptions
from portscope.scanner._udp import UdpProber
from portscope.scanner.targets import Target, parse_ports, parse_targets

__all__ = ["probe", "probe_async", "resolve"]

DEFAULT_TIMEOUT_S = 3.0
BANNER_BYTES = 1024
BANNER_TIMEOUT_S = 2.0


def resolve(host: str, family: int | None = None) -> list[Target]:
    """Every address of ``host`` (a name or an address), in resolver order.

    Args:
        host: a host name, IPv4 or IPv6 address.
        family: 4 or 6 to keep only that family, or ``None`` for both.

    Raises:
        InvalidTarget: a malformed address, an unresolvable name, or no address of
            ``family``; also for blocks and ranges, which ``probe`` does not take.
    """
    parsed = parse_targets([host], family=family)
    if any(getattr(b, "start", -1) != getattr(b, "end", -2) for b in parsed.blocks):
        raise InvalidTarget(
            f"probe takes one host, not a block or range: {host!r}; use 'portscope scan'"
        )
    targets = list(parsed)
    return [Target(host=host, address=t.address, family=t.family) for t in targets]


def _port_list(ports: int | str | Iterable[int], proto: Proto) -> list[tuple[Proto, int]]:
    if isinstance(ports, str):
        return list(parse_ports(ports, default_proto=proto))
    items = [ports] if isinstance(ports, int) else list(ports)
    if not items:
        raise InvalidPort("no port given; expected numbers 1-65535")
    return [(proto, check_port(port)) for port in items]


async def probe_async(
    host: str,
    ports: int | str | Iterable[int],
    *,
    proto: Proto = Proto.TCP,
    family: int | None = None,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    banner: bool = False,
    banner_bytes: int = BANNER_BYTES,
    banner_timeout_s: float = BANNER_TIMEOUT_S,
    retries: int = 2,
) -> list[ProbeResult]:
    """Probe ``ports`` on every address of ``host``; the async form of ``probe``.

    Args and Returns: as ``probe``.
    """
    targets, items = _plan(host, ports, proto, family, timeout_s)
    return await _run(
        host, targets, items, timeout_s, banner_bytes if banner else 0, banner_timeout_s, retries
    )


def _plan(
    host: str,
    ports: int | str | Iterable[int],
    proto: Proto,
    family: int | None,
    timeout_s: float,
) -> tuple[list[Target], list[tuple[Proto, int]]]:
    """Check every input and resolve the host: all before any probe is sent."""
    if not timeout_s > 0:
        raise InvalidInput(f"timeout {timeout_s!r}: expected seconds above 0")
    items = _port_list(ports, proto)
    return resolve(host, family), items


async def _run(
    host: str,
    targets: list[Target],
    items: list[tuple[Proto, int]],
    timeout_s: float,
    banner_bytes: int,
    banner_timeout_s: float,
    retries: int,
) -> list[ProbeResult]:
    results: list[ProbeResult] = []

    def emit(event: ProbeResult | HostSummary) -> None:
        if isinstance(event, ProbeResult):
            results.append(event)

    banners: dict[tuple[str, int], asyncio.Task[bytes | None]] = {}
    async with asyncio.TaskGroup() as tg:

        def read_banner(tr: Try, sock: _socket.socket) -> None:
            # the connection the probe opened: the service greets once, on it
            conn = socket.socket(fileno=sock.detach())
            task = tg.create_task(_read_banner(conn, banner_bytes, banner_timeout_s))
            task.add_done_callback(lambda _: conn.close())
            banners[(tr.target.address, tr.port)] = task

        tcp = ConnectProber(
            timeout_s=timeout_s,
            retries=0,
            silent_errno=errno.ETIMEDOUT,
            on_open=read_banner if banner_bytes else None,
        )
        probers: dict[Proto, Prober] = {
            Proto.TCP: tcp,
            Proto.UDP: UdpProber(timeout_s=timeout_s / (retries + 1), retries=retries),
        }
        scheduler = Scheduler(
            iter(targets),
            lambda _target: iter(items),
            ScanOptions(timeout_s=timeout_s, include_closed=True),
            emit,
            probers,
            unreachable_as_filtered=False,
            give_up_hosts=False,
        )
        await scheduler.run()
    order = {t.address: i for i, t in enumerate(targets)}
    results.sort(key=lambda r: (order[r.address], r.proto is not Proto.TCP, r.port))
    return [
        dataclasses.replace(r, banner=banners[(r.address, r.port)].result())
        if r.proto is Proto.TCP and (r.address, r.port) in banners
        else r
        for r in results
    ]


def probe(
    host: str,
    ports: int | str | Iterable[int],
    *,
    proto: Proto = Proto.TCP,
    family: int | None = None,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    banner: bool = False,
    banner_bytes: int = BANNER_BYTES,
    banner_timeout_s: float = BANNER_TIMEOUT_S,
    retries: int = 2,
) -> list[ProbeResult]:
    """Probe ports of one host: open, closed, filtered or unreachable, with the reason.

    The name is resolved first (every A/AAAA answer is probed), and all input is checked
    before any packet is sent. TCP: ``open`` (handshake completed; ``rtt_s`` is the connect
    time), ``closed`` (RST: ``ECONNREFUSED``), ``filtered`` (no answer in ``timeout_s``),
    ``unreachable`` (``EHOSTUNREACH``/``ENETUNREACH``... with the ICMP reason where the
    kernel queued one). UDP: see ``portscope.scanner._udp.probe_udp``. Needs no privilege.
    Must not be called from a running event loop (use ``probe_async`` there).

    Args:
        host: a host name, IPv4 or IPv6 address.
        ports: a port, a list of ports, or an nmap-style spec (``"22,80"``, ``"T:80,U:53"``).
        proto: transport of ports without a ``T:``/``U:`` prefix.
        family: 4 or 6 to probe only that family's addresses, or ``None`` for all.
        timeout_s: seconds to wait for an answer per port (UDP: over all tries).
            Default 3.0 s.
        banner: read what an open TCP service sends first.
        banner_bytes: at most this many banner bytes. Default 1,024.
        banner_timeout_s: seconds to wait for the banner. Default 2.0 s.
        retries: UDP datagrams sent again after silence. Default 2.

    Returns:
        One result per (address, port): addresses in resolver order, then ports
        ascending (TCP before UDP).

    Raises:
        InvalidTarget: malformed or unresolvable host.
        InvalidPort: a port outside 1-65535.
        InvalidPortSpec: a malformed port spec.
    """
    targets, items = _plan(host, ports, proto, family, timeout_s)
    return asyncio.run(
        _run(
            host,
            targets,
            items,
            timeout_s,
            banner_bytes if banner else 0,
            banner_timeout_s,
            retries,
        )
    )


async def _read_banner(sock: socket.socket, limit: int, timeout_s: float) -> bytes | None:
    """Up to ``limit`` bytes the peer sends first, within ``timeout_s``; None if nothing."""
    loop = asyncio.get_running_loop()
    data = b""
    try:
        async with asyncio.timeout(timeout_s):
            while len(data) < limit:
                chunk = await loop.sock_recv(sock, limit - len(data))
                if not chunk:
                    break
                data += chunk
                if b"\n" in chunk and len(data) >= 16:
                    break  # a line-based greeting (SSH, SMTP, FTP) is complete
    except (TimeoutError, OSError):
        pass
    return data or None
