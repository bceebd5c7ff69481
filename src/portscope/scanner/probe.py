"""``probe``: is HOST:PORT open, closed, filtered or unreachable, and why (like ``nc -zv``).

A TCP probe is one ``connect()`` per (address, port), all at once, each bounded by
``asyncio.timeout``. Retransmission is left to the kernel, which resends the SYN after
1 s and 3 s (RFC 6298 2.1, ``TCP_TIMEOUT_INIT``), so the default 3 s timeout covers two
lost SYNs. ICMP errors are read from the socket's error queue (``IP_RECVERR``, ip(7)) to
name the precise reason, e.g. ``admin-prohibited`` (ICMP type 3 code 13, RFC 1812).
"""

from __future__ import annotations

import asyncio
import errno
import socket
import time
from collections.abc import Iterable

from portscope.errors import InvalidInput, InvalidPort, InvalidTarget
from portscope.models import PortState, ProbeResult, Proto
from portscope.scanner._connect import is_self_connect
from portscope.scanner._errors import classify, enable_icmp_details, icmp_reason
from portscope.scanner._udp import probe_udp
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
    for port in items:
        if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
            raise InvalidPort(f"bad port {port!r}; ports are numbers 1-65535")
    return [(proto, port) for port in items]


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
    jobs = []
    for target in targets:
        for p, port in items:
            if p is Proto.UDP:
                per_try = timeout_s / (retries + 1)
                jobs.append(
                    probe_udp(
                        host,
                        target.address,
                        target.family,
                        port,
                        timeout_s=per_try,
                        retries=retries,
                    )
                )
            else:
                jobs.append(
                    _probe_tcp(host, target, port, timeout_s, banner_bytes, banner_timeout_s)
                )
    async with asyncio.TaskGroup() as tg:
        tasks = [tg.create_task(job) for job in jobs]
    return [t.result() for t in tasks]


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


async def _probe_tcp(
    host: str,
    target: Target,
    port: int,
    timeout_s: float,
    banner_bytes: int,
    banner_timeout_s: float,
) -> ProbeResult:
    loop = asyncio.get_running_loop()
    fam = socket.AF_INET6 if target.family == 6 else socket.AF_INET
    sockaddr = (target.address, port, 0, 0) if target.family == 6 else (target.address, port)
    sock = socket.socket(fam, socket.SOCK_STREAM)
    sock.setblocking(False)
    enable_icmp_details(sock, target.family)
    start = time.monotonic()
    try:
        try:
            async with asyncio.timeout(timeout_s):
                await loop.sock_connect(sock, sockaddr)
        except TimeoutError:
            return ProbeResult(
                host,
                target.address,
                port,
                Proto.TCP,
                PortState.FILTERED,
                "no-response",
                errno.ETIMEDOUT,
            )
        except OSError as err:
            code = err.errno or 0
            state, reason = classify(code)
            rtt = time.monotonic() - start if state is PortState.CLOSED else None
            if state is PortState.UNREACHABLE:
                reason = icmp_reason(sock) or reason
            return ProbeResult(host, target.address, port, Proto.TCP, state, reason, code, rtt)
        rtt = time.monotonic() - start
        if is_self_connect(sock):
            return ProbeResult(
                host,
                target.address,
                port,
                Proto.TCP,
                PortState.CLOSED,
                "self-connect",
                errno.ECONNREFUSED,
                rtt,
            )
        data = await _read_banner(sock, banner_bytes, banner_timeout_s) if banner_bytes else None
        return ProbeResult(
            host, target.address, port, Proto.TCP, PortState.OPEN, "syn-ack", None, rtt, data
        )
    finally:
        sock.close()


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
