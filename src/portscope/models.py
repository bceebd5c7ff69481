"""Result types shared by every part of portscope.

All are frozen, slotted dataclasses or string enums; ``to_dict`` turns any of them into
JSON-ready data (the one place that conversion happens). An absent value is ``None``.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any


class Proto(enum.StrEnum):
    """Transport protocol. Sockets are TCP or UDP; the registry also knows SCTP and DCCP."""

    TCP = "tcp"
    UDP = "udp"
    SCTP = "sctp"
    DCCP = "dccp"


class TcpState(enum.StrEnum):
    """Socket state, named as RFC 9293 and the kernel's ``include/net/tcp_states.h`` do.

    UDP sockets use ``UNCONN`` (the kernel's TCP_CLOSE on a datagram socket, as ``ss``
    prints it) and ``ESTABLISHED`` (connected UDP). ``NEW-SYN-RECV`` is the kernel's
    request socket of a half-open connection; ``BOUND-INACTIVE`` a bound, unused TCP socket.
    """

    ESTABLISHED = "ESTABLISHED"
    SYN_SENT = "SYN-SENT"
    SYN_RECV = "SYN-RECV"
    FIN_WAIT_1 = "FIN-WAIT-1"
    FIN_WAIT_2 = "FIN-WAIT-2"
    TIME_WAIT = "TIME-WAIT"
    CLOSE = "CLOSE"
    CLOSE_WAIT = "CLOSE-WAIT"
    LAST_ACK = "LAST-ACK"
    LISTEN = "LISTEN"
    CLOSING = "CLOSING"
    NEW_SYN_RECV = "NEW-SYN-RECV"
    BOUND_INACTIVE = "BOUND-INACTIVE"
    UNCONN = "UNCONN"

    @classmethod
    def from_kernel(cls, number: int, proto: Proto) -> TcpState:
        """Map the kernel's state number (``tcp_states.h``) to a state.

        Raises:
            ValueError: for a number the kernel does not define.
        """
        if number == 7 and proto is Proto.UDP:
            return cls.UNCONN
        return _KERNEL_STATES[number]


_KERNEL_STATES: Mapping[int, TcpState] = {
    1: TcpState.ESTABLISHED,
    2: TcpState.SYN_SENT,
    3: TcpState.SYN_RECV,
    4: TcpState.FIN_WAIT_1,
    5: TcpState.FIN_WAIT_2,
    6: TcpState.TIME_WAIT,
    7: TcpState.CLOSE,
    8: TcpState.CLOSE_WAIT,
    9: TcpState.LAST_ACK,
    10: TcpState.LISTEN,
    11: TcpState.CLOSING,
    12: TcpState.NEW_SYN_RECV,
    13: TcpState.BOUND_INACTIVE,
}
KERNEL_STATE_NUMBERS: Mapping[TcpState, int] = {
    **{s: n for n, s in _KERNEL_STATES.items()},
    TcpState.UNCONN: 7,
}


class PortRange(enum.StrEnum):
    """Port number ranges of RFC 6335 section 6."""

    SYSTEM = "system"  # 0-1023, "well-known"; binding needs privilege on most systems
    USER = "user"  # 1024-49151, "registered"
    DYNAMIC = "dynamic"  # 49152-65535, "dynamic/private"


class PortState(enum.StrEnum):
    """What a probe or scan learned about a remote port, named as nmap names it.

    ``unreachable`` is portscope's own: the network said the host or net cannot be reached.
    ``undecided`` too: the scan ended (``--max-wait``) before the port's state was known.
    """

    OPEN = "open"
    CLOSED = "closed"
    FILTERED = "filtered"
    UNFILTERED = "unfiltered"
    OPEN_FILTERED = "open|filtered"
    CLOSED_FILTERED = "closed|filtered"
    UNREACHABLE = "unreachable"
    UNDECIDED = "undecided"


@dataclass(frozen=True, slots=True)
class Endpoint:
    """One end of a socket.

    Attributes:
        address: as ``socket.inet_ntop`` prints it; an IPv6 scope is ``%iface``.
        port: 0-65535.
    """

    address: str
    port: int

    def __str__(self) -> str:
        if ":" in self.address:
            return f"[{self.address}]:{self.port}"
        return f"{self.address}:{self.port}"


@dataclass(frozen=True, slots=True)
class Owner:
    """A process holding a socket through one of its file descriptors.

    Attributes:
        pid: process id.
        name: the process name (``/proc/PID/comm``).
        user: the owning user name (numeric id as text when it has no name), or ``None``.
        cmdline: argv, or ``None`` when unreadable (zombies, kernel threads, no permission).
        start_time: start of the process, seconds since the epoch, or ``None``.
        fd: the file descriptor number in that process.
    """

    pid: int
    name: str
    user: str | None
    cmdline: tuple[str, ...] | None
    start_time: float | None
    fd: int


@dataclass(frozen=True, slots=True)
class Container:
    """A container whose processes live in a network namespace (from their cgroup path).

    Attributes:
        runtime: ``docker``, ``podman``, ``containerd``, ``cri-o``, ``lxc`` or
            ``systemd-nspawn``: the runtime named by the cgroup path.
        id: the container id as the path gives it (64 hex digits for OCI runtimes, the
            machine name for LXC and nspawn).
        name: the container's name from the runtime's state files, or ``None`` when they
            could not be read.
        pod: the Kubernetes pod name, or ``None`` (not a pod, or not readable).
        pod_namespace: the Kubernetes namespace of the pod, or ``None``.
        pod_uid: the Kubernetes pod UID (from the ``kubepods`` cgroup path), or ``None``.
    """

    runtime: str
    id: str
    name: str | None = None
    pod: str | None = None
    pod_namespace: str | None = None
    pod_uid: str | None = None


@dataclass(frozen=True, slots=True)
class Netns:
    """A network namespace (``man 7 network_namespaces``).

    Attributes:
        inode: the namespace's inode on nsfs (``readlink /proc/PID/ns/net`` gives
            ``net:[INODE]``): unique while the namespace exists.
        name: ``host`` for the host's namespace (that of pid 1), the ``ip netns`` name
            (``/run/netns/NAME``) where there is one, else ``None``.
        containers: the containers whose processes are in it (a Kubernetes pod shares one
            namespace between its containers), or ``None`` when none is known.
    """

    inode: int
    name: str | None = None
    containers: tuple[Container, ...] | None = None


@dataclass(frozen=True, slots=True)
class Socket:
    """One kernel socket of this machine (an ``inet_diag_msg``, ``linux/inet_diag.h``).

    Its fields are those of ``portscope.sockets.Row`` (the one field list), with each
    ``X_address``/``X_port`` pair as an ``Endpoint`` ``X``, plus ``owners``; a test keeps
    the two in step.

    Attributes:
        proto: TCP or UDP.
        family: 4 or 6.
        state: the socket's state.
        local: local endpoint.
        remote: peer endpoint, or ``None`` for listeners and unconnected UDP sockets.
        recv_q: bytes queued for reading; for LISTEN, connections waiting for ``accept()``;
            ``None`` when the backend does not know it (psutil).
        send_q: bytes not yet acknowledged; for LISTEN, the backlog (connections);
            ``None`` when the backend does not know it (procfs listeners, psutil).
        uid: the socket's owning user id, or ``None`` when the backend does not know it.
        inode: the socket inode (``socket:[N]``), or ``None``; 0 for TIME-WAIT is ``None``.
        interface: interface name the socket is bound to (SO_BINDTODEVICE), or ``None``.
        v6only: IPV6_V6ONLY for IPv6 sockets where the backend reports it, else ``None``.
        cookie: the kernel's socket cookie (64 bits, ``ss -e``'s ``sk:HEX``), or ``None``
            when the backend cannot tell (procfs, psutil).
        netns: the network namespace the socket lives in; ``None`` when namespaces were
            not asked for (``list_sockets(netns=None)``: the caller's own namespace).
        owners: processes holding it; ``None`` when owners were not looked up, ``()`` when
            looked up and none visible (kernel-owned, TIME-WAIT, or not permitted).
    """

    proto: Proto
    family: int
    state: TcpState
    local: Endpoint
    remote: Endpoint | None
    recv_q: int | None
    send_q: int | None
    uid: int | None
    inode: int | None
    interface: str | None = None
    v6only: bool | None = None
    cookie: int | None = None
    netns: Netns | None = None
    owners: tuple[Owner, ...] | None = None

    @property
    def five_tuple(self) -> tuple[str, str, int, str | None, int | None]:
        """(transport, source address, source port, destination address, destination port)."""
        r = self.remote
        return (
            self.proto.value,
            self.local.address,
            self.local.port,
            r.address if r else None,
            r.port if r else None,
        )


@dataclass(frozen=True, slots=True)
class SocketTable:
    """A dump of this machine's socket table.

    Attributes:
        sockets: the sockets, in the order the backend returned them, no duplicates.
        backend: which backend produced it: ``netlink``, ``procfs`` or ``psutil``.
        owners_complete: ``None`` when owners were not looked up; ``False`` when some
            processes could not be inspected (not root), ``True`` otherwise.
        notes: plain-language notes for the user (partial privilege, fallbacks used).
        netns: the network namespaces dumped (``list_sockets(netns=...)``), sockets or
            not; ``None`` when namespaces were not asked for.
    """

    sockets: tuple[Socket, ...]
    backend: str
    owners_complete: bool | None = None
    notes: tuple[str, ...] = ()
    netns: tuple[Netns, ...] | None = None


@dataclass(frozen=True, slots=True)
class Service:
    """What a port means for one transport, from one source.

    Attributes:
        port: the port number (the first of a range).
        proto: the transport.
        name: service name (IANA's where there is one), e.g. ``https``.
        aliases: other names for it.
        description: one line.
        source: ``curated``, ``iana``, ``system`` (/etc/services) or ``nmap``.
        notes: a security or usage note, or ``None``.
        port_end: last port of a registered range (``6000-6063``), or ``None``.
        frequency: nmap's open-frequency (0.0-1.0), or ``None``.
    """

    port: int
    proto: Proto
    name: str
    aliases: tuple[str, ...] = ()
    description: str | None = None
    source: str = "curated"
    notes: str | None = None
    port_end: int | None = None
    frequency: float | None = None


@dataclass(frozen=True, slots=True)
class ProbeResult:
    """The answer of one (address, port, transport) to a probe.

    Attributes:
        host: the target as given (name or address).
        address: the address probed.
        port: the port probed.
        proto: the transport.
        state: open, closed, filtered, open|filtered, unreachable ...
        reason: why, in words (``syn-ack``, ``conn-refused``, ``no-response``,
            ``host-unreach`` ...), as nmap's ``--reason`` prints it.
        errno: the OS errno behind the answer, or ``None``.
        rtt_s: round-trip (connect) time in seconds, or ``None``.
        banner: bytes the service sent first, or ``None``.
        reason_ttl: the TTL (IPv4) or hop limit (IPv6) of the reply that decided the
            state (raw scans: the SYN-ACK, RST or ICMP error; UDP: the ICMP error), or
            ``None`` when it was not read (a connect scan; silence). nmap's ``reason_ttl``.
    """

    host: str
    address: str
    port: int
    proto: Proto
    state: PortState
    reason: str
    errno: int | None = None
    rtt_s: float | None = None
    banner: bytes | None = None
    reason_ttl: int | None = None


_PLAIN = frozenset({str, int, float, bool, type(None)})
_FIELD_NAMES: dict[type, tuple[str, ...]] = {}


def to_dict(obj: Any) -> Any:
    """Turn a result (dataclass, enum, tuple, bytes ...) into JSON-ready data.

    Dataclass fields keep their names; enums become their value; bytes become text with
    undecodable bytes escaped; computed properties are not included.
    """
    cls = type(obj)
    if cls in _PLAIN:  # most values: no further test (a who document has 100,000 sockets)
        return obj
    names = _FIELD_NAMES.get(cls)
    if names is None and dataclasses.is_dataclass(cls):
        names = _FIELD_NAMES[cls] = tuple(f.name for f in dataclasses.fields(cls))
    if names is not None:
        return {name: to_dict(getattr(obj, name)) for name in names}
    if isinstance(obj, enum.Enum):
        return obj.value
    if isinstance(obj, (list, tuple, set, frozenset)):
        return [to_dict(v) for v in obj]
    if isinstance(obj, Mapping):
        return {str(k): to_dict(v) for k, v in obj.items()}
    if isinstance(obj, bytes):
        return obj.decode("utf-8", "backslashreplace")
    if isinstance(obj, Sequence) and not isinstance(obj, str):  # who's SocketRows
        return [to_dict(v) for v in obj]
    return obj
