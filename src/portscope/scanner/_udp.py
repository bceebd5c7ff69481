"""UDP probes: protocol payloads that make common services answer, and the UDP prober.

A UDP port answers only when the datagram means something to the service, so well-known
ports get a minimal valid request (DNS, NTP, SNMP ...); other ports get an empty datagram.
On a connected UDP socket the kernel reports an ICMP port unreachable as ``ECONNREFUSED``
(udp(7)), which is how ``closed`` is told apart from silence (``open|filtered``).
"""

from __future__ import annotations

import asyncio
import errno
import select
import socket
import struct
import time
from collections.abc import Sequence

from portscope.models import PortState, Proto
from portscope.scanner._errors import classify, enable_icmp_details, icmp_reason
from portscope.scanner._schedule import Answer, ProbeSink, Try, release_watched

__all__ = ["PAYLOADS", "UdpProber", "dns_query", "ntp_request", "snmp_get_request"]

_DNS_ID = 0x7073  # "ps"


def dns_query(name: str = "", qtype: int = 2, *, txid: int = _DNS_ID) -> bytes:
    """A DNS query with recursion desired (RFC 1035 4.1).

    Args:
        name: the query name; ``""`` is the root.
        qtype: the query type; default 2 (NS), which every name server can answer for
            the root from its hints or refuse (either way it answers).
        txid: the 16-bit transaction id.
    """
    header = struct.pack("!HHHHHH", txid, 0x0100, 1, 0, 0, 0)  # RD=1, QDCOUNT=1
    labels = b"".join(bytes([len(part)]) + part.encode("ascii") for part in name.split(".") if part)
    return header + labels + b"\x00" + struct.pack("!HH", qtype, 1)  # class IN


def ntp_request() -> bytes:
    """An NTPv4 client request: 48 bytes, LI=3 (unsynchronized), VN=4, Mode=3 (RFC 5905 7.3)."""
    return bytes([(3 << 6) | (4 << 3) | 3]) + bytes(47)


def _ber(tag: int, content: bytes) -> bytes:
    # ASN.1 BER definite length (X.690 8.1.3): short form below 128, else long form
    n = len(content)
    if n < 0x80:
        length = bytes([n])
    else:
        raw = n.to_bytes((n.bit_length() + 7) // 8, "big")
        length = bytes([0x80 | len(raw)]) + raw
    return bytes([tag]) + length + content


def _ber_int(value: int) -> bytes:
    return _ber(0x02, value.to_bytes(max(1, (value.bit_length() + 8) // 8), "big", signed=True))


def _ber_oid(oid: str) -> bytes:
    parts = [int(p) for p in oid.split(".")]
    out = bytearray([parts[0] * 40 + parts[1]])
    for part in parts[2:]:
        chunk = [part & 0x7F]
        part >>= 7
        while part:
            chunk.append(0x80 | (part & 0x7F))
            part >>= 7
        out += bytes(reversed(chunk))
    return _ber(0x06, bytes(out))


def snmp_get_request(community: str = "public", oid: str = "1.3.6.1.2.1.1.1.0") -> bytes:
    """An SNMPv1 GetRequest for ``oid`` (default sysDescr.0), RFC 1157 4.1.2."""
    varbind = _ber(0x30, _ber_oid(oid) + b"\x05\x00")  # value NULL
    pdu = _ber(0xA0, _ber_int(0x7073) + _ber_int(0) + _ber_int(0) + _ber(0x30, varbind))
    return _ber(0x30, _ber_int(0) + _ber(0x04, community.encode()) + pdu)  # version 0 = v1


PAYLOADS: dict[int, bytes] = {
    53: dns_query(),  # DNS
    123: ntp_request(),  # NTP
    161: snmp_get_request(),  # SNMP
    5353: dns_query(),  # mDNS answers unicast queries to its port (RFC 6762 5.5)
    5355: dns_query(),  # LLMNR uses the DNS message format (RFC 4795)
}
"""UDP port -> the datagram sent to it; other ports get an empty datagram."""


class UdpProber:
    """UDP probes; plugs into ``_schedule.Scheduler`` (see ``_schedule.Prober``).

    One connected datagram socket per try, registered (one-shot, ``EPOLLIN``) in an
    ``epoll`` set that is one reader of the asyncio loop. The port's payload (``PAYLOADS``,
    read at send time) goes out; any datagram back is ``open`` (``udp-response``, the reply
    in ``banner``, at most 512 bytes); an ICMP port unreachable, which the kernel reports on
    the connected socket as ``ECONNREFUSED`` (udp(7)), is ``closed`` (``port-unreach``);
    another ICMP unreachable is ``unreachable`` with its code (``IP_RECVERR``). Silence after
    every try is ``open|filtered``.

    Args:
        timeout_s: a fixed per-try timeout in seconds, or ``None`` for the scan's. A scan
            uses 1 s (services may take longer to answer than the network's RTT).
        retries: datagrams sent again after silence, or ``None`` for the scan's.
        icmp_details: read the ICMP type/code of unreachable answers.
    """

    proto = Proto.UDP
    fds_per_try = 1
    silent = Answer(PortState.OPEN_FILTERED, "no-response")

    def __init__(
        self,
        *,
        timeout_s: float | None = None,
        retries: int | None = None,
        icmp_details: bool = True,
    ) -> None:
        self.timeout_s = timeout_s
        self.retries = retries
        self._icmp = icmp_details
        self._by_fd: dict[int, Try] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._sink: ProbeSink | None = None
        self._epoll: select.epoll | None = None

    def open(self, loop: asyncio.AbstractEventLoop, sink: ProbeSink) -> None:
        self._loop, self._sink = loop, sink
        if hasattr(select, "epoll"):
            self._epoll = select.epoll()
            loop.add_reader(self._epoll.fileno(), self._on_epoll)

    def send(self, tries: Sequence[Try]) -> int:
        sink = self._sink
        assert sink is not None
        for i, tr in enumerate(tries):
            family = tr.target.family
            try:
                sock = socket.socket(
                    socket.AF_INET6 if family == 6 else socket.AF_INET, socket.SOCK_DGRAM
                )
            except OSError as exc:
                if exc.errno in _FD_SHORTAGE:
                    sink.short_of(exc.errno, None)
                    return i
                raise
            sock.setblocking(False)
            if self._icmp:
                enable_icmp_details(sock, family)
            tr.sent = time.monotonic()
            try:
                sock.connect(tr.sockaddr())
                sock.send(PAYLOADS.get(tr.port, b""))
            except OSError as exc:
                code = exc.errno or 0
                if code in _PORT_SHORTAGE:
                    sock.close()
                    sink.short_of(code, None)
                    return i
                answer = self._error(sock, code)
                sock.close()
                sink.answered(tr, answer, None)
                continue
            tr.handle = sock
            fd = sock.fileno()
            self._by_fd[fd] = tr
            if self._epoll is not None:
                self._epoll.register(fd, select.EPOLLIN | select.EPOLLONESHOT)
            else:
                assert self._loop is not None
                self._loop.add_reader(fd, self._on_reader, fd)
        return len(tries)

    def expire(self, attempt: Try) -> Answer | None:
        sock = attempt.handle
        assert isinstance(sock, socket.socket)
        fd = sock.fileno()
        self._by_fd.pop(fd, None)
        if self._epoll is None and self._loop is not None:
            self._loop.remove_reader(fd)
        answer = self._read(sock)  # an answer waiting behind a busy loop
        sock.close()
        return answer

    def close(self) -> None:
        release_watched(self._by_fd, self._epoll, self._loop, writer=False)
        self._epoll = None

    def _on_epoll(self) -> None:
        if self._epoll is None:
            return
        now = time.monotonic()
        for fd, _events in self._epoll.poll(0, 1024):
            tr = self._by_fd.get(fd)
            if tr is not None:
                self._ready(fd, tr, now)

    def _on_reader(self, fd: int) -> None:
        tr = self._by_fd.get(fd)
        if tr is not None:
            self._ready(fd, tr, time.monotonic())

    def _ready(self, fd: int, tr: Try, now: float) -> None:
        sock = tr.handle
        assert isinstance(sock, socket.socket) and self._sink is not None
        answer = self._read(sock)
        if answer is None:  # spurious wake-up: wait again
            if self._epoll is not None:
                self._epoll.modify(fd, select.EPOLLIN | select.EPOLLONESHOT)
            return
        del self._by_fd[fd]
        if self._epoll is None and self._loop is not None:
            self._loop.remove_reader(fd)
        sock.close()
        self._sink.answered(tr, answer, now - tr.sent)

    def _read(self, sock: socket.socket) -> Answer | None:
        try:
            data = sock.recv(512)
        except BlockingIOError:
            return None
        except OSError as exc:
            return self._error(sock, exc.errno or 0)
        return Answer(PortState.OPEN, "udp-response", None, data or None)

    def _error(self, sock: socket.socket, code: int) -> Answer:
        state, reason = classify(code)
        if state is PortState.CLOSED:
            return Answer(PortState.CLOSED, "port-unreach", code)
        if self._icmp:
            reason = icmp_reason(sock) or reason
        return Answer(state, reason, code)


_FD_SHORTAGE = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})
_PORT_SHORTAGE = frozenset({errno.EADDRNOTAVAIL, errno.EAGAIN})
