"""Scans on a Dask cluster (``scan --dask SCHEDULER``): shards as tasks, results merged here.

The scan is cut into K shards (``_shard``: a keyed partition of the (address x port)
pairs; K defaults to 4 per worker, so a slow or lost worker costs a small share). Each
shard is one task (``run_shard``) submitted with ``distributed.Client.submit`` with
``retries``; the worker runs the asyncio engine (``Scan``) on its shard in the task's
thread and returns the shard's events and report. This side takes the results with
``distributed.as_completed`` as shards finish, streams the port results, and merges the
host summaries and coverage (``_merge.Merger``) when every shard is in: a host's ports are
spread over all shards.

A worker that dies mid-shard (killed, out of memory, its machine gone) loses only the
shard's partial results, which never left it: the scheduler runs the task again on
another worker (Dask reschedules the tasks of a lost worker; ``retries`` covers a task
that raised), so the merged result is complete and has no duplicates. Cancelling the scan
(Ctrl-C) sets a ``distributed.Event`` every running shard watches (the engine stops, its
sockets close) and cancels every task.

``--rate`` is the whole scan's: each shard gets ``rate / workers`` (one shard per worker
at a time). Workers are best started with ``--nthreads 1``: one shard (one event loop, one window of
probes) per process at a time. The workers need portscope installed, the scan's targets
reachable and the privilege of the technique (``-sS``: CAP_NET_RAW); the scan's traffic
leaves from the workers, not from here.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import threading
import time
from collections.abc import AsyncGenerator
from dataclasses import dataclass, field, fields, replace
from typing import TYPE_CHECKING, Any

from portscope.errors import BackendUnavailable, InvalidInput, PortscopeError
from portscope.models import ProbeResult
from portscope.scanner._merge import Merger
from portscope.scanner._shard import MAX_SHARDS, Shard
from portscope.scanner._types import Coverage, HostSummary, ScanEvent, ScanOptions, ScanReport

if TYPE_CHECKING:
    from portscope.scanner import Scan
    from portscope.scanner.targets import PortSpec, TargetSet

__all__ = ["DaskScan", "ShardOutcome", "WorkerCoverage", "load_distributed", "run_shard"]

SHARDS_PER_WORKER = 4
RETRIES = 2  # tries again of a shard whose task raised (a lost worker is rescheduled anyway)
CONNECT_TIMEOUT_S = 10.0
_POLL_S = 0.05
_STOP_POLL_S = 0.25
_INSTALL_HINT = "scan --dask needs the [distributed] extra: pip install 'portscope[distributed]'"


def load_distributed() -> Any:
    """``distributed``, or ``BackendUnavailable`` with the install hint."""
    try:
        import distributed
    except ImportError:
        raise BackendUnavailable(_INSTALL_HINT) from None
    return distributed


@dataclass(frozen=True, slots=True)
class ShardOutcome:
    """What one shard task returns.

    Attributes:
        shard: the shard.
        worker: the address of the worker that ran it (``None`` outside a worker).
        events: the port results and host summaries, in the order they came.
        report: the shard's report (with its ``ShardCoverage``).
    """

    shard: Shard
    worker: str | None
    events: list[ScanEvent]
    report: ScanReport


@dataclass(slots=True)
class WorkerCoverage:
    """The share of one worker: shards, pairs and coverage, summed over its shards."""

    worker: str
    shards: int = 0
    pairs: int = 0
    probes_sent: int = 0
    coverage: Coverage = field(default_factory=lambda: Coverage(0, 0, 0, 0))

    def add(self, report: ScanReport) -> None:
        self.shards += 1
        self.pairs += report.shard.pairs if report.shard is not None else 0
        self.probes_sent += report.probes_sent
        c = self.coverage
        self.coverage = Coverage(
            *(getattr(c, f.name) + getattr(report.coverage, f.name) for f in fields(Coverage))
        )


def run_shard(
    targets: TargetSet,
    ports: PortSpec,
    options: ScanOptions,
    shard: Shard,
    stop_event: str | None = None,
) -> ShardOutcome:
    """Scan one shard here (a Dask task; also callable directly). Blocks until done.

    Args:
        targets, ports, options: the scan, as the client checked it.
        shard: the shard to probe.
        stop_event: the name of a ``distributed.Event``; once it is set the scan stops.

    Returns:
        The shard's events and report.
    """
    from portscope.scanner import Scan

    worker = None
    with contextlib.suppress(ImportError, ValueError):
        from distributed import get_worker

        worker = get_worker().address
    job = Scan(targets, ports, options, shard)
    events: list[ScanEvent] = []

    async def scan_all() -> None:
        async for batch in job.batches():
            events.extend(batch)

    async def main() -> None:
        task = asyncio.ensure_future(scan_all())
        done = threading.Event()
        if stop_event is not None and worker is not None:
            loop = asyncio.get_running_loop()
            threading.Thread(
                target=_watch_stop, args=(stop_event, done, loop, task), daemon=True
            ).start()
        try:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        finally:
            done.set()

    asyncio.run(main())
    return ShardOutcome(shard, worker, events, job.report)


def _watch_stop(
    name: str,
    done: threading.Event,
    loop: asyncio.AbstractEventLoop,
    task: asyncio.Future[None],
) -> None:
    """Cancel ``task`` when the ``distributed.Event`` ``name`` is set (Ctrl-C on the client)."""
    from distributed import Event

    try:
        event = Event(name)  # type: ignore[no-untyped-call]
        while not done.is_set():
            if event.wait(timeout=_STOP_POLL_S):  # type: ignore[no-untyped-call]
                loop.call_soon_threadsafe(task.cancel)
                return
    except Exception:
        return


class DaskScan:
    """A scan cut into shards run on a Dask cluster; consumed like a ``Scan``.

    Args:
        job: the prepared scan (targets, ports, options checked).
        address: the scheduler's address (``tcp://HOST:PORT``).
        shards: the number of shards, or ``None`` for 4 per worker.
        seed: the shard permutation's key.

    Attributes (after ``connect``): ``workers`` (addresses), ``shard_count``; while
    running: ``shards_done``, ``decided`` (pairs of the finished shards); after:
    ``report`` (merged), ``per_worker``.
    """

    def __init__(self, job: Scan, address: str, *, shards: int | None, seed: int) -> None:
        self.targets = job.targets
        self.ports = job.ports
        self.options = job.options
        self.shard = None  # the whole scan (as ``Scan.shard``)
        self.address = address
        self.seed = seed
        self._want_shards = shards
        self.shard_count = 0
        self.shards_done = 0
        self.decided = 0
        self.workers: list[str] = []
        self.per_worker: dict[str, WorkerCoverage] = {}
        self.retried = 0
        self.started: float | None = None
        self._client: Any = None
        self._merger = Merger()
        self._report: ScanReport | None = None
        self._interrupted = False

    def connect(self) -> None:
        """Reach the scheduler and count its workers.

        Raises:
            BackendUnavailable: ``distributed`` is not installed.
            InvalidInput: no scheduler answers at the address, or it has no worker.
        """
        distributed = load_distributed()
        try:
            client = distributed.Client(
                self.address, timeout=CONNECT_TIMEOUT_S, set_as_default=False
            )
        except (OSError, ValueError, TypeError, TimeoutError) as err:
            raise InvalidInput(
                f"--dask {self.address!r}: no Dask scheduler answered there "
                f"({type(err).__name__}: {str(err)[:120]}); expected tcp://HOST:PORT"
            ) from None
        try:
            client.wait_for_workers(1, timeout=CONNECT_TIMEOUT_S)
        except (OSError, TimeoutError) as err:
            client.close()
            raise InvalidInput(
                f"--dask {self.address!r}: the scheduler has no worker ({err})"
            ) from None
        self._client = client
        self.workers = sorted(client.scheduler_info()["workers"])
        pairs = max(1, len(self.targets) * self.ports.count)
        want = self._want_shards or SHARDS_PER_WORKER * len(self.workers)
        self.shard_count = max(1, min(want, MAX_SHARDS, pairs))

    @property
    def report(self) -> ScanReport:
        if self._report is None:
            return self._merged_report()
        return self._report

    def unfinished(self) -> list[HostSummary]:
        return []

    def _merged_report(self) -> ScanReport:
        merged = self._merger.result().report
        return ScanReport(
            hosts=merged.hosts,
            hosts_up=merged.hosts_up,
            ports=self.ports.count,
            counts=merged.counts,
            coverage=merged.coverage,
            probes_sent=merged.probes_sent,
            elapsed_s=time.monotonic() - self.started if self.started else 0.0,
            interrupted=self._interrupted,
            options=self.options,
        )

    async def batches(self) -> AsyncGenerator[list[ScanEvent], None]:
        """Run every shard; yield port results as shards finish, then the merged hosts."""
        distributed = load_distributed()
        if self._client is None:
            self.connect()
        client = self._client
        self.started = time.monotonic()
        token = secrets.token_hex(6)
        stop_name = f"portscope-stop-{token}"
        stop = distributed.Event(stop_name, client=client)
        count = self.shard_count
        options = self.options
        if options.rate_pps:  # the rate is the scan's: split over the shards running at once
            at_once = max(1, min(count, len(self.workers)))
            options = replace(options, rate_pps=options.rate_pps / at_once)
        futures = [
            client.submit(
                run_shard, self.targets, self.ports, options, Shard(i, count, self.seed),
                stop_name, key=f"portscope-shard-{i}-of-{count}-{token}", pure=False,
                retries=RETRIES,
            )
            for i in range(1, count + 1)
        ]  # fmt: skip
        results = distributed.as_completed(
            futures, loop=client.loop, with_results=True, raise_errors=False
        )
        try:
            while not results.is_empty():
                if not results.has_ready():
                    await asyncio.sleep(_POLL_S)
                    continue
                out: list[ScanEvent] = []
                for future, outcome in results.next_batch(block=False):
                    out += self._take(future, outcome)
                if out:
                    yield out
            merged = self._merger.result()
            self._report = self._merged_report()
            yield list(merged.summaries)
        finally:
            if self._report is None:
                self._interrupted = True
                with contextlib.suppress(Exception):
                    stop.set()
                with contextlib.suppress(Exception):
                    client.cancel(futures, force=True)
            with contextlib.suppress(Exception):
                client.close(timeout=5)

    def _take(self, future: Any, outcome: Any) -> list[ScanEvent]:
        if not isinstance(outcome, ShardOutcome):
            raise PortscopeError(
                f"shard {future.key} failed on every try (retries={RETRIES}): "
                f"{type(outcome).__name__}: {str(outcome)[:200]}"
            )
        source = str(outcome.shard)
        self._merger.add_all(source, outcome.events)
        self._merger.add(source, outcome.report)
        worker = outcome.worker or "local"
        self.per_worker.setdefault(worker, WorkerCoverage(worker)).add(outcome.report)
        self.shards_done += 1
        if outcome.report.shard is not None:
            self.decided += outcome.report.shard.pairs
        return [e for e in outcome.events if isinstance(e, ProbeResult)]
