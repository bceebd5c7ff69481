"""The public scan types: how a scan runs, what it yields, how it ends.

Re-exported by ``portscope.scanner`` and the ``portscope`` facade. All frozen; durations in
seconds (``_s``), rates per second (``_pps``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from portscope.models import ProbeResult

__all__ = [
    "DEFAULT_TOP_PORTS",
    "Coverage",
    "HostSummary",
    "ScanEvent",
    "ScanOptions",
    "ScanReport",
    "ShardCoverage",
]

DEFAULT_TOP_PORTS = 1000
"""Ports a scan probes when none are given: the N most often open TCP ports (as nmap)."""


@dataclass(frozen=True, slots=True)
class ScanOptions:
    """How a scan runs.

    Attributes:
        max_concurrency: most probes in flight at once; ``None`` for 1,024 (4,096 for the
            raw SYN/ACK prober, which holds no socket per probe). Probes that hold a socket
            (connect, UDP) are always kept under ``RLIMIT_NOFILE``. The window starts at 256
            and adapts up to this.
        rate_pps: new probes per second (a token bucket), or ``None`` for no limit.
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
        technique: how TCP ports are probed: ``connect`` (no privilege; nmap ``-sT``),
            ``syn`` (raw SYNs, CAP_NET_RAW; nmap ``-sS``) or ``ack`` (raw ACKs: unfiltered
            or filtered; nmap ``-sA``).
        max_wait_s: stop the scan after this many seconds; ports not decided by then are
            reported ``undecided`` (never ``closed``), or ``None`` to scan to the end.
        source_addresses: local addresses UDP probes are sent from, round-robin (each
            has its own ICMP rate-limit budget at the target), or ``()`` for the kernel's
            choice.
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
    technique: str = "connect"
    max_wait_s: float | None = None
    source_addresses: tuple[str, ...] = ()


TECHNIQUES = ("connect", "syn", "ack")
"""The values of ``ScanOptions.technique``."""


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


@dataclass(frozen=True, slots=True)
class Coverage:
    """How each port's state was decided.

    Attributes:
        answered: ports with a definite answer (SYN-ACK, RST, ICMP, UDP reply).
        retried: ports that needed more than one try.
        timed_out: ports decided by timeout: no answer after every try (``filtered`` or
            ``open|filtered``).
        not_scanned: ports left out (host down or silent, or the scan interrupted).
        undecided: ports still without a state when ``max_wait_s`` ended the scan
            (reported ``undecided``, never ``closed``).
    """

    answered: int
    retried: int
    timed_out: int
    not_scanned: int
    undecided: int = 0


@dataclass(frozen=True, slots=True)
class ShardCoverage:
    """Which shard of a scan ran, and how much of the scan it holds (``scan --shard``).

    Attributes:
        index: the shard, 1 .. ``count``.
        count: the number of shards.
        seed: the permutation's key (every shard of one scan has the same).
        pairs: (address, port) pairs in this shard.
        total_pairs: (address, port) pairs of the whole scan (addresses x ports).
    """

    index: int
    count: int
    seed: int
    pairs: int
    total_pairs: int


@dataclass(frozen=True, slots=True)
class ScanReport:
    """The end of a scan.

    Attributes:
        hosts: addresses scanned (or begun, when interrupted).
        hosts_up: addresses where something answered.
        ports: (port, transport) pairs per address in the port specification.
        counts: results per state name, over all hosts.
        coverage: how the states were decided.
        probes_sent: tries sent (TCP connects, UDP datagrams), retries included.
        elapsed_s: wall time in seconds.
        interrupted: the scan was stopped before the end.
        options: the options the scan ran with.
        shard: the shard this scan was (``scan --shard I/N``), or ``None`` for a whole scan.
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
    shard: ShardCoverage | None = None


ScanEvent = ProbeResult | HostSummary
"""What iterating a ``Scan`` yields: a port's result, or a host's summary once it is done.

Tell them apart with ``isinstance`` or ``match``; ``Scan.results()`` and ``Scan.hosts()``
are the two streams apart, each of one type.
"""
