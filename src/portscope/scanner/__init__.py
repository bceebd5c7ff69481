"""What other hosts answer: ``probe`` (a few ports of one host) and ``scan`` (many).

``scan`` checks every input first (targets resolved, ports parsed, sizes bounded), then
returns a ``Scan``: iterate it (``for``/``async for``) to get results while the scan runs,
then read ``scan.report``. The engine is in ``_connect``; see its docstring for the
timeout and retransmission design.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncGenerator, AsyncIterator, Iterable, Iterator
from dataclasses import dataclass, field

from portscope.errors import InvalidInput
from portscope.models import ProbeResult
from portscope.scanner._connect import ConnectEngine, HostSummary, ScanOptions
from portscope.scanner._udp import probe_udp
from portscope.scanner.probe import probe, probe_async
from portscope.scanner.targets import (
    PortSpec,
    Target,
    TargetSet,
    check_size,
    parse_ports,
    parse_targets,
)

__all__ = [
    "Coverage",
    "HostSummary",
    "PortSpec",
    "Scan",
    "ScanEvent",
    "ScanOptions",
    "ScanReport",
    "TargetSet",
    "probe",
    "probe_async",
    "scan",
]

ScanEvent = ProbeResult | HostSummary
"""What a scan yields: a port's result, or a host's summary once its ports are done."""


@dataclass(frozen=True, slots=True)
class Coverage:
    """How each port's state was decided.

    Attributes:
        answered: ports with a definite answer (SYN-ACK, RST, ICMP, UDP reply).
        retried: ports that needed more than one try.
        timed_out: ports decided by timeout: no answer after every try (``filtered`` or
            ``open|filtered``).
        not_scanned: ports left out (host down or silent, or the scan interrupted).
    """

    answered: int
    retried: int
    timed_out: int
    not_scanned: int


@dataclass(frozen=True, slots=True)
class ScanReport:
    """The end of a scan.

    Attributes:
        hosts: addresses scanned (or begun, when interrupted).
        hosts_up: addresses where something answered.
        ports: (port, transport) pairs per address in the port specification.
        counts: results per state name, over all hosts.
        coverage: how the states were decided.
        probes_sent: TCP connects and UDP probe series started, retries included.
        elapsed_s: wall time in seconds.
        interrupted: the scan was stopped before the end.
        options: the options the scan ran with.
    """

    hosts: int
    hosts_up: int
    ports: int
    counts: dict[str, int]
    coverage: Coverage
    probes_sent: int
    elapsed_s: float
    interrupted: bool
    options: ScanOptions = field(default_factory=ScanOptions)


class Scan:
    """A prepared scan. Iterate it once (sync or async) to run it; then read ``report``.

    Iterating yields ``ProbeResult`` for every port that is not closed (all ports with
    ``include_closed``) as soon as it is decided, and a ``HostSummary`` when an address is
    finished. Breaking out of the loop (or cancelling) stops the scan and closes its sockets;
    ``report`` then says ``interrupted``.
    """

    def __init__(self, targets: TargetSet, ports: PortSpec, options: ScanOptions) -> None:
        self.targets = targets
        self.ports = ports
        self.options = options
        self.started: float | None = None
        self._summaries: list[HostSummary] = []
        self._engine: ConnectEngine | None = None
        self._report: ScanReport | None = None
        self._interrupted = False

    @property
    def report(self) -> ScanReport:
        """The final report (a partial one while running or after an interruption)."""
        if self._report is not None:
            return self._report
        return self._make_report()

    @property
    def decided(self) -> int:
        """Ports decided so far, over all addresses (for progress displays)."""
        done = sum(sum(s.counts.values()) + s.not_scanned for s in self._summaries)
        return done + (self._engine.decided_in_progress() if self._engine else 0)

    def unfinished(self) -> list[HostSummary]:
        """Summaries of addresses begun but not finished when the scan was interrupted."""
        if not self._interrupted or self._engine is None:
            return []
        return self._engine.interrupted_summaries()

    def _make_report(self) -> ScanReport:
        summaries = list(self._summaries)
        if self._interrupted and self._engine is not None:
            summaries += self._engine.interrupted_summaries()
        counts: dict[str, int] = {}
        for s in summaries:
            for k, v in s.counts.items():
                counts[k] = counts.get(k, 0) + v
        timed_out = sum(s.timed_out for s in summaries)
        decided = sum(counts.values())
        return ScanReport(
            hosts=len(summaries),
            hosts_up=sum(1 for s in summaries if s.status == "up"),
            ports=self.ports.count,
            counts=counts,
            coverage=Coverage(
                answered=decided - timed_out,
                retried=sum(s.retried for s in summaries),
                timed_out=timed_out,
                not_scanned=sum(s.not_scanned for s in summaries),
            ),
            probes_sent=self._engine.probes_sent if self._engine else 0,
            elapsed_s=time.monotonic() - self.started if self.started else 0.0,
            interrupted=self._interrupted,
            options=self.options,
        )

    async def batches(self) -> AsyncGenerator[list[ScanEvent], None]:
        """Run the scan, yielding events in batches as they arrive (the fastest form)."""
        if self.started is not None:
            raise RuntimeError("a Scan runs once; call scan() again")
        self.started = time.monotonic()
        pending: list[ScanEvent] = []
        wake = asyncio.Event()
        opts = self.options

        def emit(event: ScanEvent) -> None:
            if isinstance(event, HostSummary):
                self._summaries.append(event)
            pending.append(event)
            wake.set()

        udp_timeout = opts.timeout_s or 1.0

        async def udp(target: Target, port: int) -> ProbeResult:
            return await probe_udp(
                target.host,
                target.address,
                target.family,
                port,
                timeout_s=udp_timeout,
                retries=min(opts.retries, 2),
            )

        engine = ConnectEngine(
            iter(self.targets),
            lambda: iter(self.ports),
            opts,
            emit,
            udp_probe=udp if self.ports.udp else None,
            backlog=lambda: len(pending),
        )
        self._engine = engine
        runner = asyncio.ensure_future(engine.run())
        try:
            while True:
                if not pending:
                    if runner.done():
                        break
                    wait = asyncio.ensure_future(wake.wait())
                    await asyncio.wait({wait, runner}, return_when=asyncio.FIRST_COMPLETED)
                    wait.cancel()
                wake.clear()
                if pending:
                    batch = pending[:]
                    pending.clear()
                    engine.kick()
                    yield batch
            runner.result()  # re-raise an engine error
            self._report = self._make_report()
        finally:
            if self._report is None:
                self._interrupted = True  # a break, a cancel or Ctrl-C
            if not runner.done():
                runner.cancel()
                await asyncio.wait({runner})  # our own cancellation still propagates
            engine.close()

    async def __aiter__(self) -> AsyncIterator[ScanEvent]:
        async for batch in self.batches():
            for event in batch:
                yield event

    def __iter__(self) -> Iterator[ScanEvent]:
        loop = asyncio.new_event_loop()
        agen = self.batches()
        try:
            while True:
                try:
                    batch = loop.run_until_complete(anext(agen))
                except StopAsyncIteration:
                    break
                yield from batch
        finally:
            # after a break or Ctrl-C: cancel what is still running (the step that was
            # interrupted, the engine), then close the generator; its finally closes sockets
            pending = asyncio.all_tasks(loop)
            for task in pending:
                task.cancel()
            if pending:
                loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            with contextlib.suppress(RuntimeError):
                loop.run_until_complete(agen.aclose())
            loop.run_until_complete(loop.shutdown_asyncgens())
            if self._engine is not None:
                self._engine.close()
            loop.close()


def scan(
    targets: TargetSet | str | Iterable[str],
    ports: PortSpec | str = "1-1000",
    *,
    exclude: Iterable[str] = (),
    family: int | None = None,
    yes: bool = False,
    max_concurrency: int | None = None,
    rate_pps: float | None = None,
    timeout_s: float | None = None,
    retries: int = 3,
    include_closed: bool = False,
    options: ScanOptions | None = None,
) -> Scan:
    """Prepare a TCP connect (and UDP) scan; every input is checked before any packet.

    Needs no privilege. The scan runs when the returned ``Scan`` is iterated.

    Args:
        targets: a ``TargetSet`` or target strings (names, addresses, CIDR blocks, ranges;
            see ``portscope.scanner.targets.parse_targets``).
        ports: a ``PortSpec`` or an nmap-style spec (``"22,80,1000-2000"``, ``"-"``,
            ``"T:80,U:53"``). Default ``"1-1000"``.
        exclude: targets never scanned.
        family: 4 or 6 to keep only that family.
        yes: allow more than ``MAX_ADDRESSES`` addresses or ``MAX_PROBES`` probes.
        max_concurrency: sockets open at once (default: 1,024, or less by RLIMIT_NOFILE).
        rate_pps: new connections per second, or ``None`` for no limit.
        timeout_s: fixed seconds per try; ``None`` for RTT-adaptive timeouts (RFC 6298).
        retries: tries after the first before a silent port is filtered. Default 3.
        include_closed: also yield closed ports.
        options: full ``ScanOptions``; the keyword arguments above override it.

    Returns:
        The prepared scan.

    Raises:
        InvalidTarget, InvalidPortSpec: malformed or unresolvable input.
        NetworkSafetyError: multicast/broadcast targets, or a scan over the size bounds
            without ``yes``.
        InvalidInput: a negative rate, timeout, retries or concurrency.
    """
    if rate_pps is not None and rate_pps <= 0:
        raise InvalidInput(f"rate {rate_pps!r}: expected connections per second above 0")
    if timeout_s is not None and timeout_s <= 0:
        raise InvalidInput(f"timeout {timeout_s!r}: expected seconds above 0")
    if retries < 0:
        raise InvalidInput(f"retries {retries!r}: expected 0 or more")
    if max_concurrency is not None and max_concurrency < 1:
        raise InvalidInput(f"max concurrency {max_concurrency!r}: expected 1 or more")
    if isinstance(targets, str):
        targets = [targets]
    target_set = (
        targets
        if isinstance(targets, TargetSet)
        else parse_targets(targets, exclude=exclude, family=family)
    )
    spec = ports if isinstance(ports, PortSpec) else parse_ports(ports)
    if spec.count == 0:
        raise InvalidInput("no ports to scan")
    check_size(target_set, spec, yes=yes)
    base = options or ScanOptions()
    opts = ScanOptions(
        max_concurrency=max_concurrency or base.max_concurrency,
        rate_pps=rate_pps or base.rate_pps,
        timeout_s=timeout_s or base.timeout_s,
        min_timeout_s=base.min_timeout_s,
        max_timeout_s=base.max_timeout_s,
        initial_timeout_s=base.initial_timeout_s,
        retries=retries,
        host_parallelism=base.host_parallelism,
        include_closed=include_closed or base.include_closed,
        icmp_details=base.icmp_details,
    )
    return Scan(target_set, spec, opts)
