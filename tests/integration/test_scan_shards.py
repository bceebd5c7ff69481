"""``scan --shard``: shards of a real loopback scan add up to the whole; the rate limiter's end."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import Sequence

import pytest

from portscope.cli import main
from portscope.models import PortState, ProbeResult, Proto
from portscope.scanner import HostSummary, ScanOptions, Shard, scan
from portscope.scanner._schedule import Answer, ProbeSink, Scheduler, Try
from portscope.scanner.targets import parse_ports, parse_targets


def test_shards_of_a_loopback_scan_add_up_to_the_whole(listeners: list[int]) -> None:
    spec = ",".join(f"{p - 40}-{p + 40}" for p in listeners)  # other listeners stay out
    targets = ["127.0.0.1", "127.0.0.2"]
    whole = {
        (r.address, r.port): r.state for r in scan(targets, spec, include_closed=True).results()
    }
    opened = {p for (a, p), s in whole.items() if s is PortState.OPEN and a == "127.0.0.1"}
    assert opened >= set(listeners)
    union: dict[tuple[str, int], PortState] = {}
    pairs = 0
    for index in (1, 2, 3):
        job = scan(targets, spec, include_closed=True, shard=Shard(index, 3, 99))
        for r in job.results():
            assert (r.address, r.port) not in union
            union[(r.address, r.port)] = r.state
        shard = job.report.shard
        assert shard is not None and (shard.index, shard.count, shard.seed) == (index, 3, 99)
        assert shard.total_pairs == len(whole) and shard.pairs == sum(
            s.ports for s in job.summaries
        )
        pairs += shard.pairs
    assert pairs == len(whole)
    assert union == whole


def test_cli_shard_coverage_line_and_json(
    listeners: list[int], capsys: pytest.CaptureFixture[str]
) -> None:
    spec = f"{listeners[0]}-{listeners[0] + 99}"
    assert main(["scan", "--shard", "2/4", "--seed", "5", "-p", spec, "127.0.0.1"]) == 0
    out = capsys.readouterr().out
    assert "coverage of shard 2/4 (seed 5, 25 of 100 (address, port) pairs)" in out
    assert main(["scan", "--json", "--shard", "4/4", "--seed", "5", "-p", spec, "127.0.0.1"]) == 0
    summary = json.loads(capsys.readouterr().out.splitlines()[-1])
    assert summary["shard"] == {"index": 4, "count": 4, "seed": 5, "pairs": 25, "total_pairs": 100}


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--shard", "0/3"], "--shard '0/3'"),
        (["--shard", "2"], "expected I/N"),
        (["--seed=-3", "--shard", "1/2"], "--seed '-3'"),
        (["--seed", "3"], "--seed only applies"),
        (["--shards", "3"], "--shards only applies"),
        (["--dask", "tcp://127.0.0.1:1", "--shard", "1/2"], "do not go together"),
        (["--dask", "tcp://127.0.0.1:1", "-sV"], "-sV does not apply"),
    ],
)
def test_bad_shard_options_exit_2_with_one_line(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["scan", *argv, "-p", "1", "127.0.0.1"]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err


class _Instant:
    """A prober whose every try is answered (closed) as it is sent."""

    proto = Proto.TCP
    fds_per_try = 1
    silent = Answer(PortState.FILTERED, "no-response")
    timeout_s: float | None = None
    retries: int | None = None

    def __init__(self) -> None:
        self.sink: ProbeSink | None = None

    def open(self, loop: asyncio.AbstractEventLoop, sink: ProbeSink) -> None:
        self.sink = sink

    def send(self, tries: Sequence[Try]) -> int:
        assert self.sink is not None
        for tr in tries:
            self.sink.answered(tr, Answer(PortState.CLOSED, "conn-refused"), 0.0)
        return len(tries)

    def expire(self, attempt: Try) -> Answer | None:
        return None

    def close(self) -> None:
        pass


@pytest.mark.parametrize("hosts", [1, 3])
def test_rate_limit_does_not_wait_after_the_last_probe(
    hosts: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 18: ``--rate`` waited one token interval after the last probe (the end of a
    host's ports was only found when a token came). A burst of one token at 50 probes/s:
    n probes need n - 1 waits for a token, not n."""
    wakes: list[float] = []
    original = Scheduler._schedule_wake

    def counted(self: Scheduler, delay: float) -> None:
        if self._wake is None:
            wakes.append(delay)
        original(self, delay)

    fired = {"n": 0}
    on_wake = Scheduler._on_wake

    def fire(self: Scheduler) -> None:
        fired["n"] += 1
        on_wake(self)

    monkeypatch.setattr(Scheduler, "_schedule_wake", counted)
    monkeypatch.setattr(Scheduler, "_on_wake", fire)
    events: list[ProbeResult | HostSummary] = []
    spec = parse_ports("1-4")
    engine = Scheduler(
        iter(parse_targets([f"127.0.0.{i}" for i in range(1, hosts + 1)])),
        lambda _target: iter(spec),
        ScanOptions(rate_pps=50, include_closed=True),
        events.append,
        {Proto.TCP: _Instant()},
    )
    asyncio.run(asyncio.wait_for(engine.run(), 10))
    probes = 4 * hosts
    assert engine.probes_sent == probes
    assert sum(isinstance(e, HostSummary) for e in events) == hosts
    assert fired["n"] == probes - 1


def test_dask_without_the_extra_is_one_line_with_the_install_hint(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "distributed", None)  # import distributed: ImportError
    assert main(["scan", "--dask", "tcp://127.0.0.1:1", "-p", "1", "127.0.0.1"]) == 2
    err = capsys.readouterr().err
    assert err == (
        "portscope: error: scan --dask needs the [distributed] extra: "
        "pip install 'portscope[distributed]'\n"
    )


@pytest.mark.parametrize("address", ["tcp://1.2.3", "udp://127.0.0.1:1", "127.0.0.1:0", ""])
def test_bad_scheduler_address_is_refused_before_connecting(
    address: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["scan", "--dask", address, "-p", "1", "127.0.0.1"]) == 2
    assert "expected a Dask scheduler address" in capsys.readouterr().err


def test_no_scheduler_there_is_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from portscope.scanner import _dask

    monkeypatch.setattr(_dask, "CONNECT_TIMEOUT_S", 0.5)
    with socket.socket() as s:  # a loopback port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    assert main(["scan", "--dask", f"tcp://127.0.0.1:{port}", "-p", "1", "127.0.0.1"]) == 2
    err = capsys.readouterr().err
    assert "no Dask scheduler answered there" in err and len(err.splitlines()) == 1
