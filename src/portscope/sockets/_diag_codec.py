"""Pure decoding of NETLINK_SOCK_DIAG inet_diag replies into socket rows.

No syscalls except the cached ``if_indextoname``. The ``struct.Struct`` tables mirror the
kernel's ``struct nlmsghdr`` (``linux/netlink.h``) and ``struct inet_diag_msg``
(``linux/inet_diag.h``)::

    struct inet_diag_msg {                  struct inet_diag_sockid {
        __u8  idiag_family;                     __be16 idiag_sport;
        __u8  idiag_state;                      __be16 idiag_dport;
        __u8  idiag_timer;                      __be32 idiag_src[4];
        __u8  idiag_retrans;                    __be32 idiag_dst[4];
        struct inet_diag_sockid id;             __u32  idiag_if;
        __u32 idiag_expires;                    __u32  idiag_cookie[2];
        __u32 idiag_rqueue;                 };
        __u32 idiag_wqueue;
        __u32 idiag_uid;
        __u32 idiag_inode;
    };

The hot loop decodes a whole dump chunk with one ``unpack_from`` per socket and builds a
plain tuple (a *row*, laid out as ``ROW_FIELDS``); ``Socket`` objects are made from rows
only when the public API returns them. Attributes are read only where needed:
``INET_DIAG_SKV6ONLY`` (sent by the kernel for IPv6 LISTEN/CLOSE sockets).
"""

from __future__ import annotations

import errno as _errno
import os
import socket
import struct
from collections.abc import Container
from typing import Final, NamedTuple, Protocol

from portscope.errors import BackendUnavailable, PermissionDenied
from portscope.models import Proto, TcpState

NLMSG_ERROR: Final = 2
NLMSG_DONE: Final = 3
SOCK_DIAG_BY_FAMILY: Final = 20
INET_DIAG_SKV6ONLY: Final = 11
_NLMSG_HDRLEN: Final = 16
_DIAG_MSG_LEN: Final = 72
_TCP_LISTEN: Final = 10
_TCP_CLOSE: Final = 7
_TCP_TIME_WAIT: Final = 6
_TCP_SYN_RECV: Final = 3


class Row(NamedTuple):
    """One socket as the backends produce it: a plain tuple with named fields.

    ``Row._fields`` is the one field list (``ROW_FIELDS``) that the codec, the JSON writer
    and the tables follow. A NamedTuple, not a dataclass: the decoder makes 200,000 of
    them per dump (``tuple.__new__(Row, ...)``), and attribute reads cost what ``r[N]`` does.
    """

    proto: Proto
    family: int
    state: TcpState
    local_address: str
    local_port: int
    remote_address: str | None
    remote_port: int | None
    recv_q: int
    send_q: int
    uid: int | None
    inode: int | None
    interface: str | None
    v6only: bool | None


ROW_FIELDS: Final = Row._fields
_new_row = tuple.__new__

# nlmsghdr (len, type, flags, seq, pid) + inet_diag_msg with the addresses cut to the
# family's size. Ports are big-endian: read native and swapped through a table.
_V4 = struct.Struct("=IH10x xBxx HH 4s12x 4s12x I Q 4x IIII")
_V6 = struct.Struct("=IH10x xBxx HH 16s 16s I Q 4x IIII")
_HDR = struct.Struct("=IH")
_ERR = struct.Struct("=i")
_RTA = struct.Struct("=HH")
# every 16-bit value read in native order -> its value in network order (built in C)
_PORT: Final[tuple[int, ...]] = struct.unpack(">65536H", struct.pack("=65536H", *range(65536)))

_STATES: Final[dict[Proto, list[TcpState | None]]] = {}
for _proto in (Proto.TCP, Proto.UDP):
    _table: list[TcpState | None] = [None] * 256
    for _n in range(1, 14):
        _table[_n] = TcpState.from_kernel(_n, _proto)
    _STATES[_proto] = _table

_ZERO4: Final = bytes(4)
_ZERO16: Final = bytes(16)
_IFNAMES: dict[int, str] = {}
_NTOP: dict[bytes, str] = {}


def interface_name(index: int) -> str:
    """The name of interface ``index`` (cached), or the number as text if it is gone."""
    try:
        return _IFNAMES[index]
    except KeyError:
        pass
    try:
        name = socket.if_indextoname(index)
    except OSError:
        return str(index)
    _IFNAMES[index] = name
    return name


def _ntop(raw: bytes) -> str:
    family = socket.AF_INET if len(raw) == 4 else socket.AF_INET6
    text = socket.inet_ntop(family, raw)
    if len(_NTOP) < 1 << 20:
        _NTOP[raw] = text
    return text


def raise_netlink_error(code: int) -> None:
    """Translate an ``NLMSG_ERROR`` code (a negative errno) into portscope's errors.

    Raises:
        PermissionDenied: for EPERM and EACCES.
        BackendUnavailable: for any other error.
    """
    number = -code
    message = os.strerror(number) if number > 0 else f"error {code}"
    if number in (_errno.EPERM, _errno.EACCES):
        raise PermissionDenied(f"sock_diag refused the dump: {message}", errno=number)
    raise BackendUnavailable(f"sock_diag dump failed: {message}", errno=number)


def decode_chunk(chunk: bytes, family: int, proto: Proto, rows: list[Row], seen: set[int]) -> bool:
    """Decode the inet_diag messages in one received chunk, appending rows.

    Args:
        chunk: whole netlink messages as received.
        family: 4 or 6, the family the dump was asked for.
        proto: the protocol the dump was asked for.
        rows: where new rows are appended.
        seen: socket cookies already decoded; a socket reported twice (the kernel
            re-walks a hash bucket that changed during the dump) is kept once.

    Returns:
        True when the chunk ends the dump (``NLMSG_DONE``).

    Raises:
        PermissionDenied: the kernel answered EPERM/EACCES.
        BackendUnavailable: the kernel answered another error.
    """
    unpack = (_V4 if family == 4 else _V6).unpack_from
    zero = _ZERO4 if family == 4 else _ZERO16
    states = _STATES[proto]
    port = _PORT
    ntop = _NTOP
    append = rows.append
    new_row = _new_row
    seen_add = seen.add
    seen_len = len(seen)
    v6 = family == 6
    view = memoryview(chunk)
    end = len(chunk)
    off = 0
    while off < end:
        try:
            (length, kind, st, sport, dport, src, dst, ifindex, cookie, rq, wq, uid, inode) = (
                unpack(view, off)
            )
        except struct.error:
            length, kind = _HDR.unpack_from(view, off)
        if kind != SOCK_DIAG_BY_FAMILY:
            if kind == NLMSG_DONE:
                return True
            if kind == NLMSG_ERROR:
                (code,) = _ERR.unpack_from(view, off + _NLMSG_HDRLEN)
                if code:
                    raise_netlink_error(code)
                return True
            off += (length + 3) & ~3
            continue
        seen_add(cookie)
        if len(seen) == seen_len:
            off += (length + 3) & ~3
            continue
        seen_len += 1
        try:
            laddr = ntop[src]
        except KeyError:
            laddr = _ntop(bytes(src))
        if not dport and dst == zero:
            raddr = None
            rport = None
        else:
            try:
                raddr = ntop[dst]
            except KeyError:
                raddr = _ntop(bytes(dst))
            rport = port[dport]
        iface = None
        if ifindex:
            iface = _IFNAMES.get(ifindex) or interface_name(ifindex)
            if v6 and laddr.startswith("fe80:"):
                laddr = f"{laddr}%{iface}"
        v6only = None
        if v6 and st in (_TCP_LISTEN, _TCP_CLOSE):
            v6only = _find_v6only(view, off + _NLMSG_HDRLEN + _DIAG_MSG_LEN, off + length)
        if not inode:
            inode = None
            if st in (_TCP_TIME_WAIT, _TCP_SYN_RECV):
                uid = None  # time-wait and request sockets carry no owner (uid 0)
        append(
            new_row(Row, (proto, family, states[st], laddr, port[sport], raddr, rport, rq, wq,
                          uid, inode, iface, v6only))
        )  # fmt: skip
        off += (length + 3) & ~3
    return False


def _find_v6only(view: memoryview, off: int, end: int) -> bool | None:
    while off + 4 <= end:
        length, kind = _RTA.unpack_from(view, off)
        if length < 4:
            return None
        if kind == INET_DIAG_SKV6ONLY:
            return bool(view[off + 4])
        off += (length + 3) & ~3
    return None


_JSON_NULL: Final = "null"
_JSON_PREFIX: dict[tuple[Proto, int, int], str] = {}
_JSON_IFACE: dict[int, str] = {}


class OwnersJson(Protocol):
    """The owners' JSON of each inode, for ``decode_chunk_json`` (``render.sockets``).

    Attributes:
        single: inode -> (pid, fd) of the sockets one fd holds.
        multi: inodes held by several fds.
        prefix: pid -> its owner object without the closing ``"fd":N}``, once known;
            ``None`` for a process that has exited.
    """

    single: dict[int, tuple[int, int]]
    multi: Container[int]
    prefix: dict[int, str | None]

    def owners(self, inode: int) -> str:
        """The JSON array of the owners of ``inode`` (any case)."""
        ...


class JsonRows(Protocol):
    """What writes socket JSON (``render.sockets.SocketJson``), as the fused path needs."""

    def owners_json(self) -> OwnersJson | None:
        """The owners' fragments, or ``None`` for ``"owners": null``."""
        ...

    def lines(self, rows: list[Row]) -> list[str]:
        """The JSON objects of rows (for rows that do not come from netlink)."""
        ...


def decode_chunk_json(
    chunk: bytes,
    family: int,
    proto: Proto,
    out: list[str],
    seen: set[int],
    owners: OwnersJson | None = None,
) -> bool:
    """``decode_chunk`` fused with the socket JSON of ``render.sockets`` (no service
    names): one JSON object per socket, straight from the bytes.

    The streaming ``portscope ls --json -n`` at 200,000 sockets spends most of its
    time here; skipping the intermediate row tuples saves a fifth of it. The output is
    exactly ``SocketJson(owner_map, None).lines(rows)`` (a test keeps it so).

    Args:
        chunk: whole netlink messages as received.
        family: 4 or 6.
        proto: the protocol the dump was asked for.
        out: where the JSON objects (text) are appended.
        seen: socket cookies already decoded (see ``decode_chunk``).
        owners: the owners' JSON (``SocketJson.owners_json()``), or ``None`` for
            ``"owners": null``.

    Returns:
        True when the chunk ends the dump.

    Raises:
        PermissionDenied: the kernel answered EPERM/EACCES.
        BackendUnavailable: the kernel answered another error.
    """
    import json

    unpack = (_V4 if family == 4 else _V6).unpack_from
    zero = _ZERO4 if family == 4 else _ZERO16
    states = _STATES[proto]
    port = _PORT
    ntop = _NTOP
    prefixes = _JSON_PREFIX
    append = out.append
    seen_add = seen.add
    seen_len = len(seen)
    v6 = family == 6
    own = _JSON_NULL
    if owners is not None:
        single_get = owners.single.get
        multi = owners.multi
        prefix_get = owners.prefix.get
        all_owners = owners.owners
    view = memoryview(chunk)
    end = len(chunk)
    off = 0
    while off < end:
        try:
            (length, kind, st, sport, dport, src, dst, ifindex, cookie, rq, wq, uid, inode) = (
                unpack(view, off)
            )
        except struct.error:
            length, kind = _HDR.unpack_from(view, off)
        if kind != SOCK_DIAG_BY_FAMILY:
            if kind == NLMSG_DONE:
                return True
            if kind == NLMSG_ERROR:
                (code,) = _ERR.unpack_from(view, off + _NLMSG_HDRLEN)
                if code:
                    raise_netlink_error(code)
                return True
            off += (length + 3) & ~3
            continue
        seen_add(cookie)
        if len(seen) == seen_len:
            off += (length + 3) & ~3
            continue
        seen_len += 1
        if owners is not None:
            if not inode:
                own = "[]"
            elif inode in multi:
                own = all_owners(inode)
            else:
                held = single_get(inode)
                if held is None:
                    own = "[]"
                else:
                    pre_owner = prefix_get(held[0])
                    own = all_owners(inode) if pre_owner is None else f"[{pre_owner}{held[1]}}}]"
        try:
            laddr = ntop[src]
        except KeyError:
            laddr = _ntop(bytes(src))
        if not dport and dst == zero:
            remote = _JSON_NULL
        else:
            try:
                raddr = ntop[dst]
            except KeyError:
                raddr = _ntop(bytes(dst))
            remote = f'{{"address":"{raddr}","port":{port[dport]}}}'
        pre = prefixes.get((proto, family, st))
        if pre is None:
            state = states[st]
            assert state is not None
            pre = prefixes[(proto, family, st)] = (
                f'{{"proto":"{proto.value}","family":{family},"state":"{state.value}",'
                '"local":{"address":"'
            )
        iface = _JSON_NULL
        if ifindex:
            iface = _JSON_IFACE.get(ifindex) or _JSON_IFACE.setdefault(
                ifindex, json.dumps(interface_name(ifindex), ensure_ascii=False)
            )
            if v6 and laddr.startswith("fe80:"):
                laddr = f"{laddr}%{interface_name(ifindex)}"
        v6only = _JSON_NULL
        if v6 and st in (_TCP_LISTEN, _TCP_CLOSE):
            flag = _find_v6only(view, off + _NLMSG_HDRLEN + _DIAG_MSG_LEN, off + length)
            v6only = _JSON_NULL if flag is None else "true" if flag else "false"
        if inode:
            append(
                f'{pre}{laddr}","port":{port[sport]}}},"remote":{remote},"recv_q":{rq},'
                f'"send_q":{wq},"uid":{uid},"inode":{inode},"interface":{iface},'
                f'"v6only":{v6only},"owners":{own},"service":null}}'
            )
        else:
            uid_text = _JSON_NULL if st in (_TCP_TIME_WAIT, _TCP_SYN_RECV) else uid
            append(
                f'{pre}{laddr}","port":{port[sport]}}},"remote":{remote},"recv_q":{rq},'
                f'"send_q":{wq},"uid":{uid_text},"inode":null,"interface":{iface},'
                f'"v6only":{v6only},"owners":{own},"service":null}}'
            )
        off += (length + 3) & ~3
    return False
