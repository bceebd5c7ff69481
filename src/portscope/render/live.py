"""What the live faces (``portscope top``, ``portscope serve``) show: rows, filters, groups.

Both faces poll this module once a second; nothing here draws. A ``Snapshot`` is one read
of the socket table with owners (``list_sockets(owners=True)``) turned into ``LiveRow``
records: the cells of the listening view (or of the connection view) as exact text, plus
the ``Socket`` they came from. Untrusted text (process names, command lines, interface
names) stays exact here; each face escapes it where it draws (Rich ``Text`` in the TUI,
Jinja2 autoescape on the web).

Large tables: above ``AGGREGATE_ABOVE`` sockets a snapshot carries ``Aggregates`` (counts
per state, per remote address, per process) and no rows, so a face never builds 100,000
rows; a filter that narrows the table below the limit brings the rows back.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Literal

from portscope.models import Netns, Proto, Socket, SocketTable, TcpState, to_dict

TYPE_CHECKING = False
if TYPE_CHECKING:
    from portscope.registry._ranges import KernelPorts

View = Literal["listen", "connections"]

#: Above this many sockets a snapshot aggregates instead of listing rows.
AGGREGATE_ABOVE = 20_000

LISTEN_COLUMNS: tuple[str, ...] = (
    "Proto",
    "Port",
    "Address",
    "Scope",
    "Service",
    "Process",
    "User",
    "Queue",
    "Netns",
)
CONNECTION_COLUMNS: tuple[str, ...] = (
    "Proto",
    "State",
    "Local",
    "Peer",
    "Service",
    "Process",
    "User",
    "Recv-Q",
    "Send-Q",
    "Netns",
)
_LISTENING = frozenset({TcpState.LISTEN, TcpState.UNCONN})


@dataclass(frozen=True, slots=True)
class LiveRow:
    """One socket as the live faces show it.

    Attributes:
        key: identity across refreshes (transport, family, endpoints, inode): the TUI
            keeps its cursor on it.
        sock: the socket.
        cells: exact text per column of the view (``LISTEN_COLUMNS`` or
            ``CONNECTION_COLUMNS``), untrusted text unescaped.
        pids: the owning processes' pids.
        scope: the bind scope in words (``sockets.scope_words``).
        scope_class: ``all``, ``loopback`` or ``one`` (one address): the colour class.
    """

    key: str
    sock: Socket
    cells: tuple[str, ...]
    pids: tuple[int, ...]
    scope: str
    scope_class: str
    _haystack: str = field(default="", repr=False, compare=False)

    def cell(self, column: str, view: View) -> str:
        columns = LISTEN_COLUMNS if view == "listen" else CONNECTION_COLUMNS
        return self.cells[columns.index(column)]


@dataclass(frozen=True, slots=True)
class Aggregates:
    """Counts instead of rows, for tables too large to list.

    Attributes:
        total: sockets in the table.
        by_state: state -> count, largest first.
        by_remote: remote address -> count, largest first (top 50).
        by_process: ``name[pid]`` (or ``-``) -> count, largest first (top 50).
    """

    total: int
    by_state: tuple[tuple[str, int], ...]
    by_remote: tuple[tuple[str, int], ...]
    by_process: tuple[tuple[str, int], ...]


@dataclass(frozen=True, slots=True)
class Snapshot:
    """One read of the table for a view.

    Attributes:
        view: ``listen`` or ``connections``.
        rows: the rows, or ``()`` when aggregated.
        aggregates: counts when the table has more than ``AGGREGATE_ABOVE`` sockets.
        total: sockets read.
        notes: the table's notes (partial privilege ...).
        sockets: every socket read (for a filter that narrows an aggregated table).
        backend: the backend that read the table.
        owners_complete: as ``SocketTable.owners_complete``.
    """

    view: View
    rows: tuple[LiveRow, ...]
    aggregates: Aggregates | None
    total: int
    notes: tuple[str, ...]
    sockets: tuple[Socket, ...] = ()
    backend: str = ""
    owners_complete: bool | None = None


def scope_class(sock: Socket) -> str:
    """``all`` (every interface), ``loopback`` or ``one`` (one address) for a listener."""
    bare = sock.local.address.partition("%")[0]
    if bare in ("0.0.0.0", "::"):
        return "all"
    if bare.startswith("127.") or bare == "::1" or bare.startswith("::ffff:127."):
        return "loopback"
    return "one"


def netns_text(sock: Socket) -> str:
    """The socket's network namespace for a cell, as the CLI's Netns column shows it
    (``sockets._netns.netns_label``): its name (``host``, an ``ip netns`` name), else its
    container (``docker:redis``, ``k8s:NAMESPACE/POD``), else ``net:[INODE]``; ``""`` when
    the table was read without namespaces (no ``-N``)."""
    if sock.netns is None:
        return ""
    return _netns_words(sock.netns)[0]


@lru_cache(maxsize=1024)
def _netns_words(ns: Netns) -> tuple[str, str, str]:
    """(cell label, ``NAME-or-net:[INODE]``, container labels) of a namespace."""
    from dataclasses import replace

    from portscope.sockets._netns import netns_label

    label = netns_label(ns)
    where = ns.name or f"net:[{ns.inode}]"
    containers = ""
    if ns.containers:
        containers = ", ".join(netns_label(replace(ns, name=None, containers=(c,)))
                               for c in ns.containers)  # fmt: skip
    return label, where, containers


def netns_haystack(sock: Socket) -> str:
    """What a filter word may match of the socket's namespace: its name, ``net:[INODE]``,
    the inode, the containers' labels, names, ids and pods (lower case; ``""`` without
    namespaces)."""
    return "" if sock.netns is None else _netns_hay(sock.netns)


@lru_cache(maxsize=1024)
def _netns_hay(ns: Netns) -> str:
    label, where, containers = _netns_words(ns)
    parts = [label, where, f"net:[{ns.inode}]", str(ns.inode), containers]
    for c in ns.containers or ():
        parts += [c.runtime, c.id, c.name or "", c.pod or "", c.pod_namespace or ""]
    return "\0".join(parts).lower()


def netns_details(sock: Socket) -> list[tuple[str, str]]:
    """The detail pane's lines about the namespace: ``Netns`` (name or ``net:[INODE]``,
    with the inode) and ``Containers`` (their labels); none without namespaces."""
    ns = sock.netns
    if ns is None:
        return []
    _, where, containers = _netns_words(ns)
    out = [("Netns", where if where.startswith("net:[") else f"{where} (net:[{ns.inode}])")]
    if containers:
        out.append(("Containers", containers))
    return out


def _proto(sock: Socket) -> str:
    return f"{sock.proto.value}{'6' if sock.family == 6 else ''}"


def _owners(sock: Socket) -> tuple[str, tuple[int, ...], str]:
    owners = sock.owners or ()
    names = ",".join(dict.fromkeys(f"{o.name}[{o.pid}]" for o in owners)) or "-"
    pids = tuple(dict.fromkeys(o.pid for o in owners))
    users = ",".join(dict.fromkeys(o.user for o in owners if o.user)) or "-"
    return names, pids, users


def _queue(value: int | None) -> str:
    return "?" if value is None else str(value)


def make_rows(
    sockets: Iterable[Socket], view: View, service: Callable[[Socket], str | None] | None = None
) -> list[LiveRow]:
    """The rows of ``view`` for ``sockets`` (already restricted to the view's states)."""
    from portscope.sockets import scope_words

    service = service or service_of()
    rows: list[LiveRow] = []
    for s in sockets:
        names, pids, users = _owners(s)
        scope = scope_words(s.family, s.local.address, s.v6only, s.interface)
        ns = netns_text(s)
        svc = service(s) or "-"
        if view == "listen":
            address = f"[{s.local.address}]" if s.family == 6 else s.local.address
            queue = _queue(s.recv_q)
            if s.state is TcpState.LISTEN:
                queue += f"/{_queue(s.send_q)}"
            cells: tuple[str, ...] = (
                _proto(s),
                str(s.local.port),
                address,
                scope,
                svc,
                names,
                users,
                queue,
                ns,
            )
        else:
            cells = (
                _proto(s),
                s.state.value,
                str(s.local),
                "*" if s.remote is None else str(s.remote),
                svc,
                names,
                users,
                _queue(s.recv_q),
                _queue(s.send_q),
                ns,
            )
        key = f"{s.proto.value}{s.family}|{s.local}|{s.remote}|{s.inode}"
        haystack = "\0".join((*cells, s.state.value, s.local.address, netns_haystack(s))).lower()
        rows.append(LiveRow(key, s, cells, pids, scope, scope_class(s), haystack))
    return rows


def service_of() -> Callable[[Socket], str | None]:
    """A socket's service name: its local port's for a listener, else the lower port's."""
    from portscope.registry import service_name

    cache: dict[tuple[int, Proto], str | None] = {}

    def name(sock: Socket) -> str | None:
        port = sock.local.port
        if sock.remote is not None and sock.remote.port < port:
            port = sock.remote.port
        key = (port, sock.proto)
        if key not in cache:
            cache[key] = service_name(port, sock.proto.value) if port else None
        return cache[key]

    return name


def aggregate(sockets: Sequence[Socket], top: int = 50) -> Aggregates:
    """Counts per state, remote address and process over ``sockets``."""
    states: Counter[str] = Counter()
    remotes: Counter[str] = Counter()
    procs: Counter[str] = Counter()
    for s in sockets:
        states[s.state.value] += 1
        remotes[s.remote.address if s.remote is not None else "*"] += 1
        procs[_owners(s)[0]] += 1
    return Aggregates(
        total=len(sockets),
        by_state=tuple(states.most_common()),
        by_remote=tuple(remotes.most_common(top)),
        by_process=tuple(procs.most_common(top)),
    )


def in_view(sock: Socket, view: View) -> bool:
    """True when ``sock`` belongs in ``view`` (listeners, or every other socket)."""
    return (sock.state in _LISTENING) == (view == "listen")


def snapshot_of(
    table: SocketTable, view: View, *, aggregate_above: int = AGGREGATE_ABOVE
) -> Snapshot:
    """A ``Snapshot`` of ``view`` from a table read with owners (pure)."""
    sockets = tuple(s for s in table.sockets if in_view(s, view))
    facts = (table.backend, table.owners_complete)
    if len(sockets) > aggregate_above:
        return Snapshot(view, (), aggregate(sockets), len(sockets), table.notes, sockets, *facts)
    rows = tuple(sort_rows(make_rows(sockets, view), "Port" if view == "listen" else "Local"))
    return Snapshot(view, rows, None, len(sockets), table.notes, sockets, *facts)


def read_snapshot(
    view: View, *, aggregate_above: int = AGGREGATE_ABOVE, netns: str | int | None = None
) -> Snapshot:
    """Read this machine's table (with owners) and shape it for ``view``.

    Args:
        view: listeners or connections.
        aggregate_above: counts instead of rows above this many sockets.
        netns: the network namespaces to read (``list_sockets(netns=...)``: a name, a
            pid, an nsfs path or ``all``); ``None``: the caller's own, rows without netns.

    Privilege: without root, other users' processes are not visible (a note says so);
    entering another namespace needs CAP_SYS_ADMIN (``-N``).
    """
    from portscope.sockets import list_sockets

    states = _LISTENING if view == "listen" else frozenset(TcpState) - _LISTENING
    table = list_sockets(owners=True, states=states, netns=netns)
    return snapshot_of(table, view, aggregate_above=aggregate_above)


def _port_of(text: str) -> int | None:
    if text.isdigit() and len(text) <= 5:
        return int(text)
    return None


def _parse_query(query: str) -> list[tuple[int | None, str]]:
    return [(_port_of(word), word) for word in query.lower().split()]


def _match(row: LiveRow, words: list[tuple[int | None, str]]) -> bool:
    for port, word in words:
        if port is not None:
            remote = row.sock.remote
            if row.sock.local.port == port or (remote is not None and remote.port == port):
                continue
            return False
        if word not in row._haystack:
            return False
    return True


def matches(row: LiveRow, query: str) -> bool:
    """True when every word of ``query`` matches ``row`` (case-insensitive).

    A number matches the local or remote port exactly; other words are substrings of
    any cell (address, process, state, scope, namespace, service, user).
    """
    return _match(row, _parse_query(query))


def filter_rows(rows: Iterable[LiveRow], query: str) -> list[LiveRow]:
    """The rows matching ``query`` (``matches``), in order."""
    words = _parse_query(query)
    if not words:
        return list(rows)
    return [r for r in rows if _match(r, words)]


@lru_cache(maxsize=65536)
def _address_key(address: str) -> tuple[int, bytes]:
    import socket

    bare = address.strip("[]").partition("%")[0]
    try:
        if ":" in bare:
            return (6, socket.inet_pton(socket.AF_INET6, bare))
        return (4, socket.inet_pton(socket.AF_INET, bare))
    except OSError:
        return (9, bare.encode())


def sort_key(column: str) -> Callable[[LiveRow], Any]:
    """The sort key of a column: ports and queues as numbers, addresses by value."""
    if column == "Port":
        return lambda r: (r.sock.local.port, r.sock.proto.value, _address_key(r.sock.local.address))
    if column == "Local":
        return lambda r: (_address_key(r.sock.local.address), r.sock.local.port)
    if column == "Peer":
        return lambda r: (
            (0, b"") if r.sock.remote is None else _address_key(r.sock.remote.address),
            0 if r.sock.remote is None else r.sock.remote.port,
        )
    if column == "Address":
        return lambda r: (_address_key(r.sock.local.address), r.sock.local.port)
    if column in ("Recv-Q", "Queue"):
        return lambda r: r.sock.recv_q or 0
    if column == "Send-Q":
        return lambda r: r.sock.send_q or 0

    def by_text(r: LiveRow) -> str:
        columns = LISTEN_COLUMNS if column in LISTEN_COLUMNS else CONNECTION_COLUMNS
        try:
            return r.cells[columns.index(column)].lower()
        except (ValueError, IndexError):
            return ""

    return by_text


def sort_rows(rows: Iterable[LiveRow], column: str, reverse: bool = False) -> list[LiveRow]:
    """``rows`` sorted by ``column`` (a name from the view's columns)."""
    columns = LISTEN_COLUMNS if column in LISTEN_COLUMNS else CONNECTION_COLUMNS
    if column == "Process":
        index = columns.index("Process")
        return sorted(
            rows, key=lambda r: (r.cells[index].lower(), r.sock.local.port), reverse=reverse
        )
    return sorted(rows, key=sort_key(column), reverse=reverse)


@dataclass(frozen=True, slots=True)
class ProcessGroup:
    """The sockets of one process (or of none visible: ``-``).

    Attributes:
        process: ``name[pid]`` (exact text).
        user: its user, or ``-``.
        count: sockets.
        ports: its distinct local ports, ascending.
        rows: its rows.
    """

    process: str
    user: str
    count: int
    ports: tuple[int, ...]
    rows: tuple[LiveRow, ...]


def group_by_process(rows: Iterable[LiveRow], view: View) -> list[ProcessGroup]:
    """Rows grouped per owning process set, the largest groups first."""
    columns = LISTEN_COLUMNS if view == "listen" else CONNECTION_COLUMNS
    pi, ui = columns.index("Process"), columns.index("User")
    groups: dict[str, list[LiveRow]] = {}
    for r in rows:
        groups.setdefault(r.cells[pi], []).append(r)
    out = [
        ProcessGroup(
            process=name,
            user=members[0].cells[ui],
            count=len(members),
            ports=tuple(sorted({m.sock.local.port for m in members})),
            rows=tuple(members),
        )
        for name, members in groups.items()
    ]
    out.sort(key=lambda g: (-g.count, g.process.lower()))
    return out


def _range_words(port: int, kernel: KernelPorts | None = None) -> str:
    from portscope.registry import port_facts

    if port == 0:
        return "0: no port (the kernel picks one at bind)"
    facts = port_facts(port, kernel)
    bounds = {"system": "0-1023", "user": "1024-49151", "dynamic": "49152-65535"}
    words = f"{facts.range.value} ({bounds[facts.range.value]}, RFC 6335)"
    lo, hi = facts.kernel.ephemeral
    if facts.ephemeral:
        words += f"; in this kernel's ephemeral range {lo}-{hi}"
    else:
        words += f"; outside this kernel's ephemeral range {lo}-{hi}"
    if facts.privileged:
        words += "; binding it needs CAP_NET_BIND_SERVICE"
    if facts.reserved:
        words += "; reserved (ip_local_reserved_ports)"
    return words


def registry_words(port: int, proto: Proto) -> str:
    """The registry's first entry for ``port``/``proto``: ``name: description (source)``."""
    from portscope.registry import lookup

    if port == 0:
        return "-"
    found = lookup(port, proto)
    if not found:
        return "not in the registry"
    svc = found[0]
    text = svc.name
    if svc.description:
        text += f": {svc.description}"
    return f"{text} ({svc.source})"


def five_tuple_words(
    sock: Socket, listening_ports: Iterable[int] = (), kernel: KernelPorts | None = None
) -> str:
    """The 5-tuple of a connection explained in one sentence.

    Args:
        sock: the socket.
        listening_ports: this host's listening ports (a local port among them: inbound).
        kernel: port settings (read from ``/proc`` when ``None``).
    """
    proto, la, lp, ra, rp = sock.five_tuple
    if ra is None or rp is None:
        return f"{proto} {sock.local}: no peer (a listener or an unconnected socket)"
    from portscope.models import Endpoint
    from portscope.registry import kernel_ports

    peer = Endpoint(ra, rp)
    head = f"({proto}, {Endpoint(la, lp)}, {peer}): transport, local end, remote end"
    if lp in set(listening_ports):
        return (
            f"{head}; inbound: accepted on this host's listener on port {lp}, "
            f"from the peer's source port {rp}"
        )
    if (kernel or kernel_ports()).is_ephemeral(lp):
        return (
            f"{head}; outbound: this host connected from ephemeral port {lp} to port {rp} of {ra}"
        )
    return f"{head}; local port {lp}, remote port {rp}"


def describe(
    row: LiveRow, listening_ports: Iterable[int] = (), kernel: KernelPorts | None = None
) -> list[tuple[str, str]]:
    """The detail of one row as (label, exact text) pairs: owner, unit or container,
    registry entry, the port's range, the bind scope and, for connections, the 5-tuple.

    Reads ``/proc/PID/cgroup`` of the owners, and the kernel's port settings unless
    ``kernel`` is given.
    """
    from portscope.diagnose._cgroup import read_cgroup

    s = row.sock
    out: list[tuple[str, str]] = [("Socket", f"{_proto(s)} {s.state.value} {s.local}")]
    if s.remote is not None:
        out.append(("Peer", str(s.remote)))
    for o in s.owners or ():
        out.append(("Owner", f"{o.name} pid {o.pid} fd {o.fd}, user {o.user or '?'}"))
        out.append(("Command", " ".join(o.cmdline) if o.cmdline else "(unreadable)"))
        cg = read_cgroup(o.pid)
        if cg.container:
            out.append(("Container", cg.container))
        if cg.unit:
            out.append(("Unit", cg.unit))
    if not s.owners:
        out.append(("Owner", "no visible process (kernel-owned, or another user's)"))
    out.append(("Registry", registry_words(s.local.port, s.proto)))
    out.append(("Range", _range_words(s.local.port, kernel)))
    out.append(("Scope", row.scope))
    if s.remote is not None:
        out.append(("5-tuple", five_tuple_words(s, listening_ports, kernel)))
    out += netns_details(s)
    return out


def socket_json(sock: Socket) -> str:
    """One socket as indented JSON (``to_dict``): exact values, for copying."""
    return json.dumps(to_dict(sock), indent=2, ensure_ascii=False)


def kill_row_holders(row: LiveRow, *, timeout_s: float = 3.0) -> Any:
    """SIGTERM the processes holding ``row``'s socket, through ``who --kill``'s path.

    ``who`` is asked again for the port (fresh start times), restricted to ``row``'s
    pids, and ``kill_holders`` pins each by pidfd and compares its start time, so a pid
    reused since the snapshot is never signalled.

    Returns:
        The ``KillReport``, or ``None`` when no listed process holds the port any more.

    Privilege: another user's process needs root (the report says ``denied``).
    """
    from dataclasses import replace

    from portscope.diagnose import kill_holders, who

    s = row.sock
    if s.local.port == 0 or not row.pids:
        return None
    # a socket of another namespace (-N): ask in the namespace of its first holder
    result = who(s.local.port, s.proto, netns=None if s.netns is None else row.pids[0])
    mine = tuple(h for h in result.holders if h.pid in row.pids)
    if not mine:
        return None
    return kill_holders(replace(result, holders=mine), timeout_s=timeout_s)


def _socket_haystack(sock: Socket) -> str:
    names = ",".join(f"{o.name}[{o.pid}]" for o in sock.owners or ())
    return "\0".join(
        (
            sock.local.address,
            "" if sock.remote is None else str(sock.remote),
            sock.state.value,
            names,
            netns_haystack(sock),
        )
    ).lower()


def filter_sockets(sockets: Iterable[Socket], query: str) -> list[Socket]:
    """The sockets matching ``query`` (the rules of ``matches``, on fewer fields: ports,
    addresses, state, process and namespace), without building rows."""
    words = query.lower().split()
    out: list[Socket] = []
    for s in sockets:
        hay: str | None = None
        for word in words:
            port = _port_of(word)
            if port is not None:
                if s.local.port == port or (s.remote is not None and s.remote.port == port):
                    continue
                break
            if hay is None:
                hay = _socket_haystack(s)
            if word not in hay:
                break
        else:
            out.append(s)
    return out


def shown(
    snap: Snapshot, query: str, *, aggregate_above: int = AGGREGATE_ABOVE
) -> tuple[list[LiveRow], Aggregates | None]:
    """What a face shows for ``snap`` under the filter ``query``: rows, or counts when
    even the filtered table is larger than ``aggregate_above``."""
    if snap.aggregates is None:
        rows = filter_rows(snap.rows, query)
        if len(rows) > aggregate_above:
            return [], aggregate([r.sock for r in rows])
        return rows, None
    if not query.strip():
        return [], snap.aggregates
    picked = filter_sockets(snap.sockets, query)
    if len(picked) > aggregate_above:
        return [], aggregate(picked)
    return filter_rows(make_rows(picked, snap.view), query), None
