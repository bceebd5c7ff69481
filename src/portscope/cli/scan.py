"""``portscope scan TARGETS [-p PORTS] [-sT|-sS|-sA] [-sU]``: scan hosts and networks."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from portscope.cli._base import Env, ExitStatus, Parser, bounded, checked
from portscope.cli._history import add_db_option, add_label_option
from portscope.errors import InvalidInput

if TYPE_CHECKING:
    from rich.console import RenderableType

    from portscope.identify import Identity
    from portscope.models import ProbeResult
    from portscope.render._table import Table
    from portscope.render.scan import NmapXmlWriter
    from portscope.scanner import HostSummary, Scan
    from portscope.scanner._dask import DaskScan
    from portscope.scanner.targets import PortSpec

HELP = (
    "scan hosts and networks for open ports (TCP connect like nmap -sT, no root needed; "
    "-sS SYN, -sA ACK, -sU UDP as root); -sV identifies what answers"
)


def _positive(
    kind: str, *, integer: bool = False, maximum: float = 1e9
) -> Callable[[str], float | int]:
    def parse(text: str) -> float | int:
        try:
            value: float | int = int(text) if integer else float(text)
        except ValueError:
            value = -1
        if not 0 < value <= maximum:
            unit = "a whole number" if integer else "a number"
            raise InvalidInput(f"{kind} {text!r}: expected {unit} above 0, at most {maximum:g}")
        return value

    parse.__name__ = kind
    return checked(parse)


def _retries(text: str) -> int:
    if not text.isdigit() or int(text) > 20:
        raise InvalidInput(f"retries {text!r}: expected a whole number from 0 to 20")
    return int(text)


def _sources(text: str) -> list[str]:
    from portscope.scanner import _check_sources

    return list(_check_sources(a for a in text.split(",") if a.strip()))


def _shard(text: str) -> tuple[int, int]:
    from portscope.scanner._shard import parse_shard

    return parse_shard(text)


def _seed(text: str) -> int:
    from portscope.scanner._shard import parse_seed

    return parse_seed(text)


def _configure_shards(parser: Parser) -> None:
    """``--shard I/N --seed S`` and ``--dask SCHEDULER [--shards K]`` (docs/distributed.md)."""
    parser.add_argument(
        "--shard",
        type=checked(_shard),
        metavar="I/N",
        help="probe only shard I of N of the (address, port) pairs, a keyed pseudo-random "
        "split: N scans with the same --seed cover every pair exactly once (masscan --shards)",
    )
    parser.add_argument(
        "--seed",
        type=checked(_seed),
        metavar="S",
        help="the key of the --shard/--dask permutation, 0 to 2**64-1 (default 0); every "
        "shard of one scan needs the same seed",
    )
    parser.add_argument(
        "--dask",
        metavar="SCHEDULER",
        help="run the scan on a Dask cluster: shards as tasks on its workers, results "
        "merged here (tcp://HOST:PORT; [distributed] extra)",
    )
    parser.add_argument(
        "--shards",
        type=_positive("--shards", integer=True, maximum=65536),
        metavar="K",
        help="with --dask: cut the scan into K shards (default 4 per worker)",
    )


def configure(parser: Parser) -> None:
    kind = parser.add_mutually_exclusive_group()
    kind.add_argument(
        "-sT", dest="technique", action="store_const", const="connect",
        help="TCP connect scan (the default; no privilege)",
    )  # fmt: skip
    kind.add_argument(
        "-sS", dest="technique", action="store_const", const="syn",
        help="TCP SYN scan: raw SYNs, stateless reply matching (root or CAP_NET_RAW)",
    )  # fmt: skip
    kind.add_argument(
        "-sA", dest="technique", action="store_const", const="ack",
        help="TCP ACK scan: unfiltered (a RST came) or filtered (root or CAP_NET_RAW)",
    )  # fmt: skip
    parser.add_argument(
        "-sU", dest="udp", action="store_true",
        help="UDP scan with protocol payloads, paced to the target's ICMP rate limit; "
        "alone it scans UDP only (ports without T:/U: are UDP)",
    )  # fmt: skip
    parser.add_argument(
        "--reason", action="store_true",
        help="add the reply's TTL to each reason (syn-ack ttl 64), as nmap --reason",
    )  # fmt: skip
    parser.add_argument(
        "--max-wait",
        type=_positive("--max-wait", maximum=86400),
        metavar="SECONDS",
        help="stop after SECONDS; ports not decided by then are reported undecided, never closed",
    )
    parser.add_argument(
        "--source-addresses",
        type=checked(_sources),
        default=[],
        metavar="ADDR,...",
        help="local addresses (or prefixes: 2001:db8:1::/118) to send UDP probes from, "
        "round-robin: each has its own ICMP rate-limit budget at the target",
    )
    parser.add_argument(
        "targets",
        nargs="*",
        metavar="TARGET",
        help="host names, addresses, CIDR blocks (198.18.0.0/24), ranges (198.18.0.1-20)",
    )
    ports = parser.add_mutually_exclusive_group()
    ports.add_argument(
        "-p",
        "--ports",
        metavar="PORTS",
        help="ports in nmap syntax: 22,80,1000-2000 | - (all) | T:80,U:53 (default: the 1000 "
        "most often open TCP ports, as nmap)",
    )
    ports.add_argument(
        "--top-ports",
        type=_positive("--top-ports", integer=True, maximum=65535),
        metavar="N",
        help="the N most often open TCP ports (nmap's frequency data)",
    )
    parser.add_argument("-iL", dest="input_file", metavar="FILE", help="read targets from FILE")
    parser.add_argument(
        "--exclude", metavar="TARGETS", default="", help="comma-separated targets to skip"
    )
    parser.add_argument("--exclude-file", metavar="FILE", help="targets to skip, from FILE")
    fam = parser.add_mutually_exclusive_group()
    fam.add_argument("-4", dest="family", action="store_const", const=4, help="IPv4 only")
    fam.add_argument("-6", dest="family", action="store_const", const=6, help="IPv6 only")
    parser.add_argument(
        "--rate",
        type=bounded("--rate", low=1, high=10_000_000, unit="probes per second"),
        metavar="PER_S",
        help="at most this many new connections per second, 1 to 10,000,000 (default: no limit)",
    )
    parser.add_argument(
        "--max-concurrency",
        type=_positive("--max-concurrency", integer=True, maximum=1_000_000),
        metavar="N",
        help="probes in flight at once (default 1024, 4096 for -sS/-sA; less under the fd limit)",
    )
    parser.add_argument(
        "--timeout",
        type=_positive("--timeout", maximum=3600),
        metavar="SECONDS",
        help="fixed timeout per try (default: adaptive from measured RTT, RFC 6298)",
    )
    parser.add_argument(
        "--retries",
        type=checked(_retries),
        default=None,  # ScanOptions.retries
        metavar="N",
        help="tries again before calling a silent port filtered (default 3)",
    )
    parser.add_argument(
        "--yes", action="store_true", help="allow over 65,536 addresses or 10M probes"
    )
    parser.add_argument("-oX", dest="xml", metavar="FILE", help="also write nmap XML to FILE")
    parser.add_argument(
        "--save", action="store_true", help="also save the results in the history store (diff)"
    )
    add_label_option(parser, "with --save: a name for this scan")
    add_db_option(parser)
    _configure_versions(parser)
    _configure_shards(parser)
    from portscope.cli.explain import add_explain_option

    add_explain_option(parser)


def _configure_versions(parser: Parser) -> None:
    """``-sV`` and its budget: identification by handshake (portscope.identify)."""
    parser.add_argument(
        "-sV",
        dest="versions",
        action="store_true",
        help="identify what answers on each open TCP port by speaking its protocol "
        "(service, product, version, TLS certificate, evidence; like nmap -sV)",
    )
    parser.add_argument(
        "--version-timeout",
        type=_positive("--version-timeout", maximum=3600),
        metavar="SECONDS",
        help="with -sV: at most this long per open port (default 8)",
    )
    parser.add_argument(
        "--version-concurrency",
        type=_positive("--version-concurrency", integer=True, maximum=4096),
        metavar="N",
        help="with -sV: ports identified at once (default 32)",
    )


def _prepare(args: argparse.Namespace) -> Scan:
    """Check every input (targets, files, ports, sizes) before anything is sent."""
    from portscope.scanner import DEFAULT_TOP_PORTS, scan
    from portscope.scanner.targets import parse_ports, parse_targets, read_target_file, top_ports

    specs = list(args.targets)
    if args.input_file:
        specs += read_target_file(args.input_file)
    if not specs:
        raise InvalidInput("no targets: give TARGET arguments or -iL FILE")
    excludes = [e for e in args.exclude.split(",") if e.strip()]
    if args.exclude_file:
        excludes += read_target_file(args.exclude_file)
    ports = None  # the API's default (DEFAULT_TOP_PORTS): one default, in one place
    udp = getattr(args, "udp", False)
    tcp = getattr(args, "technique", None) is not None or not udp
    if args.ports is not None:
        ports = _both(parse_ports, args.ports, tcp=tcp, udp=udp)
    elif args.top_ports or udp:
        n = args.top_ports or DEFAULT_TOP_PORTS
        ports = _both(lambda _, default_proto: top_ports(n, default_proto), "", tcp=tcp, udp=udp)
    targets = parse_targets(specs, exclude=excludes, family=args.family)
    shard = None
    if getattr(args, "shard", None) is not None:
        from portscope.scanner import Shard

        index, count = args.shard
        shard = Shard(index, count, args.seed or 0)
    return scan(
        targets,
        ports,
        yes=args.yes,
        max_concurrency=args.max_concurrency,
        rate_pps=args.rate,
        timeout_s=args.timeout,
        retries=args.retries,
        technique=getattr(args, "technique", None),
        max_wait_s=getattr(args, "max_wait", None),
        source_addresses=getattr(args, "source_addresses", ()),
        shard=shard,
    )


def _scheduler_address(text: str) -> str:
    """``tcp://HOST:PORT`` (or ``tls://``, or ``HOST:PORT``), checked before connecting."""
    import re

    m = re.fullmatch(
        r"(?:(tcp|tls)://)?(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9][A-Za-z0-9.\-]*):(\d{1,5})", text
    )
    if m is None or not 1 <= int(m.group(3)) <= 65535:
        from portscope.render import safe

        raise InvalidInput(
            f"--dask {safe(text)!r}: expected a Dask scheduler address, tcp://HOST:PORT "
            "(e.g. tcp://10.0.0.5:8786)"
        )
    return text if m.group(1) else f"tcp://{text}"


def _dask_job(args: argparse.Namespace, job: Scan) -> DaskScan:
    """``--dask``: the scan as shards on the cluster (connected: a bad address fails here)."""
    from portscope.errors import BackendUnavailable
    from portscope.scanner._dask import DaskScan

    dask = DaskScan(job, _scheduler_address(args.dask), shards=args.shards, seed=args.seed or 0)
    try:
        dask.connect()
    except BackendUnavailable as err:  # the missing extra: a usage error, one line
        raise InvalidInput(str(err)) from None
    return dask


def _check_shard_options(args: argparse.Namespace) -> None:
    """The shard and Dask options that do not go together (before anything is sent)."""
    if args.seed is not None and args.shard is None and args.dask is None:
        raise InvalidInput("--seed only applies with --shard I/N or --dask")
    if args.shards is not None and args.dask is None:
        raise InvalidInput("--shards only applies with --dask")
    if args.dask is not None:
        if args.shard is not None:
            raise InvalidInput("--shard and --dask do not go together (--dask makes the shards)")
        for flag, value in (("-sV", args.versions), ("--save", args.save)):
            if value:
                raise InvalidInput(f"{flag} does not apply with --dask (run it on one machine)")


def _both(parse: Callable[..., PortSpec], text: str, *, tcp: bool, udp: bool) -> PortSpec:
    """The port spec of the transports scanned: ports without ``T:``/``U:`` go to each."""
    from portscope.models import Proto
    from portscope.scanner.targets import PortSpec

    as_tcp = parse(text, default_proto=Proto.TCP) if tcp else PortSpec()
    as_udp = parse(text, default_proto=Proto.UDP) if udp else PortSpec()
    if tcp and udp:
        return PortSpec(tcp=as_tcp.tcp, udp=as_udp.udp, text=as_tcp.text or text)
    return as_tcp if tcp else as_udp


def _load_service_names() -> None:
    """Load the registry's service names before the first probe, not at the first result.

    Results are rendered on the engine's event loop; the first port line names its
    service, and a registry whose cache is stale (a new source file, another version's
    cache in the same directory) is rebuilt then: 0.7-0.9 s idle, 2.4 s at load average 5
    (measured). Every answer read after that stall gave an RTT sample of the stall, and the
    hosts sampled before it kept their idle-time timeouts (see ``Scheduler._lift``).
    """
    import contextlib

    from portscope.registry import service_name

    # the registry is optional for rendering (render.scan._service)
    with contextlib.suppress(Exception):
        service_name(80, "tcp")


def run(args: argparse.Namespace, env: Env) -> int:
    import asyncio
    import os
    import shlex
    import sys

    from portscope._files import OutputFile
    from portscope.render.scan import NmapXmlWriter

    if not args.versions and (args.version_timeout or args.version_concurrency):
        raise InvalidInput("--version-timeout and --version-concurrency only apply with -sV")
    _check_shard_options(args)
    prepared = _prepare(args)
    job: Scan | DaskScan = prepared if args.dask is None else _dask_job(args, prepared)
    raw = job.options.technique in ("syn", "ack")
    if raw:
        from portscope.scanner._raw import can_send_raw

        if not can_send_raw():
            flag = "-sS" if job.options.technique == "syn" else "-sA"
            env.error(
                f"{flag} sends raw packets and needs root or CAP_NET_RAW; use the connect "
                "scan (-sT, the default), which needs no privilege"
            )
            return ExitStatus.USAGE
    saving = _open_save(args)  # before sending anything: a bad --db fails first (exit 2)
    xml_file: OutputFile | None = None
    xml: NmapXmlWriter | None = None
    if args.xml:
        # written to a temporary file renamed at the end: a failed write leaves nothing
        try:
            xml_file = OutputFile(args.xml)
        except OSError as err:
            raise InvalidInput(f"cannot write -oX file {args.xml!r}: {err.strerror}") from err
        own = bool(sys.argv) and os.path.basename(sys.argv[0]) in ("portscope", "__main__.py")
        argv = ["portscope", *sys.argv[1:]] if own else ["portscope", "scan", *args.targets]
        xml = NmapXmlWriter(
            xml_file.stream,
            job.ports,
            shlex.join(argv),
            technique=job.options.technique,
            sharded=job.shard is not None,
        )
    out = _Output(job, args, env, xml)
    out.recorder = None if saving is None else saving[1]
    status = ExitStatus.OK
    try:
        try:
            asyncio.run(out.consume())
        except KeyboardInterrupt:
            status = ExitStatus.INTERRUPTED
            out.flush_unfinished()
        finally:
            out.progress_stop()
        out.finish()
        if xml is not None and xml_file is not None:
            xml.close(job.report)
            xml_file.commit()
    except OSError as err:
        if xml_file is None or isinstance(err, BrokenPipeError):
            raise
        xml_file.discard()
        env.error(f"cannot write -oX file {args.xml!r}: {err.strerror or err}; nothing written")
        return ExitStatus.USAGE
    finally:
        if xml_file is not None:
            xml_file.discard()
    if saving is not None:
        status = _save(saving, args, env, status)
    if status is ExitStatus.INTERRUPTED:
        env.error("interrupted; results so far are shown above")
    return status


def _open_save(args: argparse.Namespace) -> tuple[Any, Any] | None:
    """With --save: the store (opened, so a bad --db fails before the scan) and a recorder."""
    if not args.save:
        return None
    import time

    from portscope.cli._history import open_db
    from portscope.errors import StoreError
    from portscope.history._nmap import ScanRecorder

    try:
        return open_db(args, create=True), ScanRecorder(time.time())
    except StoreError as err:  # one line, exit 2, as the other history commands
        raise InvalidInput(str(err)) from None


def _save(
    saving: tuple[Any, Any], args: argparse.Namespace, env: Env, status: ExitStatus
) -> ExitStatus:
    """Write the scan into the store (after the output: a failure costs no result)."""
    from portscope.errors import StoreError

    store, recorder = saving
    try:
        with store:
            info = store.save_scan(
                recorder.hosts,
                recorder.ports,
                label=args.label,
                taken_at=recorder.started_at,
                source="scan " + " ".join(args.targets),
            )
    except StoreError as err:
        env.error(str(err))
        return ExitStatus.USAGE
    env.stderr.write(f"saved as snapshot {info.id} in {store.location}\n")
    return status


class _Output:
    """Streams results to the terminal or JSON lines, buffering each host for its table."""

    def __init__(
        self, job: Scan | DaskScan, args: argparse.Namespace, env: Env, xml: NmapXmlWriter | None
    ) -> None:
        self.job = job
        self.args = args
        self.env = env
        self.xml = xml
        self.pending: dict[str, list[ProbeResult]] = {}
        self.seen_states: set[str] = set()  # for --explain
        self.seen_reasons: set[str] = set()
        self.versions = _Versions(args) if args.versions else None
        self.recorder: Any = None  # scan --save: a history.ScanRecorder
        self.progress: Any = None
        self.task: Any = None
        if env.stderr_isatty and not args.json:
            self._progress_start()

    def _progress_start(self) -> None:
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

        total = len(self.job.targets) * self.job.ports.count
        self.progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            TextColumn("{task.completed:,}/{task.total:,} ports"),
            TimeElapsedColumn(),
            console=self.env.console(stderr=True, no_color=self.args.no_color),
            transient=True,
        )
        self.progress.start()
        self.task = self.progress.add_task(self._progress_text(), total=total)

    def _progress_text(self) -> str:
        if not self.args.dask:
            return "scanning"
        from portscope.scanner._dask import DaskScan

        job = self.job
        if isinstance(job, DaskScan):  # ports come a shard at a time
            workers = len(job.workers)
            return f"scanning: {job.shards_done}/{job.shard_count} shards on {workers} workers"
        return "scanning"

    def progress_stop(self) -> None:
        if self.progress is not None:
            self.progress.stop()
            self.progress = None

    def _show(self, *items: str | RenderableType | Table) -> None:
        """Write results with the progress bar off the screen, then draw it again.

        The bar lives on stderr; on a terminal stdout shares its line, so anything written
        while the bar is drawn would start with the bar's residue. A transient bar erases
        itself when stopped.
        """
        progress = self.progress
        if progress is not None:
            progress.stop()
        self.env.show(*items, no_color=self.args.no_color)
        self.env.stdout.flush()
        if progress is not None:
            progress.start()

    async def consume(self) -> None:
        _load_service_names()  # in here: Ctrl-C meanwhile is an interrupted scan
        if self.versions is None:
            await self._consume()
            return
        import asyncio

        async with asyncio.TaskGroup() as tg:
            self.versions.tg = tg
            await self._consume()

    async def _consume(self) -> None:
        from portscope.models import PortState, ProbeResult, Proto
        from portscope.render.scan import scan_line

        as_json = self.args.json
        versions = self.versions
        for_tables = not as_json or self.xml is not None or self.recorder is not None
        async for batch in self.job.batches():
            for event in batch:
                if isinstance(event, ProbeResult):
                    wanted = event.state is PortState.OPEN and event.proto is Proto.TCP
                    if versions is not None and wanted:
                        versions.start(event, self._port_identified)
                    elif versions is not None and event.proto is Proto.UDP and event.banner:
                        versions.from_answer(event, self._port_identified)
                    elif as_json:
                        self.env.show(scan_line(event))
                    if for_tables:
                        self.pending.setdefault(event.address, []).append(event)
                elif versions is not None and versions.busy(event.address):
                    versions.after_host(event, self._host_done)
                else:
                    self._host_done(event)
            if as_json:
                self.env.stdout.flush()
            if self.progress is not None and self.task is not None:
                self.progress.update(
                    self.task, completed=self.job.decided, description=self._progress_text()
                )

    def _port_identified(self, result: ProbeResult, identity: Identity | None) -> None:
        from portscope.render.scan import scan_line

        if self.args.json:
            self.env.show(scan_line(result, identity))
            self.env.stdout.flush()

    def _host_done(self, summary: HostSummary) -> None:
        from portscope.render.scan import render_host, scan_line

        results = self.pending.pop(summary.address, [])
        self.seen_states.update(r.state.value for r in results)
        self.seen_states.update(state for state, n in summary.counts.items() if n)
        self.seen_reasons.update(r.reason for r in results if r.reason)
        found = self.versions.found if self.versions is not None else None
        if self.args.json:
            self.env.show(scan_line(summary))
        else:
            self._show(*render_host(summary, results, found, ttl=self.args.reason))
        if self.xml is not None:
            self.xml.host(summary, results, found)
        if self.recorder is not None:
            self.recorder.host(summary, results)

    def flush_unfinished(self) -> None:
        self.progress_stop()
        if self.versions is not None:  # scanned, still being identified: show what is known
            for summary in list(self.versions.deferred.values()):
                self._host_done(summary)
        for summary in self.job.unfinished():
            self._host_done(summary)

    def finish(self) -> None:
        from portscope.render.scan import render_report, scan_line

        report = self.job.report
        workers = _worker_lines(self.job, as_json=self.args.json) if self.args.dask else []
        if self.args.json:
            self.env.show(*workers, scan_line(report))
        else:
            self.env.show(*render_report(report), *workers, no_color=self.args.no_color)
            if self.versions is not None:
                from portscope.render.identify import identify_summary

                self.env.show(identify_summary(list(self.versions.found.values())))
            from portscope.cli.explain import show_about

            show_about(self.env, self.args, port_states=self.seen_states, reasons=self.seen_reasons)
        self.env.stdout.flush()


def _worker_lines(job: Scan | DaskScan, *, as_json: bool) -> list[str]:
    """``--dask``: each worker's shards and coverage (they add up to the coverage line)."""
    from portscope.scanner._dask import DaskScan

    if not isinstance(job, DaskScan):
        return []
    if as_json:
        import json

        from portscope.models import to_dict

        return [
            json.dumps({"type": "worker", **to_dict(w)}, separators=(",", ":"))
            for w in job.per_worker.values()
        ]
    from portscope.render import safe

    lines = [
        f"{job.shard_count} shards (seed {job.seed}) on {len(job.workers)} Dask workers at "
        f"{safe(job.address)}; per worker:"
    ]
    for w in sorted(job.per_worker.values(), key=lambda w: w.worker):
        c = w.coverage
        lines.append(
            f"  {safe(w.worker)}: {w.shards} shards, {w.pairs:,} pairs: {c.answered:,} answered, "
            f"{c.retried:,} retried, {c.timed_out:,} decided by timeout, "
            f"{c.not_scanned:,} not scanned ({w.probes_sent:,} probes)"
        )
    return lines


class _Versions:
    """``-sV``: identification of each open TCP port as the scan finds it, at most
    ``--version-concurrency`` at once; a host is shown when its ports are identified."""

    def __init__(self, args: argparse.Namespace) -> None:
        import asyncio

        from portscope.identify import DEFAULT_CONCURRENCY, DEFAULT_TIMEOUT_S

        self.timeout_s = float(args.version_timeout or DEFAULT_TIMEOUT_S)
        self.gate = asyncio.Semaphore(int(args.version_concurrency or DEFAULT_CONCURRENCY))
        self.tg: asyncio.TaskGroup | None = None
        self.found: dict[tuple[str, int, str], Identity] = {}
        self.tasks: dict[str, list[asyncio.Task[None]]] = {}
        self.deferred: dict[str, HostSummary] = {}  # hosts scanned, waiting for their ports

    def start(
        self, result: ProbeResult, done: Callable[[ProbeResult, Identity | None], None]
    ) -> None:
        assert self.tg is not None
        task = self.tg.create_task(self._one(result, done))
        self.tasks.setdefault(result.address, []).append(task)

    async def _one(
        self, result: ProbeResult, done: Callable[[ProbeResult, Identity | None], None]
    ) -> None:
        from portscope.identify import identify_async
        from portscope.render.scan import is_name

        async with self.gate:
            identity = await identify_async(
                result.address,
                result.port,
                host=result.host if is_name(result.host) else None,
                timeout_s=self.timeout_s,
            )
        self.found[(result.address, result.port, result.proto.value)] = identity
        done(result, identity)

    def from_answer(
        self, result: ProbeResult, done: Callable[[ProbeResult, Identity | None], None]
    ) -> None:
        """A UDP answer the scan already holds: matched here, nothing sent."""
        from portscope.identify import identify_udp_answer

        identity = identify_udp_answer(result.address, result.port, result.banner or b"")
        if identity is not None:
            self.found[(result.address, result.port, result.proto.value)] = identity
        done(result, identity)

    def busy(self, address: str) -> bool:
        return any(not t.done() for t in self.tasks.get(address, ()))

    def after_host(self, summary: HostSummary, show: Callable[[HostSummary], None]) -> None:
        import asyncio

        assert self.tg is not None
        pending = self.tasks.pop(summary.address, [])
        self.deferred[summary.address] = summary

        async def wait_then_show() -> None:
            await asyncio.gather(*pending, return_exceptions=True)
            del self.deferred[summary.address]
            show(summary)

        self.tg.create_task(wait_then_show())
