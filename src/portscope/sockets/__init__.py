"""This machine's socket table and the processes behind it.

``list_sockets`` is the public entry point. A backend is chosen once per process:
``netlink`` (Linux NETLINK_SOCK_DIAG), else ``procfs`` (``/proc/net``), else ``psutil``
(other platforms). Backends produce rows (``Row``, a named tuple whose fields,
``ROW_FIELDS``, are the one field list of a socket: ``_record``) that become ``Socket``
objects only at the end, and ``dump`` hands the rows themselves to callers that stream
(the CLI's JSON output at 200,000 sockets).
"""

from __future__ import annotations

import sys
from collections import Counter
from collections.abc import Callable, Collection, Iterable, Iterator
from typing import Any

from portscope.errors import BackendUnavailable, InvalidFilter
from portscope.models import Netns, Proto, Socket, SocketTable, TcpState
from portscope.sockets._backend import Backend, Extras
from portscope.sockets._diag_codec import JsonRows
from portscope.sockets._filters import (
    ALL_STATES,
    DEFAULT_STATES,
    LISTENING_STATES,
    SORT_KEYS,
    STATE_GROUPS,
    SocketFilter,
    parse_network,
    parse_pid,
    parse_port,
    parse_sort,
    parse_state,
    parse_states,
    parse_user,
)
from portscope.sockets._owners import OwnerMap
from portscope.sockets._record import ROW_FIELDS, SCHEMA, Row, socket_maker
from portscope.sockets._tally import Tally

__all__ = [
    "ALL_STATES",
    "BACKENDS",
    "DEFAULT_STATES",
    "LISTENING_STATES",
    "ROW_FIELDS",
    "SCHEMA",
    "SORT_KEYS",
    "STATE_GROUPS",
    "Dump",
    "Extras",
    "Row",
    "SocketFilter",
    "Tally",
    "as_filter",
    "bind_scope",
    "dump",
    "list_netns",
    "list_sockets",
    "parse_network",
    "parse_pid",
    "parse_port",
    "parse_sort",
    "parse_state",
    "parse_states",
    "parse_user",
    "row_to_socket",
    "scope_words",
    "sort_rows",
    "summarize",
    "summarize_by_netns",
    "tally",
]

BACKENDS = ("netlink", "procfs", "psutil")
_chosen: Backend | None = None
_chosen_notes: tuple[str, ...] = ()


def _open_backend(name: str) -> Backend:
    if name == "netlink":
        if not sys.platform.startswith("linux"):
            raise BackendUnavailable("the netlink backend needs Linux")
        from portscope.sockets._backend import NetlinkBackend

        return NetlinkBackend()
    if name == "procfs":
        if not sys.platform.startswith("linux"):
            raise BackendUnavailable("the procfs backend needs Linux")
        from portscope.sockets._procfs import ProcfsBackend

        return ProcfsBackend()
    if name == "psutil":
        from portscope.sockets._psutil import PsutilBackend

        return PsutilBackend()
    raise InvalidFilter(f"unknown backend {name!r}; accepted: {', '.join(BACKENDS)}")


def _select_backend(name: str | None) -> tuple[Backend, tuple[str, ...]]:
    """The backend asked for, or the best available one (chosen once per process)."""
    global _chosen, _chosen_notes
    if name is not None:
        return _open_backend(name), ()
    if _chosen is None:
        notes: list[str] = []
        order = BACKENDS if sys.platform.startswith("linux") else ("psutil",)
        for candidate in order:
            try:
                _chosen = _open_backend(candidate)
                break
            except BackendUnavailable as err:
                notes.append(f"{candidate} backend unavailable: {err}")
        if _chosen is None:
            raise BackendUnavailable("no socket backend works here: " + "; ".join(notes))
        _chosen_notes = tuple(notes)
    return _chosen, _chosen_notes


def as_filter(
    where: SocketFilter | None,
    protos: Iterable[Proto | str] | None,
    families: Iterable[int] | None,
    states: Iterable[TcpState | str] | str | None,
) -> SocketFilter:
    """``where`` with the conditions ``list_sockets`` takes as arguments, checked.

    Raises:
        InvalidFilter: a bad transport, family or state.
    """
    base = where or SocketFilter()
    changes: dict[str, Any] = {}
    if protos is not None:
        try:
            changes["protos"] = frozenset(Proto(str(p).lower()) for p in protos)
        except ValueError:
            raise InvalidFilter(f"bad transport in {protos!r}; accepted: tcp, udp") from None
        if not changes["protos"] <= {Proto.TCP, Proto.UDP}:
            raise InvalidFilter(f"bad transport in {protos!r}; accepted: tcp, udp")
    if families is not None:
        try:
            changes["families"] = frozenset(int(f) for f in families)
        except (TypeError, ValueError):
            changes["families"] = frozenset({0})
        if not changes["families"] <= {4, 6}:
            raise InvalidFilter(f"bad family in {families!r}; accepted: 4, 6")
    if states is not None:
        changes["states"] = parse_states(states)
    if not changes:
        return base
    from dataclasses import replace

    return replace(base, **changes)


class Dump:
    """A socket-table dump in progress: rows stream out of ``batches``.

    Attributes:
        backend: the backend's name.
        batches: lists of rows that pass the filter, in the backend's order.
        notes: notes for the user; a fallback found during the dump adds to it.
    """

    def __init__(self, impl: Backend, notes: list[str]) -> None:
        self.backend = impl.name
        self.batches: Iterator[list[Row]] = iter(())
        self._query: tuple[tuple[Proto, ...], tuple[int, ...], SocketFilter, bool] | None = None
        self.notes = notes
        self._impl = impl
        self._owners: OwnerMap | None = None
        self._started: Any = None  # a netlink dump already under way
        #: the namespaces dumped (``dump(netns=...)``), else ``None``
        self.netns: tuple[Netns, ...] | None = None
        self._owner_scan: Callable[[Collection[int] | None], OwnerMap] = impl.owner_map
        self._ns_lines: Callable[[JsonRows], Iterator[list[str]]] | None = None
        #: cookie -> ``_diag_ext.SocketExtra`` when extras were asked for (filled while
        #: ``batches`` is read); ``None`` when not asked or the backend cannot give them
        self.extras: dict[int, Any] | None = None

    def json_lines(self, formatter: JsonRows) -> Iterator[list[str]] | None:
        """The dump as batches of socket JSON objects, decoded and formatted in one pass.

        Use it instead of ``batches``. Only when the backend can (netlink) and every
        condition went to the kernel (no row-level filter): else ``None``.

        Args:
            formatter: what writes the JSON (``render.sockets.SocketJson``); its owners
                go into the output.
        """
        fused = getattr(self._impl, "json_batches", None)
        if fused is None or self._query is None or not self._query[3] or self.extras is not None:
            return None
        if self._ns_lines is not None:
            # the formatter writes each namespace's owners from that namespace's map
            return self._ns_lines(formatter)
        protos, families, where, _ = self._query
        lines: Iterator[list[str]]
        if self._started is not None:
            lines = self._impl.decode(self._started, formatter)  # type: ignore[attr-defined]
        else:
            lines = fused(protos, families, where.states, where, formatter)
        impl = self._impl

        def batches() -> Iterator[list[str]]:
            yield from lines
            self.notes.extend(n for n in impl.notes if n not in self.notes)

        return batches()

    @property
    def owners(self) -> OwnerMap | None:
        """The owner map, or ``None`` when owners were not looked up (yet)."""
        return self._owners

    def _add_owner_note(self) -> None:
        note = None if self._owners is None else self._owners.note()
        if note is not None and note not in self.notes:
            self.notes.append(note)

    @property
    def owners_complete(self) -> bool | None:
        """``None`` without owners, else whether every process could be inspected."""
        owners = self.owners
        return None if owners is None else owners.complete

    def use_owners(self, owners: OwnerMap) -> None:
        """Take an owner map made elsewhere (``_owners.ForkedScan``), with its note."""
        self._owners = owners
        self._add_owner_note()

    def scan_owners(
        self, rows: Iterable[Row] | None = None, *, first_holders: bool = False
    ) -> OwnerMap:
        """Map sockets to processes after the dump: only those of ``rows`` if given.

        With ``first_holders`` (and ``rows``, in the caller's namespace) the scan stops
        once each socket has a holder, then looks only at the holders' descendants
        (``OwnerMap.scan``); otherwise every process is read.
        """
        owners = self.owners
        if owners is None:
            wanted = None if rows is None else {r.inode for r in rows if r.inode is not None}
            if first_holders and wanted is not None and self.netns is None:
                proc = getattr(self._impl, "_proc", None)
                if proc is not None:  # netlink and procfs (psutil maps its own way)
                    owners = OwnerMap.scan(wanted, proc, first_holders=True)
            if owners is None:
                owners = self._owner_scan(wanted)
            self._owners = owners
            self._add_owner_note()
        return owners


def dump(
    where: SocketFilter | None = None,
    *,
    owners: bool = False,
    backend: str | None = None,
    owners_first: bool = True,
    netns: str | int | None = None,
    extras: Extras | None = None,
) -> Dump:
    """Start a dump of the socket table as rows (the streaming form of ``list_sockets``).

    Args:
        where: which sockets (``None``: TCP and UDP, IPv4 and IPv6, every state).
        owners: also map sockets to processes (a scan of ``/proc/*/fd``).
        backend: ``netlink``, ``procfs`` or ``psutil``; ``None`` picks the best one.
        owners_first: scan owners now, over every socket, so that rows can stream out
            with them. With False the caller calls ``Dump.scan_owners(rows)`` after the
            dump, which keeps only those sockets.
        netns: which network namespaces (``list_sockets``); ``None``: the caller's own,
            and rows carry ``netns=None``.
        extras: extended attributes to ask the kernel for (``tcp_info``, timers,
            memory): ``Dump.extras`` holds them by socket cookie once ``batches`` is
            read. netlink only; other backends add a note.

    Returns:
        The dump; iterate ``batches`` once.

    Raises:
        BackendUnavailable: the backend asked for cannot run here.
        InvalidFilter: an unknown backend name, a bad or unknown namespace.
        PermissionDenied: the namespace of another user's process (not root).
    """
    where = where or SocketFilter()
    be, choice_notes = _select_backend(backend)
    protos = tuple(p for p in (Proto.TCP, Proto.UDP) if where.protos is None or p in where.protos)
    families = tuple(f for f in (4, 6) if where.families is None or f in where.families)
    result = Dump(be, list(choice_notes))
    if netns is not None:
        return _dump_namespaces(result, be, where, protos, families, owners, owners_first, netns)
    omap = None
    start = getattr(be, "start", None)
    started = None
    if extras and start is None:
        result.notes.append(
            f"the {be.name} backend gives no tcp_info, timers or socket memory (netlink does)"
        )
        extras = None
    if extras:
        started = start(protos, families, where.states, where, extras)  # type: ignore[misc]
        result.extras = started.extras
    if where.needs_owners or (owners and owners_first):
        if start is not None and started is None:
            # the kernel answers the dump (in the netlink thread) while we scan /proc
            started = start(protos, families, where.states, where)
        # the owners are needed before the first row streams out (a scan in a thread
        # beside the decoding was tried: the GIL hand-offs cost more than they saved)
        omap = result.scan_owners()
    keep = _row_predicate(where, omap)
    result._query = (protos, families, where, keep is None)
    result._started = started
    raw = (
        be.batches(protos, families, where.states, where)
        if started is None
        else be.decode(started, None)  # type: ignore[attr-defined]
    )

    def batches() -> Iterator[list[Row]]:
        for rows in raw:
            if keep is not None:
                rows = [r for r in rows if keep(r)]
            if rows:
                yield rows
        for note in be.notes:
            if note not in result.notes:
                result.notes.append(note)

    result.batches = batches()
    return result


def _dump_namespaces(
    result: Dump,
    be: Backend,
    where: SocketFilter,
    protos: tuple[Proto, ...],
    families: tuple[int, ...],
    owners: bool,
    owners_first: bool,
    netns: str | int,
) -> Dump:
    """``dump`` over the namespaces ``netns`` names (``_netns.namespace_batches``)."""
    if be.name not in ("netlink", "procfs"):
        raise BackendUnavailable(f"network namespaces need Linux (backend {be.name})")
    from portscope.sockets import _netns
    from portscope.sockets._owners import NetnsOwners

    spec = _netns.parse_netns(netns)
    refs, denied = _netns.resolve(spec)
    result.netns = tuple(r.netns for r in refs if r.netns is not None)
    if denied and spec == "all":
        result.notes.append(
            f"the namespaces of {denied} {'process' if denied == 1 else 'processes'} of "
            "other users could not be read (that needs root): some namespaces may be missing"
        )
    unnamed = [
        f"{c.runtime}:{c.id[:12]}"
        for ns in result.netns
        for c in ns.containers or ()
        if c.name is None
    ]
    if unnamed:
        result.notes.append(
            "containers without a name (their runtime's state files are absent or not "
            f"readable here): {', '.join(unnamed)}"
        )
    groups = {r.inode: r.pids for r in refs}
    result._owner_scan = lambda wanted: NetnsOwners.scan_namespaces(groups, wanted, denied=denied)
    omap = None
    if where.needs_owners or (owners and owners_first):
        omap = result.scan_owners()
    keep = _row_predicate(where, omap)
    result._query = (protos, families, where, keep is None)
    notes = result.notes

    def lines(formatter: JsonRows) -> Iterator[list[str]]:
        by_ns = result.owners if isinstance(result.owners, NetnsOwners) else None
        if by_ns is not None and not hasattr(formatter, "use_owners"):
            raise TypeError("owners by namespace need a formatter with use_owners")
        return _netns.namespace_batches(be, refs, protos, families, where, notes, formatter, by_ns)

    result._ns_lines = lines

    def batches() -> Iterator[list[Row]]:
        for rows in _netns.namespace_batches(be, refs, protos, families, where, notes):
            if keep is not None:
                rows = [r for r in rows if keep(r)]
            if rows:
                yield rows

    result.batches = batches()
    return result


def tally(
    ephemeral: tuple[int, int],
    *,
    backend: str | None = None,
    netns: str | int | None = None,
) -> Tally:
    """The socket table counted: TCP listeners and UDP sockets as rows, every other TCP
    socket only counted (what a metrics scrape needs; ``_tally``).

    With netlink in the caller's namespace the kernel is asked for listeners and the rest
    apart, and the rest is counted straight from the bytes; otherwise (another backend,
    ``netns`` given, a transport without sock_diag) from a ``dump``'s rows. The numbers
    are the same either way.

    Args:
        ephemeral: the ephemeral port range (``net.ipv4.ip_local_port_range``), both
            ends included: which TCP sockets with a peer count in ``ephemeral_ports``
            and ``destinations``.
        backend: ``netlink``, ``procfs`` or ``psutil``; ``None`` picks the best one.
        netns: the network namespaces (``list_sockets``); ``None``: the caller's own.

    Returns:
        The tally; ``Tally.owner_scan(rows)`` maps some of its rows to processes.

    Raises:
        BackendUnavailable, InvalidFilter, PermissionDenied: as ``dump``.
    """
    import errno

    be, choice_notes = _select_backend(backend)
    if netns is None and be.name == "netlink":
        from portscope.sockets._owners import usable_cpus
        from portscope.sockets._tally import netlink_tally

        prefetch = getattr(be, "prefetch", None)
        try:
            counted = netlink_tally(
                getattr(be, "_proc", "/proc"),
                ephemeral,
                usable_cpus() >= 2 if prefetch is None else prefetch,
            )
        except BackendUnavailable as err:
            if err.errno not in (errno.ENOENT, errno.EAFNOSUPPORT):
                raise
            # a transport without sock_diag: the dump below reads it from /proc/net
        else:
            counted.notes.extend(choice_notes)
            return counted
    d = dump(SocketFilter(), owners=True, backend=backend, owners_first=False, netns=netns)
    result = Tally(owner_scan=d.scan_owners)
    for rows in d.batches:
        result.add_rows(rows, ephemeral)
    result.notes.extend(d.notes)
    return result


def list_netns() -> tuple[Netns, ...]:
    """Every network namespace on this host that this process can see.

    From ``/proc/*/ns/net`` and the nsfs bind mounts in ``/proc/self/mountinfo`` (a
    namespace may hold no process: ``ip netns add``), deduplicated by inode; the host's
    (pid 1's) first, named ``host``; then ``ip netns`` names; containers labelled from
    their processes' cgroup paths and, where readable, the runtime's state files.

    Returns:
        The namespaces.

    Privilege: without root only the namespaces of this user's processes and the
    mounted ones are found.
    """
    from portscope.sockets import _netns

    refs, _ = _netns.discover()
    return tuple(r.netns for r in refs if r.netns is not None)


def _row_predicate(where: SocketFilter, omap: OwnerMap | None) -> Callable[[Row], bool] | None:
    if not where.row_level:
        return None
    from dataclasses import replace

    return replace(where, states=None).predicate(omap)


def row_to_socket(row: Row, owners: OwnerMap | None = None) -> Socket:
    """Turn a row into a ``Socket`` (with its owners when an owner map is given).

    Generated from the field list (``_record.socket_maker``): fields by name, each
    ``X_address``/``X_port`` pair as an ``Endpoint``.
    """
    return socket_maker()(row, None if owners is None else owners.owners(row))


def list_sockets(
    *,
    protos: Iterable[Proto | str] | None = None,
    families: Iterable[int] | None = None,
    states: Iterable[TcpState | str] | str | None = None,
    owners: bool = False,
    backend: str | None = None,
    where: SocketFilter | None = None,
    netns: str | int | None = None,
) -> SocketTable:
    """This machine's TCP and UDP sockets, like ``ss -tuanp``.

    The dump is one NETLINK_SOCK_DIAG request per (transport, family) with the states
    filtered by the kernel (``man 7 sock_diag``, ``linux/inet_diag.h``); without netlink,
    ``/proc/net/{tcp,tcp6,udp,udp6}``; elsewhere psutil. Sockets that appear or vanish
    during the dump are normal: no error, no duplicate rows.

    Args:
        protos: transports, ``tcp``/``udp`` (default both).
        families: 4 and/or 6 (default both).
        states: states or ``ss`` groups (``listen``, ``TIME_WAIT``, ``connected`` ...);
            default every state.
        owners: map each socket to its processes (pid, name, user, command line, start
            time, fd) by scanning ``/proc/*/fd``. Without root only this user's processes
            are visible: ``owners_complete`` is then False and ``notes`` says so.
        backend: ``netlink``, ``procfs`` or ``psutil``; ``None`` picks the best one.
        where: further conditions (ports, addresses, uids, pids, process names).
        netns: the network namespaces to dump: ``"all"`` (every one: ``list_netns``),
            an ``ip netns`` name, a pid (int or digits: that process's namespace), or
            an nsfs path (``/run/netns/x``, ``/run/docker/netns/ID``,
            ``/proc/PID/ns/net``). ``None`` (default): the caller's own namespace, and
            ``Socket.netns`` is ``None``. Each namespace is entered with ``setns(2)`` by
            one worker thread (root, or CAP_SYS_ADMIN over it); one that cannot be
            entered is read from ``/proc/PID/net`` if possible, else skipped with a note.
            Owners are matched within each namespace's processes.

    Returns:
        The table: sockets in the backend's order (namespace after namespace), the
        backend's name, notes; ``netns`` lists the namespaces dumped.

    Raises:
        InvalidFilter: a bad state, transport, family, backend name or namespace.
        BackendUnavailable: the backend asked for (or every backend) cannot run here.
        PermissionDenied: the kernel refused the dump; the namespace of another user's
            process.
    """
    query = as_filter(where, protos, families, states)
    d = dump(query, owners=owners, backend=backend, owners_first=False, netns=netns)
    rows = [r for batch in d.batches for r in batch]
    omap = d.scan_owners(rows) if owners else None
    sockets = tuple([row_to_socket(r, omap) for r in rows])
    return SocketTable(
        sockets=sockets,
        backend=d.backend,
        owners_complete=d.owners_complete if owners else None,
        notes=tuple(d.notes),
        netns=d.netns,
    )


def _address_key(address: str | None) -> tuple[int, bytes]:
    import socket

    if address is None:
        return (0, b"")
    bare = address.partition("%")[0]
    try:
        if ":" in bare:
            return (6, socket.inet_pton(socket.AF_INET6, bare))
        return (4, socket.inet_pton(socket.AF_INET, bare))
    except OSError:
        return (9, bare.encode())


def sort_rows(rows: list[Row], key: str, owners: OwnerMap | None = None) -> list[Row]:
    """Sort rows in place by a key of ``SORT_KEYS`` and return them.

    Raises:
        InvalidFilter: for an unknown key.
    """
    key = parse_sort(key)
    state_order = {s: i for i, s in enumerate(TcpState)}

    def first_owner(r: Row) -> tuple[int, str]:
        if owners is None:
            return (1 << 30, "")
        pids = owners.pids(r)
        if not pids:
            return (1 << 30, "")
        info = owners.process(pids[0])
        return (pids[0], info.name if info else "")

    funcs: dict[str, Callable[[Row], Any]] = {
        "port": lambda r: (r.local_port, r.proto.value, r.family),
        "local": lambda r: (_address_key(r.local_address), r.local_port),
        "remote": lambda r: (_address_key(r.remote_address), r.remote_port or 0),
        "rport": lambda r: (r.remote_port or 0, _address_key(r.remote_address)),
        "state": lambda r: state_order[r.state],
        "proto": lambda r: (r.proto.value, r.family),
        "recv-q": lambda r: 1 if r.recv_q is None else -r.recv_q,
        "send-q": lambda r: 1 if r.send_q is None else -r.send_q,
        "uid": lambda r: -1 if r.uid is None else r.uid,
        "inode": lambda r: r.inode or 0,
        "pid": lambda r: first_owner(r)[0],
        "process": lambda r: first_owner(r)[1],
    }
    rows.sort(key=funcs[key])
    return rows


def summarize(rows: Iterable[Row]) -> dict[str, Any]:
    """Counts per transport, family and state, like ``ss -s``.

    Returns:
        ``{"total": N, "by_proto": {"tcp": {"total", "ipv4", "ipv6", "states": {...}}}}``.
    """
    counts: Counter[tuple[str, int, str]] = Counter()
    for r in rows:
        counts[(r.proto.value, r.family, r.state.value)] += 1
    by_proto: dict[str, dict[str, Any]] = {}
    for proto in ("tcp", "udp"):
        states: Counter[str] = Counter()
        fams = {4: 0, 6: 0}
        for (p, fam, st), n in counts.items():
            if p == proto:
                states[st] += n
                fams[fam] += n
        by_proto[proto] = {
            "total": fams[4] + fams[6],
            "ipv4": fams[4],
            "ipv6": fams[6],
            "states": dict(sorted(states.items())),
        }
    return {"total": sum(counts.values()), "by_proto": by_proto}


def summarize_by_netns(
    rows: Iterable[Row], namespaces: Iterable[Netns] = ()
) -> list[dict[str, Any]]:
    """``summarize`` per network namespace, in the order met (``namespaces`` first, so
    a namespace without sockets is counted too).

    Returns:
        ``[{"netns": {"inode", "name", "containers"}, "total": N, "by_proto": ...}]``.
    """
    from portscope.models import to_dict

    groups: dict[int, tuple[Netns | None, list[Row]]] = {}
    for each in namespaces:
        groups.setdefault(each.inode, (each, []))
    for r in rows:
        ns = r.netns
        key = 0 if ns is None else ns.inode
        group = groups.get(key)
        if group is None:
            group = groups[key] = (ns, [])
        group[1].append(r)
    return [
        {"netns": None if ns is None else to_dict(ns), **summarize(members)}
        for ns, members in groups.values()
    ]


def scope_words(family: int, address: str, v6only: bool | None, interface: str | None) -> str:
    """The bind scope of a local address in words (see ``bind_scope``)."""
    bare = address.partition("%")[0]
    if bare in ("0.0.0.0", "::"):
        if family == 4:
            words = "all interfaces (IPv4)"
        elif v6only is False:
            words = "all interfaces (IPv4+IPv6)"
        elif v6only is True:
            words = "all interfaces (IPv6 only)"
        else:  # the backend cannot tell (procfs, psutil)
            words = "all interfaces (IPv6; IPv4 unknown)"
    elif bare.startswith("127.") or bare == "::1" or bare.startswith("::ffff:127."):
        words = "loopback only"
    else:
        words = f"{bare} only"
    if interface is not None:
        words += f", device {interface}"
    return words


def bind_scope(sock: Socket) -> str:
    """Where a socket accepts traffic from, in words, from its local address.

    ``0.0.0.0`` is "all interfaces (IPv4)"; ``::`` is "all interfaces (IPv4+IPv6)" when
    IPV6_V6ONLY is off (the kernel default, ``net.ipv6.bindv6only=0``; ``man 7 ipv6``),
    "all interfaces (IPv6 only)" when on, and "all interfaces (IPv6; IPv4 unknown)" when
    the backend does not report it (procfs, psutil); 127.0.0.0/8 and ``::1`` are
    "loopback only"; any other address is "ADDRESS only". SO_BINDTODEVICE adds
    ", device IFACE".

    Args:
        sock: a socket (a listener, usually).

    Returns:
        The scope in words.
    """
    return scope_words(sock.family, sock.local.address, sock.v6only, sock.interface)
