"""The SYN (and ACK) scan prober: raw TCP probes, batched, matched statelessly.

Plugs into the scheduler (``_schedule``) like the connect prober; timeouts, retransmission,
window, rate and host give-up stay there. What differs (``fds_per_try = 0``):

* No socket per try: one raw ``IPPROTO_TCP`` sender per family, one raw TCP receiver and
  one raw ICMP receiver per family, each one reader of the asyncio loop (``_raw``).
* A batch of tries becomes one ``sendmmsg``: each probe is a 24-byte TCP header built from
  the keyed hash of its destination (``_packets.FlowKey``: source port and sequence number),
  with its checksum; the kernel adds the IP header.
* Replies are matched statelessly (as ZMap and masscan): the receiver recomputes the hash
  from the reply's own fields (SYN-ACK: ``ack - 1``; RST to a SYN: ``ack - 1``; RST to an
  ACK probe: ``seq``; an ICMP error: the quoted ``seq``), so a forged or stray segment
  (another flow, another scan) is counted in ``stray`` and ignored. The only table is the
  one the scheduler needs anyway: tries in flight by (address, port).
* States and reasons are nmap's (``scan_tcp.cc``): SYN scan ``open`` (``syn-ack``),
  ``closed`` (``reset``), ``filtered`` (``no-response``, or an ICMP unreachable with its code:
  ``admin-prohibited``, ``host-unreach`` ...); ACK scan (``-sA``) ``unfiltered`` (``reset``),
  ``filtered`` otherwise. Every answer carries the reply's TTL (``reason_ttl``).
* Our own kernel answers a SYN-ACK with a RST (no socket owns the source port), which is
  what nmap's SYN scan relies on too: no half-open connection is left at the target.

Needs CAP_NET_RAW (``_raw.open_raw`` raises ``PermissionDenied`` otherwise).
"""

from __future__ import annotations

import asyncio
import errno
import socket
import struct
import time
from collections.abc import Sequence

from portscope.models import PortState, Proto
from portscope.scanner import _packets as pk
from portscope.scanner._errors import ICMP4_UNREACH, ICMP6_UNREACH
from portscope.scanner._raw import RawReceiver, RawSender, hop_limit, open_raw, source_address
from portscope.scanner._schedule import Answer, ProbeSink, Try

__all__ = ["SynProber"]

_READ_BATCH = 4096
_BASE = pk.SOURCE_PORT_BASE
_NPORTS = pk.SOURCE_PORTS
_SYN_ACK = pk.SYN | pk.ACK
_TCP_HEAD = struct.Struct("!HHII")
_KINDS = {
    "open": (PortState.OPEN, "syn-ack"),
    "closed": (PortState.CLOSED, "reset"),
    "unfiltered": (PortState.UNFILTERED, "reset"),
}
_HOST_ERRNO = {
    "host-unreach": errno.EHOSTUNREACH,
    "net-unreach": errno.ENETUNREACH,
    "no-route": errno.ENETUNREACH,
    "addr-unreach": errno.EHOSTUNREACH,
}


class SynProber:
    """Raw SYN (or ACK) probes; plugs into ``_schedule.Scheduler``.

    Args:
        ack: send ACK probes (nmap ``-sA``: ``unfiltered``/``filtered``) instead of SYNs.
        timeout_s: a fixed per-try timeout overriding the scan's, or ``None``.
        retries: tries after the first, overriding the scan's, or ``None``.
        key: the 16-byte hash key (random by default; a test seam).

    Attributes:
        stray: TCP segments and ICMP errors read that matched no probe of this scan.
    """

    proto = Proto.TCP
    fds_per_try = 0
    silent = Answer(PortState.FILTERED, "no-response")

    def __init__(
        self,
        *,
        ack: bool = False,
        timeout_s: float | None = None,
        retries: int | None = None,
        key: bytes | None = None,
    ) -> None:
        self.ack = ack
        self.timeout_s = timeout_s
        self.retries = retries
        self.stray = 0
        self._key = pk.FlowKey(key)
        self._flags = pk.ACK if ack else pk.SYN
        self._flight: dict[tuple[bytes, int], Try] = {}
        self._addrs: dict[str, tuple[bytes, bytes] | None] = {}
        self._templates: dict[bytes, pk.ProbeTemplate] = {}
        self._answers: dict[tuple[str, int | None], Answer] = {}
        # valid answers that came after their try was given up, by (address, port): the
        # port's next try takes it instead of probing again (a stalled path, a busy host)
        self._late_answers: dict[tuple[bytes, int], Answer] = {}
        self._senders: dict[int, RawSender] = {}
        self._readers: list[socket.socket] = []
        self._receivers: dict[int, RawReceiver] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._sink: ProbeSink | None = None
        self._expiring: Try | None = None
        self._late: Answer | None = None
        self._drained = 0.0

    def open(self, loop: asyncio.AbstractEventLoop, sink: ProbeSink) -> None:
        self._loop, self._sink = loop, sink
        for family, icmp in ((4, socket.IPPROTO_ICMP), (6, socket.IPPROTO_ICMPV6)):
            try:
                tcp = open_raw(family, socket.IPPROTO_TCP)
            except OSError as err:
                if family == 6 and err.errno in (errno.EAFNOSUPPORT, errno.EPROTONOSUPPORT):
                    continue  # no IPv6 here: its targets time out
                raise
            self._senders[family] = RawSender(tcp, family)
            if family == 4:
                self._receivers[tcp.fileno()] = RawReceiver(tcp)
            err_sock = open_raw(family, icmp)
            self._readers += [tcp, err_sock]
            if family == 4:
                loop.add_reader(tcp.fileno(), self._read_tcp4, tcp)
                loop.add_reader(err_sock.fileno(), self._read_icmp4, err_sock)
            else:
                loop.add_reader(tcp.fileno(), self._read_tcp6, tcp)
                loop.add_reader(err_sock.fileno(), self._read_icmp6, err_sock)

    # ------------------------------------------------------------ sending

    def _addresses(self, tr: Try) -> tuple[bytes, bytes] | None:
        """(destination, source) of a try's target, packed; ``None`` without a route."""
        address = tr.target.address
        if address in self._addrs:
            return self._addrs[address]
        af = socket.AF_INET6 if tr.target.family == 6 else socket.AF_INET
        try:
            found: tuple[bytes, bytes] | None = (
                socket.inet_pton(af, address.split("%", 1)[0]),
                source_address(address, tr.target.family),
            )
        except OSError:
            found = None
        if len(self._addrs) > 65_536:
            self._addrs.clear()
        self._addrs[address] = found
        return found

    def send(self, tries: Sequence[Try]) -> int:
        sink = self._sink
        assert sink is not None
        key, flags, flight = self._key, self._flags, self._flight
        now = time.monotonic()
        # runs of consecutive tries of one family go out in one sendmmsg; a try without a
        # route (or family) is answered in its place in the order
        i, n = 0, len(tries)
        while i < n:
            tr = tries[i]
            family = tr.target.family
            addrs = self._addresses(tr)
            sender = self._senders.get(family)
            if addrs is None or sender is None:
                tr.sent = now
                no_route = Answer(PortState.UNREACHABLE, "net-unreach", errno.ENETUNREACH)
                sink.answered(tr, no_route, None)
                i += 1
                continue
            late = self._late_answers.pop((addrs[0], tr.port), None)
            if late is not None:  # an earlier try's answer came after all
                tr.sent = now
                sink.answered(tr, late, None)
                i += 1
                continue
            payloads: list[bytes] = []
            addresses: list[str] = []
            keys: list[tuple[bytes, int]] = []
            late_answers, templates, ack = self._late_answers, self._templates, self.ack
            ports = key.ports
            j = i
            while j < n:
                tr = tries[j]
                target = tr.target
                if target.family != family:
                    break
                addrs = self._addrs.get(target.address) or self._addresses(tr)
                if addrs is None or (late_answers and (addrs[0], tr.port) in late_answers):
                    break
                dst, src = addrs
                template = templates.get(dst)
                if template is None:
                    if len(templates) > 65_536:
                        templates.clear()
                    template = templates[dst] = pk.ProbeTemplate(src, dst, flags, key.dest(dst))
                port = tr.port
                # FlowKey.fields, inlined (the scan's hottest line)
                h = template.key ^ ports[port]
                sport = _BASE + ((h >> 32) + tr.tries) % _NPORTS
                seq = (h + sport) & 0xFFFF_FFFF
                payloads.append(template.probe(sport, port, seq, seq if ack else 0))
                addresses.append(target.address)
                tr.handle = (sport, seq)  # what a reply to this very try must carry
                key_ = (dst, port)
                keys.append(key_)
                tr.sent = now
                flight[key_] = tr
                j += 1
            sent, err = sender.send(payloads, addresses)
            if sent < len(payloads):
                for k in keys[sent:]:
                    flight.pop(k, None)
                sink.short_of(err or errno.ENOBUFS, None)
                return i + sent
            i = j
        return n

    def expire(self, attempt: Try) -> Answer | None:
        addrs = self._addrs.get(attempt.target.address)
        if addrs is not None:
            self._flight.pop((addrs[0], attempt.port), None)
        now = time.monotonic()
        if now - self._drained < 0.002:
            return None
        # the answer may be waiting behind a busy loop: read the sockets once more
        self._drained = now
        self._expiring, self._late = attempt, None
        if addrs is not None:
            self._flight[(addrs[0], attempt.port)] = attempt
        try:
            self.drain()
        finally:
            if addrs is not None:
                self._flight.pop((addrs[0], attempt.port), None)
            self._expiring = None
        late, self._late = self._late, None
        return late

    def drain(self) -> None:
        """Read every reply waiting on the receivers now."""
        for sock in list(self._readers):
            if sock.fileno() < 0:
                continue
            if sock.family == socket.AF_INET:
                if sock.proto == socket.IPPROTO_TCP:
                    self._read_tcp4(sock)
                else:
                    self._read_icmp4(sock)
            elif sock.proto == socket.IPPROTO_TCP:
                self._read_tcp6(sock)
            else:
                self._read_icmp6(sock)

    def close(self) -> None:
        loop = self._loop
        for sock in self._readers:
            if sock.fileno() >= 0:
                if loop is not None and not loop.is_closed():
                    loop.remove_reader(sock.fileno())
                sock.close()
        self._readers.clear()
        self._receivers.clear()
        self._senders.clear()
        self._flight.clear()
        self._late_answers.clear()

    # ------------------------------------------------------------ receiving

    def _deliver(self, tr: Try, tries: int, answer: Answer, now: float) -> None:
        if tr is self._expiring:
            self._late = answer
            return
        sink = self._sink
        assert sink is not None
        # Karn: an answer to an earlier try says nothing about this try's RTT
        sink.answered(tr, answer, now - tr.sent if tries == tr.tries else None)

    def _reply(
        self, src: bytes, sport: int, dport: int, seq: int, ack: int, flags: int,
        ttl: int | None, now: float,
    ) -> None:  # fmt: skip
        """A TCP segment to one of our source ports: the answer of the try it matches."""
        tr = self._flight.get((src, sport))
        if self.ack:
            if not flags & pk.RST:
                self.stray += 1
                return
            echoed, kind = seq, "unfiltered"
        else:
            if flags & _SYN_ACK == _SYN_ACK:
                kind = "open"
            elif flags & pk.RST:
                kind = "closed"
            else:
                self.stray += 1
                return
            echoed = (ack - 1) & 0xFFFF_FFFF
        # the try in flight (fields kept at send: no hash), else an earlier try's (hashed)
        tries = (
            tr.tries
            if tr is not None and tr.handle == (dport, echoed)
            else self._key.which_try(src, sport, dport, echoed)
        )
        if tries is None:
            self.stray += 1
            return
        answer = self._answers.get((kind, ttl))
        if answer is None:  # one Answer per (state, TTL): replies share them
            state, reason = _KINDS[kind]
            answer = self._answers[(kind, ttl)] = Answer(state, reason, None, None, ttl)
        if tr is None:  # its try was given up: the port's next try takes it
            self._keep_late((src, sport), answer)
            return
        del self._flight[(src, sport)]
        self._deliver(tr, tries, answer, now)

    def _keep_late(self, key: tuple[bytes, int], answer: Answer) -> None:
        if len(self._late_answers) > 65_536:
            self._late_answers.clear()
        self._late_answers[key] = answer

    def _icmp(self, err: pk.IcmpError, v6: bool) -> None:
        if err.proto != 6 or err.seq is None:
            return
        unreach = 1 if v6 else 3
        if err.icmp_type != unreach:
            return  # time exceeded, source quench ...: not an answer about the port
        tr = self._flight.get((err.dst, err.dport))
        tries = self._key.which_try(err.dst, err.dport, err.sport, err.seq)
        if tries is None:
            self.stray += 1
            return
        names = ICMP6_UNREACH if v6 else ICMP4_UNREACH
        reason = names.get(err.code, f"icmp{'6' if v6 else ''}-{err.icmp_type}-{err.code}")
        answer = Answer(PortState.UNREACHABLE, reason, _HOST_ERRNO.get(reason), None, err.ttl)
        if tr is None:  # its try was given up: the port's next try takes it
            self._keep_late((err.dst, err.dport), answer)
            return
        del self._flight[(err.dst, err.dport)]
        self._deliver(tr, tries, answer, time.monotonic())

    def _read_tcp4(self, sock: socket.socket) -> None:
        now = time.monotonic()
        rx = self._receivers.get(sock.fileno())
        if rx is None:
            return
        head, reply, base, size = _TCP_HEAD.unpack_from, self._reply, _BASE, rx.size
        for _ in range(_READ_BATCH // rx.slots):
            try:
                data, lengths = rx.read()
            except OSError:
                return
            # the hot path: IPv4 header (RFC 791) and TCP ports/numbers decoded in place
            at = 0
            for length in lengths:
                if length >= 40 and data[at + 9] == 6:
                    ihl = (data[at] & 0x0F) * 4
                    sport, dport, seq, ack = head(data, at + ihl)
                    if dport >= base:
                        reply(data[at + 12 : at + 16], sport, dport, seq, ack,
                              data[at + ihl + 13], data[at + 8], now)  # fmt: skip
                at += size
            if len(lengths) < rx.slots:
                return

    def _read_tcp6(self, sock: socket.socket) -> None:
        now = time.monotonic()
        for _ in range(_READ_BATCH):
            try:
                data, anc, _flags, addr = sock.recvmsg(128, 64)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return
            src = socket.inet_pton(socket.AF_INET6, addr[0].split("%", 1)[0])
            r = pk.parse_tcp6(data, src, hop_limit(anc))
            if r is not None and r.dport >= pk.SOURCE_PORT_BASE:
                self._reply(r.src, r.sport, r.dport, r.seq, r.ack, r.flags, r.ttl, now)

    def _read_icmp4(self, sock: socket.socket) -> None:
        for _ in range(_READ_BATCH):
            try:
                packet = sock.recv(1024)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return
            err = pk.parse_icmp4(packet)
            if err is not None:
                self._icmp(err, v6=False)

    def _read_icmp6(self, sock: socket.socket) -> None:
        for _ in range(_READ_BATCH):
            try:
                data, anc, _flags, addr = sock.recvmsg(1024, 64)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return
            sender = socket.inet_pton(socket.AF_INET6, addr[0].split("%", 1)[0])
            err = pk.parse_icmp6(data, sender, hop_limit(anc))
            if err is not None:
                self._icmp(err, v6=True)
