"""The scheduler's failure handling, through the connect prober's socket seam, on loopback."""

from __future__ import annotations

import _socket
import asyncio
import errno
import time
from collections.abc import Callable, Sequence

from portscope.models import PortState, ProbeResult, Proto
from portscope.scanner import HostSummary, ScanOptions
from portscope.scanner._connect import ConnectProber
from portscope.scanner._schedule import Answer, ProbeSink, Scheduler, Try
from portscope.scanner.targets import parse_ports, parse_targets


def run_engine(
    ports: str, factory: type[_socket.socket], **opts: object
) -> tuple[Scheduler, list[ProbeResult | HostSummary]]:
    events: list[ProbeResult | HostSummary] = []
    spec = parse_ports(ports)
    engine = Scheduler(
        iter(parse_targets(["127.0.0.1"])),
        lambda _target: iter(spec),
        ScanOptions(include_closed=True, **opts),  # type: ignore[arg-type]
        events.append,
        {Proto.TCP: ConnectProber(socket_factory=factory)},
    )
    asyncio.run(asyncio.wait_for(engine.run(), 30))
    return engine, events


def closed_range(count: int) -> range:
    """``count`` loopback TCP ports that nothing is bound to now, below the ephemeral range.

    Other processes on the host (and other tests) may listen anywhere: a fixed range is not
    known to be closed. Ports under 32768 are never handed out by the kernel for port 0.
    """
    for base in range(20_001, 32_000 - count, count + 50):
        probes = []
        try:
            for port in range(base, base + count):
                sock = _socket.socket(_socket.AF_INET, _socket.SOCK_STREAM)
                probes.append(sock)
                sock.bind(("127.0.0.1", port))
        except OSError:
            continue
        finally:
            for sock in probes:
                sock.close()
        return range(base, base + count)
    raise AssertionError(f"no {count} free loopback ports in 20001-32000")


def test_eaddrnotavail_backs_off_and_loses_no_port() -> None:
    failures = {"left": 12}

    class Exhausted(_socket.socket):
        def connect_ex(self, address: object) -> int:  # type: ignore[override]
            if failures["left"] > 0:
                failures["left"] -= 1
                return errno.EADDRNOTAVAIL  # as when ip_local_port_range is used up
            return super().connect_ex(address)  # type: ignore[arg-type]

    ports = closed_range(200)
    engine, events = run_engine(f"{ports.start}-{ports.stop - 1}", Exhausted)
    results = [e for e in events if isinstance(e, ProbeResult)]
    assert sorted(r.port for r in results) == list(ports)
    assert all(r.state is PortState.CLOSED and r.proto is Proto.TCP for r in results)
    assert engine.eaddrnotavail == 12
    [summary] = [e for e in events if isinstance(e, HostSummary)]
    assert summary.counts == {"closed": 200} and summary.not_scanned == 0


def test_emfile_shrinks_the_window_instead_of_failing() -> None:
    calls = {"n": 0}

    class FewFds(_socket.socket):
        def __init__(self, *args: object) -> None:
            calls["n"] += 1
            if calls["n"] % 7 == 0:
                raise OSError(errno.EMFILE, "Too many open files")
            super().__init__(*args)  # type: ignore[arg-type]

    _, events = run_engine("43001-43100", FewFds)
    results = [e for e in events if isinstance(e, ProbeResult)]
    assert sorted(r.port for r in results) == list(range(43001, 43101))


def test_window_halves_on_late_answers_and_ignores_random_loss() -> None:
    engine = Scheduler(iter(()), lambda _t: iter(()), ScanOptions(), lambda e: None, {})
    engine._limit = engine._max_limit = 1024

    def feed(answers: int, late_every: int) -> None:
        for i in range(answers):
            engine._window_feedback(late=late_every > 0 and i % late_every == 0)

    feed(512, late_every=10)  # 10 % of answers came only to a retry: overload
    assert engine._limit == 512
    feed(512, late_every=10)
    assert engine._limit == 256
    feed(512, late_every=100)  # 1 %: random WAN loss, below the threshold: grow back
    assert engine._limit == 256 + 32 + 8
    feed(512 * 40, late_every=100)
    assert engine._limit == 1024  # never above the ceiling
    feed(512 * 20, late_every=2)
    assert engine._limit == 32  # never below the floor


class _LateProber:
    """A prober whose answers come after ``latency(try)`` seconds (an asyncio timer), as a
    kernel answers a connect late when it is starved of CPU. Every port is closed."""

    proto = Proto.TCP
    fds_per_try = 0
    silent = Answer(PortState.FILTERED, "no-response")
    timeout_s = None
    retries = None

    def __init__(self, latency: Callable[[Try], float]) -> None:
        self._latency = latency
        self._timers: dict[Try, asyncio.TimerHandle] = {}
        self.sent: list[tuple[str, int, int, float]] = []

    def open(self, loop: asyncio.AbstractEventLoop, sink: ProbeSink) -> None:
        self._loop, self._sink = loop, sink

    def send(self, tries: Sequence[Try]) -> int:
        for tr in tries:
            tr.sent = time.monotonic()
            self.sent.append((tr.target.address, tr.port, tr.tries, tr.sent))
            self._timers[tr] = self._loop.call_later(self._latency(tr), self._answer, tr)
        return len(tries)

    def _answer(self, tr: Try) -> None:
        del self._timers[tr]
        rtt = time.monotonic() - tr.sent
        self._sink.answered(tr, Answer(PortState.CLOSED, "conn-refused"), rtt)

    def expire(self, attempt: Try) -> Answer | None:
        self._timers.pop(attempt).cancel()  # the socket is closed: a later answer is lost
        return None

    def close(self) -> None:
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()


def test_a_host_timed_on_an_idle_start_follows_the_path_when_answers_slow_down() -> None:
    # bench_dask under load: the scan's first host had its RTO from two answers taken
    # while the machine was idle (3 ms: the 50 ms floor); the kernel then answered in
    # 100-300 ms (its veth NAPI thread starved), every try of that host expired before
    # its answer, Karn's rule kept answers to retries out of its estimate, and 96 of its
    # ports were called filtered while every other host, timed on the load, was right.
    start = time.monotonic()
    first = "127.0.0.1"

    def latency(tr: Try) -> float:
        if tr.target.address == first and tr.sent - start < 0.02:
            return 0.001  # the idle start: the first host's first answers
        return 0.25 if tr.target.address == first else 0.15

    prober = _LateProber(latency)
    events: list[ProbeResult | HostSummary] = []
    spec = parse_ports("1-40")
    engine = Scheduler(
        iter(parse_targets(["127.0.0.1-4"])),
        lambda _target: iter(spec),
        ScanOptions(include_closed=True, max_concurrency=8),
        events.append,
        {Proto.TCP: prober},
    )
    asyncio.run(asyncio.wait_for(engine.run(), 30))
    results = [e for e in events if isinstance(e, ProbeResult)]
    assert len(results) == 4 * 40
    wrong = [(r.address, r.port, r.state) for r in results if r.state is not PortState.CLOSED]
    assert wrong == []
    # the first host really was timed on its idle start: some of its tries expired
    assert any(a == first and n > 0 for a, _p, n, _t in prober.sent)
