"""The history's records: listeners, scan ports, snapshots and change events.

A *listener* is what a diff compares: every socket of one identity (network namespace,
transport, local address, port) folded into one record, so that ``SO_REUSEPORT`` groups,
PIDs and queue counters never make a change by themselves. All frozen; times are seconds
since the epoch (``_at``/``taken_at``), durations seconds (``_s``).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Final

from portscope.models import Owner, PortState, Proto, TcpState

__all__ = [
    "Action",
    "Event",
    "Listener",
    "ListenerKey",
    "ScanHost",
    "ScanKey",
    "ScanPort",
    "SnapshotInfo",
    "SnapshotKind",
    "owner_identity",
    "scope_rank",
]

#: (netns inode or None, transport, local address, port): a listener's identity
ListenerKey = tuple[int | None, str, str, int]
#: (address, transport, port): a scanned port's identity
ScanKey = tuple[str, str, int]


class SnapshotKind(enum.StrEnum):
    """What a snapshot holds."""

    LISTENERS = "listeners"  # listening sockets (TCP LISTEN, UDP UNCONN) of this host
    SOCKETS = "sockets"  # every TCP/UDP socket (``snapshot --all``)
    SCAN = "scan"  # a portscope scan (``scan --save``)
    NMAP = "nmap"  # an imported nmap XML report (``import FILE.xml``)

    @property
    def is_scan(self) -> bool:
        return self in (SnapshotKind.SCAN, SnapshotKind.NMAP)


class Action(enum.StrEnum):
    """What changed. Scope is the bind scope: loopback < one address < all interfaces."""

    ADDED = "added"
    REMOVED = "removed"
    SCOPE_WIDENED = "scope-widened"  # e.g. 127.0.0.1:8000 -> 0.0.0.0:8000
    SCOPE_NARROWED = "scope-narrowed"  # and back
    OWNER_CHANGED = "owner-changed"  # another executable or command line, not another PID
    STATE_CHANGED = "state-changed"  # a scanned port: open -> closed, filtered -> open ...
    TRANSIENT = "transient"  # watch: a listener seen once, gone one interval later


@dataclass(frozen=True, slots=True)
class Listener:
    """The listening sockets of one identity (netns, transport, address, port).

    Attributes:
        netns: the network namespace's inode (``/proc/PID/ns/net``), or ``None`` when
            unknown (an old record).
        proto: TCP or UDP.
        family: 4 or 6.
        address: the local address (``inet_ntop`` text; ``0.0.0.0``/``::`` for all).
        port: the local port.
        state: ``LISTEN`` (TCP) or ``UNCONN`` (UDP); other states in ``--all`` snapshots.
        v6only: IPV6_V6ONLY of an IPv6 socket, ``None`` when not reported.
        interface: the device it is bound to (SO_BINDTODEVICE), or ``None``.
        sockets: how many sockets share the identity (``SO_REUSEPORT`` groups, forks).
        owners: the processes holding them; ``None`` when not looked up, ``()`` when none
            was visible (another user's process without root, or kernel-owned).
        netns_name: the namespace's name when the listing recorded one (``models.Netns``
            ``name``: ``host`` or the ``ip netns`` name), else ``None``; not part of the
            identity (the inode is).
    """

    netns: int | None
    proto: Proto
    family: int
    address: str
    port: int
    state: TcpState
    v6only: bool | None = None
    interface: str | None = None
    sockets: int = 1
    owners: tuple[Owner, ...] | None = None
    netns_name: str | None = None

    @property
    def key(self) -> ListenerKey:
        """The identity: (netns, transport, local address, port)."""
        return (self.netns, self.proto.value, self.address, self.port)


@dataclass(frozen=True, slots=True)
class ScanPort:
    """One port of one scanned host, as a scan or an nmap report decided it.

    Attributes:
        host: the target as given (a name, or the address).
        address: the address scanned.
        proto: the transport.
        port: the port.
        state: nmap's state name.
        reason: why (``syn-ack``, ``conn-refused`` ...), or ``None``.
        service: the service name the report gave, or ``None``.
    """

    host: str
    address: str
    proto: Proto
    port: int
    state: PortState
    reason: str | None = None
    service: str | None = None

    @property
    def key(self) -> ScanKey:
        return (self.address, self.proto.value, self.port)


@dataclass(frozen=True, slots=True)
class ScanHost:
    """One host of a scan snapshot.

    Attributes:
        host: the target as given.
        address: the address scanned.
        status: ``up``, ``down``, ``no-answer``, ``interrupted`` (nmap: ``up``/``down``).
        extra_state: the state of every port of the scan not listed (``closed`` for a
            portscope scan; nmap's ``extraports``), or ``None`` when unknown.
    """

    host: str
    address: str
    status: str
    extra_state: PortState | None = PortState.CLOSED


@dataclass(frozen=True, slots=True)
class SnapshotInfo:
    """One snapshot of the store (without its rows).

    Attributes:
        id: its number in the store (grows with time).
        host: the host name it was taken on (``socket.gethostname()``; scans: the
            scanning host).
        kind: listeners, sockets, scan or nmap.
        label: the user's label, or ``None``.
        taken_at: when, seconds since the epoch.
        source: what made it (``snapshot``, ``scan``, ``import FILE``).
        netns: the network namespace listed (inode), or ``None`` (scans; a listing of
            several namespaces, ``-N all``).
        items: the number of rows it holds (sockets, or scanned ports).
        complete: False when some processes' owners could not be read (not root).
        netns_spec: the ``-N`` value a listing was taken with (``all``, a name, a path),
            or ``None`` (the caller's namespace; scans).
    """

    id: int
    host: str
    kind: SnapshotKind
    label: str | None
    taken_at: float
    source: str
    netns: int | None
    items: int
    complete: bool
    netns_spec: str | None = None


@dataclass(frozen=True, slots=True)
class Event:
    """A change between two listings or scans.

    Attributes:
        action: what changed.
        before: the listener (or scanned port) before; ``None`` for ``added``.
        after: the listener (or scanned port) after; ``None`` for ``removed`` and
            ``transient`` is seen once: its ``before`` holds it.
        at: when it was observed (watch), seconds since the epoch; ``None`` in a diff.
    """

    action: Action
    before: Listener | ScanPort | None
    after: Listener | ScanPort | None
    at: float | None = None

    @property
    def subject(self) -> Listener | ScanPort:
        """The record the event is about: ``after`` if any, else ``before``."""
        subject = self.after if self.after is not None else self.before
        assert subject is not None
        return subject


_WILDCARDS: Final = frozenset({"0.0.0.0", "::"})


def scope_rank(listener: Listener) -> int:
    """How widely a listener accepts: 0 loopback, 1 one address, 2 every address of its
    family, 3 every IPv4 and IPv6 address (``::`` with IPV6_V6ONLY off, ``man 7 ipv6``)."""
    bare = listener.address.partition("%")[0]
    if bare in _WILDCARDS:
        return 3 if listener.family == 6 and listener.v6only is False else 2
    if bare.startswith("127.") or bare == "::1" or bare.startswith("::ffff:127."):
        return 0
    return 1


def owner_identity(owners: tuple[Owner, ...] | None) -> frozenset[tuple[str, tuple[str, ...]]]:
    """What makes an owner *another* owner: process names and command lines, no PIDs."""
    if not owners:
        return frozenset()
    return frozenset((o.name, o.cmdline or ()) for o in owners)
