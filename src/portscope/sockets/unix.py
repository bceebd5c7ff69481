"""Unix domain sockets: ``ss -x`` / ``lsof -U`` (Docker's, systemd's, databases' sockets).

One ``SOCK_DIAG_BY_FAMILY`` dump with ``AF_UNIX`` (``linux/unix_diag.h``: ``struct
unix_diag_req``/``unix_diag_msg``, attributes ``UNIX_DIAG_NAME``, ``_VFS``, ``_PEER``,
``_RQLEN``, ``_UID``; ``man 7 sock_diag``), else ``/proc/net/unix`` (``man 5 proc``: no
peer, queues or uid there). Owners come from the same inode -> process map as TCP/UDP
(``_owners.OwnerMap``); the process at the other end of a connected pair from the peer's
inode.

Names are bytes in the kernel. A filesystem path is decoded with ``os.fsdecode``
(UTF-8, undecodable bytes as lone surrogates ``\\udc80``-``\\udcff``, PEP 383), so
``os.fsencode(path)`` gives the exact bytes back; JSON writes those surrogates as
``\\udcXX`` escapes. An abstract name (Linux, ``man 7 unix``) is the bytes after the
leading NUL, decoded the same way (it may hold NULs: ``\\u0000`` in JSON); tables show it
as ``@name``, escaped.
"""

from __future__ import annotations

import os
import socket
import struct
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Final, NamedTuple

from portscope.errors import BackendUnavailable, PermissionDenied
from portscope.models import Owner, TcpState
from portscope.sockets._owners import OwnerMap

__all__ = [
    "UNIX_STATES",
    "UnixRow",
    "UnixTable",
    "list_unix_sockets",
    "parse_unix_name",
    "unix_name_text",
]

SOCK_DIAG_BY_FAMILY: Final = 20
_NLM_F_REQUEST: Final = 0x1
_NLM_F_DUMP: Final = 0x300
_NLMSG_ERROR: Final = 2
_NLMSG_DONE: Final = 3
UDIAG_SHOW_NAME: Final = 0x01
UDIAG_SHOW_VFS: Final = 0x02
UDIAG_SHOW_PEER: Final = 0x04
UDIAG_SHOW_RQLEN: Final = 0x10
UDIAG_SHOW_UID: Final = 0x40
UNIX_DIAG_NAME: Final = 0
UNIX_DIAG_VFS: Final = 1
UNIX_DIAG_PEER: Final = 2
UNIX_DIAG_RQLEN: Final = 4
UNIX_DIAG_UID: Final = 7

# nlmsghdr + unix_diag_req (family, protocol, pad, states, ino, show, cookie[2])
_REQUEST = struct.Struct("=IHHII BBxx III Q")
# nlmsghdr + unix_diag_msg (family, type, state, pad, ino, cookie[2])
_MSG = struct.Struct("=IH10x xBBx I Q")
_HDR = struct.Struct("=IH")
_RTA = struct.Struct("=HH")
_U32 = struct.Struct("=I")
_U32X2 = struct.Struct("=II")
_MSG_LEN: Final = 16 + 16

#: socket types as ``ss`` names them (``u_str``, ``u_dgr``, ``u_seq``)
TYPES: Final = {1: "stream", 2: "dgram", 5: "seqpacket"}
SS_NETIDS: Final = {"stream": "u_str", "dgram": "u_dgr", "seqpacket": "u_seq"}
_KERNEL_STATE: Final = {
    1: TcpState.ESTABLISHED,
    2: TcpState.SYN_SENT,
    7: TcpState.UNCONN,
    10: TcpState.LISTEN,
}
#: the states a Unix socket can be in (``TCP_*`` values reused by ``af_unix.c``)
UNIX_STATES: Final = frozenset(_KERNEL_STATE.values())


class UnixRow(NamedTuple):
    """One Unix domain socket.

    Attributes:
        type: ``stream``, ``dgram`` or ``seqpacket``.
        state: ``ESTABLISHED`` (connected), ``LISTEN``, ``UNCONN`` (not connected),
            ``SYN-SENT`` (connecting).
        path: the filesystem path it is bound to (as given to ``bind``: it may be
            relative), ``os.fsdecode``d; ``None`` for abstract and unnamed sockets.
            Accepted connections carry their listener's name.
        abstract: the abstract name without its leading NUL, ``os.fsdecode``d; ``None``
            when not abstract.
        inode: the socket inode (``socket:[N]`` in ``/proc/PID/fd``).
        peer: the peer socket's inode (connected sockets), or ``None``.
        recv_q: bytes waiting to be read (for LISTEN: connections waiting for
            ``accept()``), ``None`` from procfs.
        send_q: bytes sent, not yet read by the peer (for LISTEN: the backlog), ``None``
            from procfs.
        uid: the socket's user id, ``None`` from procfs.
        cookie: the kernel's socket cookie, ``None`` from procfs.
        vfs: (device, inode) of the socket file for a path, ``None`` otherwise (matches
            ``os.stat(path)``'s ``st_dev``, ``st_ino``).
    """

    type: str
    state: TcpState
    path: str | None
    abstract: str | None
    inode: int
    peer: int | None
    recv_q: int | None
    send_q: int | None
    uid: int | None
    cookie: int | None
    vfs: tuple[int, int] | None


@dataclass
class UnixTable:
    """Unix sockets, the backend that read them, notes, and (optionally) their owners.

    Attributes:
        sockets: rows, in the kernel's order.
        backend: ``netlink`` or ``procfs``.
        notes: plain-language notes (fallback used, partial owners).
        owners: the owner map when owners were looked up (the sockets' and their peers'
            inodes), else ``None``.
    """

    sockets: list[UnixRow]
    backend: str
    notes: list[str] = field(default_factory=list)
    owners: OwnerMap | None = None

    def owners_of(self, inode: int | None) -> tuple[Owner, ...] | None:
        """The processes holding ``inode``; ``None`` when owners were not looked up."""
        omap = self.owners
        if omap is None:
            return None
        result = []
        for pid, fd in omap.holders(inode):
            info = omap.process(pid)
            if info is not None:
                result.append(Owner(pid, info.name, info.user, info.cmdline, info.start_time, fd))
        return tuple(result)


def unix_name_text(row: UnixRow) -> str:
    """The socket's name as ``ss`` shows it: the path, ``@name`` or ``*`` (unnamed);
    exact text (a table escapes it)."""
    if row.path is not None:
        return row.path
    if row.abstract is not None:
        return "@" + row.abstract
    return "*"


def parse_unix_name(text: str) -> tuple[str | None, str | None]:
    """``@name`` -> (None, abstract name); a path -> (path, None).

    Raises:
        InvalidInput: for an empty name.
    """
    from portscope.errors import InvalidInput

    if text.startswith("@"):
        if len(text) == 1:
            raise InvalidInput("'@' names no abstract socket: give @NAME")
        return None, text[1:]
    if not text:
        raise InvalidInput("empty Unix socket path")
    return text, None


def _request(states: int, show: int, seq: int = 1) -> bytes:
    return _REQUEST.pack(
        _REQUEST.size,
        SOCK_DIAG_BY_FAMILY,
        _NLM_F_REQUEST | _NLM_F_DUMP,
        seq,
        0,
        socket.AF_UNIX,
        0,
        states,
        0,
        show,
        0xFFFFFFFFFFFFFFFF,
    )


def decode_unix_chunk(chunk: bytes, out: list[UnixRow], seen: set[int]) -> bool:
    """Decode the ``unix_diag_msg`` messages of one received chunk into ``out``.

    Returns:
        True when the chunk ends the dump.

    Raises:
        PermissionDenied, BackendUnavailable: the kernel answered an error.
    """
    view = memoryview(chunk)
    end = len(chunk)
    off = 0
    while off + 16 <= end:
        length, kind = _HDR.unpack_from(view, off)
        if length < 16 or off + length > end:
            break
        if kind == _NLMSG_DONE:
            return True
        if kind == _NLMSG_ERROR:
            (code,) = struct.unpack_from("=i", view, off + 16)
            if code:
                from portscope.sockets._diag_codec import raise_netlink_error

                raise_netlink_error(code)
            return True
        if kind != SOCK_DIAG_BY_FAMILY or length < _MSG_LEN:
            off += (length + 3) & ~3
            continue
        _, _, stype, st, ino, cookie = _MSG.unpack_from(view, off)
        if cookie in seen:
            off += (length + 3) & ~3
            continue
        seen.add(cookie)
        path = abstract = None
        peer = rq = wq = uid = None
        vfs = None
        a = off + _MSG_LEN
        stop = off + length
        while a + 4 <= stop:
            alen, akind = _RTA.unpack_from(view, a)
            if alen < 4 or a + alen > stop:
                break
            body = view[a + 4 : a + alen]
            if akind == UNIX_DIAG_NAME and len(body):
                raw = bytes(body)
                if raw[0] == 0:
                    abstract = os.fsdecode(raw[1:])
                else:
                    path = os.fsdecode(raw.split(b"\0", 1)[0])
            elif akind == UNIX_DIAG_VFS and len(body) >= 8:
                vino, vdev = _U32X2.unpack_from(body)
                # the kernel's dev_t (MAJOR << 20 | MINOR, include/linux/kdev_t.h) as
                # userspace's st_dev
                vfs = (os.makedev(vdev >> 20, vdev & 0xFFFFF), vino)
            elif akind == UNIX_DIAG_PEER and len(body) >= 4:
                peer = _U32.unpack_from(body)[0] or None
            elif akind == UNIX_DIAG_RQLEN and len(body) >= 8:
                rq, wq = _U32X2.unpack_from(body)
            elif akind == UNIX_DIAG_UID and len(body) >= 4:
                uid = _U32.unpack_from(body)[0]
            a += (alen + 3) & ~3
        out.append(
            UnixRow(
                TYPES.get(stype, str(stype)),
                _KERNEL_STATE.get(st, TcpState.CLOSE),
                path,
                abstract,
                ino,
                peer,
                rq,
                wq,
                uid,
                cookie,
                vfs,
            )
        )
        off += (length + 3) & ~3
    return False


def _netlink_rows() -> list[UnixRow]:
    from portscope.sockets._netlink import open_diag_socket

    sock = open_diag_socket()
    rows: list[UnixRow] = []
    seen: set[int] = set()
    try:
        show = UDIAG_SHOW_NAME | UDIAG_SHOW_VFS | UDIAG_SHOW_PEER | UDIAG_SHOW_RQLEN
        sock.send(_request(0xFFFFFFFF, show | UDIAG_SHOW_UID))
        while True:
            chunk = sock.recv(1 << 17)
            if not chunk or decode_unix_chunk(chunk, rows, seen):
                break
    except OSError as err:
        if err.errno in (1, 13):
            raise PermissionDenied(f"sock_diag unix dump refused: {err.strerror}") from err
        raise BackendUnavailable(f"sock_diag unix dump failed: {err.strerror or err}") from err
    finally:
        sock.close()
    return rows


_PROC_ACCEPTCON: Final = 0x10000  # __SO_ACCEPTCON: listening
_PROC_STATE: Final = {1: TcpState.UNCONN, 2: TcpState.SYN_SENT, 3: TcpState.ESTABLISHED}


def parse_proc_net_unix(data: bytes) -> tuple[list[UnixRow], int]:
    """Rows from ``/proc/net/unix`` bytes, and how many lines could not be read.

    ``Num RefCount Protocol Flags Type St Inode Path``: no peer, queues, uid or cookie
    there; the kernel prints an abstract name with ``@`` for its NULs, and a path
    holding a newline breaks its line (such lines are skipped and counted).
    """
    rows: list[UnixRow] = []
    bad = 0
    for line in data.split(b"\n")[1:]:
        if not line:
            continue
        parts = line.split(b" ", 7)
        try:
            flags, stype, st, inode = (
                int(parts[3], 16),
                int(parts[4], 16),
                int(parts[5], 16),
                int(parts[6]),
            )
        except (IndexError, ValueError):
            bad += 1
            continue
        raw = parts[7] if len(parts) > 7 else b""
        path = abstract = None
        if raw.startswith(b"@"):
            abstract = os.fsdecode(raw[1:])
        elif raw:
            path = os.fsdecode(raw)
        state = TcpState.LISTEN if flags & _PROC_ACCEPTCON else _PROC_STATE.get(st, TcpState.CLOSE)
        rows.append(
            UnixRow(TYPES.get(stype, str(stype)), state, path, abstract, inode,
                    None, None, None, None, None, None)
        )  # fmt: skip
    return rows, bad


def _procfs_rows(proc: str, notes: list[str]) -> list[UnixRow]:
    try:
        with open(os.path.join(proc, "net", "unix"), "rb") as f:
            data = f.read()
    except OSError as err:
        raise BackendUnavailable(f"cannot read {proc}/net/unix: {err.strerror}") from err
    rows, bad = parse_proc_net_unix(data)
    notes.append(
        "procfs backend: /proc/net/unix gives no peer, queues or uid; they are shown as unknown"
    )
    if bad:
        notes.append(f"{bad} line(s) of /proc/net/unix could not be read (a path with a newline)")
    return rows


def list_unix_sockets(
    *,
    states: Iterable[TcpState] | None = None,
    owners: bool = False,
    backend: str | None = None,
    proc: str = "/proc",
) -> UnixTable:
    """This machine's Unix domain sockets, like ``ss -xa`` (``-p`` with ``owners``).

    Args:
        states: keep these states (``UNIX_STATES``); ``None``: every state.
        owners: map the sockets, and the peers of connected ones, to processes (a scan
            of ``/proc/*/fd``; partial without root, with a note).
        backend: ``netlink`` or ``procfs``; ``None``: netlink, else procfs with a note.
        proc: the proc mount (tests).

    Returns:
        The table.

    Raises:
        BackendUnavailable: the backend asked for cannot run here (or none can).
        PermissionDenied: the kernel refused the dump.
        InvalidFilter: an unknown backend name.
    """
    from portscope.errors import InvalidFilter

    notes: list[str] = []
    if backend not in (None, "netlink", "procfs"):
        raise InvalidFilter(
            f"backend {backend!r} cannot list Unix sockets; accepted: netlink, procfs"
        )
    name = backend or "netlink"
    if name == "netlink":
        try:
            rows = _netlink_rows()
        except BackendUnavailable as err:
            if backend is not None:
                raise
            notes.append(f"netlink unix_diag unavailable ({err}); read /proc/net/unix instead")
            name = "procfs"
    if name == "procfs":
        rows = _procfs_rows(proc, notes)
    if states is not None:
        wanted = frozenset(states)
        rows = [r for r in rows if r.state in wanted]
    table = UnixTable(rows, name, notes)
    if owners:
        inodes = {r.inode for r in rows} | {r.peer for r in rows if r.peer is not None}
        table.owners = OwnerMap.scan(inodes, proc)
        note = table.owners.note()
        if note:
            notes.append(note)
    return table


def holding(table: UnixTable, path: str | None, abstract: str | None) -> list[UnixRow]:
    """The sockets of ``table`` bound to a path (by name, or by the file's device and
    inode, so ``/run/../run/x.sock`` and a relative bind match too) or an abstract name."""
    if abstract is not None:
        return [r for r in table.sockets if r.abstract == abstract]
    assert path is not None
    try:
        st = os.stat(path)
        vfs: tuple[int, int] | None = (st.st_dev, st.st_ino)
    except OSError:
        vfs = None
    return [r for r in table.sockets if r.path == path or (vfs is not None and r.vfs == vfs)]


def iter_owned(table: UnixTable) -> Iterator[tuple[UnixRow, tuple[Owner, ...] | None]]:
    """Each row with its owners (``None`` when owners were not looked up)."""
    for row in table.sockets:
        yield row, table.owners_of(row.inode)
