"""The scan scheduler: which probe goes out when, how long it waits, what silence means.

The scheduler knows nothing about packets; probers (``Prober``) do. It owns everything a
scan needs to be fast and right whatever the transport:

* Work is pulled lazily from a bounded window of hosts (``host_parallelism``), round-robin,
  each host's ports (``port_items(target)``: all of them, or a shard's subset) in
  ascending order, so a /16 x 1,000 ports is never a list in memory. The consumer's
  backlog is bounded too: over ``max_backlog`` unread events, nothing new is sent.
* Timeouts adapt per host, RFC 6298: SRTT/RTTVAR from probes answered on their first try
  (Karn's rule: an answer to a retry says nothing about which try it answers), RTO =
  SRTT + 4 * RTTVAR within [``min_timeout_s``, ``max_timeout_s``], ``initial_timeout_s``
  (1 s, RFC 6298 2.1) before the first sample. Try ``n`` waits ``RTO * (1 + n / 2)``, and a
  try's deadline follows the host's current RTO, so tries sent before the first sample do
  not wait longer than the estimate now says. A try that goes unanswered lifts its host's RTO to the
  scan-wide one (RFC 6298 over every host's samples): a host timed on a few answers taken
  while the machine was idle would otherwise lose every try once load slows the kernel's
  answers, and Karn's rule would never let it learn (``_lift``).
* Retransmission before "no answer": the kernel would resend a SYN only after 1 s and 3 s
  (``TCP_TIMEOUT_INIT``), far slower than a LAN or WAN RTT, so an unanswered try is given
  up (``Prober.expire``) and the port tried again, ``retries`` times, before it takes the
  prober's ``silent`` answer (``filtered`` for TCP, ``open|filtered`` for UDP). A lost
  probe or reply costs one RTO, not a wrong answer.
* The window of probes in flight starts at 256 and adapts (``_window_feedback``): every
  512 answers it halves when over 5 % of them came only to a retry (loss or lateness from
  overload, e.g. a veth queue overflowing) and grows by 1/8 + 8 under 2 %. Random WAN loss
  (about 1 % per round trip in the lab) stays under that threshold, so unlike nmap's
  congestion control it does not slow the scan; silent (filtered) ports send no signal,
  so firewalls do not shrink the window either.
* Rate: a token bucket of ``rate_pps`` probes per second (burst: 20 ms worth). Each host's
  ports are read one item ahead, and the last target is admitted as soon as there is room,
  so the end of the work is known without a token: a rate-limited scan ends with its last
  answer, not one token interval later.
* The fd budget: ``RLIMIT_NOFILE`` is raised soft -> hard at start and, when a prober
  holds a descriptor per try (``fds_per_try``), the window never exceeds the limit minus
  64 (the loop, stdio, files). A local shortage the kernel still reports (``EMFILE``,
  ``ENFILE``; ``EADDRNOTAVAIL`` when ip(7) ``ip_local_port_range`` is used up) pauses
  sending for 10 ms doubling to 50 ms and shrinks the window; the port goes back to the
  queue, never lost.
* At most 32 probes start per loop iteration, so answers are read promptly and RTT
  samples stay honest (measured: larger batches inflate loopback SRTT and slow the full
  range).

Probers plug in through one protocol (``Prober``): ``open(loop, sink)`` sets up what the
prober shares (an ``epoll`` set, a raw socket, a receiver) and ``send(tries)`` takes a
batch of ``Try`` objects at once. Answers come back through ``sink.answered(try, answer,
rtt_s)`` whenever the prober reads them; ``expire(try)`` is the last look at a try whose
time is up. The connect prober (``_connect.ConnectProber``) holds one non-blocking socket
per try in an ``epoll`` set; the UDP prober (``_udp.UdpProber``) shares one datagram socket
per source address and holds its retries until the target's ICMP budget has a token (it
sets a held try's ``sent`` an hour ahead, so the scheduler never expires it unsent, and
declares ``paced``, so its late answers do not shrink the window).

How the raw SYN prober (``_syn.SynProber``) plugs in: ``fds_per_try = 0`` (the window is
then bounded by ``max_concurrency``, not by ``RLIMIT_NOFILE``, and batches are 64 tries).
``open`` creates raw sockets per family, each one loop reader: the shared receivers.
``send(tries)`` builds one SYN per try whose source port and sequence number are a keyed
hash of (address, port), so a reply is matched without per-probe state in the kernel (as
ZMap and masscan do), sends the whole batch with one ``sendmmsg``, stamps ``try.sent`` and
files each try under (address, port). The receiver checks ``ack - 1`` against the hash,
finds the try and calls ``sink.answered`` (SYN-ACK: open, RST: closed, ICMP: unreachable
with its code); a reply to a try already given up is ignored by the scheduler
(``answered`` checks the try is in flight). ``expire`` drops the entry and returns an
answer found by a last read, or ``None``. Timeouts, retransmission, window,
rate and host give-up stay here, unchanged.
"""

from __future__ import annotations

import _socket
import asyncio
import errno
import select
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple, Protocol

from portscope.models import PortState, ProbeResult, Proto
from portscope.scanner._types import HostSummary, ScanOptions
from portscope.scanner.targets import Target

__all__ = [
    "Answer",
    "ProbeSink",
    "Prober",
    "Scheduler",
    "Try",
    "raise_nofile_limit",
]

_TICK_S = 0.01
_BATCH = 32  # probes started per loop iteration at most
_RAW_BATCH = 64  # ... when no prober holds a socket per try (one sendmmsg per batch)
_RAW_HOSTS = 512  # the hosts' window then, at least
_FEEDBACK_EVERY = 512  # answers between window adjustments
_LATE_SHRINK = 0.05  # share of answers that needed a retry above which the window shrinks
_LATE_GROW = 0.02  # ... and below which it grows back
_MIN_WINDOW = 32
_START_WINDOW = 256
_WINDOW = 1024  # the window's ceiling without --max-concurrency
_RAW_WINDOW = 4096  # ... for probers that hold no descriptor per try
_FD_RESERVE = 64  # descriptors left for the event loop, stdio and files
_FD_SHORTAGE = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOMEM})
_UNREACH_ERRNOS = frozenset({errno.EHOSTUNREACH, errno.ENETUNREACH, errno.EHOSTDOWN})
_HOST_UNREACH_REASONS = frozenset({"host-unreach", "net-unreach", "host-down"})
_DOWN_AFTER_UNREACH = 8  # host-unreachable answers, with no other answer, mean "host down"
_DOWN_AFTER_SILENT = 100  # ports decided by timeout, with no answer at all, mean "no answer"


class Answer(NamedTuple):
    """What a prober learned from one try.

    Attributes:
        state: open, closed, unreachable ... (``unreachable`` is reported by a scan as
            ``filtered``, as nmap does).
        reason: nmap's ``--reason`` word (``syn-ack``, ``conn-refused``, ``port-unreach``).
        errno: the OS errno behind the answer, or ``None``.
        banner: bytes the service sent (a UDP reply), or ``None``.
        ttl: the TTL (IPv4) or hop limit (IPv6) the reply arrived with, when the prober
            read the packet itself (raw probers), or ``None``.
    """

    state: PortState
    reason: str
    errno: int | None = None
    banner: bytes | None = None
    ttl: int | None = None


class Try:
    """One probe in flight: (address, port) and the try number. Made by the scheduler.

    Attributes a prober reads: ``target`` (address, family), ``port``, ``tries`` (0 for the
    first). A prober sets ``sent`` (``time.monotonic()`` when the packet left; the
    scheduler stamps the batch's start before ``send``) and may keep its own per-try object
    in ``handle`` (a socket).
    """

    __slots__ = ("deadline", "fixed", "handle", "host", "port", "prober", "sent", "target", "tries")

    def __init__(self, host: _Host, port: int, tries: int, prober: Prober, sent: float) -> None:
        self.host = host
        self.target = host.target
        self.port = port
        self.tries = tries
        self.prober = prober
        self.sent = sent
        self.deadline = sent
        self.fixed = False
        self.handle: object = None

    def sockaddr(self) -> tuple[str, int] | tuple[str, int, int, int]:
        """The socket address of (address, port) for ``connect``/``sendto``."""
        t = self.target
        return (t.address, self.port, 0, 0) if t.family == 6 else (t.address, self.port)


def release_watched(
    by_fd: dict[int, Try],
    epoll: select.epoll | None,
    loop: asyncio.AbstractEventLoop | None,
    *,
    writer: bool,
) -> None:
    """Close every socket a prober still watches, then its epoll (``Prober.close``).

    Args:
        by_fd: the prober's tries in flight by socket fd; emptied.
        epoll: the prober's epoll, or ``None`` when it watched fds on the loop itself.
        loop: the event loop the prober was opened on.
        writer: the fds were watched for writing (a connect), else for reading.
    """
    for fd, tr in list(by_fd.items()):
        if epoll is None and loop is not None:
            (loop.remove_writer if writer else loop.remove_reader)(fd)
        if isinstance(tr.handle, _socket.socket):  # the base of socket.socket too
            tr.handle.close()
    by_fd.clear()
    if epoll is not None:
        if loop is not None and not loop.is_closed():
            loop.remove_reader(epoll.fileno())
        epoll.close()


class ProbeSink(Protocol):
    """Where a prober reports (the scheduler)."""

    def answered(self, attempt: Try, answer: Answer, rtt_s: float | None) -> None:
        """``attempt`` got ``answer``, ``rtt_s`` seconds after it was sent (``None``: at once)."""

    def short_of(self, err: int, attempt: Try | None) -> None:
        """A local resource ran out (``EMFILE``, ``EADDRNOTAVAIL`` ...); ``attempt`` (if
        given) was not decided and goes back to the queue."""


class Prober(Protocol):
    """Sends probes of one transport and reads their answers (see the module docstring).

    Attributes:
        proto: the transport this prober probes.
        fds_per_try: file descriptors a try holds while in flight (connect, UDP: 1; a raw
            SYN prober: 0); bounds the window by ``RLIMIT_NOFILE``.
        silent: the answer of a port silent after every try (TCP: filtered, UDP:
            open|filtered; reason ``no-response``).
        timeout_s: a fixed per-try timeout in seconds that overrides the scan's, or
            ``None``.
        retries: tries after the first for this prober, overriding the scan's, or ``None``.
    """

    proto: Proto
    fds_per_try: int
    silent: Answer
    timeout_s: float | None
    retries: int | None

    def open(self, loop: asyncio.AbstractEventLoop, sink: ProbeSink) -> None:
        """Set up shared resources (readers, raw sockets); called once before ``send``."""

    def send(self, tries: Sequence[Try]) -> int:
        """Send ``tries`` in order; return how many were sent.

        An answer known at once goes to ``sink.answered`` before this returns. On a local
        shortage, call ``sink.short_of`` and return the count sent before it: the scheduler
        queues the rest again.
        """

    def expire(self, attempt: Try) -> Answer | None:
        """The try's time is up: release it; return an answer still waiting, or ``None``."""

    def close(self) -> None:
        """Release everything (idempotent); no answer is reported after."""


def raise_nofile_limit() -> int:
    """Raise the soft ``RLIMIT_NOFILE`` to the hard limit; return the soft limit now."""
    try:
        import resource
    except ImportError:  # pragma: no cover - not POSIX
        return 256
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY:
        hard = max(soft, 1 << 20)
    if soft < hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
        except (ValueError, OSError):
            pass
    return int(soft)


@dataclass(slots=True)
class _Host:
    target: Target
    ports: Iterator[tuple[Proto, int]]
    started: float
    peek: tuple[Proto, int] | None = None  # the next item of ``ports``
    retry: deque[tuple[Proto, int, int]] = field(default_factory=deque)
    in_flight: int = 0
    exhausted: bool = False
    stopped: str | None = None  # "down" / "no-answer" once given up
    answered: int = 0
    unreach: int = 0
    silent: int = 0
    retried: int = 0
    timed_out: int = 0
    not_scanned: int = 0
    total: int = 0
    counts: dict[str, int] = field(default_factory=dict)
    srtt: float | None = None
    rttvar: float | None = None
    rto: float = 1.0

    @property
    def done(self) -> bool:
        return (
            (self.exhausted or self.stopped is not None) and self.in_flight == 0 and not self.retry
        )


class Scheduler:
    """Runs probes for a stream of targets through probers; results go to ``emit``.

    Args:
        targets: addresses to probe, consumed lazily.
        port_items: called with each target, returns its (transport, port) pairs (a
            shard of a scan gives each address its own subset, ``_shard``).
        options: the scan options.
        emit: receives each ``ProbeResult`` and ``HostSummary`` as it is decided.
        probers: the prober of each transport; a port whose transport has none is counted
            as not scanned.
        backlog: returns how many emitted events the consumer has not taken yet; over
            ``max_backlog`` no new probe is started (memory stays bounded).
        max_backlog: see ``backlog``.
        unreachable_as_filtered: report ICMP unreachable answers as ``filtered`` (nmap's
            scan states); ``probe`` keeps ``unreachable``.
        give_up_hosts: stop probing a host after 8 host-unreachable answers (``down``) or
            100 silent ports (``no-answer``) with no other answer; its remaining ports are
            not scanned. ``probe`` wants every port's state.
    """

    def __init__(
        self,
        targets: Iterator[Target],
        port_items: Callable[[Target], Iterator[tuple[Proto, int]]],
        options: ScanOptions,
        emit: Callable[[ProbeResult | HostSummary], None],
        probers: Mapping[Proto, Prober],
        *,
        backlog: Callable[[], int] = lambda: 0,
        max_backlog: int = 20_000,
        unreachable_as_filtered: bool = True,
        give_up_hosts: bool = True,
    ) -> None:
        self._targets = targets
        self._port_items = port_items
        self._opt = options
        self._emit = emit
        self._probers = dict(probers)
        self._backlog = backlog
        self._max_backlog = max_backlog
        self._nmap_states = unreachable_as_filtered
        self._give_up = give_up_hosts
        self._hosts: deque[_Host] = deque()
        self._targets_done = False
        self._in_flight: set[Try] = set()
        self._limit = self._max_limit = 1
        self._fb_answers = self._fb_late = 0
        self._backoff = 0.0
        self._paused_until = 0.0
        self._tokens = 0.0
        self._token_time = 0.0
        self._finished: asyncio.Future[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._tick: asyncio.TimerHandle | None = None
        self._wake: asyncio.TimerHandle | None = None
        self._soon = False
        self._closed = False
        self._batch = _BATCH
        self._host_window = options.host_parallelism
        self.probes_sent = 0
        self.eaddrnotavail = 0
        # the scan-wide (path) estimate, RFC 6298 over every host's samples (``_lift``)
        self._srtt: float | None = None
        self._rttvar = 0.0
        self._rto = options.timeout_s or options.initial_timeout_s

    # ------------------------------------------------------------ running

    async def run(self) -> None:
        """Probe every target; return when all are done. Cancel to stop (sockets closed)."""
        loop = asyncio.get_running_loop()
        self._loop = loop
        want = self._opt.max_concurrency or _WINDOW
        start = _START_WINDOW
        if any(p.fds_per_try for p in self._probers.values()):
            want = min(want, raise_nofile_limit() - _FD_RESERVE)
        else:
            # raw probers hold no descriptor and send a batch with one syscall (sendmmsg):
            # larger batches cost less CPU per probe (a full-range SYN scan: 1.8-2.1 s of
            # CPU with 256 per batch, 2.1-2.3 s with 32), but bursts of 256 overflowed the
            # lab veth's NAPI ring (256 frames) when its kernel thread was starved, and the
            # same ports lost every try (closed ports reported filtered): 64. A larger
            # window (4,096) gained nothing measurable and costs the tick's scan
            self._batch = _RAW_BATCH
            # a host holds its slot until its last silent port's last try: with no socket
            # per try, more hosts at once cost only their state (measured: 1,024 hosts x
            # the top 100 over the WAN lab, 31.4 s with 64 hosts at once, 20-21 s with 512)
            self._host_window = max(self._host_window, _RAW_HOSTS)
            # ... and no descriptor bounds the window: on a WAN, silent (filtered) ports hold
            # their slots for 7 RTOs (4 tries), so a larger ceiling keeps the answered ports
            # flowing (4,096 hosts x the top 100 over the WAN lab: 69 s with 1,024, 47 s with
            # 4,096); the window still starts at 256 and grows only while answers come on time
            want = self._opt.max_concurrency or _RAW_WINDOW
        self._max_limit = max(1, want)
        # start below the ceiling and grow while answers come on the first try
        self._limit = min(self._max_limit, start)
        self._token_time = time.monotonic()
        self._tokens = 1.0
        self._finished = loop.create_future()
        try:
            for prober in self._probers.values():
                prober.open(loop, self)
            self._schedule_tick()
            self._launch()
            await self._finished
        finally:
            self.close()

    def close(self) -> None:
        """Close every probe in flight and stop timers (idempotent); nothing starts after."""
        self._closed = True
        for t in (self._tick, self._wake):
            if t is not None:
                t.cancel()
        self._tick = self._wake = None
        for prober in self._probers.values():
            prober.close()
        self._in_flight.clear()

    def kick(self) -> None:
        """Start probes again after the consumer took events (backpressure release)."""
        if self._finished is not None and not self._finished.done():
            self._launch()

    # ------------------------------------------------------------ scheduling

    def _admit(self) -> None:
        """Fill the window of hosts from the targets (sends nothing)."""
        hosts = self._hosts
        while len(hosts) < self._host_window and not self._targets_done:
            target = next(self._targets, None)
            if target is None:
                self._targets_done = True
                break
            host = _Host(
                target=target,
                ports=self._port_items(target),
                started=time.monotonic(),
                rto=self._opt.timeout_s or self._opt.initial_timeout_s,
            )
            host.peek = next(host.ports, None)
            host.exhausted = host.peek is None
            hosts.append(host)

    def _next_host(self) -> _Host | None:
        """The next host with work, rotating; admits new hosts into the window."""
        self._admit()
        hosts = self._hosts
        for _ in range(len(hosts)):
            host = hosts[0]
            hosts.rotate(-1)
            if host.stopped is None and (host.retry or not host.exhausted):
                return host
        return None

    def _take(self, host: _Host) -> tuple[Proto, int, int] | None:
        """The next (transport, port, try number) of ``host``, retries first."""
        if host.retry:
            return host.retry.popleft()
        # one item ahead: a host whose last port is out is known to be exhausted at once,
        # so the end of a rate-limited scan does not wait for a token it will not use
        item = host.peek
        if item is None:
            host.exhausted = True
            return None
        host.peek = next(host.ports, None)
        host.exhausted = host.peek is None
        host.total += 1
        return item[0], item[1], 0

    def _launch(self) -> None:
        if self._closed:
            return
        now = time.monotonic()
        if now < self._paused_until or self._backlog() > self._max_backlog:
            self._schedule_wake(max(self._paused_until - now, _TICK_S))
            return
        # tries a paced prober holds for its target's budget (UDP) are not on the network:
        # up to one window of them takes no room (the tick scans every try in flight)
        held = sum(getattr(p, "held_count", 0) for p in self._probers.values())
        room = self._limit - len(self._in_flight) + min(held, self._limit)
        n = min(room, self._batch)
        rate = self._opt.rate_pps
        if rate and n > 0:
            burst = max(1.0, rate * 0.02)
            self._tokens = min(burst, self._tokens + (now - self._token_time) * rate)
            self._token_time = now
            if self._tokens < 1.0:
                self._schedule_wake((1.0 - self._tokens) / rate)
                n = 0
            n = min(n, int(self._tokens))
        batches: dict[Proto, list[Try]] = {}
        taken = 0
        while taken < n:
            host = self._next_host()
            if host is None:
                break
            item = self._take(host)
            if item is None:
                continue
            proto, port, tries = item
            prober = self._probers.get(proto)
            if prober is None:
                host.not_scanned += 1
                continue
            batches.setdefault(proto, []).append(Try(host, port, tries, prober, now))
            taken += 1
        if rate:
            self._tokens -= taken
            if self._tokens < 1.0 and room > taken:
                self._schedule_wake((1.0 - self._tokens) / rate)
        short = False
        for proto, batch in batches.items():
            if short:  # a prober ran short: the other batches wait for the pause too
                self._requeue(batch)
            else:
                short = not self._send(self._probers[proto], batch)
        if taken == self._batch and room > taken and not short:
            # let answers in before starting more: keeps RTT samples honest
            self._launch_soon()
        self._check_done()

    def _send(self, prober: Prober, batch: list[Try]) -> bool:
        """Hand ``batch`` to ``prober``; False when it ran short (the rest is queued again)."""
        in_flight = self._in_flight
        for tr in batch:
            in_flight.add(tr)
            tr.host.in_flight += 1
        sent = prober.send(batch)
        self.probes_sent += sent
        fixed = prober.timeout_s or self._opt.timeout_s
        for tr in batch[:sent]:
            if fixed:
                tr.fixed = True
                tr.deadline = tr.sent + fixed
            else:
                tr.deadline = tr.sent + tr.host.rto * (1 + tr.tries / 2)
        for tr in batch[sent:]:
            in_flight.discard(tr)
            tr.host.in_flight -= 1
        self._requeue(batch[sent:])
        return sent == len(batch)

    def _requeue(self, tries: Sequence[Try]) -> None:
        """Put tries that were not sent back at the head of their hosts' queues, in order."""
        for tr in reversed(tries):
            tr.host.retry.appendleft((tr.prober.proto, tr.port, tr.tries))
        if (rate := self._opt.rate_pps) and tries:
            self._tokens = min(max(1.0, rate * 0.02), self._tokens + len(tries))

    def _launch_soon(self) -> None:
        if not self._soon and self._loop is not None and not self._closed:
            self._soon = True
            self._loop.call_soon(self._on_soon)

    def _on_soon(self) -> None:
        self._soon = False
        self._launch()

    def _next_backoff(self) -> float:
        """Seconds to pause after a local resource shortage: 10 ms, doubling to 50 ms."""
        self._backoff = min(0.05, self._backoff * 2) if self._backoff else 0.01
        return self._backoff

    def _pause(self, seconds: float) -> None:
        self._paused_until = time.monotonic() + seconds
        self._schedule_wake(seconds)

    def _schedule_wake(self, delay: float) -> None:
        if self._wake is None and self._loop is not None and not self._closed:
            self._wake = self._loop.call_later(delay, self._on_wake)

    def _on_wake(self) -> None:
        self._wake = None
        self._launch()

    def _schedule_tick(self) -> None:
        assert self._loop is not None
        self._tick = self._loop.call_later(_TICK_S, self._on_tick)

    # ------------------------------------------------------------ what probers report

    def answered(self, attempt: Try, answer: Answer, rtt_s: float | None) -> None:
        """A prober's answer (the ``ProbeSink`` side); a try no longer in flight is ignored."""
        if attempt not in self._in_flight:
            return
        self._in_flight.discard(attempt)
        attempt.host.in_flight -= 1
        self._backoff = 0.0
        self._decide(attempt, answer, rtt_s)
        self._launch_soon()

    def short_of(self, err: int, attempt: Try | None) -> None:
        """A local shortage: pause, shrink the window, queue ``attempt`` again."""
        if attempt is not None and attempt in self._in_flight:
            self._in_flight.discard(attempt)
            host = attempt.host
            host.in_flight -= 1
            host.retry.appendleft((attempt.prober.proto, attempt.port, attempt.tries))
        in_flight = len(self._in_flight)
        if err in _FD_SHORTAGE:
            self._limit = max(1, min(self._limit, in_flight) * 3 // 4)
        else:  # EADDRNOTAVAIL, EAGAIN, ENOBUFS: ephemeral ports or buffers used up
            self.eaddrnotavail += 1
            self._limit = max(16, in_flight * 3 // 4)
        self._pause(self._next_backoff())

    def _on_tick(self) -> None:
        now = time.monotonic()
        # deadlines follow the host's current RTO (see the module docstring)
        expired = [
            tr
            for tr in self._in_flight
            if tr.deadline <= now
            or (not tr.fixed and now - tr.sent >= tr.host.rto * (1 + tr.tries / 2))
        ]
        for tr in expired:
            if tr not in self._in_flight:
                continue
            self._in_flight.discard(tr)
            host = tr.host
            host.in_flight -= 1
            prober = tr.prober
            # the answer may be waiting behind a busy loop: the prober looks once more
            answer = prober.expire(tr)
            if answer is not None:
                self._decide(tr, answer, None)
                continue
            if not tr.fixed:
                self._lift(tr)
            retries = self._opt.retries if prober.retries is None else prober.retries
            if tr.tries < retries and host.stopped is None:
                if tr.tries == 0:
                    host.retried += 1
                host.retry.append((prober.proto, tr.port, tr.tries + 1))
            else:
                host.timed_out += 1
                silent = prober.silent
                if silent.state is PortState.FILTERED:
                    host.silent += 1
                self._record(host, tr.port, prober.proto, silent, None)
        self._schedule_tick()
        self._launch()

    # ------------------------------------------------------------ decisions

    def _decide(self, tr: Try, answer: Answer, rtt: float | None) -> None:
        host = tr.host
        if answer.state is PortState.UNREACHABLE:
            if answer.errno in _UNREACH_ERRNOS and answer.reason in _HOST_UNREACH_REASONS:
                host.unreach += 1
            if self._nmap_states:
                # as nmap: an ICMP unreachable answer to a port probe means "filtered"
                answer = answer._replace(state=PortState.FILTERED)
        else:
            host.answered += 1
            # a prober that paces its retries (UDP, to the ICMP rate limit) answers them
            # late by design: that is no loss signal
            self._window_feedback(late=tr.tries > 0 and not getattr(tr.prober, "paced", False))
            if rtt is not None and tr.tries == 0 and answer.state in _SAMPLED:
                self._sample(host, rtt)
        self._record(host, tr.port, tr.prober.proto, answer, rtt)

    def _window_feedback(self, *, late: bool) -> None:
        """Shrink the window when many answers come only to a retry, grow it back after.

        A port answering a retry means the earlier try's answer was lost or came after its
        timeout (nmap's loss signal, too). Random loss on a WAN keeps that share near the
        loss rate (about 1 %), which leaves the window alone; an overloaded path (late RSTs
        when softirq work is starved, full queues) pushes it far higher. Ports that never
        answer (filtered) send no signal at all, so firewalls do not slow a scan down.
        """
        self._fb_answers += 1
        self._fb_late += late
        if self._fb_answers < _FEEDBACK_EVERY:
            return
        share = self._fb_late / self._fb_answers
        self._fb_answers = self._fb_late = 0
        if share > _LATE_SHRINK:
            self._limit = max(_MIN_WINDOW, self._limit // 2)
        elif share < _LATE_GROW and self._limit < self._max_limit:
            self._limit = min(self._max_limit, self._limit + self._limit // 8 + 8)

    def _sample(self, host: _Host, rtt: float) -> None:
        # RFC 6298 section 2: alpha = 1/8, beta = 1/4, K = 4
        if host.srtt is None or host.rttvar is None:
            host.srtt, host.rttvar = rtt, rtt / 2
        else:
            host.rttvar = 0.75 * host.rttvar + 0.25 * abs(host.srtt - rtt)
            host.srtt = 0.875 * host.srtt + 0.125 * rtt
        if self._srtt is None:
            self._srtt, self._rttvar = rtt, rtt / 2
        else:
            self._rttvar = 0.75 * self._rttvar + 0.25 * abs(self._srtt - rtt)
            self._srtt = 0.875 * self._srtt + 0.125 * rtt
        if self._opt.timeout_s is None:
            host.rto = self._bounded(host.srtt + 4 * host.rttvar)
            # RFC 6298 5.7: a new sample ends the back-off
            self._rto = self._bounded(self._srtt + 4 * self._rttvar)

    def _bounded(self, rto: float) -> float:
        return min(self._opt.max_timeout_s, max(self._opt.min_timeout_s, rto))

    def _lift(self, tr: Try) -> None:
        """A try went unanswered: make its host's timeout no shorter than the path's.

        A host's RTO comes from its own samples, possibly a few taken at the very start
        when the machine was idle (3 ms: the 50 ms floor). When the kernel later answers
        more slowly (CPU starvation delays the veth's NAPI thread or overflows its ring:
        the answer is not in the socket when ``expire`` looks), every try of that host
        times out, Karn's
        rule keeps the answers to retries from correcting the estimate, and every port is
        called filtered while the other hosts, whose estimates follow the load, are right.
        So an unanswered try lifts its host's RTO to the scan-wide estimate (RFC 6298 over
        every host's samples), and keeps it there (RTTVAR raised to match) until the
        host's own samples bring it down.

        The scan-wide RTO itself is not backed off when the whole path goes silent (RFC
        6298 5.5): at a scan's end only filtered ports are left and nothing answers, so a
        back-off would add a second or more to every scan with a firewalled port
        (measured: a 2,000-port lab scan, 0.8 s -> 1.0-1.9 s).
        """
        host = tr.host
        if host.rto < self._rto:
            host.rto = self._rto
            if host.srtt is not None and host.rttvar is not None:
                host.rttvar = max(host.rttvar, (self._rto - host.srtt) / 4)

    def _record(
        self, host: _Host, port: int, proto: Proto, answer: Answer, rtt: float | None
    ) -> None:
        state = answer.state
        key = state.value
        host.counts[key] = host.counts.get(key, 0) + 1
        if state is not PortState.CLOSED or self._opt.include_closed:
            t = host.target
            self._emit(
                ProbeResult(
                    t.host, t.address, port, proto, state, answer.reason, answer.errno, rtt,
                    answer.banner, answer.ttl,
                )
            )  # fmt: skip
        if self._give_up and host.stopped is None and host.answered == 0:
            if host.unreach >= _DOWN_AFTER_UNREACH:
                self._stop_host(host, "down")
            elif host.silent >= _DOWN_AFTER_SILENT:
                self._stop_host(host, "no-answer")

    def _stop_host(self, host: _Host, status: str) -> None:
        host.stopped = status
        host.not_scanned += len(host.retry)
        host.retry.clear()
        if not host.exhausted:
            host.not_scanned += (host.peek is not None) + sum(1 for _ in host.ports)
            host.peek = None
            host.exhausted = True

    def _check_done(self) -> None:
        hosts = self._hosts
        if any(h.done for h in hosts):
            for host in [h for h in hosts if h.done]:
                hosts.remove(host)
                self._emit(self._summary(host))
            self._admit()  # the last target admitted: the end is known without a token
            if hosts:
                self._launch()
                return
        fin = self._finished
        if self._targets_done and not hosts and not self._in_flight and fin and not fin.done():
            fin.set_result(None)

    def _summary(self, host: _Host, status: str | None = None) -> HostSummary:
        answered = host.answered > 0
        return HostSummary(
            host=host.target.host,
            address=host.target.address,
            status=status or host.stopped or ("up" if answered else "no-answer"),
            ports=host.total + host.not_scanned,
            counts=dict(host.counts),
            not_scanned=host.not_scanned,
            retried=host.retried,
            timed_out=host.timed_out,
            srtt_s=host.srtt,
            rttvar_s=host.rttvar,
            timeout_s=self._opt.timeout_s or host.rto,
            elapsed_s=time.monotonic() - host.started,
        )

    def stop_undecided(self, reason: str = "max-wait") -> None:
        """End the scan now: every port not decided yet (in flight, waiting for a retry or
        not sent) is reported ``undecided`` with ``reason``, never closed; then the hosts'
        summaries, and ``run`` returns."""
        if self._closed:
            return
        waiting = list(self._in_flight)
        for prober in self._probers.values():
            prober.close()
        self._in_flight.clear()
        answer = Answer(PortState.UNDECIDED, reason)
        for tr in waiting:
            tr.host.in_flight -= 1
            self._record(tr.host, tr.port, tr.prober.proto, answer, None)
        give_up, self._give_up = self._give_up, False
        while True:
            host = self._next_host()
            if host is None:
                break
            while (item := self._take(host)) is not None:
                self._record(host, item[1], item[0], answer, None)
        self._give_up = give_up
        for host in list(self._hosts):
            self._hosts.remove(host)
            self._emit(self._summary(host))
        self._targets_done = True
        self.close()
        fin = self._finished
        if fin is not None and not fin.done():
            fin.set_result(None)

    def decided_in_progress(self) -> int:
        """Ports decided so far on the hosts still in the window."""
        return sum(sum(h.counts.values()) + h.not_scanned for h in self._hosts)

    def interrupted_summaries(self) -> list[HostSummary]:
        """Summaries of the hosts still in progress (after a cancel)."""
        return [self._summary(h, "interrupted") for h in self._hosts]


_SAMPLED = frozenset({PortState.OPEN, PortState.CLOSED, PortState.UNFILTERED})
