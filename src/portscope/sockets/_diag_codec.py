"""Pure decoding of NETLINK_SOCK_DIAG inet_diag replies into socket rows.

No syscalls but ``if_indextoname`` (once per interface and dump: ``IfNames``). The
``struct.Struct`` tables mirror the kernel's ``struct nlmsghdr`` (``linux/netlink.h``) and
``struct inet_diag_msg`` (``linux/inet_diag.h``)::

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
``_record.Row`` (a named tuple); ``Socket`` objects are made from rows only when the public
API returns them. The loop is written once and generated twice from the field list: rows,
or the sockets' JSON straight from the bytes (``decode_chunk_json``). Attributes are read
only where needed: ``INET_DIAG_SKV6ONLY`` (sent by the kernel for IPv6 LISTEN/CLOSE sockets).
"""

from __future__ import annotations

import errno as _errno
import os
import socket
import struct
from collections.abc import Callable, Container, Iterable
from functools import cache
from typing import Any, Final, Protocol

from portscope.errors import BackendUnavailable, PermissionDenied
from portscope.models import Netns, Proto, TcpState
from portscope.sockets._record import ROW_FIELDS, Row

__all__ = ["ROW_FIELDS", "IfNames", "Row", "decode_chunk", "decode_chunk_json"]

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
#: inet_ntop of raw addresses: the text of an address never changes (any namespace), so
#: the cache is process-wide; emptied when it reaches this size (a long-running exporter
#: on a host whose peers change keeps a bounded set).
NTOP_MAX: Final = 1 << 17
_NTOP: dict[bytes, str] = {}


class IfNames(dict[int, str]):
    """Interface index -> name, for one dump in one network namespace.

    Indexes are per namespace and an interface can be renamed, or deleted and its
    index reused, at any time: a name is only trusted for the dump that looked it up,
    so each dump makes its own (``if_indextoname`` in the caller's namespace, once per
    index). ``json`` caches JSON texts of names and scoped addresses for the same dump.
    """

    def __init__(self, lookup: Callable[[int], str] | None = None) -> None:
        super().__init__()
        self.json: dict[str, str] = {}
        # another namespace's names: ``_netns.NsSocket.ifname`` (SIOCGIFNAME over a
        # socket that lives there)
        self._lookup = lookup

    def __missing__(self, index: int) -> str:
        if self._lookup is not None:
            name = self._lookup(index)
        else:
            try:
                name = socket.if_indextoname(index)
            except OSError:
                name = str(index)  # gone since the kernel wrote the message
        self[index] = name
        return name


def interface_name(index: int) -> str:
    """The name of interface ``index`` now, or the number as text if it is gone."""
    return IfNames()[index]


def _ntop(raw: bytes) -> str:
    family = socket.AF_INET if len(raw) == 4 else socket.AF_INET6
    text = socket.inet_ntop(family, raw)
    if len(_NTOP) >= NTOP_MAX:
        _NTOP.clear()
    _NTOP[raw] = text
    return text


def raise_netlink_error(code: int) -> None:
    """Translate an ``NLMSG_ERROR`` code (a negative errno) into portscope's errors.

    Raises:
        PermissionDenied: for EPERM and EACCES.
        BackendUnavailable: for any other error.
    """
    number = -code
    message = os.strerror(number) if 0 < number < 4096 else f"error {code}"
    if number in (_errno.EPERM, _errno.EACCES):
        raise PermissionDenied(f"sock_diag refused the dump: {message}", errno=number)
    raise BackendUnavailable(f"sock_diag dump failed: {message}", errno=number)


def _find_v6only(view: memoryview, off: int, end: int) -> bool | None:
    while off + 4 <= end:
        length, kind = _RTA.unpack_from(view, off)
        if length < 4 or off + length > end:
            return None  # a malformed attribute: the flag is unknown
        if kind == INET_DIAG_SKV6ONLY:
            return bool(view[off + 4]) if length > 4 else None
        off += (length + 3) & ~3
    return None


def _malformed(off: int, length: int, kind: int, end: int) -> None:
    from portscope.errors import BackendError

    raise BackendError(
        f"malformed netlink message at offset {off} of a {end}-byte chunk: "
        f"nlmsg_len {length}, nlmsg_type {kind}",
        offset=off,
    )


def _bad_state(off: int, state: int) -> None:
    from portscope.errors import BackendError

    raise BackendError(
        f"malformed inet_diag message at offset {off}: state {state} is no TCP state",
        offset=off,
    )


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

    def lines(self, rows: Iterable[Row]) -> list[str]:
        """The JSON objects of rows (for rows that do not come from netlink)."""
        ...


# The decoding loop, written once: ``decode_chunk`` appends rows, ``decode_chunk_json`` the
# sockets' JSON. Both are generated from it and ``_record.Row`` at first use: the loop sets
# one local name per ``Row`` field, then EMIT (a row made of those names, or the JSON
# statements of ``_record.json_statements``). One pass per socket, no intermediate row
# for the JSON (at 200,000 sockets it saves a fifth of ``ls -a -n --json``).
_LOOP = """
def {name}(chunk, family, proto, out, seen, ifnames=None, owners=None, netns=None):
    unpack = (_V4 if family == 4 else _V6).unpack_from
    zero = _ZERO4 if family == 4 else _ZERO16
    states = _STATES[proto]
    port = _PORT
    ntop = _NTOP
    append = out.append
    seen_add = seen.add
    seen_len = len(seen)
    v6 = family == 6
    if ifnames is None:
        ifnames = _IfNames()
    _strings = ifnames.json
{setup}
    view = memoryview(chunk)
    end = len(chunk)
    off = 0
    while off < end:
        try:
            (length, kind, st, sport, dport, src, dst, ifindex, cookie, rq, wq, uid, inode) = (
                unpack(view, off)
            )
        except _StructError:  # fewer bytes left than a socket message
            length, kind = _HDR.unpack_from(view, off) if end - off >= _NLMSG_HDRLEN else (0, 0)
        # one test on the usual path: a whole socket message inside the chunk
        if kind != _BY_FAMILY or length < _MIN_DIAG or length > end - off:
            if kind == _BY_FAMILY or length < _NLMSG_HDRLEN or length > end - off:
                _malformed(off, length, kind, end)  # a length of 0 would loop forever
            if kind == _DONE:
                return True
            if kind == _ERROR:
                if length < _NLMSG_HDRLEN + 4:
                    _malformed(off, length, kind, end)
                (code,) = _ERR.unpack_from(view, off + _NLMSG_HDRLEN)
                if code:
                    _raise(code)
                return True
            off += (length + 3) & ~3
            continue
        seen_add(cookie)
        if len(seen) == seen_len:  # reported twice (the kernel re-walked a bucket)
            off += (length + 3) & ~3
            continue
        seen_len += 1
        state = states[st]
        if state is None:
            _bad_state(off, st)
        try:
            local_address = ntop[src]
        except KeyError:
            local_address = _ntop(bytes(src))
        local_port = port[sport]
        if not dport and dst == zero:
            remote_address = remote_port = None
        else:
            try:
                remote_address = ntop[dst]
            except KeyError:
                remote_address = _ntop(bytes(dst))
            remote_port = port[dport]
        recv_q = rq
        send_q = wq
        interface = None
        if ifindex:
            interface = ifnames[ifindex]
            if v6 and local_address.startswith("fe80:"):
                local_address = f"{{local_address}}%{{interface}}"
        v6only = None
        if v6 and (st == _LISTEN or st == _CLOSE):
            v6only = _find_v6only(view, off + _NLMSG_HDRLEN + _DIAG_MSG_LEN, off + length)
        if not inode:
            inode = None
            if st == _TIME_WAIT or st == _SYN_RECV:
                uid = None  # time-wait and request sockets carry no owner (uid 0)
{emit}
        off += (length + 3) & ~3
    return False
"""

# the owners' JSON of the socket (``inode``), as ``render.sockets.SocketJson`` writes it
_OWNERS_SETUP = """\
    _prefixes = _JSON_PREFIX
    _c_netns = _J_NULL if netns is None else _object_json(netns)
    own = "null"
    if owners is not None:
        single_get = owners.single.get
        multi = owners.multi
        prefix_get = owners.prefix.get
        all_owners = owners.owners
"""
_OWNERS_EMIT = """\
        if owners is not None:
            if inode is None:
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
"""
_JSON_PREFIX: dict[tuple[Any, ...], str] = {}


@cache
def _generated() -> dict[str, Any]:
    from portscope.sockets._record import ROW_FIELDS, compile_source, json_statements

    names = ", ".join(ROW_FIELDS)
    rows = _LOOP.format(
        name="decode_chunk", setup="", emit=f"        append(_new_row(_Row, ({names})))"
    )
    json_emit = (
        _OWNERS_EMIT
        + json_statements(
            "        ",
            never_none=frozenset({"recv_q", "send_q"}),
            tail=',"owners":{own},"service":null}}',
            constants=frozenset({"netns"}) & frozenset(ROW_FIELDS),
        )
        + "        append(_json)"
    )
    fused = _LOOP.format(name="decode_chunk_json", setup=_OWNERS_SETUP, emit=json_emit)
    namespace: dict[str, Any] = {
        **_record_globals(),
        "_V4": _V4, "_V6": _V6, "_HDR": _HDR, "_ERR": _ERR, "_ZERO4": _ZERO4,
        "_ZERO16": _ZERO16, "_STATES": _STATES, "_PORT": _PORT, "_NTOP": _NTOP,
        "_ntop": _ntop, "_IfNames": IfNames, "_StructError": struct.error,
        "_BY_FAMILY": SOCK_DIAG_BY_FAMILY, "_DONE": NLMSG_DONE, "_ERROR": NLMSG_ERROR,
        "_NLMSG_HDRLEN": _NLMSG_HDRLEN, "_DIAG_MSG_LEN": _DIAG_MSG_LEN,
        "_raise": raise_netlink_error, "_find_v6only": _find_v6only, "_LISTEN": _TCP_LISTEN,
        "_MIN_DIAG": _NLMSG_HDRLEN + _DIAG_MSG_LEN, "_malformed": _malformed,
        "_bad_state": _bad_state,
        "_CLOSE": _TCP_CLOSE, "_TIME_WAIT": _TCP_TIME_WAIT, "_SYN_RECV": _TCP_SYN_RECV,
        "_new_row": tuple.__new__, "_Row": Row, "_JSON_PREFIX": _JSON_PREFIX,
    }  # fmt: skip
    compile_source(rows, "decode_chunk", namespace)
    compile_source(fused, "decode_chunk_json", namespace)
    return namespace


def _record_globals() -> dict[str, Any]:
    from portscope.sockets._record import generated_globals

    return generated_globals()


def decode_chunk(
    chunk: bytes,
    family: int,
    proto: Proto,
    rows: list[Row],
    seen: set[int],
    ifnames: IfNames | None = None,
    netns: Netns | None = None,
) -> bool:
    """Decode the inet_diag messages in one received chunk, appending rows.

    Args:
        chunk: whole netlink messages as received.
        family: 4 or 6, the family the dump was asked for.
        proto: the protocol the dump was asked for.
        rows: where new rows are appended.
        seen: socket cookies already decoded; a socket reported twice (the kernel
            re-walks a hash bucket that changed during the dump) is kept once.
        ifnames: the interface names of this dump (one per dump and namespace);
            ``None``: looked up for this chunk only.
        netns: the namespace the dump comes from, set in every row (``None``: not
            asked for).

    Returns:
        True when the chunk ends the dump (``NLMSG_DONE``).

    Raises:
        PermissionDenied: the kernel answered EPERM/EACCES.
        BackendUnavailable: the kernel answered another error.
        BackendError: a malformed message (a length that is too short or runs past the
            chunk, an unknown state), with its offset; never a hang.
    """
    done: bool = _generated()["decode_chunk"](
        chunk, family, proto, rows, seen, ifnames, None, netns
    )
    return done


def decode_chunk_json(
    chunk: bytes,
    family: int,
    proto: Proto,
    out: list[str],
    seen: set[int],
    owners: OwnersJson | None = None,
    ifnames: IfNames | None = None,
    netns: Netns | None = None,
) -> bool:
    """``decode_chunk`` fused with the socket JSON of ``render.sockets.SocketJson`` (no
    service names): one JSON object per socket, straight from the bytes.

    Generated from the same loop and the same field list as ``decode_chunk`` and
    ``SocketJson``, so the output is exactly ``SocketJson(owner_map, None).lines(rows)``
    (tests keep it so, on hostile interface names too).

    Args:
        chunk: whole netlink messages as received.
        family: 4 or 6.
        proto: the protocol the dump was asked for.
        out: where the JSON objects (text) are appended.
        seen: socket cookies already decoded (see ``decode_chunk``).
        owners: the owners' JSON (``SocketJson.owners_json()``), or ``None`` for
            ``"owners": null``.
        ifnames: as for ``decode_chunk``.
        netns: as for ``decode_chunk``.

    Returns:
        True when the chunk ends the dump.

    Raises:
        PermissionDenied: the kernel answered EPERM/EACCES.
        BackendUnavailable: the kernel answered another error.
        BackendError: a malformed message, as for ``decode_chunk``.
    """
    done: bool = _generated()["decode_chunk_json"](
        chunk, family, proto, out, seen, ifnames, owners, netns
    )
    return done
