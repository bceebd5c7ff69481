"""NETLINK_SOCK_DIAG transport: send one inet_diag dump request, receive the raw replies.

Bytes in, bytes out: building the request and reading the socket happen here, turning the
replies into sockets happens in ``_diag_codec``. Kernel sources: ``linux/netlink.h``,
``linux/sock_diag.h``, ``linux/inet_diag.h``; ``man 7 sock_diag``.
"""

from __future__ import annotations

import contextlib
import errno
import os
import socket
import struct
from collections.abc import Iterator

from portscope.errors import BackendUnavailable, PermissionDenied

NETLINK_SOCK_DIAG = 4
SOCK_DIAG_BY_FAMILY = 20
NLM_F_REQUEST = 0x1
NLM_F_ROOT = 0x100
NLM_F_MATCH = 0x200
NLM_F_DUMP = NLM_F_ROOT | NLM_F_MATCH

NLMSG_ERROR = 2
NLMSG_DONE = 3

# struct nlmsghdr + struct inet_diag_req_v2 (family, protocol, ext, pad, states, sockid)
_REQUEST = struct.Struct("=IHHII BBBxI 48x")
# a dump arrives in skbs of at most 32 KiB (netlink_dump); read more than one per call
_CHUNK = 1 << 17
_HDR = struct.Struct("=IH")
_RCVBUF = 1 << 22


def open_diag_socket() -> socket.socket:
    """Open a NETLINK_SOCK_DIAG socket with a large receive buffer.

    Returns:
        The socket; the caller closes it.

    Raises:
        BackendUnavailable: netlink or sock_diag is not available here.
    """
    try:
        sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_SOCK_DIAG)
    except (OSError, AttributeError) as err:
        raise BackendUnavailable(
            f"netlink sock_diag is not available: {err}",
            errno=getattr(err, "errno", None),
        ) from err
    with contextlib.suppress(OSError):  # the default buffer works, with more recv calls
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, _RCVBUF)
    return sock


def request(
    family: int, protocol: int, states: int, ext: int = 0, seq: int = 1, bytecode: bytes = b""
) -> bytes:
    """Build a ``SOCK_DIAG_BY_FAMILY`` dump request (``inet_diag_req_v2``).

    Args:
        family: ``AF_INET`` or ``AF_INET6``.
        protocol: ``IPPROTO_TCP`` or ``IPPROTO_UDP``.
        states: bit mask of kernel TCP states (``1 << state``) to dump.
        ext: bit mask of ``INET_DIAG_*`` extensions to request (``1 << (attr - 1)``).
        seq: netlink sequence number.
        bytecode: a socket filter program (``port_filter``), sent as the
            ``INET_DIAG_REQ_BYTECODE`` attribute; empty for none.

    Returns:
        The request bytes.
    """
    attr = (
        _RTA.pack(_RTA.size + len(bytecode), INET_DIAG_REQ_BYTECODE) + bytecode if bytecode else b""
    )
    return (
        _REQUEST.pack(
            _REQUEST.size + len(attr),
            SOCK_DIAG_BY_FAMILY,
            NLM_F_REQUEST | NLM_F_DUMP,
            seq,
            0,
            family,
            protocol,
            ext,
            states,
        )
        + attr
    )


# inet_diag bytecode (linux/inet_diag.h; run by inet_diag_bc_run in net/ipv4/inet_diag.c):
# struct inet_diag_bc_op { __u8 code; __u8 yes; __u16 no; }; a port test is followed by a
# second op whose ``no`` holds the port (host order). A test that holds moves ``yes``
# bytes on, else ``no`` bytes; the socket passes when the program ends exactly at its end.
INET_DIAG_REQ_BYTECODE = 1
_BC_JMP = 1
_BC_S_GE, _BC_S_LE, _BC_D_GE, _BC_D_LE = 2, 3, 4, 5
_OP = struct.Struct("=BBH")
_RTA = struct.Struct("=HH")


def port_filter(clauses: list[list[tuple[str, int]]]) -> bytes:
    """Compile "all clauses hold; a clause holds when one of its tests does" to bytecode.

    Args:
        clauses: each a list of (``"s"`` or ``"d"``, port): the local (source) or remote
            (destination) port equals it.

    Returns:
        The program for ``request(..., bytecode=...)``; empty when there is no clause.
    """
    if not clauses:
        return b""
    # each test: GE (8 bytes), LE (8 bytes), then JMP (4) to the next clause on success
    size = sum(20 * len(c) for c in clauses)
    reject = size + 4
    out = bytearray()
    for clause in clauses:
        clause_end = len(out) + 20 * len(clause)
        for i, (side, port) in enumerate(clause):
            here = len(out)
            fail = here + 20 if i + 1 < len(clause) else reject
            ge, le = (_BC_S_GE, _BC_S_LE) if side == "s" else (_BC_D_GE, _BC_D_LE)
            out += _OP.pack(ge, 8, fail - here) + _OP.pack(0, 0, port)
            out += _OP.pack(le, 8, fail - here - 8) + _OP.pack(0, 0, port)
            out += _OP.pack(_BC_JMP, 4, clause_end - here - 16)
    return bytes(out)


def dump(
    sock: socket.socket,
    family: int,
    protocol: int,
    states: int,
    ext: int = 0,
    bytecode: bytes = b"",
) -> Iterator[bytes]:
    """Send a dump request and yield the raw reply chunks until the dump ends.

    The consumer decodes each chunk and stops iterating (``GeneratorExit``) at
    ``NLMSG_DONE``; this function only sends and receives.

    Args:
        sock: a socket from ``open_diag_socket``.
        family: ``AF_INET`` or ``AF_INET6``.
        protocol: ``IPPROTO_TCP`` or ``IPPROTO_UDP``.
        states: bit mask of kernel TCP states to dump.
        ext: ``INET_DIAG_*`` extension mask.

    Yields:
        Byte strings holding one or more whole netlink messages each.

    Raises:
        PermissionDenied: the kernel refused the request (EPERM/EACCES).
        BackendUnavailable: any other socket error.
    """
    try:
        sock.send(request(family, protocol, states, ext, bytecode=bytecode))
        recv = sock.recv
        while True:
            chunk = recv(_CHUNK)
            if not chunk:
                return
            yield chunk
    except OSError as err:
        if err.errno in (errno.EPERM, errno.EACCES):
            raise PermissionDenied(
                f"sock_diag dump refused: {os.strerror(err.errno)}", errno=err.errno
            ) from err
        raise BackendUnavailable(
            f"sock_diag dump failed: {err.strerror or err}", errno=err.errno
        ) from err


def _sequential(
    requests: list[tuple[int, int, int]], bytecode: bytes, ext: int = 0
) -> Iterator[tuple[int, bytes]]:
    sock = open_diag_socket()
    try:
        for i, (family, protocol, states) in enumerate(requests):
            for chunk in dump(sock, family, protocol, states, ext, bytecode=bytecode):
                yield i, chunk
                if ends_dump(chunk):
                    break
    finally:
        sock.close()


def ends_dump(chunk: bytes) -> bool:
    """True when ``chunk`` is the last of a dump: it ends with NLMSG_DONE or is an error.

    The kernel puts NLMSG_DONE (20 bytes) last in the final chunk, and answers a request
    it cannot serve with one NLMSG_ERROR.
    """
    size = len(chunk)
    if size >= 16 and _HDR.unpack_from(chunk, 0)[1] == NLMSG_ERROR:
        return True
    if size < 20 or _HDR.unpack_from(chunk, size - 20) != (20, NLMSG_DONE):
        return False
    off = 0  # those bytes could be inside another message: walk the headers to be sure
    while off < size - 20:
        length = _HDR.unpack_from(chunk, off)[0]
        if length < 16:
            return False
        off += (length + 3) & ~3
    return off == size - 20


def dump_many(
    requests: list[tuple[int, int, int]],
    *,
    prefetch: bool = True,
    bytecode: bytes = b"",
    ext: int = 0,
) -> Iterator[tuple[int, bytes]]:
    """Run dump requests one after another on one socket, yielding (request index, chunk).

    With ``prefetch`` a thread starts receiving at once (before the first ``next``) and
    goes on while the caller decodes: the kernel builds the next chunk inside ``recv``
    with the GIL released, so on two cores the dump overlaps the caller's work.

    Args:
        requests: (family, protocol, states) of each dump.
        prefetch: receive in a background thread.
        bytecode: a ``port_filter`` program applied to every request.
        ext: ``INET_DIAG_*`` extensions to ask for (``_diag_ext.EXT_*``); 0 for none.

    Returns:
        An iterator of each request's chunks, in order; the last chunk of each request
        ends its dump.

    Raises:
        PermissionDenied, BackendUnavailable: as ``dump``.
    """
    if not prefetch:
        return _sequential(requests, bytecode, ext)

    return _prefetched(requests, bytecode, ext)


def _prefetched(
    requests: list[tuple[int, int, int]], bytecode: bytes, ext: int = 0
) -> Iterator[tuple[int, bytes]]:
    """Start receiving in a thread now; the returned iterator hands the chunks over."""
    import queue
    import threading

    items: queue.SimpleQueue[tuple[int, bytes] | BaseException | None] = queue.SimpleQueue()
    stop = threading.Event()

    def reader() -> None:
        try:
            for item in dump_many(requests, prefetch=False, bytecode=bytecode, ext=ext):
                items.put(item)
                if stop.is_set():
                    break
        except BaseException as err:  # handed to the consumer, raised there
            items.put(err)
        else:
            items.put(None)

    thread = threading.Thread(target=reader, name="portscope-netlink", daemon=True)
    thread.start()

    def handover() -> Iterator[tuple[int, bytes]]:
        try:
            while (item := items.get()) is not None:
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            stop.set()

    return handover()


# The older request, ``struct inet_diag_req`` (``linux/inet_diag.h``) sent as TCPDIAG_GETSOCK:
# the kernel dumps it with ``sdiag_family = AF_UNSPEC`` (``inet_diag_dump_compat``), so IPv4
# and IPv6 TCP sockets come from one walk of the established hash instead of two; replies
# carry the request's type (18) and each message its own ``idiag_family``.
TCPDIAG_GETSOCK = 18
_REQUEST_V1 = struct.Struct("=IHHII BBBB 48x II")


def request_tcp_both(states: int, seq: int = 1, bytecode: bytes = b"") -> bytes:
    """A TCPDIAG_GETSOCK dump request for IPv4 and IPv6 TCP sockets at once.

    Args:
        states: bit mask of kernel TCP states (``1 << state``).
        seq: netlink sequence number.
        bytecode: a ``port_filter`` program (``INET_DIAG_REQ_BYTECODE``), or empty.
    """
    attr = (
        _RTA.pack(_RTA.size + len(bytecode), INET_DIAG_REQ_BYTECODE) + bytecode if bytecode else b""
    )
    return (
        _REQUEST_V1.pack(
            _REQUEST_V1.size + len(attr),
            TCPDIAG_GETSOCK,
            NLM_F_REQUEST | NLM_F_DUMP,
            seq,
            0,
            0,  # AF_UNSPEC: both families
            0,
            0,
            0,
            states,
            0,
        )
        + attr
    )


def dump_raw(sock: socket.socket, message: bytes) -> Iterator[bytes]:
    """Send ``message`` (a dump request) and yield the raw reply chunks, as ``dump``.

    Raises:
        PermissionDenied, BackendUnavailable: as ``dump``.
    """
    try:
        sock.send(message)
        while True:
            chunk = sock.recv(_CHUNK)
            if not chunk:
                return
            yield chunk
    except OSError as err:
        if err.errno in (errno.EPERM, errno.EACCES):
            raise PermissionDenied(
                f"sock_diag dump refused: {os.strerror(err.errno)}", errno=err.errno
            ) from err
        raise BackendUnavailable(
            f"sock_diag dump failed: {err.strerror or err}", errno=err.errno
        ) from err
