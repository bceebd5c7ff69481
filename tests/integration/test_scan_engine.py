"""The scheduler's failure handling, through the connect prober's socket seam, on loopback."""

from __future__ import annotations

import _socket
import asyncio
import errno

from portscope.models import PortState, ProbeResult, Proto
from portscope.scanner import HostSummary, ScanOptions
from portscope.scanner._connect import ConnectProber
from portscope.scanner._schedule import Scheduler
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


def test_eaddrnotavail_backs_off_and_loses_no_port() -> None:
    failures = {"left": 12}

    class Exhausted(_socket.socket):
        def connect_ex(self, address: object) -> int:  # type: ignore[override]
            if failures["left"] > 0:
                failures["left"] -= 1
                return errno.EADDRNOTAVAIL  # as when ip_local_port_range is used up
            return super().connect_ex(address)  # type: ignore[arg-type]

    engine, events = run_engine("42001-42200", Exhausted)
    results = [e for e in events if isinstance(e, ProbeResult)]
    assert sorted(r.port for r in results) == list(range(42001, 42201))
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
