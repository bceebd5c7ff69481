"""What other hosts answer: ``probe`` (a few ports of one host) and ``scan`` (many).

``scan`` checks every input first (targets resolved, ports parsed, sizes bounded), then
returns a ``Scan``: iterate it (``for``/``async for``; ``scan.results()`` and ``scan.hosts()``
for one kind of event) to get results while the scan runs, then read ``scan.report``. The
scheduler is in ``_schedule`` (timeouts, retransmission, window, rate, fd budget; see its
docstring); the probers it drives are in ``_connect`` (TCP connect), ``_syn`` (raw SYN and
ACK, with ``_packets`` and ``_raw``) and ``_udp`` (UDP, payloads in ``_payloads``);
``trace`` finds where probes stop on the path. The public types are in ``_types``.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Iterable, Iterator
from typing import Generic, TypeVar

from portscope.errors import InvalidInput
from portscope.models import ProbeResult, Proto
from portscope.scanner._connect import ConnectProber
from portscope.scanner._schedule import Prober, Scheduler
from portscope.scanner._shard import Shard, shard_ports
from portscope.scanner._types import (
    DEFAULT_TOP_PORTS,
    TECHNIQUES,
    Coverage,
    HostSummary,
    ScanEvent,
    ScanOptions,
    ScanReport,
    ShardCoverage,
)
from portscope.scanner._udp import UdpProber
from portscope.scanner.probe import probe, probe_async
from portscope.scanner.targets import (
    PortSpec,
    Target,
    TargetSet,
    check_size,
    parse_ports,
    parse_targets,
    top_ports,
)

__all__ = [
    "DEFAULT_TOP_PORTS",
    "Coverage",
    "HostSummary",
    "PortSpec",
    "Scan",
    "ScanEvent",
    "ScanOptions",
    "ScanReport",
    "Shard",
    "ShardCoverage",
    "Stream",
    "TargetSet",
    "probe",
    "probe_async",
    "scan",
]

T = TypeVar("T", ProbeResult, HostSummary)
_SHARD_HOSTS = 1024  # the most hosts a shard's scan holds at once


class Stream(Generic[T]):
    """One kind of a scan's events, iterated sync (``for``) or async (``async for``).

    Made by ``Scan.results()`` and ``Scan.hosts()``; iterating it runs the scan (once).
    """

    def __init__(self, job: Scan, kind: type[T]) -> None:
        self._job = job
        self._kind: type[T] = kind

    def __iter__(self) -> Iterator[T]:
        kind = self._kind
        for event in self._job:
            if isinstance(event, kind):
                yield event

    async def __aiter__(self) -> AsyncIterator[T]:
        kind = self._kind
        async for batch in self._job.batches():
            for event in batch:
                if isinstance(event, kind):
                    yield event


class Scan:
    """A prepared scan. Iterate it once (sync or async) to run it; then read ``report``.

    Three ways to run it, each once:

    * ``for result in scan.results()`` (or ``async for``): ``ProbeResult`` for every port
      that is not closed (all ports with ``include_closed``), as soon as it is decided.
      The host summaries are kept in ``scan.summaries``.
    * ``for summary in scan.hosts()``: a ``HostSummary`` when an address is finished.
    * ``for event in scan``: both, as ``ScanEvent`` (``ProbeResult | HostSummary``), in
      the order they happen (``match event: case ProbeResult(): ...``).

    Breaking out of the loop (or cancelling) stops the scan and closes its sockets;
    ``report`` then says ``interrupted``.
    """

    def __init__(
        self,
        targets: TargetSet,
        ports: PortSpec,
        options: ScanOptions,
        shard: Shard | None = None,
    ) -> None:
        self.targets = targets
        self.ports = ports
        self.options = options
        self.shard = shard
        self._addresses = 0  # addresses enumerated (a shard walks every one)
        self._pairs = 0  # (address, port) pairs handed to the scheduler
        self._enumerated = False
        self.started: float | None = None
        self._summaries: list[HostSummary] = []
        self._engine: Scheduler | None = None
        self._report: ScanReport | None = None
        self._interrupted = False

    @property
    def report(self) -> ScanReport:
        """The final report (a partial one while running or after an interruption)."""
        if self._report is not None:
            return self._report
        return self._make_report()

    @property
    def summaries(self) -> list[HostSummary]:
        """The summaries of the addresses finished so far, in the order they finished."""
        return list(self._summaries)

    def results(self) -> Stream[ProbeResult]:
        """The port results alone, as a stream (runs the scan when iterated)."""
        return Stream(self, ProbeResult)

    def hosts(self) -> Stream[HostSummary]:
        """The host summaries alone, as a stream (runs the scan when iterated)."""
        return Stream(self, HostSummary)

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
        undecided = counts.get("undecided", 0)
        decided = sum(counts.values()) - undecided
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
                undecided=undecided,
            ),
            probes_sent=self._engine.probes_sent if self._engine else 0,
            elapsed_s=time.monotonic() - self.started if self.started else 0.0,
            interrupted=self._interrupted,
            options=self.options,
            shard=self._shard_coverage(),
        )

    def _shard_coverage(self) -> ShardCoverage | None:
        shard = self.shard
        if shard is None:
            return None
        addresses = self._addresses if self._enumerated else len(self.targets)
        total = addresses * self.ports.count
        # P is a bijection onto [0, total): shard I holds the indices = I-1 (mod N) there
        expected = max(0, (total - shard.index + shard.count) // shard.count)
        pairs = self._pairs if self._enumerated else expected
        return ShardCoverage(shard.index, shard.count, shard.seed, pairs, total)

    def _work(
        self,
    ) -> tuple[Iterator[Target], Callable[[Target], Iterator[tuple[Proto, int]]]]:
        """The scheduler's targets and each target's (transport, port) items."""
        shard, spec = self.shard, self.ports
        if shard is None or shard.count == 1:

            def counted() -> Iterator[Target]:
                for target in self.targets:
                    self._addresses += 1
                    self._pairs += spec.count
                    yield target
                self._enumerated = True

            return counted(), lambda _target: iter(spec)
        items = list(spec)
        held: dict[int, list[tuple[Proto, int]]] = {}

        def targets() -> Iterator[Target]:
            for index, target in enumerate(self.targets):
                self._addresses = index + 1
                mine = list(shard_ports(shard, index, items))
                if mine:  # an address with no pair in this shard is not scanned here
                    self._pairs += len(mine)
                    held[id(target)] = mine
                    yield target
            self._enumerated = True

        return targets(), lambda target: iter(held.pop(id(target)))

    async def batches(self) -> AsyncGenerator[list[ScanEvent], None]:
        """Run the scan, yielding events in batches as they arrive (the fastest form)."""
        if self.started is not None:
            raise RuntimeError("a Scan runs once; call scan() again")
        self.started = time.monotonic()
        pending: list[ScanEvent] = []
        wake = asyncio.Event()
        opts = self.options
        if self.shard is not None and self.shard.count > 1:
            # a shard holds 1/N of each address's ports but a host still lives as long as
            # its slowest (silent) port's tries: N times the hosts at once keep as many
            # probes in flight as the whole scan would (measured: 4 shards of 4,096
            # addresses x the top 100 took 1.56x the whole scan's time with 64 hosts)
            window = min(opts.host_parallelism * self.shard.count, _SHARD_HOSTS)
            opts = dataclasses.replace(opts, host_parallelism=max(opts.host_parallelism, window))

        def emit(event: ScanEvent) -> None:
            if isinstance(event, HostSummary):
                self._summaries.append(event)
            pending.append(event)
            wake.set()

        probers: dict[Proto, Prober] = {Proto.TCP: _tcp_prober(opts)}
        if self.ports.udp:
            # services take longer to answer than the network's RTT: 1 s per try, 3 tries
            probers[Proto.UDP] = UdpProber(
                timeout_s=opts.timeout_s or 1.0,
                retries=min(opts.retries, 2),
                icmp_details=opts.icmp_details,
                source_addresses=opts.source_addresses,
            )
        targets, port_items = self._work()
        engine = Scheduler(
            targets,
            port_items,
            opts,
            emit,
            probers,
            backlog=lambda: len(pending),
        )
        self._engine = engine
        runner = asyncio.ensure_future(engine.run())
        stop = (
            asyncio.get_running_loop().call_later(opts.max_wait_s, engine.stop_undecided)
            if opts.max_wait_s
            else None
        )
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
            if stop is not None:
                stop.cancel()
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


def _tcp_prober(opts: ScanOptions) -> Prober:
    """The prober of the scan's technique (``ScanOptions.technique``)."""
    if opts.technique in ("syn", "ack"):
        from portscope.scanner._syn import SynProber

        return SynProber(ack=opts.technique == "ack")
    return ConnectProber(icmp_details=opts.icmp_details)


def scan(
    targets: TargetSet | str | Iterable[str],
    ports: PortSpec | str | None = None,
    *,
    exclude: Iterable[str] = (),
    family: int | None = None,
    yes: bool = False,
    max_concurrency: int | None = None,
    rate_pps: float | None = None,
    timeout_s: float | None = None,
    retries: int | None = None,
    include_closed: bool = False,
    technique: str | None = None,
    max_wait_s: float | None = None,
    source_addresses: Iterable[str] = (),
    options: ScanOptions | None = None,
    shard: Shard | None = None,
) -> Scan:
    """Prepare a TCP connect (and UDP) scan; every input is checked before any packet.

    Needs no privilege. The scan runs when the returned ``Scan`` is iterated.

    Args:
        targets: a ``TargetSet`` or target strings (names, addresses, CIDR blocks, ranges;
            see ``portscope.scanner.targets.parse_targets``).
        ports: a ``PortSpec`` or an nmap-style spec (``"22,80,1000-2000"``, ``"-"``,
            ``"T:80,U:53"``), or ``None`` for the ``DEFAULT_TOP_PORTS`` (1,000) most often
            open TCP ports, as ``portscope scan`` and nmap.
        exclude: targets never scanned.
        family: 4 or 6 to keep only that family.
        yes: allow more than ``MAX_ADDRESSES`` addresses or ``MAX_PROBES`` probes.
        max_concurrency: sockets open at once (default: 1,024, or less by RLIMIT_NOFILE).
        rate_pps: new connections per second, or ``None`` for no limit.
        timeout_s: fixed seconds per try; ``None`` for RTT-adaptive timeouts (RFC 6298).
        retries: tries after the first before a silent port is filtered; ``None`` for
            ``ScanOptions.retries`` (3).
        include_closed: also yield closed ports.
        technique: ``connect`` (default; no privilege), ``syn`` or ``ack`` (raw packets:
            root or CAP_NET_RAW, checked when the scan starts: ``PermissionDenied``).
        max_wait_s: seconds after which the scan stops and reports the ports it has not
            decided as ``undecided``; ``None`` for no limit.
        source_addresses: local addresses to send UDP probes from (see ``ScanOptions``).
        options: full ``ScanOptions``; the keyword arguments above override it.
        shard: probe only this shard of the (address x port) pairs (``Shard(I, N,
            seed)``, see ``scanner._shard``): N scans with the same seed and shards 1..N
            cover every pair exactly once; ``None`` for all of them.

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
    if retries is not None and retries < 0:
        raise InvalidInput(f"retries {retries!r}: expected 0 or more")
    if max_concurrency is not None and max_concurrency < 1:
        raise InvalidInput(f"max concurrency {max_concurrency!r}: expected 1 or more")
    if technique is not None and technique not in TECHNIQUES:
        raise InvalidInput(f"technique {technique!r}: expected one of {', '.join(TECHNIQUES)}")
    if max_wait_s is not None and not max_wait_s > 0:
        raise InvalidInput(f"max wait {max_wait_s!r}: expected seconds above 0")
    sources = _check_sources(source_addresses)
    if isinstance(targets, str):
        targets = [targets]
    target_set = (
        targets
        if isinstance(targets, TargetSet)
        else parse_targets(targets, exclude=exclude, family=family)
    )
    if ports is None:
        spec = top_ports(DEFAULT_TOP_PORTS, Proto.TCP)
    else:
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
        retries=base.retries if retries is None else retries,
        host_parallelism=base.host_parallelism,
        include_closed=include_closed or base.include_closed,
        icmp_details=base.icmp_details,
        technique=technique or base.technique,
        max_wait_s=max_wait_s or base.max_wait_s,
        source_addresses=sources or base.source_addresses,
    )
    return Scan(target_set, spec, opts, shard)


MAX_SOURCES = 4096
"""Source addresses a UDP scan sends from, at most (``--source-addresses``)."""


def _check_sources(addresses: Iterable[str]) -> tuple[str, ...]:
    """Source addresses as ``inet_ntop`` writes them, a prefix (``2001:db8:1::/118``, a
    local route or aliases of this host) as its host addresses; ``InvalidInput`` for a bad
    one or more than ``MAX_SOURCES``."""
    import ipaddress

    out: list[str] = []
    for text in addresses:
        text = text.strip()
        try:
            net = ipaddress.ip_network(text, strict=False)
        except ValueError:
            raise InvalidInput(
                f"source address {text!r}: expected an IPv4 or IPv6 address of this host "
                "or a prefix of them (198.18.0.8/29)"
            ) from None
        if net.num_addresses > MAX_SOURCES + 2:
            raise InvalidInput(
                f"source addresses {text!r}: {net.num_addresses:,} addresses; "
                f"expected at most {MAX_SOURCES:,}"
            )
        out.extend(str(a) for a in (net.hosts() if net.num_addresses > 2 else net))
    if len(out) > MAX_SOURCES:
        raise InvalidInput(f"{len(out):,} source addresses: expected at most {MAX_SOURCES:,}")
    return tuple(dict.fromkeys(out))
