"""Ephemeral (source) port use per destination, and how close each is to running out.

The math. A TCP ``connect()`` without an explicit ``bind()`` gets its source port from
``net.ipv4.ip_local_port_range`` minus ``ip_local_reserved_ports`` (N ports; 28,232 with
the default 32768-60999). The kernel (``__inet_hash_connect``,
net/ipv4/inet_hashtables.c) accepts a source port when the whole 4-tuple
(source address, source port, destination address, destination port) is unused, so the
same source port serves many destinations at once. The limit is therefore per
(source address, destination address, destination port): at most N connections at
once, counting those in TIME-WAIT (60 s after an active close, TCP_TIMEWAIT_LEN) unless
``net.ipv4.tcp_tw_reuse`` lets a new connection take over a TIME-WAIT tuple
(1: always, 2 (default): loopback only). A client that opens and closes more than
N / 60 s = ~470 connections per second to one server port with the default range runs
out: ``connect()`` fails with EADDRNOTAVAIL. More source addresses, destination
addresses or ports multiply the space; ``bind()`` before ``connect()`` (without
IP_BIND_ADDRESS_NO_PORT) and UDP sockets take a port from the whole range instead.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

from portscope._proc import sysctl_int
from portscope.models import Netns, Proto, Socket, TcpState
from portscope.registry._ranges import KernelPorts, kernel_ports


@dataclass(frozen=True, slots=True)
class DestinationUsage:
    """Ephemeral ports used towards one destination (address, port).

    Attributes:
        address: destination address.
        port: destination port.
        in_use: connections not in TIME-WAIT.
        time_wait: connections in TIME-WAIT.
        sources: distinct local (source) addresses used towards it.
        busiest_source: the source address with the most connections to it.
        max_per_source: connections (incl. TIME-WAIT) of that busiest source: the figure
            that must stay below ``capacity``.
        capacity: ephemeral ports available per (source, destination) pair.
        usage: ``max_per_source / capacity``, 0.0-1.0.
        warning: True when ``usage`` reached the warning ratio.
    """

    address: str
    port: int
    in_use: int
    time_wait: int
    sources: int
    busiest_source: str
    max_per_source: int
    capacity: int
    usage: float
    warning: bool


@dataclass(frozen=True, slots=True)
class EphemeralUsage:
    """The kernel's ephemeral range and its use.

    Attributes:
        ephemeral: ``ip_local_port_range`` (first, last), inclusive.
        reserved: how many ports of the range ``ip_local_reserved_ports`` holds back.
        capacity: ports the kernel can pick (the range less the reserved ports).
        tcp_tw_reuse: ``net.ipv4.tcp_tw_reuse`` (0 off, 1 on, 2 loopback only).
        in_use: outgoing TCP connections on ephemeral ports, not in TIME-WAIT.
        time_wait: of those, in TIME-WAIT.
        distinct_ports: distinct ephemeral ports in use by TCP and UDP.
        udp_in_use: UDP sockets on ephemeral ports (each takes its port from the whole
            range, whatever the destination).
        destinations: per destination, busiest first.
        warn_ratio: the share of ``capacity`` at which a destination is warned about.
        warnings: plain-language warnings.
        netns: the network namespace counted (``ephemeral_by_netns``), else ``None``.
    """

    ephemeral: tuple[int, int]
    reserved: int
    capacity: int
    tcp_tw_reuse: int | None
    in_use: int
    time_wait: int
    distinct_ports: int
    udp_in_use: int
    destinations: tuple[DestinationUsage, ...]
    warn_ratio: float
    warnings: tuple[str, ...]
    netns: Netns | None = None


def ephemeral_from_sockets(
    sockets: Iterable[Socket],
    kernel: KernelPorts,
    *,
    warn_ratio: float = 0.8,
    tcp_tw_reuse: int | None = None,
) -> EphemeralUsage:
    """Count ephemeral port use per destination (pure; see the module docstring).

    A socket uses an ephemeral port when it has a peer, its local port is in the range,
    and no listener on this host has that port (accepted connections of a server on a
    port inside the range are not counted).

    Args:
        sockets: the socket table.
        kernel: the port sysctls.
        warn_ratio: warn when one (source, destination) reaches this share of capacity.
        tcp_tw_reuse: the sysctl's value, for the warning text.

    Returns:
        The usage summary.
    """
    conns: list[_Conn] = [
        (
            s.proto,
            s.state,
            s.local.address,
            s.local.port,
            s.remote.address if s.remote else None,
            s.remote.port if s.remote else None,
        )
        for s in sockets
    ]
    return _count(
        conns,
        kernel,
        warn_ratio=warn_ratio,
        tcp_tw_reuse=tcp_tw_reuse,
    )


# (proto, state, local address, local port, remote address, remote port)
_Conn = tuple[Proto, TcpState, str, int, str | None, int | None]


def _count(
    conns: Iterable[_Conn],
    kernel: KernelPorts,
    *,
    warn_ratio: float,
    tcp_tw_reuse: int | None,
) -> EphemeralUsage:
    if not 0.0 < warn_ratio <= 1.0:
        from portscope.errors import InvalidInput

        raise InvalidInput(f"warn ratio {warn_ratio} is not accepted: give 0 < ratio <= 1")
    rows = list(conns)
    lo, hi = kernel.ephemeral
    capacity = max(1, kernel.ephemeral_count)
    listening = {
        (proto, lport)
        for proto, state, _, lport, raddr, _ in rows
        if state is TcpState.LISTEN or (proto is Proto.UDP and raddr is None)
    }
    per_tuple: Counter[tuple[str, str, int]] = Counter()
    live: Counter[tuple[str, int]] = Counter()
    waiting: Counter[tuple[str, int]] = Counter()
    sources: defaultdict[tuple[str, int], set[str]] = defaultdict(set)
    ports: set[int] = set()
    udp = 0
    for proto, state, laddr, port, raddr, rport in rows:
        if not lo <= port <= hi or (proto, port) in listening:
            continue
        if proto is Proto.UDP:
            udp += 1
            ports.add(port)
            continue
        if raddr is None or rport is None or state is TcpState.LISTEN:
            continue
        ports.add(port)
        dest = (raddr, rport)
        per_tuple[(laddr, raddr, rport)] += 1
        sources[dest].add(laddr)
        if state is TcpState.TIME_WAIT:
            waiting[dest] += 1
        else:
            live[dest] += 1
    busiest: dict[tuple[str, int], tuple[int, str]] = {}
    for (src, daddr, dport), n in per_tuple.items():
        dest = (daddr, dport)
        if n > busiest.get(dest, (0, ""))[0]:
            busiest[dest] = (n, src)
    destinations = []
    for dest, (n, src) in busiest.items():
        usage = n / capacity
        destinations.append(
            DestinationUsage(
                address=dest[0],
                port=dest[1],
                in_use=live[dest],
                time_wait=waiting[dest],
                sources=len(sources[dest]),
                busiest_source=src,
                max_per_source=n,
                capacity=capacity,
                usage=round(usage, 4),
                warning=usage >= warn_ratio,
            )
        )
    destinations.sort(key=lambda d: (-d.max_per_source, d.address, d.port))
    warnings = []
    for d in destinations:
        if d.warning:
            host = f"[{d.address}]" if ":" in d.address else d.address
            warnings.append(
                f"{host}:{d.port} uses {d.max_per_source} of {capacity} source ports from "
                f"{d.busiest_source} ({d.usage:.0%}, {d.time_wait} in TIME-WAIT): new "
                "connections will fail with EADDRNOTAVAIL; reuse connections (keep-alive, "
                "pooling), widen net.ipv4.ip_local_port_range, add source addresses"
                + ("" if tcp_tw_reuse == 1 else ", or set net.ipv4.tcp_tw_reuse=1")
            )
    if len(ports) >= warn_ratio * capacity:
        warnings.append(
            f"{len(ports)} of {capacity} ephemeral ports are taken: bind()-before-connect "
            "and UDP sockets, which need a port of their own, will soon fail"
        )
    total_reserved = sum(1 for p in kernel.reserved if lo <= p <= hi)
    return EphemeralUsage(
        ephemeral=(lo, hi),
        reserved=total_reserved,
        capacity=capacity,
        tcp_tw_reuse=tcp_tw_reuse,
        in_use=sum(live.values()),
        time_wait=sum(waiting.values()),
        distinct_ports=len(ports),
        udp_in_use=udp,
        destinations=tuple(destinations),
        warn_ratio=warn_ratio,
        warnings=tuple(warnings),
    )


def ephemeral_usage(*, warn_ratio: float = 0.8) -> EphemeralUsage:
    """This machine's ephemeral range and its use per destination (module docstring).

    Args:
        warn_ratio: warn when a (source, destination) pair uses this share of the range.

    Returns:
        The usage summary.

    Raises:
        InvalidInput: ``warn_ratio`` outside (0, 1].
        BackendUnavailable: no socket-table backend works here.
    """
    kernel = kernel_ports()
    reuse = sysctl_int("net/ipv4/tcp_tw_reuse", -1)
    from portscope.sockets import dump

    # Rows, not Socket objects: this runs over every socket of a busy host.
    return _count(
        (
            (r.proto, r.state, r.local_address, r.local_port, r.remote_address, r.remote_port)
            for batch in dump().batches
            for r in batch
        ),
        kernel,
        warn_ratio=warn_ratio,
        tcp_tw_reuse=None if reuse < 0 else reuse,
    )


def ephemeral_by_netns(
    netns: str | int = "all", *, warn_ratio: float = 0.8
) -> tuple[EphemeralUsage, ...]:
    """``ephemeral_usage`` per network namespace: each has its own port sysctls and its
    own 4-tuples (``man 7 network_namespaces``).

    One socket dump over the namespaces (``list_sockets(netns=...)``); the sysctls are
    read inside each namespace by the worker thread that dumps them (those of this
    namespace when it cannot be entered).

    Args:
        netns: ``all``, an ``ip netns`` name, a pid or an nsfs path.
        warn_ratio: as ``ephemeral_usage``.

    Returns:
        One usage per namespace (``usage.netns`` set), in ``list_netns`` order.

    Raises:
        InvalidInput: ``warn_ratio`` outside (0, 1], a bad or unknown namespace.
        BackendUnavailable: no socket-table backend works here.
        PermissionDenied: the namespace of another user's process.
    """
    from dataclasses import replace

    from portscope.sockets import _netns, dump

    refs, _ = _netns.resolve(_netns.parse_netns(netns))
    d = dump(netns=netns)
    groups: dict[int, list[_Conn]] = {r.inode: [] for r in refs}
    for batch in d.batches:
        for r in batch:
            if r.netns is not None and r.netns.inode in groups:
                groups[r.netns.inode].append(
                    (r.proto, r.state, r.local_address, r.local_port, r.remote_address,
                     r.remote_port)
                )  # fmt: skip
    out = []
    for ref in refs:

        def read() -> tuple[KernelPorts, int]:
            return kernel_ports(), sysctl_int("net/ipv4/tcp_tw_reuse", -1)

        try:
            kernel, reuse = _netns.run_in(ref, read)
        except OSError:
            kernel, reuse = read()
        usage = _count(
            groups[ref.inode],
            kernel,
            warn_ratio=warn_ratio,
            tcp_tw_reuse=None if reuse < 0 else reuse,
        )
        out.append(replace(usage, netns=ref.netns))
    return tuple(out)
