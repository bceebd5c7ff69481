"""Raw sockets for the SYN prober and ``trace``: open, batch-send (``sendmmsg``), read.

Moves bytes only (the codec is ``_packets``). Needs CAP_NET_RAW (root): ``open_raw`` raises
``PermissionDenied`` with the advice to use the connect scan otherwise.

* Sending: one raw ``IPPROTO_TCP`` socket per family; the kernel writes the IP header (raw(7)
  without ``IP_HDRINCL``; ipv6(7) always), we write the TCP header and its checksum. A batch
  goes out in one ``sendmmsg(2)`` through ctypes (the ``socket`` module has none): measured
  here about 2.5x faster than one ``sendto`` per packet, which is the scan's hot path.
* Receiving: raw ``IPPROTO_TCP`` and ``IPPROTO_ICMP``/``IPPROTO_ICMPV6`` sockets get a copy
  of every incoming segment or message of their protocol in the namespace; the caller keeps
  what its keyed hash recognizes. IPv6 raw sockets strip the IPv6 header, so the hop limit
  comes as ``IPV6_HOPLIMIT`` ancillary data (``IPV6_RECVHOPLIMIT``, RFC 3542 6.3).
"""

from __future__ import annotations

import array
import ctypes
import ctypes.util
import errno
import os
import socket
import struct
from collections.abc import Sequence

from portscope.errors import PermissionDenied

__all__ = [
    "RawReceiver",
    "RawSender",
    "can_send_raw",
    "open_raw",
    "source_address",
]

IPV6_RECVHOPLIMIT = getattr(socket, "IPV6_RECVHOPLIMIT", 51)
IPV6_HOPLIMIT = getattr(socket, "IPV6_HOPLIMIT", 52)
_RCVBUF = 8 << 20
SO_RCVBUFFORCE = 33


class _Iovec(ctypes.Structure):
    _fields_ = (("iov_base", ctypes.c_void_p), ("iov_len", ctypes.c_size_t))


class _Msghdr(ctypes.Structure):
    _fields_ = (
        ("msg_name", ctypes.c_void_p),
        ("msg_namelen", ctypes.c_uint32),
        ("msg_iov", ctypes.POINTER(_Iovec)),
        ("msg_iovlen", ctypes.c_size_t),
        ("msg_control", ctypes.c_void_p),
        ("msg_controllen", ctypes.c_size_t),
        ("msg_flags", ctypes.c_int),
    )


class _Mmsghdr(ctypes.Structure):
    _fields_ = (("msg_hdr", _Msghdr), ("msg_len", ctypes.c_uint))


_libc: ctypes.CDLL | None = None
# the batched paths write header fields as 64-bit words at the x86-64/arm64 offsets
_WORDS_OK = ctypes.sizeof(ctypes.c_void_p) == 8 and ctypes.sizeof(_Mmsghdr) == 64
_MAX_FAST = 64  # packets up to this size go through the preallocated send buffer


def _libc_fn(name: str) -> ctypes._CFuncPtr | None:  # type: ignore[name-defined]
    """A libc function by name (with errno), or ``None`` where libc has none or the
    batched layout does not apply (32-bit)."""
    global _libc
    if not _WORDS_OK:
        return None
    if _libc is None:
        _libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
    fn: ctypes._CFuncPtr | None = getattr(_libc, name, None)  # type: ignore[name-defined]
    return fn


def _sendmmsg() -> ctypes._CFuncPtr | None:  # type: ignore[name-defined]
    fn = _libc_fn("sendmmsg")
    if fn is not None:
        fn.argtypes = (ctypes.c_int, ctypes.POINTER(_Mmsghdr), ctypes.c_uint, ctypes.c_int)
        fn.restype = ctypes.c_int
    return fn


def can_send_raw() -> bool:
    """True when this process may open raw sockets (CAP_NET_RAW in its namespace)."""
    try:
        socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_TCP).close()
    except OSError:  # PermissionError (EPERM) without CAP_NET_RAW
        return False
    return True


def open_raw(family: int, proto: int, *, receive: bool = True) -> socket.socket:
    """A non-blocking raw socket of ``family`` (4 or 6) and IP protocol ``proto``.

    Args:
        family: 4 or 6.
        proto: ``socket.IPPROTO_TCP``, ``IPPROTO_ICMP`` or ``IPPROTO_ICMPV6``.
        receive: give it an 8 MiB receive buffer (``SO_RCVBUFFORCE``) and, for IPv6, the
            hop limit of each packet read.

    Raises:
        PermissionDenied: no CAP_NET_RAW; the message names the connect scan.
    """
    af = socket.AF_INET6 if family == 6 else socket.AF_INET
    try:
        sock = socket.socket(af, socket.SOCK_RAW, proto)
    except PermissionError as err:
        raise PermissionDenied(
            "raw packets need root or CAP_NET_RAW; use the connect scan (-sT), which needs "
            "no privilege"
        ) from err
    sock.setblocking(False)
    if receive:
        try:
            sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, _RCVBUF)
        except OSError:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, _RCVBUF)
        if family == 6:
            sock.setsockopt(socket.IPPROTO_IPV6, IPV6_RECVHOPLIMIT, 1)
    return sock


def source_address(address: str, family: int) -> bytes:
    """The local address the kernel would send to ``address`` from, packed.

    A route lookup by ``connect`` on a datagram socket: nothing is sent.

    Raises:
        OSError: no route (``ENETUNREACH``).
    """
    af = socket.AF_INET6 if family == 6 else socket.AF_INET
    with socket.socket(af, socket.SOCK_DGRAM) as probe:
        probe.connect((address, 9))
        local = probe.getsockname()[0]
    return socket.inet_pton(af, local.split("%", 1)[0])


def hop_limit(ancdata: Sequence[tuple[int, int, bytes]]) -> int | None:
    """The ``IPV6_HOPLIMIT`` value in ``recvmsg`` ancillary data, or ``None``."""
    for level, kind, data in ancdata:
        if level == socket.IPPROTO_IPV6 and kind == IPV6_HOPLIMIT and len(data) >= 4:
            return int(struct.unpack("=i", data[:4])[0])
    return None


class RawSender:
    """Sends batches of packets on one raw socket with ``sendmmsg`` (``sendto`` fallback).

    The message headers, iovecs and one packet buffer are allocated once: a batch of
    packets of one size is copied into the buffer in one ``memmove``, and only each
    message's destination pointer is written (one strided store into the headers), so
    the cost per packet is a list item, not five ctypes attribute stores.

    Args:
        sock: a raw socket (``open_raw``).
        family: 4 or 6.
        slots: most packets per ``sendmmsg`` call.
    """

    def __init__(self, sock: socket.socket, family: int, slots: int = 256) -> None:
        self.sock = sock
        self.family = family
        self._fn = _sendmmsg()
        self._slots = slots
        self._msgs = (_Mmsghdr * slots)()
        self._iovs = (_Iovec * slots)()
        namelen = 28 if family == 6 else 16  # sizeof(sockaddr_in6), sizeof(sockaddr_in)
        for i in range(slots):  # each message has its one iovec and name length, for good
            hdr = self._msgs[i].msg_hdr
            hdr.msg_iov = ctypes.pointer(self._iovs[i])
            hdr.msg_iovlen = 1
            hdr.msg_namelen = namelen
        # the headers as 64-bit words: msg_name of message i is word 8 * i (x86-64, arm64)
        self._words = memoryview(self._msgs).cast("B").cast("Q")
        self._stride = ctypes.sizeof(_Mmsghdr) // 8
        self._slab = ctypes.create_string_buffer(slots * _MAX_FAST)
        self._slab_at = ctypes.addressof(self._slab)
        self._size = 0  # the packet size the iovecs are laid out for (0: none yet)
        self._names: dict[str, int] = {}
        self._name_bufs: list[ctypes.Array[ctypes.c_char]] = []
        self._keep: list[ctypes.Array[ctypes.c_char]] = []

    def send(self, payloads: Sequence[bytes], addresses: Sequence[str]) -> tuple[int, int]:
        """Send ``payloads[i]`` to ``addresses[i]`` (IP address strings), in order.

        Returns:
            (packets sent, errno of the first failure or 0). ``EAGAIN``/``ENOBUFS`` mean the
            socket's queue is full: send the rest later.
        """
        total = len(payloads)
        if self._fn is None:
            return self._send_each(payloads, addresses)
        if len(self._names) > 65_536:  # between batches: no header points into them now
            self._names.clear()
            self._name_bufs.clear()
        done = 0
        fn, fd, msgs, words, stride = (
            self._fn,
            self.sock.fileno(),
            self._msgs,
            self._words,
            self._stride,
        )
        names, name_of = self._names, self._sockaddr
        while done < total:
            n = min(self._slots, total - done)
            chunk = payloads[done : done + n]
            data = b"".join(chunk)
            size = len(chunk[0])
            if len(data) == size * n and size <= _MAX_FAST:
                if size != self._size:
                    self._lay_out(size)
                ctypes.memmove(self._slab_at, data, len(data))
            else:  # packets of several sizes (or large): iovecs into this chunk's bytes
                self._lay_out_each(chunk, data)
            ptrs = [names.get(a) or name_of(a) for a in addresses[done : done + n]]
            words[0 : stride * n : stride] = array.array("Q", ptrs)
            sent = fn(fd, msgs, n, socket.MSG_DONTWAIT)
            if sent < 0:
                err = ctypes.get_errno()
                if err == errno.EINTR:
                    continue
                if done == 0 and err not in (errno.EAGAIN, errno.ENOBUFS):
                    # a per-destination error (EHOSTUNREACH, EACCES): send one by one
                    return self._send_each(payloads, addresses)
                return done, err
            done += sent
            if sent < n:
                return done, errno.EAGAIN
        return done, 0

    def _lay_out(self, size: int) -> None:
        """Point iovec ``i`` at ``size`` bytes at offset ``i * size`` of the slab."""
        base = self._slab_at
        for i, iov in enumerate(self._iovs):
            iov.iov_base = base + i * size
            iov.iov_len = size
        self._size = size

    def _lay_out_each(self, chunk: Sequence[bytes], data: bytes) -> None:
        buf = ctypes.create_string_buffer(data, len(data))
        self._keep = [buf]  # alive until the next batch
        offset = ctypes.addressof(buf)
        for iov, payload in zip(self._iovs, chunk, strict=False):
            iov.iov_base = offset
            iov.iov_len = len(payload)
            offset += len(payload)
        self._size = 0

    def _send_each(self, payloads: Sequence[bytes], addresses: Sequence[str]) -> tuple[int, int]:
        for i, (payload, address) in enumerate(zip(payloads, addresses, strict=True)):
            try:
                self.sock.sendto(payload, (address, 0))
            except (BlockingIOError, InterruptedError):
                return i, errno.EAGAIN
            except OSError as err:
                if err.errno == errno.ENOBUFS:
                    return i, errno.ENOBUFS
                # unreachable by our own routing: counted as sent, the scheduler times it out
        return len(payloads), 0

    def _sockaddr(self, address: str) -> int:
        """The address of a ``sockaddr`` buffer for ``address``, cached (kept alive)."""
        if self.family == 6:
            raw = (
                struct.pack("=H", socket.AF_INET6)
                + bytes(6)
                + socket.inet_pton(socket.AF_INET6, address)
                + bytes(4)
            )
        else:
            raw = struct.pack("=H", socket.AF_INET) + bytes(2)
            raw += socket.inet_pton(socket.AF_INET, address) + bytes(8)
        buf = ctypes.create_string_buffer(raw, len(raw))
        self._name_bufs.append(buf)
        at = ctypes.addressof(buf)
        self._names[address] = at
        return at


class RawReceiver:
    """Reads a raw IPv4 socket in batches with ``recvmmsg(2)`` (through ctypes): one system
    call per up to ``slots`` packets instead of one ``recv`` each, the scan's receive path.

    Each packet is read into its own ``size``-byte slot of one buffer (longer packets are
    cut, as ``recv(size)`` would); a batch comes back as one ``bytes`` object and the
    length of each packet, packet ``i`` starting at ``i * size``.

    Args:
        sock: a non-blocking raw socket (``open_raw``).
        slots: most packets per call.
        size: bytes kept of each packet.
    """

    def __init__(self, sock: socket.socket, slots: int = 256, size: int = 128) -> None:
        self.sock = sock
        self.size = size
        self.slots = slots
        self._fn = _libc_fn("recvmmsg")
        if self._fn is not None:
            self._fn.argtypes = (ctypes.c_int, ctypes.POINTER(_Mmsghdr), ctypes.c_uint,
                                 ctypes.c_int, ctypes.c_void_p)  # fmt: skip
            self._fn.restype = ctypes.c_int
        self._buf = ctypes.create_string_buffer(slots * size)
        self._at = ctypes.addressof(self._buf)
        self._msgs = (_Mmsghdr * slots)()
        self._iovs = (_Iovec * slots)()
        for i in range(slots):
            self._iovs[i].iov_base = self._at + i * size
            self._iovs[i].iov_len = size
            hdr = self._msgs[i].msg_hdr
            hdr.msg_iov = ctypes.pointer(self._iovs[i])
            hdr.msg_iovlen = 1
        # msg_len of message i: 32-bit word 16 * i + 14 (x86-64, arm64 layout)
        self._lens = memoryview(self._msgs).cast("B").cast("I")
        self._len_stride = ctypes.sizeof(_Mmsghdr) // 4

    def read(self) -> tuple[bytes, list[int]]:
        """The packets waiting now (at most ``slots``): (buffer, lengths); none: ``(b"", [])``.

        Raises:
            OSError: a socket error other than ``EAGAIN``/``EINTR``.
        """
        if self._fn is None:
            return self._read_each()
        n = self._fn(self.sock.fileno(), self._msgs, self.slots, socket.MSG_DONTWAIT, None)
        if n <= 0:
            err = ctypes.get_errno()
            if n == 0 or err in (errno.EAGAIN, errno.EINTR):
                return b"", []
            raise OSError(err, os.strerror(err))
        stride = self._len_stride
        lengths = self._lens[14 : stride * n : stride].tolist()
        return ctypes.string_at(self._at, self.size * n), lengths

    def _read_each(self) -> tuple[bytes, list[int]]:
        parts: list[bytes] = []
        lengths: list[int] = []
        for _ in range(self.slots):
            try:
                packet = self.sock.recv(self.size)
            except (BlockingIOError, InterruptedError):
                break
            parts.append(packet.ljust(self.size, b"\0"))
            lengths.append(len(packet))
        return b"".join(parts), lengths


# rtnetlink (rtnetlink(7), linux/neighbour.h): a dump of the neighbour table
_RTM_GETNEIGH = 30
_RTM_NEWNEIGH = 28
_NLM_F_REQUEST, _NLM_F_DUMP = 0x1, 0x300
_NLMSG_DONE, _NLMSG_ERROR = 3, 2
_NDA_DST, _NDA_LLADDR = 1, 2
_NUD_VALID = 0x02 | 0x04 | 0x08 | 0x10 | 0x40 | 0x80  # REACHABLE STALE DELAY PROBE NOARP PERMANENT
_NLMSG = struct.Struct("=IHHII")
_NDMSG = struct.Struct("=BxxxiHBB")
_RTA = struct.Struct("=HH")


def neighbour_mac(address: str) -> str | None:
    """The link-layer address of neighbour ``address`` (IPv4 or IPv6) in this namespace's
    neighbour table (an rtnetlink ``RTM_GETNEIGH`` dump), upper case as nmap writes it, or
    ``None`` when there is no valid entry. Sends nothing on the network."""
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    try:
        want = socket.inet_pton(family, address.split("%", 1)[0])
    except OSError:
        return None
    try:
        sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 0)  # NETLINK_ROUTE
    except (OSError, AttributeError):
        return None
    with sock:
        body = _NDMSG.pack(family, 0, 0, 0, 0)
        sock.send(_NLMSG.pack(_NLMSG.size + len(body), _RTM_GETNEIGH,
                              _NLM_F_REQUEST | _NLM_F_DUMP, 1, 0) + body)  # fmt: skip
        sock.settimeout(1.0)
        found: str | None = None
        for _ in range(1000):  # bounded: a dump ends with NLMSG_DONE
            try:
                data = sock.recv(65536)
            except OSError:
                return found
            offset = 0
            while offset + _NLMSG.size <= len(data):
                length, kind, _flags, _seq, _pid = _NLMSG.unpack_from(data, offset)
                if length < _NLMSG.size or kind in (_NLMSG_DONE, _NLMSG_ERROR):
                    return found
                if kind == _RTM_NEWNEIGH:
                    found = found or _match(data[offset + _NLMSG.size : offset + length], want)
                offset += (length + 3) & ~3
    return found


def _match(msg: bytes, want: bytes) -> str | None:
    if len(msg) < _NDMSG.size:
        return None
    _fam, _ifindex, state, _flags, _type = _NDMSG.unpack_from(msg)
    if not state & _NUD_VALID:
        return None
    dst = lladdr = None
    offset = _NDMSG.size
    while offset + _RTA.size <= len(msg):
        rta_len, rta_type = _RTA.unpack_from(msg, offset)
        if rta_len < _RTA.size:
            break
        value = msg[offset + _RTA.size : offset + rta_len]
        if rta_type == _NDA_DST:
            dst = value
        elif rta_type == _NDA_LLADDR:
            lladdr = value
        offset += (rta_len + 3) & ~3
    if dst == want and lladdr and len(lladdr) == 6:
        return ":".join(f"{b:02X}" for b in lladdr)
    return None
