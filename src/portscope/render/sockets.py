"""Socket tables for humans (rich) and the sockets' JSON, written fast for big tables.

The JSON of one socket is exactly ``to_dict(Socket)`` plus ``service`` (and ``scope`` in
the listening view), but written straight from rows with preformatted pieces: at 200,000
sockets, going through dataclasses and ``json.dumps`` per socket would cost more than the
whole kernel dump.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Container, Iterable, Sequence
from typing import TYPE_CHECKING, Any, TextIO

from portscope.models import Owner, Proto, Socket, SocketTable, TcpState, to_dict
from portscope.render._table import (
    RICH_MAX_ROWS as RICH_MAX_ROWS,  # the CLI's switch
    Column,
    Table,
)
from portscope.sockets._owners import OwnerMap
from portscope.sockets._record import SCHEMA, Row, cached_string, json_keys, json_string, row_json
from portscope.sockets.overflow import accept_queue_full

if TYPE_CHECKING:
    from portscope.sockets.destroy import CloseResult

ServiceFn = Callable[["Row"], "str | None"]


def _compact(data: Any) -> str:
    text = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate (undecodable bytes): keep it escaped
        text = json.dumps(data, separators=(",", ":"))
    return text


def service_for(numeric: bool) -> ServiceFn | None:
    """The service-name function for rows, or ``None`` with ``numeric``.

    A listener's service is its local port's; a connection's is the lower port's (the
    server side, usually), from ``portscope.registry.service_name``.
    """
    if numeric:
        return None
    from portscope.registry import service_name

    cache: dict[tuple[int, Proto], str | None] = {}

    def name(row: Row) -> str | None:
        lport, rport = row.local_port, row.remote_port
        port = lport if rport is None or lport <= rport else rport
        key = (port, row.proto)
        try:
            return cache[key]
        except KeyError:
            value = cache[key] = service_name(port, row.proto.value)
            return value

    return name


class SocketJson:
    """Formats rows as the sockets' JSON objects (one line each)."""

    def __init__(
        self,
        owners: OwnerMap | None,
        service: ServiceFn | None,
        extra: Callable[[Row], dict[str, Any]] | None = None,
        tail: Callable[[Row], str] | None = None,
    ) -> None:
        """``extra`` adds keys to each object from a dict (any JSON value); ``tail``
        adds ready JSON text (``,"key":value...``, for keys written at every socket of
        big tables, such as ``tcp_info``)."""
        self._owners = owners
        self._service = service
        self._extra = extra
        self._tail = tail
        self._prefix: dict[tuple[Any, ...], str] = {}
        self._owner_prefix: dict[int, str | None] = {}
        self._strings: dict[str, str] = {}

    def _owner_json(self, pid: int) -> str | None:
        """``{"pid":..,...,"fd":`` for ``pid`` (cached), or None if it has exited."""
        try:
            return self._owner_prefix[pid]
        except KeyError:
            pass
        assert self._owners is not None
        info = self._owners.process(pid)
        prefix = None
        if info is not None:
            text = _compact(
                {
                    "pid": pid,
                    "name": info.name,
                    "user": info.user,
                    "cmdline": None if info.cmdline is None else list(info.cmdline),
                    "start_time": info.start_time,
                }
            )
            prefix = text[:-1] + ',"fd":'
        self._owner_prefix[pid] = prefix
        return prefix

    def _owners_json_inode(self, inode: int) -> str:
        owners = self._owners
        assert owners is not None
        one = owners.single_holder(inode)
        if one is not None:
            prefix = self._owner_json(one[0])
            return "[]" if prefix is None else f"[{prefix}{one[1]}}}]"
        parts = []
        for pid, fd in owners.holders(inode):
            prefix = self._owner_json(pid)
            if prefix is not None:
                parts.append(f"{prefix}{fd}}}")
        return "[" + ",".join(parts) + "]"

    def use_owners(self, owners: OwnerMap | None) -> None:
        """Write the owners of ``owners`` from now on (one namespace's map at a time,
        ``sockets._owners.NetnsOwners``); the process cache stays (pids are host-wide)."""
        self._owners = owners

    def owners_json(self) -> _OwnersJson | None:
        """The owners' JSON for ``_diag_codec.decode_chunk_json``, or ``None``."""
        if self._owners is None or not self._owners.by_inode:
            return None
        return _OwnersJson(self)

    def lines(self, rows: Iterable[Row]) -> list[str]:
        """One JSON object per row (``_record.row_json`` plus owners, service, extras)."""
        out: list[str] = []
        append = out.append
        fields = row_json()
        prefixes = self._prefix
        strings = self._strings
        service = self._service
        extra = self._extra
        tail = self._tail
        omap = self._owners
        by_inode = omap is not None and omap.by_inode
        if omap is not None:
            single_get = omap._single.get
            multi = omap._multi
            owner_prefix = self._owner_prefix
            owner_json = self._owner_json
        for row in rows:
            ino = row.inode
            if omap is None:
                owners = "null"
            elif not by_inode:
                owners = _compact(to_dict(omap.owners(row)))
            elif ino is None:
                owners = "[]"
            elif ino in multi:
                owners = self._owners_json_inode(ino)
            else:
                held = single_get(ino)
                if held is None:
                    owners = "[]"
                else:
                    op = owner_prefix.get(held[0]) or owner_json(held[0])
                    owners = "[]" if op is None else f"[{op}{held[1]}}}]"
            if service is None:
                line = f'{fields(row, prefixes, strings)},"owners":{owners},"service":null'
            else:
                name = service(row)
                text = "null" if name is None else cached_string(name, strings)
                line = f'{fields(row, prefixes, strings)},"owners":{owners},"service":{text}'
            if extra is not None:
                for k, v in extra(row).items():
                    line += f",{json_string(k)}:{_compact(v)}"
            if tail is not None:
                line += tail(row)
            append(line + "}")
        return out


class _OwnersJson:
    """``SocketJson``'s owner fragments in the shape ``decode_chunk_json`` reads."""

    def __init__(self, formatter: SocketJson) -> None:
        omap = formatter._owners
        assert omap is not None
        self.single: dict[int, tuple[int, int]] = omap._single
        self.multi: Container[int] = omap._multi
        self.prefix: dict[int, str | None] = formatter._owner_prefix
        self._formatter = formatter

    def owners(self, inode: int) -> str:
        return self._formatter._owners_json_inode(inode)


class _TableOwners(OwnerMap):
    """The owners a ``SocketTable`` already holds, per row."""

    by_inode = False

    def __init__(self, owners: dict[Row, tuple[Owner, ...]]) -> None:
        super().__init__()
        self._of = owners

    def owners(self, row: Row) -> tuple[Owner, ...]:
        return self._of.get(row, ())


def write_sockets_json(
    batches: Iterable[list[Row]] | None,
    stream: TextIO,
    *,
    backend: str,
    notes: Sequence[str],
    formatter: SocketJson | None = None,
    owners_complete: Callable[[], bool | None] = lambda: None,
    lines: Iterable[list[str]] | None = None,
    more: Callable[[], dict[str, Any]] | None = None,
) -> int:
    """Stream ``{"backend": ..., "sockets": [...], "notes": [...], "owners_complete": ...}``.

    One socket per line, from ``batches`` of rows through ``formatter``, or from
    ``lines`` already formatted (``Dump.json_batches``). ``notes`` is read after the
    sockets are written (a fallback found during the dump adds one); ``more`` gives
    top-level keys written last (the listening view's ``listen_counters``).

    Returns:
        The number of sockets written.
    """
    if lines is None:
        fmt = formatter or SocketJson(None, None)
        lines = (fmt.lines(rows) for rows in batches or ())
    write = stream.write
    write(f'{{"schema":"{SCHEMA}","backend":{json_string(backend)},"sockets":[')
    count = 0
    sep = "\n"
    for chunk in lines:
        if chunk:
            write(sep)
            write(",\n".join(chunk))
            sep = ",\n"
            count += len(chunk)
    write(f'\n],"notes":{_compact(list(notes))},')
    write(f'"owners_complete":{json.dumps(owners_complete())}')
    for key, value in (more() if more is not None else {}).items():
        write(f",{json_string(key)}:{_compact(to_dict(value))}")
    write("}\n")
    return count


def socket_row(sock: Socket) -> Row:
    """The row of a ``Socket`` (the inverse of ``sockets.row_to_socket``, owners aside)."""
    values: list[Any] = []
    for key in json_keys():
        value = getattr(sock, key.name)
        if key.kind == "endpoint":
            values += (None, None) if value is None else (value.address, value.port)
        else:
            values.append(value)
    return Row(*values)


def write_table_json(
    table: SocketTable, stream: TextIO, *, service: ServiceFn | None = None
) -> int:
    """Write a ``SocketTable`` (``portscope.list_sockets()``) as the CLI's socket document.

    The same writer and schema (``portscope.sockets/2``) as ``portscope ls --json``: each
    socket is ``to_dict(Socket)`` plus ``service`` (from ``service``, e.g.
    ``service_for(False)``; null without it).

    Returns:
        The number of sockets written.
    """
    rows = [socket_row(s) for s in table.sockets]
    omap: OwnerMap | None = None
    if table.owners_complete is not None or any(s.owners is not None for s in table.sockets):
        omap = _TableOwners({r: s.owners or () for r, s in zip(rows, table.sockets, strict=True)})
    return write_sockets_json(
        [rows],
        stream,
        backend=table.backend,
        notes=table.notes,
        formatter=SocketJson(omap, service),
        owners_complete=lambda: table.owners_complete,
    )


def queue_text(value: int | None) -> str:
    """A queue size for a table: the number, or ``?`` when the backend does not know it."""
    return "?" if value is None else str(value)


def endpoint_text(address: str | None, port: int | None) -> str:
    """``1.2.3.4:80``, ``[::1]:80``, or ``*`` when there is no peer."""
    if address is None:
        return "*"
    if ":" in address:
        return f"[{address}]:{port}"
    return f"{address}:{port}"


def owners_text(owners: OwnerMap | None, row: Row) -> str:
    """``name[pid]`` of every owner, comma-separated; ``-`` when none is visible."""
    if owners is None:
        return "-"
    parts = []
    for pid in owners.pids(row):
        info = owners.process(pid)
        if info is not None:
            parts.append(f"{info.name}[{pid}]")
    return ",".join(parts) or "-"


def _owner_users(owners: OwnerMap | None, row: Row) -> str:
    if owners is None:
        return "-"
    users = []
    for pid in owners.pids(row):
        info = owners.process(pid)
        if info is not None and info.user and info.user not in users:
            users.append(info.user)
    if not users and row.uid is not None and row.inode:
        # No visible process (another user's, not root): the socket's own uid still says
        # whose it is. TIME-WAIT and request sockets have no inode and no real owner.
        from portscope.sockets._owners import user_name

        return user_name(row.uid)
    return ",".join(users) or "-"


# The columns of the socket tables and how they give way on a narrow terminal (documented
# in docs/output.md): transports, ports and endpoints never; then, first to go, the user,
# the service, the queues; the process last.
_PROTO = Column("Proto")
_STATE = Column("State", drop=6)
_RECV_Q = Column("Recv-Q", "right", drop=4)
_SEND_Q = Column("Send-Q", "right", drop=3)
_LOCAL = Column("Local")
_PEER = Column("Peer")
_LS_SERVICE = Column("Service", drop=2, min_width=8)
_LS_PROCESS = Column("Process", drop=5, min_width=12)
_LS_USER = Column("User", drop=1, min_width=8)

_NETNS = Column("Netns", min_width=8)
_PORT = Column("Port", "right")
_ADDRESS = Column("Address")
_SCOPE = Column("Scope", drop=4, min_width=14)
_SERVICE = Column("Service", drop=3, min_width=8)
_PROCESS = Column("Process", drop=5, min_width=16)
_USER = Column("User", drop=2, min_width=8)
_QUEUE = Column("Queue", "right", drop=1)


def render_ls(
    rows: Sequence[Row],
    *,
    owners: OwnerMap | None,
    service: ServiceFn | None,
    netns: bool = False,
    more: Sequence[tuple[Column, Callable[[Row], str]]] = (),
) -> Table:
    """The socket table like ``ss``: one row per socket.

    Columns: Netns (with ``netns``: the namespace's name, container or inode), Proto,
    State, Recv-Q, Send-Q, Local, Peer, then Service (with ``service``), Process and User
    (with ``owners``), then ``more`` (a column and its cell of a row:
    ``render.socket_details``). Cells are exact text; the writers escape them.
    """
    columns = [_NETNS] if netns else []
    columns += [_PROTO, _STATE, _RECV_Q, _SEND_Q, _LOCAL, _PEER]
    if netns:
        from portscope.sockets._netns import netns_label
    if service is not None:
        columns.append(_LS_SERVICE)
    if owners is not None:
        columns += [_LS_PROCESS, _LS_USER]
    body: list[list[str]] = []
    append = body.append
    # enum .value and a call per endpoint cost a third of this loop at 200,000 rows
    protos = {(p, f): f"{p.value}{'6' if f == 6 else ''}" for p in Proto for f in (4, 6)}
    states = {st: st.value for st in TcpState}
    for r in rows:
        la, ra = r.local_address, r.remote_address
        cells = [
            protos[r.proto, r.family],
            states[r.state],
            "?" if r.recv_q is None else str(r.recv_q),
            "?" if r.send_q is None else str(r.send_q),
            f"[{la}]:{r.local_port}" if ":" in la else f"{la}:{r.local_port}",
            "*"
            if ra is None
            else f"[{ra}]:{r.remote_port}"
            if ":" in ra
            else f"{ra}:{r.remote_port}",
        ]
        if netns:
            cells.insert(0, netns_label(r.netns))
        if service is not None:
            cells.append(service(r) or "-")
        if owners is not None:
            cells += [owners_text(owners, r), _owner_users(owners, r)]
        for _, cell in more:
            cells.append(cell(r))
        append(cells)
    columns += [column for column, _ in more]
    return Table(tuple(columns), body)


def _scope(row: Row) -> str:
    from portscope.sockets import scope_words

    return scope_words(row.family, row.local_address, row.v6only, row.interface)


def render_listen(
    rows: Sequence[Row],
    *,
    owners: OwnerMap | None,
    service: ServiceFn | None,
    scope: Callable[[Row], str] | None = None,
    netns: bool = False,
) -> Table:
    """What is listening: one row per listener with scope, service, process and queue.

    Columns: Netns (with ``netns``), Proto, Port, Address, Scope, Service (with
    ``service``), Process, User, Queue (``waiting/backlog`` for TCP listeners, ``FULL``
    added when the accept queue is full: ``sockets.overflow``; Recv-Q for UDP). ``scope``
    defaults to ``sockets.scope_words`` of the row.
    """
    scope = scope or _scope
    columns = [_NETNS] if netns else []
    columns += [_PROTO, _PORT, _ADDRESS, _SCOPE]
    if netns:
        from portscope.sockets._netns import netns_label
    if service is not None:
        columns.append(_SERVICE)
    columns += [_PROCESS, _USER, _QUEUE]
    body = []
    for r in rows:
        address = f"[{r.local_address}]" if r.family == 6 else r.local_address
        cells = [
            f"{r.proto.value}{'6' if r.family == 6 else ''}",
            str(r.local_port),
            address,
            scope(r),
        ]
        if netns:
            cells.insert(0, netns_label(r.netns))
        if service is not None:
            cells.append(service(r) or "-")
        queue = queue_text(r.recv_q)
        if r.state is TcpState.LISTEN:
            queue += f"/{queue_text(r.send_q)}"
            if accept_queue_full(r):
                queue += " FULL"
        cells += [owners_text(owners, r), _owner_users(owners, r), queue]
        body.append(cells)
    return Table(tuple(columns), body)


def render_summary(summary: dict[str, Any]) -> Table:
    """Counts per transport, family and state (like ``ss -s``), from ``sockets.summarize``."""
    columns = (
        Column("Proto"),
        Column("Total", "right"),
        Column("IPv4", "right"),
        Column("IPv6", "right"),
        Column("States", drop=1, min_width=20),
    )
    body = []
    for proto, c in summary["by_proto"].items():
        states = ", ".join(f"{k.lower()} {v}" for k, v in c["states"].items()) or "-"
        body.append([proto, str(c["total"]), str(c["ipv4"]), str(c["ipv6"]), states])
    body.append(["all", str(summary["total"]), "", "", ""])
    return Table(columns, body)


def render_netns_summary(summaries: Sequence[dict[str, Any]]) -> Table:
    """Counts per network namespace, from ``sockets.summarize_by_netns``.

    Columns: Netns (name, container or inode), Inode, TCP, UDP, Total, States.
    """
    from portscope.models import Container, Netns
    from portscope.sockets._netns import netns_label

    columns = (
        _NETNS,
        Column("Inode", "right", drop=2),
        Column("TCP", "right"),
        Column("UDP", "right"),
        Column("Total", "right"),
        Column("States", drop=1, min_width=20),
    )
    body = []
    for item in summaries:
        data = item["netns"]
        ns = Netns(
            data["inode"],
            data["name"],
            None
            if data["containers"] is None
            else tuple(Container(**c) for c in data["containers"]),
        )
        states: dict[str, int] = {}
        for c in item["by_proto"].values():
            for k, v in c["states"].items():
                states[k] = states.get(k, 0) + v
        text = ", ".join(f"{k.lower()} {v}" for k, v in sorted(states.items())) or "-"
        body.append(
            [
                netns_label(ns),
                str(ns.inode),
                str(item["by_proto"]["tcp"]["total"]),
                str(item["by_proto"]["udp"]["total"]),
                str(item["total"]),
                text,
            ]
        )
    return Table(columns, body)


def rows_from_sockets(sockets: Iterable[Socket]) -> tuple[list[Row], OwnerMap | None]:
    """Rows and an owner map from ``Socket`` records (``list_sockets()``), for the tables.

    The table builders read rows (the CLI's fast path); a face holding ``Socket`` records
    (a TUI, a web page) turns them back with this. The owner map is ``None`` when owners
    were not looked up (``Socket.owners is None`` for every socket).
    """
    from portscope.sockets._diag_codec import Row
    from portscope.sockets._owners import OwnerMap, ProcessInfo

    rows = []
    holders: dict[int, list[tuple[int, int]]] = {}
    processes: dict[int, ProcessInfo] = {}
    looked_up = False
    for s in sockets:
        remote = s.remote
        inode = s.inode
        if s.owners is not None:
            looked_up = True
            if inode is not None:  # owners are found by inode: none without one
                for o in s.owners:
                    holders.setdefault(inode, []).append((o.pid, o.fd))
                    processes[o.pid] = ProcessInfo(o.name, o.user, o.cmdline, o.start_time)
        rows.append(
            Row(
                s.proto,
                s.family,
                s.state,
                s.local.address,
                s.local.port,
                None if remote is None else remote.address,
                None if remote is None else remote.port,
                s.recv_q,
                s.send_q,
                s.uid,
                inode,
                s.interface,
                s.v6only,
                s.cookie,
                s.netns,
            )
        )
    return rows, OwnerMap.from_holders(holders, processes) if looked_up else None


def render_close(results: Sequence[CloseResult], owners: OwnerMap | None) -> Table:
    """What ``--close`` did: each socket (as ``render_ls`` shows it) and its result
    (``closed``, ``gone``, ``changed``, ``failed: ERROR``)."""
    table = render_ls([r.row for r in results], owners=owners, service=None)
    for cells, r in zip(table.rows, results, strict=True):
        cells.append(r.result if r.error is None or r.result != "failed" else f"failed: {r.error}")
    table.columns = (*table.columns, Column("Result"))
    return table
