"""Who holds a port: the processes behind its sockets, and freeing it (``--kill``)."""

from __future__ import annotations

import enum
import os
import select
import signal
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, overload

from portscope import _proc
from portscope.diagnose._cgroup import read_cgroup
from portscope.diagnose._common import check_port, owner_text
from portscope.models import Owner, Proto, Socket, SocketTable, TcpState

if TYPE_CHECKING:
    from portscope.sockets import Row
    from portscope.sockets._owners import OwnerMap

_STATE_ORDER = {TcpState.LISTEN: 0, TcpState.UNCONN: 1}


class SocketRows(Sequence[Socket]):
    """Sockets kept as the backend's rows and made into ``Socket`` objects when read.

    What ``who`` puts in ``PortHolder.sockets`` and ``WhoResult.unowned``: a holder of
    100,000 accepted connections costs 100,000 rows, not 100,000 objects, unless every
    one is read (``who --json`` writes them straight from the rows). Indexing, slicing,
    ``len`` and iteration behave as on a tuple of sockets; ``rows`` gives the rows.
    """

    __slots__ = ("_owners", "_rows")

    def __init__(self, rows: Sequence[Row], owners: OwnerMap | None = None) -> None:
        self._rows = rows
        self._owners = owners

    @property
    def rows(self) -> Sequence[Row]:
        """The rows, in order."""
        return self._rows

    def __len__(self) -> int:
        return len(self._rows)

    @overload
    def __getitem__(self, index: int) -> Socket: ...

    @overload
    def __getitem__(self, index: slice) -> tuple[Socket, ...]: ...

    def __getitem__(self, index: int | slice) -> Socket | tuple[Socket, ...]:
        from portscope.sockets import row_to_socket

        owners = self._owners
        if isinstance(index, slice):
            return tuple(row_to_socket(r, owners) for r in self._rows[index])
        return row_to_socket(self._rows[index], owners)

    def __iter__(self) -> Iterator[Socket]:
        from portscope.sockets import row_to_socket

        owners = self._owners
        return (row_to_socket(r, owners) for r in self._rows)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, SocketRows):
            return list(self._rows) == list(other._rows)
        if isinstance(other, Sequence):
            return tuple(self) == tuple(other)
        return NotImplemented

    def __hash__(self) -> int:
        return hash(tuple(self._rows))

    def __repr__(self) -> str:
        return f"SocketRows({len(self._rows)} sockets)"


def states_and_protos(socks: Sequence[Socket]) -> Iterator[tuple[TcpState, Proto]]:
    """(state, transport) of each socket, from the rows when ``socks`` keeps them."""
    if isinstance(socks, SocketRows):
        return ((r.state, r.proto) for r in socks.rows)
    return ((s.state, s.proto) for s in socks)


@dataclass(frozen=True, slots=True)
class PortHolder:
    """A process holding sockets on a port.

    Attributes:
        pid: process id.
        name: process name (``/proc/PID/comm``).
        user: owning user name, or ``None`` when unknown.
        cmdline: argv, or ``None`` when unreadable.
        start_time: process start, seconds since the epoch (``portscope._proc.start_time``),
            or ``None``; for display.
        sockets: the process's sockets on the port, listeners first (from ``who``: a
            ``SocketRows``, made into ``Socket`` objects as they are read).
        fds: the file descriptors of those sockets in the process.
        unit: the systemd unit it runs in (``nginx.service``), or ``None``.
        container: ``runtime:id`` of the container it runs in, or ``None``.
        start_ticks: process start in clock ticks after boot (``starttime`` of
            ``/proc/PID/stat``), or ``None``: the identity ``kill_holders`` checks again
            before signalling (stable, unlike the wall-clock time).
        ppid: the parent process id (``/proc/PID/stat`` field 4), or ``None``.
        other_sockets: the process's sockets on other ports (``who(..., others=True)``,
            which ``--kill`` shows before asking), or ``None`` when not looked up.
    """

    pid: int
    name: str
    user: str | None
    cmdline: tuple[str, ...] | None
    start_time: float | None
    sockets: Sequence[Socket]
    fds: tuple[int, ...] = ()
    unit: str | None = None
    container: str | None = None
    start_ticks: int | None = None
    ppid: int | None = None
    other_sockets: Sequence[Socket] | None = None


@dataclass(frozen=True, slots=True)
class WhoResult:
    """Everything holding one port.

    Attributes:
        port: the port asked about.
        proto: the transport asked about, or ``None`` for both TCP and UDP.
        holders: processes holding sockets whose local port is ``port``, by pid.
        unowned: sockets on the port with no visible process: TIME-WAIT (owned by the
            kernel), or another user's when not root.
        owners_complete: ``False`` when some processes could not be inspected.
        notes: plain-language notes (partial privilege ...).
    """

    port: int
    proto: Proto | None
    holders: tuple[PortHolder, ...]
    unowned: Sequence[Socket] = ()
    owners_complete: bool | None = None
    notes: tuple[str, ...] = ()

    @property
    def held(self) -> bool:
        """True when a process holds the port: a visible holder, or a socket of a process
        this user cannot see. Sockets the kernel keeps after their program closed them
        (``orphans``: TIME-WAIT, an orphaned FIN-WAIT-2 ...) hold nothing: they expire."""
        if self.holders:
            return True
        if isinstance(self.unowned, SocketRows):
            return not all(_orphan_row(r) for r in self.unowned.rows)
        return any(not is_orphan(s) for s in self.unowned)

    @property
    def orphans(self) -> tuple[Socket, ...]:
        """Sockets on the port that no process owns any more (``is_orphan``)."""
        if isinstance(self.unowned, SocketRows):
            from portscope.sockets import row_to_socket

            return tuple(row_to_socket(r) for r in self.unowned.rows if _orphan_row(r))
        return tuple(s for s in self.unowned if is_orphan(s))


#: TCP states a socket stays in after its program closed it, owned by the kernel alone
#: until the close completes or times out (RFC 9293 3.3.2; the kernel's orphan sockets).
ORPHAN_STATES = frozenset(
    {TcpState.FIN_WAIT_1, TcpState.FIN_WAIT_2, TcpState.CLOSING, TcpState.LAST_ACK,
     TcpState.TIME_WAIT}
)  # fmt: skip


def is_orphan(sock: Socket) -> bool:
    """True for a TCP socket no process has a descriptor of: the kernel finishes its
    close and frees it by itself (no inode: ``inet_diag`` reports 0 for orphans)."""
    return sock.inode is None and sock.state in ORPHAN_STATES


def _orphan_row(row: Row) -> bool:
    return row.inode is None and row.state in ORPHAN_STATES


def orphan_note(socks: Sequence[Socket], proc: Path = Path("/proc")) -> str | None:
    """One sentence on when the kernel frees ``socks`` (orphans), from its sysctls.

    FIN-WAIT-2 orphans last ``net.ipv4.tcp_fin_timeout`` seconds; FIN-WAIT-1, CLOSING and
    LAST-ACK ones until their FIN is acknowledged or ``net.ipv4.tcp_orphan_retries``
    retransmissions fail (0 means 8); TIME-WAIT lasts 60 s (``TCP_TIMEWAIT_LEN``,
    ``include/net/tcp.h``). ``None`` when ``socks`` is empty.
    """
    if not socks:
        return None
    states = sorted({s.state.value for s in socks})
    parts = []
    if TcpState.FIN_WAIT_2.value in states:
        fin = _proc.sysctl_int("net/ipv4/tcp_fin_timeout", 60, proc)
        parts.append(f"FIN-WAIT-2 within {fin} s (net.ipv4.tcp_fin_timeout)")
    if {"FIN-WAIT-1", "CLOSING", "LAST-ACK"} & set(states):
        retries = _proc.sysctl_int("net/ipv4/tcp_orphan_retries", 0, proc) or 8
        parts.append(
            f"FIN-WAIT-1, CLOSING and LAST-ACK when the peer acknowledges or after {retries} "
            "retransmissions (net.ipv4.tcp_orphan_retries)"
        )
    if TcpState.TIME_WAIT.value in states:
        parts.append("TIME-WAIT within 60 s (TCP_TIMEWAIT_LEN)")
    n = len(socks)
    return (
        f"{n} socket{'s' if n != 1 else ''} on this port ({', '.join(states)}) belong to no "
        "process: their program closed them and the kernel finishes the TCP close; they "
        f"expire by themselves ({'; '.join(parts)}); there is nothing to kill"
    )


class HolderRole(enum.StrEnum):
    """How a process uses the port, for ``kill_holders``."""

    LISTENER = "listener"  # a listening TCP socket or a bound UDP socket on the port
    ACCEPTED = "accepted"  # connections accepted on the port (the server side), no listener
    CLIENT = "client"  # connections only, nothing listens, an ephemeral port: a source port


_BOUND = frozenset({TcpState.LISTEN, TcpState.UNCONN})


def holder_roles(
    result: WhoResult, ephemeral: tuple[int, int] | None = None
) -> dict[int, HolderRole]:
    """Each holder's role (pid -> role).

    A holder with a listening (TCP) or bound (UDP) socket on the port is a ``listener``.
    One with connections only is the server side (``accepted``) when something listens on
    the port with the same transport, or when nothing does but the port is outside the
    ephemeral range (the listener is gone; the kernel never picks such a port as a source
    port); else it is a ``client`` whose source port the kernel picked.

    Args:
        result: what ``who`` found.
        ephemeral: ``net.ipv4.ip_local_port_range`` (read when ``None``).
    """
    listening = {
        proto
        for socks in [*(h.sockets for h in result.holders), result.unowned]
        for state, proto in _bound_first(socks)
    }
    if ephemeral is None:
        ephemeral = _proc.ip_local_port_range() or (32768, 60999)
    picked = ephemeral[0] <= result.port <= ephemeral[1]
    roles = {}
    for h in result.holders:
        if any(True for _ in _bound_first(h.sockets)):
            roles[h.pid] = HolderRole.LISTENER
        elif any(proto in listening for _, proto in states_and_protos(h.sockets)) or not picked:
            roles[h.pid] = HolderRole.ACCEPTED
        else:
            roles[h.pid] = HolderRole.CLIENT
    return roles


def _bound_first(socks: Sequence[Socket]) -> Iterator[tuple[TcpState, Proto]]:
    """(state, transport) of the listening/bound sockets among ``socks``; for a holder's
    (sorted listeners first) the walk stops at the first connection."""
    ordered = isinstance(socks, SocketRows)
    for state, proto in states_and_protos(socks):
        if state in _BOUND:
            yield state, proto
        elif ordered:
            return


def kill_targets(result: WhoResult, *, accepted: bool = False) -> list[PortHolder]:
    """The holders ``kill_holders`` signals: listeners, and with ``accepted`` the
    processes holding connections accepted on the port; never a client."""
    roles = holder_roles(result)
    wanted = {HolderRole.LISTENER, HolderRole.ACCEPTED} if accepted else {HolderRole.LISTENER}
    return [h for h in result.holders if roles[h.pid] in wanted]


def _sort_key(sock: Socket) -> tuple[int, int, str]:
    return (_STATE_ORDER.get(sock.state, 2), sock.family, sock.local.address)


def _by_pid(owner: Owner) -> int:
    return owner.pid


def holders_from_table(
    table: SocketTable, port: int, proto: Proto | None = None, *, proc: Path = Path("/proc")
) -> WhoResult:
    """Group the sockets of ``table`` whose local port is ``port`` by owning process.

    Pure apart from reading ``/proc/PID/cgroup`` and ``/proc/PID/stat`` of the holders.

    Args:
        table: a socket table with owners looked up.
        port: 1-65535.
        proto: TCP, UDP, or ``None`` for both.
        proc: the proc file system (a seam for tests).

    Returns:
        The holders and the sockets nobody visible holds.

    Raises:
        InvalidPort: ``port`` outside 1-65535.
    """
    check_port(port)
    by_pid: dict[int, tuple[Owner, list[Socket], list[int]]] = {}
    unowned: list[Socket] = []
    for sock in table.sockets:
        if sock.local.port != port or (proto is not None and sock.proto is not proto):
            continue
        if not sock.owners:
            unowned.append(sock)
            continue
        # linear in the sockets: a socket is added once per pid (several fds of one process
        # hold it), by the pid just seen, never by searching the list (`sock not in list`
        # compared dataclasses: 100,000 accepted connections took minutes)
        last_pid = -1
        for owner in sorted(sock.owners, key=_by_pid) if len(sock.owners) > 1 else sock.owners:
            entry = by_pid.setdefault(owner.pid, (owner, [], []))
            if owner.pid != last_pid:
                entry[1].append(sock)
                last_pid = owner.pid
            entry[2].append(owner.fd)
    holders = []
    for pid, (owner, socks, fds) in sorted(by_pid.items()):
        cgroup = read_cgroup(pid, proc)
        ticks = _proc.start_ticks(pid, proc)
        boot = _proc.boot_time(proc) if ticks is not None else None
        start = _proc.ticks_to_epoch(ticks, boot) if ticks is not None and boot else None
        holders.append(
            PortHolder(
                pid=pid,
                name=owner.name,
                user=owner.user,
                cmdline=owner.cmdline,
                start_time=start if start is not None else owner.start_time,
                sockets=tuple(sorted(socks, key=_sort_key)),
                fds=tuple(sorted(set(fds))),
                unit=cgroup.unit,
                container=cgroup.container,
                start_ticks=ticks,
                ppid=_proc.parent_pid(pid, proc),
            )
        )
    notes = list(table.notes)
    orphans = [s for s in unowned if is_orphan(s)]
    note = orphan_note(orphans, proc)
    if note is not None:
        notes.append(note)
    if table.owners_complete is False and len(orphans) < len(unowned):
        notes.append(
            "some sockets belong to processes this user cannot inspect; run as root to see them"
        )
    result = WhoResult(
        port=port,
        proto=proto,
        holders=tuple(holders),
        unowned=tuple(sorted(unowned, key=_sort_key)),
        owners_complete=table.owners_complete,
        notes=tuple(dict.fromkeys(notes)),
    )
    hidden = hidden_master(result) if proc == Path("/proc") else None
    if hidden is not None:
        result = replace(result, notes=(*result.notes, hidden))
    return result


def _uid_name(uid: int) -> str:
    from portscope.sockets._owners import user_name

    return user_name(uid)


def _parent(pid: int) -> tuple[str, int] | None:
    name, uid = _proc.process_name(pid), _proc.process_uid(pid)
    return None if name is None or uid is None else (name, uid)


def hidden_master(
    result: WhoResult,
    user_of: Callable[[int], str] = _uid_name,
    parent_of: Callable[[int], tuple[str, int] | None] = _parent,
) -> str | None:
    """Say so when the visible holders are a forked server's workers whose master is hidden.

    A listening socket keeps the uid of the process that created it (the kernel's
    ``sock_i_uid``). When owners are incomplete (not root), no visible holder of a listener
    runs as that uid, and a holder's parent runs as it (``/proc/PID/comm`` and the owner of
    ``/proc/PID`` are readable for every process), the parent is the master that opened the
    socket and forked the visible workers (nginx: a root master, ``www-data`` workers). It
    still holds the socket: killing the workers does not free the port, and the master
    would start new ones.

    Args:
        result: what ``holders_from_table`` found.
        user_of: uid -> user name (a seam for tests).
        parent_of: pid -> (name, uid) of a process, or ``None`` (a seam for tests).

    Returns:
        One plain sentence, or ``None`` when nothing points at a hidden holder.
    """
    if result.owners_complete is not False or not result.holders:
        return None
    pids = {h.pid for h in result.holders}
    for holder in result.holders:
        parent = holder.ppid
        if parent is None or parent <= 1 or parent in pids:
            continue
        for sock in holder.sockets:
            listening = sock.state in (TcpState.LISTEN, TcpState.UNCONN)
            if not listening or sock.uid is None:
                continue
            creator = user_of(sock.uid)
            if creator in {h.user for h in result.holders if sock in _listening(h)}:
                continue
            info = parent_of(parent)
            if info is None or info[1] != sock.uid:
                continue
            shown = ", ".join(owner_text(h.name, h.pid) for h in result.holders)
            return (
                f"the {sock.proto.value} socket {sock.local} was opened by user {creator}; "
                f"its likely holder {owner_text(info[0], parent)} (the parent of "
                f"{owner_text(holder.name, holder.pid)}, running as {creator}) is invisible "
                f"to this user (not root): killing the visible processes ({shown}) will not "
                "free the port; run as root to see and stop the master"
            )
    return None


def _listening(holder: PortHolder) -> list[Socket]:
    """The holder's listening/bound sockets (a few, where its connections may be 100,000)."""
    if isinstance(holder.sockets, SocketRows):
        count = sum(1 for _ in _bound_first(holder.sockets))
        return list(holder.sockets[:count])
    return [s for s in holder.sockets if s.state in _BOUND]


def _row_key(row: Row) -> tuple[int, int, str]:
    return (_STATE_ORDER.get(row.state, 2), row.family, row.local_address)


def _sorted_rows(rows: list[Row]) -> list[Row]:
    """``rows`` in ``_sort_key`` order (listeners, then bound, then by family and local
    address; stable): the few listening ones apart, the rest by a C-level key."""
    from operator import attrgetter

    bound = [r for r in rows if r.state in _BOUND]
    if not bound:
        return sorted(rows, key=attrgetter("family", "local_address"))
    rest = [r for r in rows if r.state not in _BOUND]
    return sorted(bound, key=_row_key) + sorted(rest, key=attrgetter("family", "local_address"))


def holders_from_rows(
    rows: Iterable[Row],
    owners: OwnerMap,
    port: int,
    proto: Proto | None = None,
    *,
    owners_complete: bool | None = True,
    notes: Sequence[str] = (),
    proc: Path = Path("/proc"),
) -> WhoResult:
    """``holders_from_table`` over the backend's rows and an owner map: the same result,
    without a ``Socket`` per row (holders keep ``SocketRows``).

    Linear: each row is looked up once in the owner map and appended to its holders'
    lists; sorting is by a key of the row.

    Args:
        rows: socket rows (``sockets.dump``); those not on ``port``/``proto`` are skipped.
        owners: the owner map of those rows.
        port: 1-65535.
        proto: TCP, UDP, or ``None`` for both.
        owners_complete: whether every process could be inspected.
        notes: notes of the dump.
        proc: the proc file system (a seam for tests).

    Raises:
        InvalidPort: ``port`` outside 1-65535.
    """
    check_port(port)
    mine = [r for r in rows if r.local_port == port and (proto is None or r.proto is proto)]
    by_pid, unowned = owners.by_process(mine)
    holders = []
    for pid, (socks, fds) in sorted(by_pid.items()):
        info = owners.process(pid)
        if info is None:  # holders() only returns processes with details
            continue
        cgroup = read_cgroup(pid, proc)
        ticks = _proc.start_ticks(pid, proc)
        boot = _proc.boot_time(proc) if ticks is not None else None
        start = _proc.ticks_to_epoch(ticks, boot) if ticks is not None and boot else None
        socks = _sorted_rows(socks)
        holders.append(
            PortHolder(
                pid=pid,
                name=info.name,
                user=info.user,
                cmdline=info.cmdline,
                start_time=start if start is not None else info.start_time,
                sockets=SocketRows(socks, owners),
                fds=tuple(sorted(set(fds))),
                unit=cgroup.unit,
                container=cgroup.container,
                start_ticks=ticks,
                ppid=_proc.parent_pid(pid, proc),
            )
        )
    all_notes = list(notes)
    orphans = [r for r in unowned if _orphan_row(r)]
    note = orphan_note(SocketRows(orphans), proc)
    if note is not None:
        all_notes.append(note)
    if owners_complete is False and len(orphans) < len(unowned):
        all_notes.append(
            "some sockets belong to processes this user cannot inspect; run as root to see them"
        )
    unowned = _sorted_rows(unowned)
    result = WhoResult(
        port=port,
        proto=proto,
        holders=tuple(holders),
        unowned=SocketRows(unowned, owners),
        owners_complete=owners_complete,
        notes=tuple(dict.fromkeys(all_notes)),
    )
    hidden = hidden_master(result) if proc == Path("/proc") else None
    if hidden is not None:
        result = replace(result, notes=(*result.notes, hidden))
    return result


def sockets_of(
    pids: Iterable[int], netns: str | int | None = None
) -> dict[int, tuple[Socket, ...]]:
    """Every TCP and UDP socket each of ``pids`` holds (listeners first), any port.

    Reads the whole socket table with owners (like ``ss -tuanp``), so it costs a full
    dump: ``who --kill`` calls it once, before asking.
    """
    from portscope.sockets import SocketFilter, list_sockets

    wanted = frozenset(pids)
    if not wanted:
        return {}
    table = list_sockets(owners=True, where=SocketFilter(pids=wanted), netns=netns)
    found: dict[int, list[Socket]] = {pid: [] for pid in wanted}
    for sock in table.sockets:
        for pid in {owner.pid for owner in sock.owners or ()}:  # once per process, linear
            if pid in found:
                found[pid].append(sock)
    return {pid: tuple(sorted(socks, key=_sort_key)) for pid, socks in found.items()}


def who(
    port: int,
    proto: Proto | None = None,
    *,
    families: Iterable[int] | None = None,
    others: bool = False,
    netns: str | int | None = None,
    all_holders: bool = True,
) -> WhoResult:
    """Every process holding ``port`` on this machine, on any address, IPv4 and IPv6.

    A process holds a port when one of its sockets has that local port: listeners, and
    the connections accepted on them. Each holder comes with its user, command line,
    start time, sockets (state and bind address) and systemd unit or container (from
    ``/proc/PID/cgroup``, cgroups(7)).

    Args:
        port: 1-65535.
        proto: ``Proto.TCP``, ``Proto.UDP``, or ``None`` for both.
        families: 4 and/or 6 (default both).
        others: also list each holder's sockets on other ports (``other_sockets``; a full
            socket-table dump).
        netns: look in these network namespaces (``list_sockets``: ``all``, a name, a
            pid, an nsfs path); ``None``: this one. Each socket carries its namespace.
        all_holders: find every process holding each socket (a scan of every
            process's descriptors: what ``kill_holders`` needs). False stops the scan
            once each socket has a holder, then looks only at the holders' descendants
            (``OwnerMap.scan(first_holders=True)``): the fast answer for display, where a
            socket passed to an unrelated process may show its first holder only.

    Returns:
        The holders (their ``sockets`` a ``SocketRows``); ``result.held`` is False when
        nobody holds the port.

    Raises:
        InvalidPort: ``port`` outside 1-65535.
        BackendUnavailable: no socket-table backend works here.

    Privilege: other users' processes are visible only to root (``owners_complete``).
    """
    check_port(port)
    from portscope.sockets import SocketFilter, as_filter, dump

    where = as_filter(
        SocketFilter(sports=frozenset({port})),
        None if proto is None else [proto],
        None if families is None else list(families),
        None,
    )
    forked = None
    if not all_holders and netns is None and sys.platform.startswith("linux"):
        from portscope.sockets._owners import ForkedScan

        # the /proc walk in a child process while this one dumps and decodes
        forked = ForkedScan.start()
    try:
        d = dump(where, owners=True, owners_first=False, netns=netns)
        rows = [r for batch in d.batches for r in batch]
    except BaseException:
        if forked is not None:
            forked.stop()
        raise
    if forked is not None and d.backend in ("netlink", "procfs"):
        d.use_owners(forked.finish({r.inode for r in rows if r.inode is not None}))
    elif forked is not None:
        forked.stop()
    omap = d.scan_owners(rows, first_holders=not all_holders)
    result = holders_from_rows(
        rows, omap, port, proto, owners_complete=d.owners_complete, notes=tuple(d.notes)
    )
    if not others or not result.holders:
        return result
    held = sockets_of((h.pid for h in result.holders), netns)
    holders = tuple(
        replace(
            h,
            other_sockets=tuple(s for s in held.get(h.pid, ()) if s.local.port != port),
        )
        for h in result.holders
    )
    return replace(result, holders=holders)


class KillOutcome(enum.StrEnum):
    """What happened to one holder when freeing a port."""

    TERMINATED = "terminated"  # exited after SIGTERM
    KILLED = "killed"  # exited after SIGKILL (--force)
    STILL_RUNNING = "still-running"  # SIGTERM sent, still alive after the timeout
    GONE = "gone"  # had already exited before any signal
    REFUSED_INIT = "refused-init"  # pid 1 is never signalled
    REFUSED_SELF = "refused-self"  # portscope does not signal itself
    PID_REUSED = "pid-reused"  # the pid now names another process: not signalled
    DENIED = "denied"  # EPERM: not allowed to signal it
    CLIENT = "client"  # only a client's source port: never signalled
    ACCEPTED_ONLY = "accepted-only"  # only accepted connections: signalled with accepted


@dataclass(frozen=True, slots=True)
class KillResult:
    """The outcome for one holder.

    Attributes:
        pid: the holder's pid.
        name: the holder's process name.
        outcome: what happened.
        detail: one plain sentence.
        signals: the signals sent, in order (``SIGTERM``, ``SIGKILL``).
        waited_s: seconds spent waiting for it to exit.
    """

    pid: int
    name: str
    outcome: KillOutcome
    detail: str
    signals: tuple[str, ...] = ()
    waited_s: float = 0.0


@dataclass(frozen=True, slots=True)
class KillReport:
    """What ``kill_holders`` did, and whether the port is free now.

    Attributes:
        port: the port.
        proto: the transport, or ``None`` for both.
        results: one per holder, by pid.
        port_free: True when nobody holds the port afterwards; ``None`` when not checked.
        remaining: holders of the port afterwards (another process sharing the socket,
            one that ignored SIGTERM ...).
    """

    port: int
    proto: Proto | None
    results: tuple[KillResult, ...]
    port_free: bool | None
    remaining: tuple[PortHolder, ...] = ()


class _Target:
    """A verified holder being signalled: pid, pidfd (when the kernel has them)."""

    def __init__(self, holder: PortHolder, pidfd: int | None) -> None:
        self.holder = holder
        self.pidfd = pidfd
        self.signals: list[str] = []
        self.exited = False
        self.waited_s = 0.0

    def send(self, sig: signal.Signals) -> None:
        if self.pidfd is not None:
            signal.pidfd_send_signal(self.pidfd, sig)
        else:
            os.kill(self.holder.pid, sig)
        self.signals.append(sig.name)

    def close(self) -> None:
        if self.pidfd is not None:
            os.close(self.pidfd)
            self.pidfd = None


def _same_process(holder: PortHolder) -> tuple[bool, int | None]:
    """Whether ``holder.pid`` still names the process ``who`` saw: the start ticks of
    ``/proc/PID/stat`` compared with the ones read then (one reader, ``portscope._proc``).

    Returns:
        (same, the ticks now or ``None`` when the process is gone).
    """
    now = _proc.start_ticks(holder.pid)
    return now is not None and holder.start_ticks is not None and now == holder.start_ticks, now


def _has_exited(holder: PortHolder) -> bool:
    """Without a pidfd: gone, a zombie, or a different process under the same pid."""
    state = _proc.process_state(holder.pid)
    return state is None or state in ("Z", "X") or not _same_process(holder)[0]


def _verify(holder: PortHolder) -> tuple[_Target | None, KillResult | None]:
    """Pin the process (pidfd) and check it is still the one ``who`` saw."""

    def refuse(outcome: KillOutcome, detail: str) -> tuple[None, KillResult]:
        return None, KillResult(holder.pid, holder.name, outcome, detail)

    if holder.pid == 1:
        return refuse(KillOutcome.REFUSED_INIT, "pid 1 (init) is never signalled")
    if holder.pid == os.getpid():
        return refuse(KillOutcome.REFUSED_SELF, "that is portscope itself")
    pidfd: int | None = None
    if hasattr(os, "pidfd_open"):
        try:
            pidfd = os.pidfd_open(holder.pid)
        except ProcessLookupError:
            return refuse(KillOutcome.GONE, "the process had already exited")
        except OSError:
            pidfd = None  # kernel without pidfd (before 5.3): fall back to kill(2)
    # Checked after pidfd_open: if the start time still matches, the pidfd names the
    # process `who` saw, and signals through it cannot reach a later process (no race).
    same, now = _same_process(holder)
    if not same:
        if pidfd is not None:
            os.close(pidfd)
        if now is None:
            return refuse(KillOutcome.GONE, "the process had already exited")
        return refuse(
            KillOutcome.PID_REUSED,
            f"pid {holder.pid} now belongs to a process started {now} clock ticks after "
            f"boot, not {holder.start_ticks}: not signalled",
        )
    return _Target(holder, pidfd), None


def _wait(targets: Sequence[_Target], timeout_s: float) -> None:
    """Wait until every target exited or ``timeout_s`` passed (pidfds poll readable on
    exit, pidfd_open(2))."""
    start = time.monotonic()
    deadline = start + timeout_s
    pending = [t for t in targets if not t.exited]
    while pending:
        now = time.monotonic()
        if now >= deadline:
            break
        with_fd = [t for t in pending if t.pidfd is not None]
        if with_fd and len(with_fd) == len(pending):
            poller = select.poll()
            by_fd = {t.pidfd: t for t in with_fd if t.pidfd is not None}
            for fd in by_fd:
                poller.register(fd, select.POLLIN)
            for fd, _ in poller.poll(max(1, int((deadline - now) * 1000))):
                by_fd[fd].exited = True
        else:
            for t in pending:
                if _has_exited(t.holder):
                    t.exited = True
            time.sleep(0.02)
        waited = time.monotonic() - start
        for t in pending:
            if t.exited:
                t.waited_s += waited
        pending = [t for t in pending if not t.exited]
    for t in pending:
        t.waited_s += time.monotonic() - start


def kill_holders(
    result: WhoResult,
    *,
    force: bool = False,
    timeout_s: float = 5.0,
    recheck: bool = True,
    accepted: bool = False,
) -> KillReport:
    """Free a port: SIGTERM every listener, wait, and with ``force`` SIGKILL the survivors.

    Only processes that serve the port are signalled (``kill_targets``): those with a
    listening TCP or bound UDP socket on it, and with ``accepted`` those holding
    connections accepted on it (an sshd session, a forked worker). A process whose
    connection merely comes *from* the port (a client's ephemeral source port) is never
    signalled (``client``), nor, without ``accepted``, one holding only accepted
    connections (``accepted-only``).

    Guards, in order, per holder: pid 1 and portscope's own pid are refused; the process
    is pinned with ``pidfd_open(2)`` and its start time (``/proc/PID/stat``) compared
    with the one ``who`` saw, so a pid reused by another process is never signalled;
    signals go through ``pidfd_send_signal(2)`` (kernel 5.1+; ``kill(2)`` otherwise).

    Args:
        result: what ``who`` found.
        force: send SIGKILL to holders still alive ``timeout_s`` after SIGTERM.
        timeout_s: seconds to wait after SIGTERM (and after SIGKILL).
        recheck: look at the port again afterwards (``port_free``, ``remaining``).
        accepted: also signal the processes holding connections accepted on the port.

    Returns:
        One result per holder and whether the port is free now.

    Privilege: signalling another user's process needs root (CAP_KILL); else ``denied``.
    """
    if timeout_s < 0:
        from portscope.errors import InvalidInput

        raise InvalidInput(f"timeout {timeout_s} is negative: give seconds >= 0")
    results: dict[int, KillResult] = {}
    targets: list[_Target] = []
    roles = holder_roles(result)
    for holder in result.holders:
        role = roles[holder.pid]
        if role is HolderRole.CLIENT:
            results[holder.pid] = KillResult(
                holder.pid,
                holder.name,
                KillOutcome.CLIENT,
                f"port {result.port} is only the source port of its outgoing connection(s) "
                "(a client, not a server): not signalled",
            )
            continue
        if role is HolderRole.ACCEPTED and not accepted:
            results[holder.pid] = KillResult(
                holder.pid,
                holder.name,
                KillOutcome.ACCEPTED_ONLY,
                "holds only connections accepted on the port, not the listener: not "
                "signalled (--accepted signals these too)",
            )
            continue
        target, refused = _verify(holder)
        if refused is not None:
            results[holder.pid] = refused
        elif target is not None:
            targets.append(target)
    try:
        live = []
        for t in targets:
            try:
                t.send(signal.SIGTERM)
                live.append(t)
            except ProcessLookupError:
                results[t.holder.pid] = KillResult(
                    t.holder.pid, t.holder.name, KillOutcome.GONE, "already exited"
                )
            except PermissionError:
                results[t.holder.pid] = KillResult(
                    t.holder.pid,
                    t.holder.name,
                    KillOutcome.DENIED,
                    "not permitted to signal it (another user's process; run as root)",
                )
        _wait(live, timeout_s)
        survivors = [t for t in live if not t.exited]
        if force and survivors:
            for t in survivors:
                try:
                    t.send(signal.SIGKILL)
                except ProcessLookupError:
                    t.exited = True
            _wait(survivors, max(timeout_s, 1.0))
        for t in live:
            h = t.holder
            if not t.exited:
                outcome, detail = (
                    KillOutcome.STILL_RUNNING,
                    f"still running {timeout_s:g} s after SIGTERM"
                    + ("" if force else "; use --force to send SIGKILL"),
                )
            elif "SIGKILL" in t.signals:
                outcome, detail = KillOutcome.KILLED, "ignored SIGTERM; exited after SIGKILL"
            else:
                outcome, detail = KillOutcome.TERMINATED, "exited after SIGTERM"
            results[h.pid] = KillResult(
                h.pid, h.name, outcome, detail, tuple(t.signals), round(t.waited_s, 3)
            )
    finally:
        for t in targets:
            t.close()
    port_free: bool | None = None
    remaining: tuple[PortHolder, ...] = ()
    if recheck:
        after = who(result.port, result.proto)
        port_free = not after.held
        remaining = after.holders
    return KillReport(
        port=result.port,
        proto=result.proto,
        results=tuple(results[pid] for pid in sorted(results)),
        port_free=port_free,
        remaining=remaining,
    )
