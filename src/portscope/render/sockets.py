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
from portscope.sockets._owners import OwnerMap
from portscope.sockets._record import SCHEMA, Row, cached_string, json_keys, json_string, row_json

if TYPE_CHECKING:
    from portscope.cli._base import Env

#: Above this many rows the human table is drawn by a plain column formatter (same
#: columns, no rich): rich takes seconds for tens of thousands of rows.
RICH_MAX_ROWS = 5000

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
    ) -> None:
        self._owners = owners
        self._service = service
        self._extra = extra
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
) -> int:
    """Stream ``{"backend": ..., "sockets": [...], "notes": [...], "owners_complete": ...}``.

    One socket per line, from ``batches`` of rows through ``formatter``, or from
    ``lines`` already formatted (``Dump.json_batches``). ``notes`` is read after the
    sockets are written (a fallback found during the dump adds one).

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
    write(f'"owners_complete":{json.dumps(owners_complete())}}}\n')
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


def _emit(env: Env, headers: Sequence[str], body: list[list[str]], right: set[int],
          no_color: bool, title: str | None = None) -> None:  # fmt: skip
    if len(body) <= RICH_MAX_ROWS:
        from portscope.render import console, new_table

        table = new_table(title=title)
        for i, h in enumerate(headers):
            table.add_column(h, justify="right" if i in right else "left", no_wrap=True)
        for cells in body:
            table.add_row(*cells)
        console(env, no_color=no_color).print(table)
        return
    widths = [len(h) for h in headers]
    for cells in body:
        for i, c in enumerate(cells):
            if len(c) > widths[i]:
                widths[i] = len(c)
    last = len(headers) - 1

    def line(cells: Sequence[str]) -> str:
        out = []
        for i, c in enumerate(cells):
            if i in right:
                out.append(c.rjust(widths[i]))
            elif i == last:
                out.append(c)
            else:
                out.append(c.ljust(widths[i]))
        return "  ".join(out).rstrip()

    write = env.stdout.write
    if title:
        write(title + "\n")
    write(line(headers) + "\n")
    write("  ".join("─" * w for w in widths).rstrip() + "\n")
    chunk: list[str] = []
    for cells in body:
        chunk.append(line(cells))
        if len(chunk) >= 2000:
            write("\n".join(chunk) + "\n")
            chunk.clear()
    if chunk:
        write("\n".join(chunk) + "\n")


def render_ls(
    rows: Sequence[Row],
    env: Env,
    *,
    owners: OwnerMap | None,
    service: ServiceFn | None,
    no_color: bool = False,
) -> None:
    """The socket table like ``ss``: one line per socket."""
    headers = ["Proto", "State", "Recv-Q", "Send-Q", "Local", "Peer"]
    if service is not None:
        headers.append("Service")
    if owners is not None:
        headers += ["Process", "User"]
    body = []
    for r in rows:
        cells = [
            f"{r.proto.value}{'6' if r.family == 6 else ''}",
            r.state.value,
            queue_text(r.recv_q),
            queue_text(r.send_q),
            endpoint_text(r.local_address, r.local_port),
            endpoint_text(r.remote_address, r.remote_port),
        ]
        if service is not None:
            cells.append(service(r) or "-")
        if owners is not None:
            cells += [owners_text(owners, r), _owner_users(owners, r)]
        body.append(cells)
    _emit(env, headers, body, {2, 3}, no_color)


def render_listen(
    rows: Sequence[Row],
    env: Env,
    *,
    owners: OwnerMap | None,
    service: ServiceFn | None,
    scope: Callable[[Row], str],
    no_color: bool = False,
) -> None:
    """What is listening: one line per listener with scope, service and process."""
    headers = ["Proto", "Port", "Address", "Scope"]
    if service is not None:
        headers.append("Service")
    headers += ["Process", "User", "Queue"]
    body = []
    for r in rows:
        address = f"[{r.local_address}]" if r.family == 6 else r.local_address
        cells = [
            f"{r.proto.value}{'6' if r.family == 6 else ''}",
            str(r.local_port),
            address,
            scope(r),
        ]
        if service is not None:
            cells.append(service(r) or "-")
        queue = queue_text(r.recv_q)
        if r.state is TcpState.LISTEN:
            queue += f"/{queue_text(r.send_q)}"
        cells += [owners_text(owners, r), _owner_users(owners, r), queue]
        body.append(cells)
    _emit(env, headers, body, {1}, no_color)


def render_summary(summary: dict[str, Any], env: Env, *, no_color: bool = False) -> None:
    """Counts per transport, family and state (like ``ss -s``)."""
    headers = ["Proto", "Total", "IPv4", "IPv6", "States"]
    body = []
    for proto, c in summary["by_proto"].items():
        states = ", ".join(f"{k.lower()} {v}" for k, v in c["states"].items()) or "-"
        body.append([proto, str(c["total"]), str(c["ipv4"]), str(c["ipv6"]), states])
    body.append(["all", str(summary["total"]), "", "", ""])
    _emit(env, headers, body, {1, 2, 3}, no_color)
