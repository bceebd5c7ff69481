"""The UDP prober: protocol payloads, shared sockets, pacing to the target's ICMP rate limit.

A UDP port answers only a datagram that means something to its service (``_payloads``);
``closed`` is told apart from silence by the ICMP port unreachable the target sends back.
Linux sends those at a limited rate: ``icmp_ratelimit`` (1,000 ms) per destination, a
token bucket of 6 (``inet_peer_xrlim_allow``, ``XRLIM_BURST_FACTOR``), and
``icmp_msgs_per_sec`` (1,000) over all destinations. A probe of a closed port sent while
the target's bucket is empty gets no answer, and a scanner that reads that silence as
``open|filtered`` is wrong (nmap's exponential back-off still misses some; masscan and
naabu send once). So:

* Sockets: one unconnected datagram socket per (family, source address), with
  ``IP_RECVERR``/``IPV6_RECVERR``: a service's reply arrives from (address, port); an ICMP
  error is queued on the socket's error queue with the destination it is about as the
  message's address (ip(7), ``MSG_ERRQUEUE``), its type/code in ``sock_extended_err`` and
  its TTL (``IP_RECVTTL``). No privilege is needed and no descriptor is held per try.
* The first try of every port goes out at once (the scheduler's window and rate). Each
  (source, target) pair has a model of the target's bucket (``_Pacer``): it starts empty
  and refills at 1 per second up to 6 (Linux's defaults); ICMP errors that come back take
  tokens; more errors than the model allows raise its rate to the one measured (a host
  without a limit is recognized by its first sweep). The target's global limit is each
  source's cap: 900 per second (a margin below ``icmp_msgs_per_sec``, whose credits are
  taken 0-2 at random) shared by the sources, never raised by what it measures (errors come
  faster than that for a while: a burst of 50, 0-2 credits each). A retry goes out only
  when the model holds a token, which it reserves; the reservation is returned when no
  error came within the ICMP wait (4 measured ICMP round trips, after reading the socket:
  an error queued behind a busy loop is no refund) or a service answered. An error that
  comes after its token was returned takes the model below empty.
* The model can still be wrong (other traffic spent the target's budget, an error was
  lost), and a closed port's last try would then be silent. So a final try is checked: the
  datagram sent right after it from the same source (the next held retry, or a canary to
  a port of the target already found closed) must bring a port unreachable, which proves
  the target had a token when the final try came. If it does not, the final try does not
  count and is sent again (twice per port at most); a port still unproven is
  ``undecided`` (reason ``icmp-rate-limit``), never ``open|filtered``. So a port is
  ``open|filtered`` only after a try the target could have answered with an error, and
  the scan takes about the time the rate limit sets: (closed ports - 6) / rate.
* ``sendto`` is not fooled by the socket's pending error (``_send_past_pending_errors``).
* ``source_addresses``: each source has its own bucket at the target, so N sources send
  retries N times as fast, up to the target's global limit; with up to 16 sources a retry
  goes from the one whose model has a token first, with more in turn.
* Answers: a datagram back is ``open`` (``udp-response``, the reply in ``banner``, at most
  512 bytes); ICMP port unreachable ``closed`` (``port-unreach``); another ICMP unreachable
  ``unreachable`` with its code (a scan reports ``filtered``, as nmap); silence after every
  try ``open|filtered`` (``no-response``). Answers carry the ICMP error's TTL.
"""

from __future__ import annotations

import asyncio
import errno
import os
import socket
import struct
import time
from collections import deque
from collections.abc import Sequence

from portscope.models import PortState, Proto
from portscope.scanner._errors import (
    ICMP4_UNREACH,
    ICMP6_UNREACH,
    IP_RECVERR,
    IPV6_RECVERR,
    MSG_ERRQUEUE,
    SO_EE_ORIGIN_ICMP,
    SO_EE_ORIGIN_ICMP6,
)
from portscope.scanner._payloads import (
    PAYLOADS,
    dns_query,
    ntp_request,
    payloads,
    snmp_get_request,
)
from portscope.scanner._schedule import Answer, ProbeSink, Try

__all__ = ["PAYLOADS", "UdpProber", "dns_query", "ntp_request", "snmp_get_request"]

_EXTENDED_ERR = struct.Struct("=IBBBBII")  # struct sock_extended_err, linux/errqueue.h
IP_RECVTTL = getattr(socket, "IP_RECVTTL", 12)
IP_TTL = getattr(socket, "IP_TTL", 2)
IPV6_RECVHOPLIMIT = getattr(socket, "IPV6_RECVHOPLIMIT", 51)
IPV6_HOPLIMIT = getattr(socket, "IPV6_HOPLIMIT", 52)
_HOLD_S = 3600.0  # a held try's provisional send time lies this far ahead (never expires)
_BURST = 6.0  # Linux: XRLIM_BURST_FACTOR
_RATE = 1.0  # Linux: icmp_ratelimit 1000 ms
# Linux: icmp_msgs_per_sec 1000, icmp_msgs_burst 50, per network namespace; each error takes
# 0-2 credits at random (icmp_global_consume, mean 1), so the model keeps a margin
_GLOBAL_RATE = 900.0
_GLOBAL_BURST = 30.0
# the global model's rate is never raised by what it measures (margin 0): each error takes
# 0-2 credits at random and Linux's burst (50) is above the model's, so errors came faster
# than icmp_msgs_per_sec for a while and the measured rate rose to 1,600-1,700 per second;
# final tries then went out when the target had no credit left and a check passed anyway
# (a refill step of 20 ms between them): closed ports called open|filtered (1-7 per
# 10,000-65,535 ports from 1,022 sources). A target with a higher limit costs time, never
# a wrong answer.
_GLOBAL_MARGIN = 0.0
_GLOBAL_SLACK = 22.0  # see UdpProber._slack
_SCAN_SOURCES = 16  # up to this many sources a retry takes the one with the most tokens
_CHECKS = 2  # port unreachables right after a final try that prove it had a token
_VOID_MAX = 2  # tries of one port found inconclusive and sent again, at most
_READ_BATCH = 1024
_SEND_ATTEMPTS = 16  # sendto calls per datagram at most (pending ICMP errors in between)
_SAME_ERROR_IS_LOCAL = 3  # the same errno this often in a row: the route's own error
_HOST_ERRNO = {"host-unreach": errno.EHOSTUNREACH, "net-unreach": errno.ENETUNREACH}


def _send_past_pending_errors(sock: socket.socket, payload: bytes, to: tuple[object, ...]) -> None:
    """``sendto`` that is not fooled by ICMP errors of earlier probes.

    With ``IP_RECVERR`` every ICMP error also sets the socket's pending error (``sk_err``,
    ``__udp4_lib_err``/``__udp6_lib_err``), and the next ``sendto`` fails with it once
    (``sock_alloc_send_skb``), without sending: ``ECONNREFUSED`` for a port unreachable,
    ``EHOSTUNREACH``/``ENETUNREACH`` ... for the others. The error's details are on the
    error queue, read with the try it is about; the datagram is sent again. Errors keep
    arriving while a scan sends (one per closed port), so a second or third ``sendto`` may
    meet another one: under CPU load one retry was not enough, and a port was reported
    ``filtered`` with reason ``local-error`` (``ECONNREFUSED``). A pending error is
    consumed by the call that returns it, so only an error that repeats is the route's own
    (no route: ``ENETUNREACH`` every time); ``ECONNREFUSED`` never is.

    Raises:
        OSError: the local error of this send (``EAGAIN``, ``ENOBUFS``, no route ...).
    """
    last = 0
    repeats = 0
    for _ in range(_SEND_ATTEMPTS):
        try:
            sock.sendto(payload, to)
            return
        except (BlockingIOError, InterruptedError):
            raise
        except OSError as exc:
            code = exc.errno or 0
            if code in (errno.ENOBUFS, errno.ENOMEM, errno.EMSGSIZE, errno.EINVAL):
                raise
            repeats = repeats + 1 if code == last else 1
            last = code
            if code != errno.ECONNREFUSED and repeats >= _SAME_ERROR_IS_LOCAL:
                raise
    raise OSError(last, os.strerror(last))


class _Bucket:
    """A model of one ICMP token bucket of the target (``icmp.c``).

    Starts empty (an earlier scan may have drained it), refills at ``rate`` per second up
    to ``burst``; every ICMP error that comes back took a token. More errors than the model
    allows mean the target's rate is higher: it becomes the rate measured (a target without
    a limit is recognized by its first sweep; an IPv6 target gives a source behind a /64
    route 4 per second, ``icmpv6_xrlim_allow``). An error that comes after its try's token
    was given back (``late``) may take the model below 0: the target really is that far
    behind. Tries and canaries sent hold a token (``reserved``) until their error comes or
    the ICMP wait passes.
    """

    __slots__ = ("burst", "debt", "first", "icmps", "margin", "rate", "reserved", "stamp",
                 "tokens")  # fmt: skip

    def __init__(
        self, now: float, rate: float, burst: float, margin: float = 1.0, debt: bool = False
    ) -> None:
        self.debt = debt  # errors beyond the model take it below empty (the global one)
        self.tokens = 0.0
        self.stamp = now
        self.first = now
        self.rate = rate
        self.burst = burst
        self.margin = margin  # the share of a measured rate the model uses
        self.icmps = 0
        self.reserved: set[object] = set()

    def available(self, now: float) -> float:
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        return self.tokens - len(self.reserved)

    def wait(self, now: float, need: float) -> float:
        """Seconds until ``need`` tokens are available."""
        return max(0.0, (need - self.available(now)) / self.rate)

    def slower(self, now: float) -> None:
        """The target had fewer tokens than the model (a final try's check failed: other
        traffic spends its budget): empty the model, lower its rate by a quarter (at
        least 0.05 per second) and measure again from now."""
        self.available(now)
        self.tokens = min(self.tokens, 0.0)
        self.rate = max(0.05, self.rate * 0.75)
        self.first, self.icmps = now, 0

    def icmp(self, now: float, *, late: bool = False) -> None:
        """An ICMP error came from the target: it spent a token."""
        self.available(now)
        floor = -self.burst if late or self.debt else 0.0
        self.tokens = max(floor, self.tokens - 1.0)
        self.icmps += 1
        elapsed = now - self.first
        allowed = self.burst + self.rate * elapsed + 1.0
        if self.icmps > allowed and elapsed > 0:
            self.rate = max(self.rate, self.margin * (self.icmps - self.burst) / elapsed)


class _Global(_Bucket):
    """The target's budget over all sources (``icmp_msgs_per_sec``); pacers that wait for
    it queue here, so a pool of 1,000 sources does not wake 1,000 timers per token."""

    __slots__ = ("timer", "waiting")

    def __init__(self, now: float) -> None:
        super().__init__(now, _GLOBAL_RATE, _GLOBAL_BURST, _GLOBAL_MARGIN, debt=True)
        self.waiting: deque[_Pacer] = deque()
        self.timer: asyncio.TimerHandle | None = None


class _Pacer:
    """One source's model of one target's ICMP error budget: its own bucket (per source,
    ``icmp_ratelimit``) and the target's global one, which every source shares."""

    __slots__ = ("glob", "held", "own", "sock", "timer", "waiting")

    def __init__(self, now: float, sock: socket.socket, glob: _Global) -> None:
        self.own = _Bucket(now, _RATE, _BURST)
        self.glob = glob
        self.sock = sock
        self.held: deque[Try] = deque()
        self.timer: asyncio.TimerHandle | None = None
        self.waiting = False  # queued in ``glob.waiting``

    def available(self, now: float) -> float:
        return min(self.own.available(now), self.glob.available(now))

    def reserve(self, item: object) -> None:
        self.own.reserved.add(item)
        self.glob.reserved.add(item)

    def unreserve(self, item: object) -> bool:
        """Give the item's token back; False when it held none."""
        held = item in self.own.reserved
        self.own.reserved.discard(item)
        self.glob.reserved.discard(item)
        return held

    def icmp(self, now: float, *, late: bool = False) -> None:
        self.own.icmp(now, late=late)
        self.glob.icmp(now, late=late)


class _Check:
    """A datagram sent right after final tries to check the target's budget (see
    ``UdpProber._pump``): another held retry (``real``) or a canary to a port known
    closed, keyed (address, port) and, for a canary, its socket (``fd``)."""

    __slots__ = ("answers", "fd", "key", "real", "sent")

    def __init__(self, key: tuple[str, int], *, real: bool, fd: int = -1) -> None:
        self.key = key
        self.real = real
        self.fd = fd  # sources may send canaries to the same closed port at once
        self.sent = 1  # datagrams (a canary may be sent twice: one closed port known)
        self.answers = 0


class UdpProber:
    """UDP probes; plugs into ``_schedule.Scheduler`` (see ``_schedule.Prober``).

    Args:
        timeout_s: a fixed per-try timeout in seconds (a service may take longer to answer
            than the network's RTT; a scan uses 1 s), or ``None`` for the scan's.
        retries: datagrams sent again after silence, or ``None`` for the scan's.
        icmp_details: kept for the scheduler's options; the error queue always gives the
            ICMP type/code here.
        source_addresses: local addresses to send from (round-robin by budget); ``()`` for
            the kernel's choice.
        pace: pace retries to the target's ICMP rate limit (see the module docstring);
            ``False`` sends every try at once (loopback, or a target known to have none).

    Attributes:
        stray: datagrams and ICMP errors that matched no try in flight.
    """

    proto = Proto.UDP
    fds_per_try = 0
    paced = True  # its retries answer late by design: no loss signal for the window
    silent = Answer(PortState.OPEN_FILTERED, "no-response")

    def __init__(
        self,
        *,
        timeout_s: float | None = None,
        retries: int | None = None,
        icmp_details: bool = True,
        source_addresses: Sequence[str] = (),
        pace: bool = True,
    ) -> None:
        self.timeout_s = timeout_s
        self.retries = retries
        self.stray = 0
        self._icmp = icmp_details
        self._pace = pace
        self._sources = tuple(source_addresses)
        self._by_family: dict[int, list[str]] = {}
        self._held_count = 0
        self._socks: dict[tuple[int, str], socket.socket] = {}
        self._flight: dict[tuple[str, int], Try] = {}
        self._pacers: dict[tuple[int, str, str], _Pacer] = {}
        self._globals: dict[tuple[int, str], _Global] = {}
        self._via: dict[object, _Pacer] = {}  # tries and canaries sent, by their pacer
        self._refunded: set[object] = set()
        # the budget check of a final try: a datagram to a port known closed, sent with it
        self._closed_known: dict[tuple[int, str], deque[int]] = {}
        self._canaries: dict[tuple[int, str, int], _Check] = {}  # by (fd, address, port)
        self._vouchers: dict[tuple[str, int], _Check] = {}  # held retries checking some
        self._vouched: dict[Try, list[_Check]] = {}
        self._voids: dict[tuple[str, int], int] = {}
        self.voided = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._sink: ProbeSink | None = None
        self._icmp_rtt = 0.05
        self._turn = 0
        self._expiring: Try | None = None
        self._late: Answer | None = None

    def open(self, loop: asyncio.AbstractEventLoop, sink: ProbeSink) -> None:
        self._loop, self._sink = loop, sink

    # ------------------------------------------------------------ sockets

    def _sources_of(self, family: int) -> list[str]:
        own = self._by_family.get(family)
        if own is None:
            own = [a for a in self._sources if (":" in a) == (family == 6)] or [""]
            self._by_family[family] = own
        return own

    def _socket(self, family: int, source: str) -> socket.socket:
        sock = self._socks.get((family, source))
        if sock is not None:
            return sock
        af = socket.AF_INET6 if family == 6 else socket.AF_INET
        sock = socket.socket(af, socket.SOCK_DGRAM)
        try:
            sock.setblocking(False)
            sock.bind((source, 0))
            if family == 6:
                sock.setsockopt(socket.IPPROTO_IPV6, IPV6_RECVERR, 1)
                sock.setsockopt(socket.IPPROTO_IPV6, IPV6_RECVHOPLIMIT, 1)
            else:
                sock.setsockopt(socket.IPPROTO_IP, IP_RECVERR, 1)
                sock.setsockopt(socket.IPPROTO_IP, IP_RECVTTL, 1)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        except OSError:
            sock.close()
            raise
        self._socks[(family, source)] = sock
        assert self._loop is not None
        self._loop.add_reader(sock.fileno(), self._read, sock)
        return sock

    # ------------------------------------------------------------ sending

    def _pacer_of(self, family: int, source: str, address: str, now: float) -> _Pacer:
        key = (family, source, address)
        pacer = self._pacers.get(key)
        if pacer is None:
            glob = self._globals.get((family, address))
            if glob is None:
                glob = self._globals[(family, address)] = _Global(now)
            pacer = self._pacers[key] = _Pacer(now, self._socket(family, source), glob)
        return pacer

    def _pacer(self, tr: Try, now: float) -> tuple[str, _Pacer]:
        """The source to send ``tr`` from and its model of the target: the one with the
        most tokens available (a first try: the next in turn)."""
        family, address = tr.target.family, tr.target.address
        sources = self._sources_of(family)
        if len(sources) > _SCAN_SOURCES or (tr.tries == 0 and len(sources) > 1):
            # the sweep, and retries over a large pool: sources in turn
            self._turn += 1
            source = sources[self._turn % len(sources)]
            return source, self._pacer_of(family, source, address, now)
        best: tuple[str, _Pacer] | None = None
        best_avail = -1e9
        for source in sources:
            pacer = self._pacer_of(family, source, address, now)
            avail = pacer.available(now) - len(pacer.held)
            if avail > best_avail:
                best, best_avail = (source, pacer), avail
        assert best is not None
        return best

    def send(self, tries: Sequence[Try]) -> int:
        sink = self._sink
        assert sink is not None
        now = time.monotonic()
        for i, tr in enumerate(tries):
            source, pacer = self._pacer(tr, now)
            self._flight[(tr.target.address, tr.port)] = tr
            if tr.tries == 0 or not self._pace:
                tr.sent = now
                if not self._transmit(tr, source, pacer, reserve=False):
                    return i
                continue
            # a retry waits for a token of the target's ICMP budget; final tries first (they
            # wait a whole timeout for silence, closed ports' errors come at once)
            tr.sent = now + _HOLD_S
            tr.handle = source
            if self._is_final(tr):
                pacer.held.appendleft(tr)
            else:
                pacer.held.append(tr)
            self._held_count += 1
            self._pump(pacer, now)
        return len(tries)

    def _transmit(self, tr: Try, source: str, pacer: _Pacer, *, reserve: bool) -> bool:
        """Send the try's payload; False on a local shortage (reported to the sink)."""
        sink = self._sink
        assert sink is not None
        sock = self._socket(tr.target.family, source)
        options = payloads(tr.port)
        payload = options[tr.tries % len(options)]
        try:
            _send_past_pending_errors(sock, payload, tr.sockaddr())
        except (BlockingIOError, InterruptedError):
            self._flight.pop((tr.target.address, tr.port), None)
            sink.short_of(errno.EAGAIN, None)
            return False
        except OSError as exc:
            code = exc.errno or 0
            self._flight.pop((tr.target.address, tr.port), None)
            if code in (errno.ENOBUFS, errno.ENOMEM, errno.ECONNREFUSED):
                # ECONNREFUSED: errors of earlier probes kept coming; send it again later
                sink.short_of(errno.EAGAIN if code == errno.ECONNREFUSED else code, None)
                return False
            reason = {errno.ENETUNREACH: "net-unreach", errno.EHOSTUNREACH: "host-unreach"}
            state = PortState.UNREACHABLE
            sink.answered(tr, Answer(state, reason.get(code, "local-error"), code), None)
            return True
        self._via[tr] = pacer
        if reserve:
            pacer.reserve(tr)
            assert self._loop is not None
            # no error within the ICMP wait: the target had a token and did not spend it
            self._loop.call_later(max(0.02, 4 * self._icmp_rtt), self._refund, tr)
        return True

    def _is_final(self, tr: Try) -> bool:
        return self.retries is not None and tr.tries >= self.retries

    def _send_canary(
        self, family: int, address: str, pacer: _Pacer, mine: list[_Check]
    ) -> _Check | None:
        """Send a datagram to a port of the target known closed, from ``pacer``'s source
        (after final tries no held retry could follow, see ``_pump``); ``None`` when none
        could be sent."""
        known = self._closed_known.get((family, address), deque())
        fd = pacer.sock.fileno()
        for _ in range(len(known)):
            port = known[0]
            known.rotate(-1)
            key = (address, port)
            again = self._canaries.get((fd, *key))
            if key in self._flight or (again is not None and again not in mine):
                continue
            to = (address, port, 0, 0) if family == 6 else key
            try:
                _send_past_pending_errors(pacer.sock, payloads(port)[0], to)
            except OSError:
                return None
            if again is not None:  # the same closed port once more: counted by datagrams
                again.sent += 1
                return again
            check = self._canaries[(fd, *key)] = _Check(key, real=False, fd=fd)
            pacer.reserve(check)
            self._via[check] = pacer
            return check
        return None

    def _pump(self, pacer: _Pacer, now: float) -> None:
        """Send held retries while the model has tokens; wake up when the next is due."""
        if pacer.timer is not None:
            pacer.timer.cancel()
            pacer.timer = None
        # A final try is checked by the 2 datagrams sent right after it from the same
        # source (the next held retries, or canaries to ports known closed): a port
        # unreachable to both proves the target had a token when the final try came (its
        # buckets gain far less than one token in the microseconds between, so had it
        # none, at most one of the two could be answered), so the final try's silence is
        # the port's own. A final try takes 1 + _CHECKS tokens for this.
        unchecked: list[Try] = []
        while pacer.held and self._ready(pacer, pacer.held[0], now):
            tr = pacer.held.popleft()
            self._held_count -= 1
            tr.sent = now
            tr.deadline = now + (self.timeout_s or 1.0)
            source = tr.handle if isinstance(tr.handle, str) else ""
            tr.handle = None
            if not self._transmit(tr, source, pacer, reserve=True):
                pacer.held.appendleft(tr)
                self._held_count += 1
                tr.sent = now + _HOLD_S
                break
            key = (tr.target.address, tr.port)
            if unchecked and key in self._flight:
                self._add_check(unchecked, _Check(key, real=True))
            if self._need(tr) > 1.0:
                self._vouched[tr] = []
                unchecked.append(tr)
        mine: list[_Check] = []
        while unchecked:
            first = unchecked[0]
            check = self._send_canary(first.target.family, first.target.address, pacer, mine)
            if check is None:
                break  # left with fewer checks: their silence will not count
            mine.append(check)
            self._add_check(unchecked, check)
        if pacer.held and self._loop is not None:
            need = self._need(pacer.held[0])
            own_wait = pacer.own.wait(now, need)
            if own_wait > 0 or pacer.glob.wait(now, need + self._slack(pacer.held[0])) <= 0:
                pacer.timer = self._loop.call_later(max(0.005, own_wait), self._on_timer, pacer)
            elif not pacer.waiting:  # its own tokens are there, the target's global are not
                pacer.waiting = True
                pacer.glob.waiting.append(pacer)
                self._wake_global(pacer.glob, now)

    def _add_check(self, unchecked: list[Try], check: _Check) -> None:
        """``check`` was sent after the final tries ``unchecked``; drop those with enough."""
        if check.real:
            self._vouchers[check.key] = check
        for tr in list(unchecked):
            checks = self._vouched[tr]
            if check not in checks:
                checks.append(check)
            if sum(c.sent for c in checks) >= _CHECKS:
                unchecked.remove(tr)

    def _wake_global(self, glob: _Global, now: float) -> None:
        if glob.timer is None and glob.waiting and self._loop is not None:
            wait = max(0.005, glob.wait(now, 1.0 + _CHECKS + _GLOBAL_SLACK))
            glob.timer = self._loop.call_later(wait, self._on_global, glob)

    def _on_global(self, glob: _Global) -> None:
        """Tokens of the target's global budget: the pacers waiting for it, in turn.

        First come, first served: the turn stops at the first pacer whose next try the
        budget cannot pay for (a checked final try needs 1 + ``_CHECKS`` + the slack), and
        the pacers behind it wait for the next wake. Pumping every waiting pacer instead
        cost one ``_pump`` per source at each wake whatever was sent: with a pool of 1,022
        sources, all with retries held, the scan spent its CPU there and fell behind the
        target's budget (a full-range scan never finished). A wake now costs the pumps of
        the pacers that send, plus one.
        """
        glob.timer = None
        now = time.monotonic()
        waiting = glob.waiting
        for _ in range(len(waiting)):  # each once: a pump may queue its pacer again
            pacer = waiting[0]
            if pacer.held:
                head = pacer.held[0]
                if glob.available(now) < self._need(head) + self._slack(head):
                    break
            waiting.popleft()
            pacer.waiting = False
            if pacer.held:
                self._pump(pacer, now)
        self._wake_global(glob, now)

    def _ready(self, pacer: _Pacer, tr: Try, now: float) -> bool:
        need = self._need(tr)
        return pacer.own.available(now) >= need and pacer.glob.available(now) >= need + self._slack(
            tr
        )

    def _slack(self, tr: Try) -> float:
        """Global tokens a checked final try leaves unused: Linux refills the global
        budget in steps of 20 ms (``icmp_global_allow``), up to 20 behind the model."""
        return _GLOBAL_SLACK if self._need(tr) > 1.0 else 0.0

    def _need(self, tr: Try) -> float:
        """Tokens a held try takes: 1, or 1 + _CHECKS for a final try that can be checked
        (a closed port of its target is known)."""
        known = self._closed_known.get((tr.target.family, tr.target.address))
        return 1.0 + _CHECKS if known and self._is_final(tr) else 1.0

    def _on_timer(self, pacer: _Pacer) -> None:
        pacer.timer = None
        self._pump(pacer, time.monotonic())

    def _refund(self, tr: Try) -> None:
        pacer = self._via.get(tr)
        if pacer is None:
            # answered before its ICMP wait passed: the checks sent after it still hold
            # their tokens, and a check whose error the target did not send would hold them
            # for the rest of the scan (6 such leaks keep the global model below the 25
            # tokens a checked final try needs: the scan never ended)
            for check in self._vouched.pop(tr, ()):
                owner = self._via.get(check)
                if owner is not None and owner.unreserve(check):
                    self._refunded.add(check)
            return
        # an error already queued behind a busy loop is not a refund: read first
        self._read(pacer.sock)
        for item in (tr, *self._vouched.get(tr, ())):
            if pacer.unreserve(item):
                self._refunded.add(item)
        if pacer.held:
            self._pump(pacer, time.monotonic())

    def _release(self, tr: Try | _Check) -> _Pacer | None:
        """Forget a try or canary (answered or expired); returns its pacer."""
        pacer = self._via.pop(tr, None)
        if pacer is not None:
            pacer.unreserve(tr)
        self._refunded.discard(tr)
        return pacer

    def expire(self, attempt: Try) -> Answer | None:
        # a held try is never expired (its provisional send time lies an hour ahead)
        self._flight.pop((attempt.target.address, attempt.port), None)
        self._expiring, self._late = attempt, None
        self._flight[(attempt.target.address, attempt.port)] = attempt
        sent_by = self._via.get(attempt)
        try:
            # the socket it left from (with a pool of 1,000 sources, not all of them)
            for sock in [sent_by.sock] if sent_by else list(self._socks.values()):
                self._read(sock)
        finally:
            self._flight.pop((attempt.target.address, attempt.port), None)
            self._expiring = None
        pacer = self._release(attempt)
        late, self._late = self._late, None
        checks = self._vouched.pop(attempt, None)
        if checks is not None:
            for check in checks:
                if check.real and self._vouchers.get(check.key) is check:
                    del self._vouchers[check.key]
                elif self._canaries.get((check.fd, *check.key)) is check:
                    del self._canaries[(check.fd, *check.key)]
                self._release(check)
            if late is None and sum(min(c.answers, c.sent) for c in checks) < _CHECKS:
                if pacer is not None:
                    pacer.own.slower(time.monotonic())
                late = self._inconclusive(attempt)
        if pacer is not None and pacer.held:
            self._pump(pacer, time.monotonic())
        return late

    def _inconclusive(self, attempt: Try) -> Answer | None:
        """The final try was silent and so was its canary: the target had no token (the
        model was wrong: other traffic took the budget, an error was lost), so the silence
        says nothing about the port. The try does not count (``attempt.tries`` goes back
        one, so the scheduler sends it again), ``_VOID_MAX`` times per port; then the port
        is ``undecided``, never ``open|filtered``."""
        key = (attempt.target.address, attempt.port)
        voids = self._voids.get(key, 0)
        if voids >= _VOID_MAX:
            return Answer(PortState.UNDECIDED, "icmp-rate-limit")
        self._voids[key] = voids + 1
        self.voided += 1
        attempt.tries -= 1
        return None

    @property
    def held_count(self) -> int:
        """Tries held for a token: in flight for the scheduler, not on the network, so
        they take no room in its window (a full-range scan's sweep goes on meanwhile)."""
        return self._held_count

    def pending(self) -> list[Try]:
        """Tries held for a token (not sent yet)."""
        return [tr for p in self._pacers.values() for tr in p.held]

    def close(self) -> None:
        loop = self._loop
        for sock in self._socks.values():
            if loop is not None and not loop.is_closed() and sock.fileno() >= 0:
                loop.remove_reader(sock.fileno())
            sock.close()
        self._socks.clear()
        for glob in self._globals.values():
            if glob.timer is not None:
                glob.timer.cancel()
            glob.waiting.clear()
        for pacer in self._pacers.values():
            if pacer.timer is not None:
                pacer.timer.cancel()
            pacer.held.clear()
        self._held_count = 0
        self._flight.clear()
        self._via.clear()
        self._canaries.clear()
        self._vouchers.clear()
        self._vouched.clear()
        self._refunded.clear()

    # ------------------------------------------------------------ receiving

    def _deliver(
        self, key: tuple[str, int], answer: Answer, now: float, icmp: bool, fd: int = -1
    ) -> None:
        voucher = self._vouchers.pop(key, None) if self._vouchers else None
        if voucher is not None and answer.reason == "port-unreach":
            voucher.answers += 1
        tr = self._flight.pop(key, None)
        if tr is None:
            canary = self._canaries.get((fd, *key)) if icmp else None
            if canary is None:
                self.stray += 1
                return
            canary.answers += 1
            cpacer = self._via.get(canary)
            if cpacer is not None:
                cpacer.icmp(now, late=canary in self._refunded)
            if canary.answers >= canary.sent:
                del self._canaries[(fd, *key)]
                self._release(canary)
            return
        pacer = self._via.get(tr)
        if answer.reason == "port-unreach":
            known = self._closed_known.setdefault((tr.target.family, tr.target.address), deque())
            if len(known) < 8:
                known.append(tr.port)
        if tr is self._expiring:
            self._late = answer
            if icmp and pacer is not None:
                pacer.icmp(now, late=tr in self._refunded)
            return
        if pacer is None:  # held: a late answer to an earlier try decides the port
            for p in self._pacers.values():
                if tr in p.held:
                    p.held.remove(tr)
                    self._held_count -= 1
                    break
            rtt = None
        else:
            if icmp:
                pacer.icmp(now, late=tr in self._refunded)
                if tr.tries == 0:
                    self._icmp_rtt = 0.875 * self._icmp_rtt + 0.125 * (now - tr.sent)
            self._release(tr)
            rtt = now - tr.sent
        sink = self._sink
        assert sink is not None
        sink.answered(tr, answer, rtt)
        if pacer is not None and pacer.held:
            self._pump(pacer, now)

    def _read(self, sock: socket.socket) -> None:
        now = time.monotonic()
        for _ in range(_READ_BATCH):
            try:
                data, addr = sock.recvfrom(512)
            except (BlockingIOError, InterruptedError):
                break
            except OSError:
                continue  # the pending ICMP error (sk_err): its details are queued below
            key = (addr[0].split("%", 1)[0] if sock.family == socket.AF_INET6 else addr[0], addr[1])
            self._deliver(
                key, Answer(PortState.OPEN, "udp-response", None, data or None), now, False
            )
        for _ in range(_READ_BATCH):
            try:
                _data, anc, _flags, addr = sock.recvmsg(64, 512, MSG_ERRQUEUE)
            except (BlockingIOError, InterruptedError, OSError):
                break
            answer = self._icmp_answer(anc)
            if answer is not None and addr:
                address = addr[0].split("%", 1)[0] if sock.family == socket.AF_INET6 else addr[0]
                self._deliver((address, addr[1]), answer, now, True, sock.fileno())

    def _icmp_answer(self, anc: list[tuple[int, int, bytes]]) -> Answer | None:
        ttl: int | None = None
        found: tuple[int, int, int] | None = None
        for level, kind, data in anc:
            if (level, kind) in ((socket.IPPROTO_IP, IP_TTL), (socket.IPPROTO_IPV6, IPV6_HOPLIMIT)):
                ttl = int(struct.unpack("=i", data[:4])[0]) if len(data) >= 4 else None
            elif len(data) >= _EXTENDED_ERR.size:
                _errno, origin, icmp_type, code, _, _, _ = _EXTENDED_ERR.unpack_from(data)
                found = (origin, icmp_type, code)
        if found is None:
            return None
        origin, icmp_type, code = found
        if origin == SO_EE_ORIGIN_ICMP and icmp_type == 3:
            reason = ICMP4_UNREACH.get(code, f"icmp-3-{code}")
        elif origin == SO_EE_ORIGIN_ICMP6 and icmp_type == 1:
            reason = ICMP6_UNREACH.get(code, f"icmp6-1-{code}")
        else:
            return None  # time exceeded, packet too big ...: not about the port
        if reason == "port-unreach":
            return Answer(PortState.CLOSED, "port-unreach", errno.ECONNREFUSED, None, ttl)
        return Answer(PortState.UNREACHABLE, reason, _HOST_ERRNO.get(reason), None, ttl)
