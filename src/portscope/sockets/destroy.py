"""Close a TCP or UDP socket without killing its process: ``SOCK_DESTROY`` (as ``ss -K``).

One ``SOCK_DESTROY`` request per socket (``linux/sock_diag.h``; ``inet_diag_req_v2``
with the socket's exact id, ``linux/inet_diag.h``): the kernel looks the socket up by its
addresses, ports and bound interface, checks the socket cookie (``sock_diag_check_cookie``:
a different socket now at that address is not touched, ``ESTALE``), and aborts it
(``tcp_abort``: the peer gets a reset, the process's next call fails with
``ECONNABORTED``; ``udp_abort`` for UDP). Needs ``CAP_NET_ADMIN`` in the socket's
network namespace and a kernel built with ``CONFIG_INET_DIAG_DESTROY``.
"""

from __future__ import annotations

import errno
import os
import socket
import struct
from dataclasses import dataclass
from typing import Final

from portscope.errors import BackendUnavailable, PermissionDenied
from portscope.models import Proto
from portscope.sockets._record import Row

SOCK_DESTROY: Final = 21
_NLM_F_REQUEST: Final = 0x1
_NLM_F_ACK: Final = 0x4
_NLMSG_ERROR: Final = 2
# nlmsghdr + inet_diag_req_v2: family, protocol, ext, pad, states,
# sockid: sport, dport (big-endian), src[16], dst[16], if, cookie[2]
_REQUEST = struct.Struct("=IHHII BBBxI 2s2s16s16sIII")
_IPPROTO: Final = {Proto.TCP: socket.IPPROTO_TCP, Proto.UDP: socket.IPPROTO_UDP}

#: result words (``CloseResult.result``)
CLOSED: Final = "closed"
GONE: Final = "gone"
CHANGED: Final = "changed"
FAILED: Final = "failed"


@dataclass(frozen=True, slots=True)
class CloseResult:
    """What happened to one socket.

    Attributes:
        row: the socket as it was listed.
        result: ``closed``; ``gone`` (``ENOENT``: no socket with that cookie at that
            address any more: it closed, or another socket took the address since the
            listing and was not touched); ``changed`` (``ESTALE``: the same, as older
            kernels answer a cookie mismatch); ``failed`` (any other error, in ``error``).
        error: the kernel's error text, or ``None``.
    """

    row: Row
    result: str
    error: str | None = None


def _raw(address: str, family: int) -> bytes:
    bare = address.partition("%")[0]
    af = socket.AF_INET if family == 4 else socket.AF_INET6
    return socket.inet_pton(af, bare).ljust(16, b"\0")


def destroy_request(row: Row, seq: int = 1) -> bytes:
    """The ``SOCK_DESTROY`` request for the socket of ``row`` (its cookie must be known).

    Raises:
        ValueError: ``row`` has no cookie.
    """
    if row.cookie is None:
        raise ValueError("a socket without a cookie cannot be closed safely")
    ifindex = 0
    if row.interface is not None:
        try:
            ifindex = socket.if_nametoindex(row.interface)
        except OSError:
            ifindex = 0
    remote = row.remote_address
    return _REQUEST.pack(
        _REQUEST.size,
        SOCK_DESTROY,
        _NLM_F_REQUEST | _NLM_F_ACK,
        seq,
        0,
        socket.AF_INET if row.family == 4 else socket.AF_INET6,
        _IPPROTO[row.proto],
        0,
        0xFFFFFFFF,
        struct.pack(">H", row.local_port),
        struct.pack(">H", row.remote_port or 0),
        _raw(row.local_address, row.family),
        bytes(16) if remote is None else _raw(remote, row.family),
        ifindex,
        row.cookie & 0xFFFFFFFF,
        row.cookie >> 32,
    )


def close_sockets(rows: list[Row]) -> list[CloseResult]:
    """Close each socket of ``rows`` (matched by cookie); report each result.

    Args:
        rows: sockets from a netlink dump (``Row.cookie`` set).

    Returns:
        One result per row, in order.

    Raises:
        BackendUnavailable: the kernel cannot close sockets (no
            ``CONFIG_INET_DIAG_DESTROY``: ``EOPNOTSUPP``), or netlink is missing.
        PermissionDenied: no ``CAP_NET_ADMIN`` (``EPERM``).
    """
    from portscope.sockets._netlink import open_diag_socket

    results: list[CloseResult] = []
    sock = open_diag_socket()
    sock.settimeout(5.0)  # the kernel answers at once; never wait forever
    try:
        for seq, row in enumerate(rows, 1):
            if row.cookie is None:
                results.append(CloseResult(row, FAILED, "no socket cookie (not from netlink)"))
                continue
            try:
                sock.send(destroy_request(row, seq))
                code = _ack(sock, seq)
            except OSError as err:
                results.append(CloseResult(row, FAILED, err.strerror or str(err)))
                continue
            if code == 0:
                results.append(CloseResult(row, CLOSED))
            elif code == errno.ENOENT:
                results.append(CloseResult(row, GONE, os.strerror(code)))
            elif code == errno.ESTALE:
                results.append(CloseResult(row, CHANGED, os.strerror(code)))
            elif code in (errno.EOPNOTSUPP, errno.EINVAL) and not results:
                raise BackendUnavailable(
                    "this kernel cannot close sockets: SOCK_DESTROY needs "
                    f"CONFIG_INET_DIAG_DESTROY ({os.strerror(code)})",
                    errno=code,
                )
            elif code in (errno.EPERM, errno.EACCES):
                raise PermissionDenied(
                    "closing a socket (SOCK_DESTROY) needs CAP_NET_ADMIN: run as root",
                    errno=code,
                )
            else:
                results.append(CloseResult(row, FAILED, os.strerror(code)))
    finally:
        sock.close()
    return results


def _ack(sock: socket.socket, seq: int) -> int:
    """The errno of the kernel's answer to request ``seq`` (0: done)."""
    while True:
        data = sock.recv(8192)
        off = 0
        while off + 20 <= len(data):
            length, kind, _, rseq, _ = struct.unpack_from("=IHHII", data, off)
            if length < 16:
                break
            if kind == _NLMSG_ERROR and rseq == seq:
                (code,) = struct.unpack_from("=i", data, off + 16)
                return int(-code)
            off += (length + 3) & ~3
