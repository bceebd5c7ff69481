"""Unix domain socket tables (``portscope ls -x``, ``portscope who /path.sock``) and JSON.

JSON (schema ``portscope.unix/1``, docs/sockets.md) keeps names exactly: a path's bytes
that are not UTF-8 are ``\\udcXX`` escapes (``os.fsencode`` of the decoded string gives
the bytes back), an abstract name's NULs are ``\\u0000``. Tables show the bytes that are
not UTF-8 as ``\\xNN`` and every control character escaped (``render.safe``).
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from typing import Any, TextIO

from portscope.models import Owner, to_dict
from portscope.render._table import Column, Table
from portscope.sockets.unix import UnixRow, UnixTable

SCHEMA = "portscope.unix/1"

_TYPE = Column("Type")
_STATE = Column("State", drop=6)
_RECV_Q = Column("Recv-Q", "right", drop=4)
_SEND_Q = Column("Send-Q", "right", drop=3)
_NAME = Column("Name", min_width=16)
_INODE = Column("Inode", "right")
_PEER = Column("Peer", "right")
_PROCESS = Column("Process", drop=5, min_width=12)
_USER = Column("User", drop=1, min_width=8)
_PEER_PROCESS = Column("Peer process", drop=2, min_width=12)


def name_text(row: UnixRow) -> str:
    """The socket's name for a table: path, ``@abstract`` or ``*``, with the bytes that
    are not UTF-8 shown as ``\\xNN`` (the table's writer escapes control characters)."""
    if row.path is not None:
        return _display(row.path)
    if row.abstract is not None:
        return "@" + _display(row.abstract)
    return "*"


def _display(name: str) -> str:
    if name.isprintable() and name.isascii():
        return name
    return os.fsencode(name).decode("utf-8", "backslashreplace")


def _owners_text(owners: tuple[Owner, ...] | None) -> str:
    if owners is None:
        return "-"
    return ",".join(f"{o.name}[{o.pid}]" for o in owners) or "-"


def _users(owners: tuple[Owner, ...] | None) -> str:
    if not owners:
        return "-"
    seen: list[str] = []
    for o in owners:
        if o.user and o.user not in seen:
            seen.append(o.user)
    return ",".join(seen) or "-"


def render_unix(table: UnixTable, rows: Sequence[UnixRow] | None = None) -> Table:
    """Unix sockets like ``ss -x``: Type, State, Recv-Q, Send-Q, Name, Inode, Peer (the
    peer's inode), then with owners Process, User and Peer process."""
    rows = table.sockets if rows is None else rows
    with_owners = table.owners is not None
    columns = [_TYPE, _STATE, _RECV_Q, _SEND_Q, _NAME, _INODE, _PEER]
    if with_owners:
        columns += [_PROCESS, _USER, _PEER_PROCESS]
    body = []
    for r in rows:
        cells = [
            r.type,
            r.state.value,
            "?" if r.recv_q is None else str(r.recv_q),
            "?" if r.send_q is None else str(r.send_q),
            name_text(r),
            str(r.inode),
            "*" if r.peer is None else str(r.peer),
        ]
        if with_owners:
            mine = table.owners_of(r.inode)
            cells += [
                _owners_text(mine),
                _users(mine),
                "-" if r.peer is None else _owners_text(table.owners_of(r.peer)),
            ]
        body.append(cells)
    return Table(tuple(columns), body)


def unix_json(table: UnixTable, row: UnixRow) -> dict[str, Any]:
    """One socket as its JSON object (``portscope.unix/1``)."""
    owners = table.owners_of(row.inode)
    peer_owners = None
    if table.owners is not None:
        peer_owners = None if row.peer is None else table.owners_of(row.peer)
    return {
        "type": row.type,
        "state": row.state.value,
        "path": row.path,
        "abstract": row.abstract,
        "inode": row.inode,
        "peer_inode": row.peer,
        "recv_q": row.recv_q,
        "send_q": row.send_q,
        "uid": row.uid,
        "cookie": row.cookie,
        "owners": None if owners is None else to_dict(owners),
        "peer_owners": None if peer_owners is None else to_dict(peer_owners),
    }


def _line(data: Any) -> str:
    text = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # lone surrogates (bytes that are not UTF-8): escaped
        text = json.dumps(data, separators=(",", ":"))
    return text


def write_unix_json(
    table: UnixTable, stream: TextIO, rows: Sequence[UnixRow] | None = None, **more: Any
) -> None:
    """``{"schema", "backend", "sockets": [...], "notes", "owners_complete", ...more}``,
    one socket per line (as the TCP/UDP document)."""
    rows = table.sockets if rows is None else rows
    stream.write(f'{{"schema":"{SCHEMA}","backend":{_line(table.backend)},"sockets":[')
    lines = [_line(unix_json(table, r)) for r in rows]
    if lines:
        stream.write("\n" + ",\n".join(lines))
    complete = None if table.owners is None else table.owners.complete
    stream.write(f'\n],"notes":{_line(table.notes)},"owners_complete":{json.dumps(complete)}')
    for key, value in more.items():
        stream.write(f",{_line(key)}:{_line(to_dict(value))}")
    stream.write("}\n")
