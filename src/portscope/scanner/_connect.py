"""The asyncio TCP connect-scan engine (no privilege needed).

Why it looks the way it does:

* A full-range scan starts tens of thousands of connects per second, so a probe is not a
  coroutine: it is a non-blocking socket registered (one-shot) in an ``epoll`` set that is
  itself one reader of the asyncio loop. Readiness arrives in batches and costs no Handle,
  Task or Future per port. Where ``select.epoll`` is missing, ``loop.add_writer`` is used.
* Work is pulled lazily from a bounded window of hosts (``host_parallelism``), round-robin,
  ports in ascending order; never more than ``max_concurrency`` sockets are open, sized to
  ``RLIMIT_NOFILE`` (raised soft -> hard at start), so the engine never meets ``EMFILE``.
* Timeouts adapt per host, RFC 6298: SRTT/RTTVAR from connects answered on their first try
  (Karn's rule), RTO = SRTT + 4 * RTTVAR within [``min_timeout_s``, ``max_timeout_s``].
  Try ``n`` waits ``RTO * (1 + n / 2)``. The kernel would retransmit the SYN only after 1 s and
  3 s (``TCP_TIMEOUT_INIT``, RFC 6298 2.1), far slower than a LAN or WAN RTT, so the engine
  retransmits itself: an unanswered try is closed and the port tried again with a new
  socket, ``retries`` times, before it is called ``filtered``. A lost SYN or RST therefore
  costs one RTO, not a wrong answer. Before a try is called unanswered the socket itself is
  asked (``SO_ERROR``, ``getpeername``), so a busy event loop never turns an answer into a
  timeout.
* The window of open sockets starts at 256 and adapts (``_window_feedback``): it halves when
  over 5 % of answers come only to a retry (loss or lateness from overload, e.g. a veth
  queue overflowing) and grows by 1/8 under 2 %. Random WAN loss stays under that
  threshold, so unlike nmap's congestion control it does not slow the scan.
* ``EADDRNOTAVAIL`` (ephemeral ports used up, ip(7) ``ip_local_port_range``) and ``EMFILE``
  pause launching briefly and shrink the window; the port is tried again, not lost.
* Sockets close with ``SO_LINGER`` {on, 0}: an abortive close (RST) leaves no TIME-WAIT
  socket behind for each open port found.
"""

from __future__ import annotations

import _socket
import asyncio
import contextlib
import errno
import select
import socket
import struct
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field

from portscope.models import PortState, ProbeResult, Proto
from portscope.scanner._errors import classify, enable_icmp_details, icmp_reason
from portscope.scanner.targets import Target

_LINGER_ABORT = struct.pack("ii", 1, 0)
_HAS_NONBLOCK = hasattr(socket, "SOCK_NONBLOCK")
_NONBLOCK = socket.SOCK_STREAM | getattr(socket, "SOCK_NONBLOCK", 0)
_TICK_S = 0.01
_BATCH = 32  # connects started per loop iteration at most
_FEEDBACK_EVERY = 512  # answers between window adjustments
_LATE_SHRINK = 0.05  # share of answers that needed a retry above which the window shrinks
_LATE_GROW = 0.02  # ... and below which it grows back
_MIN_WINDOW = 32
_START_WINDOW = 256
_UNREACH_ERRNOS = frozenset({errno.EHOSTUNREACH, errno.ENETUNREACH, errno.EHOSTDOWN})
# errors an ICMP destination unreachable turns into (icmp_err_convert, icmpv6_err_convert)
_ICMP_ERRNOS = _UNREACH_ERRNOS | {errno.EACCES, errno.EPERM, errno.EPROTO}
_DOWN_AFTER_UNREACH = 8  # host-unreachable answers, with no other answer, mean "host down"
_DOWN_AFTER_SILENT = 100  # ports decided by timeout, with no answer at all, mean "no answer"


@dataclass(frozen=True, slots=True)
class ScanOptions:
    """How a scan runs.

    Attributes:
        max_concurrency: most sockets open at once; ``None`` for 1,024. Always kept
            under ``RLIMIT_NOFILE``. The window starts at 256 and adapts up to this.
        rate_pps: new connections per second (a token bucket), or ``None`` for no limit.
        timeout_s: a fixed timeout per try in seconds, or ``None`` for RTT-adaptive
            timeouts (RFC 6298).
        min_timeout_s: lower bound of the adaptive timeout. Default 0.05 s. Safe that low
            because a try is only called unanswered after its socket was asked directly.
        max_timeout_s: upper bound of the adaptive timeout. Default 2.0 s.
        initial_timeout_s: timeout before a host's first RTT sample. Default 1.0 s
            (RFC 6298 2.1).
        retries: tries after the first before a silent port is called filtered. Default 3.
        host_parallelism: hosts scanned at once. Default 64.
        include_closed: also yield results for closed ports (they are always counted).
        icmp_details: read the ICMP type/code of unreachable answers (``IP_RECVERR``).
    """

    max_concurrency: int | None = None
    rate_pps: float | None = None
    timeout_s: float | None = None
    min_timeout_s: float = 0.05
    max_timeout_s: float = 2.0
    initial_timeout_s: float = 1.0
    retries: int = 3
    host_parallelism: int = 64
    include_closed: bool = False
    icmp_details: bool = True


@dataclass(frozen=True, slots=True)
class HostSummary:
    """What a scan learned about one address.

    Attributes:
        host: the target as given.
        address: the address scanned.
        status: ``up`` (something answered), ``down`` (host unreachable, nothing else
            answered), ``no-answer`` (only silence), ``interrupted``.
        ports: (port, transport) pairs in the port specification.
        counts: results per state name (``open``, ``closed``, ``filtered`` ...).
        not_scanned: ports left out because the host was down, silent or interrupted.
        retried: ports that needed more than one try.
        timed_out: ports decided by timeout (no answer after every try).
        srtt_s: smoothed RTT in seconds (RFC 6298), or ``None`` without a sample.
        rttvar_s: RTT variation in seconds, or ``None``.
        timeout_s: the per-try timeout the host ended with, in seconds.
        elapsed_s: time from the first to the last probe of this host, in seconds.
    """

    host: str
    address: str
    status: str
    ports: int
    counts: dict[str, int]
    not_scanned: int
    retried: int
    timed_out: int
    srtt_s: float | None
    rttvar_s: float | None
    timeout_s: float
    elapsed_s: float


@dataclass(slots=True)
class _Host:
    target: Target
    ports: Iterator[tuple[Proto, int]]
    sockaddr_of: Callable[[int], tuple[object, ...]]
    started: float
    retry: deque[tuple[int, int]] = field(default_factory=deque)
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
    udp_pending: int = 0

    @property
    def done(self) -> bool:
        return (
            (self.exhausted or self.stopped is not None)
            and self.in_flight == 0
            and not self.retry
            and self.udp_pending == 0
        )


class _Try:
    __slots__ = ("deadline", "host", "port", "sent", "sock", "tries")

    def __init__(
        self, sock: _socket.socket, host: _Host, port: int, tries: int, sent: float, deadline: float
    ) -> None:
        self.sock = sock
        self.host = host
        self.port = port
        self.tries = tries
        self.sent = sent
        self.deadline = deadline


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


class ConnectEngine:
    """Runs TCP connect probes for a stream of targets; results go to ``emit``.

    Args:
        targets: addresses to scan, consumed lazily.
        port_items: called per target, returns that target's (transport, port) pairs.
        options: the scan options.
        emit: receives each ``ProbeResult`` and ``HostSummary`` as it is decided.
        udp_probe: coroutine function probing one UDP port, or ``None`` when the port
            specification has no UDP ports.
        backlog: returns how many emitted events the consumer has not taken yet; over
            ``max_backlog`` no new probe is started (memory stays bounded).
        socket_factory: makes the probe sockets, ``(family, type) -> socket`` (a test seam;
            default ``_socket.socket``).
    """

    def __init__(
        self,
        targets: Iterator[Target],
        port_items: Callable[[], Iterator[tuple[Proto, int]]],
        options: ScanOptions,
        emit: Callable[[ProbeResult | HostSummary], None],
        *,
        udp_probe: Callable[[Target, int], Awaitable[ProbeResult]] | None = None,
        backlog: Callable[[], int] = lambda: 0,
        max_backlog: int = 20_000,
        socket_factory: Callable[[int, int], _socket.socket] = _socket.socket,
    ) -> None:
        self._targets = targets
        self._new_socket = socket_factory
        self._port_items = port_items
        self._opt = options
        self._emit = emit
        self._udp_probe = udp_probe
        self._backlog = backlog
        self._max_backlog = max_backlog
        self._hosts: deque[_Host] = deque()
        self._targets_done = False
        self._tries: dict[int, _Try] = {}
        self._limit = self._max_limit = 1
        self._fb_answers = self._fb_late = 0
        self._backoff = 0.0
        self._paused_until = 0.0
        self._tokens = 0.0
        self._token_time = 0.0
        self._finished: asyncio.Future[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._epoll: select.epoll | None = None
        self._tick: asyncio.TimerHandle | None = None
        self._wake: asyncio.TimerHandle | None = None
        self._soon = False
        self._closed = False
        self._udp_tasks: set[asyncio.Task[None]] = set()
        self._tg: asyncio.TaskGroup | None = None
        self.probes_sent = 0
        self.eaddrnotavail = 0

    # ------------------------------------------------------------ running

    async def run(self) -> None:
        """Scan every target; return when all are done. Cancel to stop (sockets closed)."""
        loop = asyncio.get_running_loop()
        self._loop = loop
        nofile = raise_nofile_limit()
        want = self._opt.max_concurrency or 1024
        self._max_limit = max(1, min(want, nofile - 64))
        # start below the ceiling and grow while answers come on the first try
        self._limit = min(self._max_limit, _START_WINDOW)
        self._token_time = time.monotonic()
        self._tokens = 1.0
        self._finished = loop.create_future()
        if hasattr(select, "epoll"):
            self._epoll = select.epoll()
            loop.add_reader(self._epoll.fileno(), self._on_epoll)
        try:
            async with asyncio.TaskGroup() as tg:
                self._tg = tg
                self._schedule_tick()
                self._launch()
                await self._finished
        finally:
            self.close()

    def close(self) -> None:
        """Close every open socket and stop timers (idempotent); nothing starts after."""
        self._closed = True
        for t in (self._tick, self._wake):
            if t is not None:
                t.cancel()
        self._tick = self._wake = None
        loop = self._loop
        for fd, tr in list(self._tries.items()):
            if self._epoll is None and loop is not None:
                loop.remove_writer(fd)
            tr.sock.close()
        self._tries.clear()
        if self._epoll is not None:
            if loop is not None and not loop.is_closed():
                loop.remove_reader(self._epoll.fileno())
            self._epoll.close()
            self._epoll = None

    def kick(self) -> None:
        """Start probes again after the consumer took events (backpressure release)."""
        if self._finished is not None and not self._finished.done():
            self._launch()

    # ------------------------------------------------------------ scheduling

    def _next_host(self) -> _Host | None:
        """The next host with work, rotating; admits new hosts into the window."""
        hosts = self._hosts
        while len(hosts) < self._opt.host_parallelism and not self._targets_done:
            target = next(self._targets, None)
            if target is None:
                self._targets_done = True
                break
            hosts.append(self._new_host(target))
        for _ in range(len(hosts)):
            host = hosts[0]
            hosts.rotate(-1)
            if host.stopped is None and (host.retry or not host.exhausted):
                return host
        return None

    def _new_host(self, target: Target) -> _Host:
        fam = socket.AF_INET6 if target.family == 6 else socket.AF_INET
        addr = target.address

        def sockaddr_of(port: int) -> tuple[object, ...]:
            return (addr, port, 0, 0) if fam == socket.AF_INET6 else (addr, port)

        host = _Host(
            target=target,
            ports=self._port_items(),
            sockaddr_of=sockaddr_of,
            started=time.monotonic(),
            rto=self._opt.timeout_s or self._opt.initial_timeout_s,
        )
        return host

    def _take_port(self, host: _Host) -> tuple[int, int] | None:
        """The next TCP (port, try number) of ``host``; a UDP port is started as a task."""
        if host.retry:
            return host.retry.popleft()
        item = next(host.ports, None)
        if item is None:
            host.exhausted = True
            return None
        host.total += 1
        proto, port = item
        if proto is Proto.TCP:
            return port, 0
        self._start_udp(host, port)
        return None

    def _launch(self) -> None:
        if self._closed:
            return
        now = time.monotonic()
        if now < self._paused_until or self._backlog() > self._max_backlog:
            self._schedule_wake(max(self._paused_until - now, _TICK_S))
            return
        rate = self._opt.rate_pps
        if rate:
            burst = max(1.0, rate * 0.02)
            self._tokens = min(burst, self._tokens + (now - self._token_time) * rate)
            self._token_time = now
        tries, udp = self._tries, self._udp_tasks
        budget = _BATCH
        while len(tries) + len(udp) < self._limit:
            budget -= 1
            if budget < 0:
                # let answers in before starting more: keeps RTT samples honest
                self._launch_soon()
                break
            if rate:
                if self._tokens < 1.0:
                    self._schedule_wake((1.0 - self._tokens) / rate)
                    break
                self._tokens -= 1.0
            host = self._next_host()
            if host is None:
                break
            item = self._take_port(host)
            if item is None:
                continue
            if not self._connect(host, item[0], item[1], now):
                break
        self._check_done()

    def _connect(self, host: _Host, port: int, n: int, now: float) -> bool:
        """Start one try; False when launching must pause (port goes back to the queue)."""
        fam = socket.AF_INET6 if host.target.family == 6 else socket.AF_INET
        try:
            sock = self._new_socket(fam, _NONBLOCK)  # _socket, not socket.py: hot path
        except OSError as exc:
            host.retry.appendleft((port, n))
            if exc.errno in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
                self._limit = max(1, min(self._limit, len(self._tries)) * 3 // 4)
                self._pause(self._next_backoff())
                return False
            raise
        if not _HAS_NONBLOCK:
            sock.setblocking(False)
        if self._opt.icmp_details:
            enable_icmp_details(sock, host.target.family)
        err = sock.connect_ex(host.sockaddr_of(port))
        self.probes_sent += 1
        if err == errno.EINPROGRESS:
            self._backoff = 0.0
            now = time.monotonic()
            fd = sock.fileno()
            timeout = self._opt.timeout_s or host.rto * (1 + n / 2)
            self._tries[fd] = _Try(sock, host, port, n, now, now + timeout)
            host.in_flight += 1
            if self._epoll is not None:
                self._epoll.register(fd, select.EPOLLOUT | select.EPOLLONESHOT)
            else:
                assert self._loop is not None
                self._loop.add_writer(fd, self._on_writer, fd)
            return True
        if err in (errno.EADDRNOTAVAIL, errno.EAGAIN, errno.ENOBUFS):
            # ephemeral ports or buffers used up: wait for closes to free them
            sock.close()
            self.eaddrnotavail += 1
            host.retry.appendleft((port, n))
            self._limit = max(16, len(self._tries) * 3 // 4)
            self._pause(self._next_backoff())
            return False
        reason = icmp_reason(sock) if err in _ICMP_ERRNOS and self._opt.icmp_details else None
        if err == 0 and is_self_connect(sock):
            err, reason = errno.ECONNREFUSED, "self-connect"
        _close(sock, err)
        self._decide(host, port, n, err, None, reason)
        return True

    def _launch_soon(self) -> None:
        if not self._soon and self._loop is not None:
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
        if self._wake is None and self._loop is not None:
            self._wake = self._loop.call_later(delay, self._on_wake)

    def _on_wake(self) -> None:
        self._wake = None
        self._launch()

    def _schedule_tick(self) -> None:
        assert self._loop is not None
        self._tick = self._loop.call_later(_TICK_S, self._on_tick)

    # ------------------------------------------------------------ events

    def _on_epoll(self) -> None:
        assert self._epoll is not None
        tries = self._tries
        now = time.monotonic()
        for fd, _events in self._epoll.poll(0, 4096):
            tr = tries.pop(fd, None)
            if tr is not None:
                self._answered(tr, now)
        self._launch()

    def _on_writer(self, fd: int) -> None:
        assert self._loop is not None
        self._loop.remove_writer(fd)
        tr = self._tries.pop(fd, None)
        if tr is not None:
            self._answered(tr, time.monotonic())
        self._launch()

    def _answered(self, tr: _Try, now: float) -> None:
        sock = tr.sock
        err = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        reason = None
        if err in _ICMP_ERRNOS and self._opt.icmp_details:
            reason = icmp_reason(sock)
        elif err == 0 and is_self_connect(sock):
            err, reason = errno.ECONNREFUSED, "self-connect"
        _close(sock, err)
        tr.host.in_flight -= 1
        self._decide(tr.host, tr.port, tr.tries, err, now - tr.sent, reason)

    def _on_tick(self) -> None:
        now = time.monotonic()
        fixed = self._opt.timeout_s
        # deadlines follow the host's current RTO, so tries sent before the first RTT
        # sample (initial timeout) do not wait longer than the estimate now says
        expired = [
            fd
            for fd, tr in self._tries.items()
            if tr.deadline <= now
            or (not fixed and now - tr.sent >= tr.host.rto * (1 + tr.tries / 2))
        ]
        for fd in expired:
            tr = self._tries.pop(fd)
            sock = tr.sock
            # the answer may be waiting behind a busy loop: ask the socket itself
            err = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            connected = err == 0 and _is_connected(sock)
            if self._epoll is None and self._loop is not None:
                self._loop.remove_writer(fd)
            if err or connected:
                tr.host.in_flight -= 1
                reason = None
                if err in _ICMP_ERRNOS and self._opt.icmp_details:
                    reason = icmp_reason(sock)
                elif err == 0 and is_self_connect(sock):
                    err, reason = errno.ECONNREFUSED, "self-connect"
                _close(sock, err)
                self._decide(tr.host, tr.port, tr.tries, err, None, reason)
                continue
            sock.close()
            host = tr.host
            host.in_flight -= 1
            if tr.tries < self._opt.retries and host.stopped is None:
                if tr.tries == 0:
                    host.retried += 1
                host.retry.append((tr.port, tr.tries + 1))
            else:
                host.timed_out += 1
                host.silent += 1
                self._record(host, tr.port, PortState.FILTERED, "no-response", None, None)
        self._schedule_tick()
        self._launch()

    # ------------------------------------------------------------ decisions

    def _decide(
        self,
        host: _Host,
        port: int,
        tries: int,
        err: int,
        rtt: float | None,
        icmp: str | None,
    ) -> None:
        state, reason = classify(err)
        if icmp == "self-connect":
            reason = icmp
        if err in (errno.EADDRNOTAVAIL, errno.EMFILE, errno.ENFILE):
            host.retry.appendleft((port, tries))
            self._pause(self._next_backoff())
            return
        if state is PortState.UNREACHABLE:
            # as nmap: an ICMP unreachable answer to a port probe means "filtered"
            state = PortState.FILTERED
            reason = icmp or reason
            if err in _UNREACH_ERRNOS and icmp in (None, "host-unreach", "net-unreach"):
                host.unreach += 1
        else:
            host.answered += 1
            self._window_feedback(late=tries > 0)
        if rtt is not None and tries == 0 and state in (PortState.OPEN, PortState.CLOSED):
            self._sample(host, rtt)
        if state is PortState.FILTERED and reason == "no-response":
            host.timed_out += 1
        self._record(host, port, state, reason, err or None, rtt)

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
        if self._opt.timeout_s is None:
            rto = host.srtt + 4 * host.rttvar
            host.rto = min(self._opt.max_timeout_s, max(self._opt.min_timeout_s, rto))

    def _record(
        self,
        host: _Host,
        port: int,
        state: PortState,
        reason: str,
        err: int | None,
        rtt: float | None,
        proto: Proto = Proto.TCP,
    ) -> None:
        key = state.value
        host.counts[key] = host.counts.get(key, 0) + 1
        if state is not PortState.CLOSED or self._opt.include_closed:
            t = host.target
            self._emit(ProbeResult(t.host, t.address, port, proto, state, reason, err, rtt))
        if host.stopped is None and host.answered == 0:
            if host.unreach >= _DOWN_AFTER_UNREACH:
                self._stop_host(host, "down")
            elif host.silent >= _DOWN_AFTER_SILENT:
                self._stop_host(host, "no-answer")

    def _stop_host(self, host: _Host, status: str) -> None:
        host.stopped = status
        host.not_scanned += len(host.retry)
        host.retry.clear()
        if not host.exhausted:
            host.not_scanned += sum(1 for _ in host.ports)
            host.exhausted = True

    def _check_done(self) -> None:
        hosts = self._hosts
        if any(h.done for h in hosts):
            for host in [h for h in hosts if h.done]:
                hosts.remove(host)
                self._emit(self._summary(host))
            if not self._targets_done:
                self._launch()
                return
        fin = self._finished
        if self._targets_done and not hosts and not self._tries and fin and not fin.done():
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

    def decided_in_progress(self) -> int:
        """Ports decided so far on the hosts still in the window."""
        return sum(sum(h.counts.values()) + h.not_scanned for h in self._hosts)

    def interrupted_summaries(self) -> list[HostSummary]:
        """Summaries of the hosts still in progress (after a cancel)."""
        return [self._summary(h, "interrupted") for h in self._hosts]

    # ------------------------------------------------------------ UDP

    def _start_udp(self, host: _Host, port: int) -> None:
        if self._udp_probe is None or self._tg is None:
            host.not_scanned += 1
            return
        host.udp_pending += 1
        task = self._tg.create_task(self._udp(host, port))
        self._udp_tasks.add(task)
        task.add_done_callback(self._udp_tasks.discard)

    async def _udp(self, host: _Host, port: int) -> None:
        assert self._udp_probe is not None
        try:
            result = await self._udp_probe(host.target, port)
        finally:
            host.udp_pending -= 1
        state = result.state
        if state in (PortState.OPEN, PortState.CLOSED):
            host.answered += 1
        elif state is PortState.UNREACHABLE:
            state = PortState.FILTERED  # as nmap, and as the TCP side
        self._record(host, port, state, result.reason, result.errno, result.rtt_s, Proto.UDP)
        self._launch()


def _close(sock: _socket.socket, err: int) -> None:
    """Close; a connected socket is aborted (RST, no TIME-WAIT left behind)."""
    if err == 0:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_ABORT)
    sock.close()


def is_self_connect(sock: _socket.socket) -> bool:
    """True when a connect reached its own socket (TCP simultaneous open, RFC 9293 3.5).

    Connecting to a loopback port in the ephemeral range can pick that very port as the
    source port; the SYN then meets its own socket and "connects" although nothing
    listens. Such a port is closed.
    """
    try:
        return bool(sock.getsockname() == sock.getpeername())
    except OSError:
        return False


def _is_connected(sock: _socket.socket) -> bool:
    try:
        sock.getpeername()
    except OSError:
        return False
    return True
