"""Merging scans: shards (``scan --shard``, ``scan --dask``) or repeated scans into one report.

``Merger`` takes the events of several scans (``ProbeResult``, ``HostSummary``,
``ScanReport``), each tagged with its source, and gives one report: the state of every
(address, transport, port) listed anywhere, one summary per address, one coverage.

* A port listed by several sources with different states is a **conflict**: it is reported
  (``Conflict``: every source's state and reason) and resolved by evidence, an answer
  before silence: ``open`` > ``closed`` > ``unfiltered`` > ``unreachable`` > ``filtered``
  > ``closed|filtered`` > ``open|filtered`` > ``undecided`` (a port that accepted a
  connection once has a listener; a RST is an answer where a timeout is only the absence
  of one; ``undecided`` is no state at all).
* A host's summaries add up (ports, counts, retried, timed out, not scanned), minus the
  ports listed by more than one source (counted once, in the winning state); its status
  is ``up`` when any source saw it up; the RTT estimate is the one of the source with
  the most answered ports. Closed ports are counts, not lists, in a default scan: two
  overlapping scans count a closed port twice. Shards never overlap.
* Coverage adds up. When the sources are shards of one scan (the same count, seed and
  size), ``shards`` says which are present and which are missing.

``read_scan_file`` reads ``scan --json`` lines and nmap XML (``scan -oX``, ``nmap -oX``)
with a size cap; a file that is neither is ``InvalidInput`` naming the file and the line.
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, fields, replace
from typing import Any

from portscope.errors import InvalidInput
from portscope.models import PortState, ProbeResult, Proto
from portscope.scanner._types import (
    Coverage,
    HostSummary,
    ScanEvent,
    ScanOptions,
    ScanReport,
    ShardCoverage,
)

__all__ = [
    "MAX_FILE_BYTES",
    "Conflict",
    "MergedScan",
    "Merger",
    "ShardSet",
    "read_scan_file",
]

MAX_FILE_BYTES = 256 * 1024 * 1024
"""A scan file larger than this is refused (about 1M JSON lines)."""
MAX_STREAM_BYTES = 16 * 1024 * 1024
"""... and a device or pipe that sends more than this."""

_RANK = {
    s: i
    for i, s in enumerate(
        (
            PortState.OPEN,
            PortState.CLOSED,
            PortState.UNFILTERED,
            PortState.UNREACHABLE,
            PortState.FILTERED,
            PortState.CLOSED_FILTERED,
            PortState.OPEN_FILTERED,
            PortState.UNDECIDED,
        )
    )
}

Key = tuple[str, str, int]  # (address, transport, port)


@dataclass(frozen=True, slots=True)
class Conflict:
    """A port that sources disagree on.

    Attributes:
        address, proto, port: the port.
        seen: ``(source, state, reason)`` per source that listed it, in input order.
        chosen: the state the merge kept (see the module docstring).
    """

    address: str
    proto: Proto
    port: int
    seen: tuple[tuple[str, PortState, str], ...]
    chosen: PortState


@dataclass(frozen=True, slots=True)
class ShardSet:
    """The shards of one scan among the sources (all with the same count and seed).

    Attributes:
        count: N of ``I/N``.
        seed: the permutation key.
        present: the shard indices found (sorted, each once).
        missing: the indices of 1..N not found.
        pairs: (address, port) pairs the present shards hold.
        total_pairs: pairs of the whole scan.
    """

    count: int
    seed: int
    present: tuple[int, ...]
    missing: tuple[int, ...]
    pairs: int
    total_pairs: int


@dataclass(frozen=True, slots=True)
class MergedScan:
    """The merged report.

    Attributes:
        results: every listed port once, by address then transport and port.
        summaries: one per address, in address order.
        report: totals, coverage summed.
        conflicts: the ports sources disagreed on.
        duplicates: ports listed by more than one source (conflicting or not).
        sources: the sources merged, in order.
        shards: which shards of one scan were merged, or ``None`` (not shards, or shards of
            different scans: see ``shard_mismatch``).
        shard_mismatch: why the sources' shards do not form one scan, or ``None``.
    """

    results: list[ProbeResult]
    summaries: list[HostSummary]
    report: ScanReport
    conflicts: list[Conflict]
    duplicates: int
    sources: list[str]
    shards: ShardSet | None
    shard_mismatch: str | None = None


@dataclass
class _Host:
    summaries: list[tuple[str, HostSummary]] = field(default_factory=list)


class Merger:
    """Collects events of several scans; ``result()`` merges them (see the module docstring)."""

    def __init__(self) -> None:
        self._ports: dict[Key, list[tuple[str, ProbeResult]]] = {}
        self._hosts: dict[str, _Host] = {}
        self._reports: list[tuple[str, ScanReport]] = []
        self._sources: list[str] = []

    def add(self, source: str, event: ScanEvent | ScanReport) -> None:
        """Add one event of ``source`` (a file name, a shard ``2/8``)."""
        if source not in self._sources:
            self._sources.append(source)
        if isinstance(event, ProbeResult):
            key = (event.address, event.proto.value, event.port)
            self._ports.setdefault(key, []).append((source, event))
        elif isinstance(event, HostSummary):
            self._hosts.setdefault(event.address, _Host()).summaries.append((source, event))
        else:
            self._reports.append((source, event))

    def add_all(self, source: str, events: Iterable[ScanEvent | ScanReport]) -> None:
        for event in events:
            self.add(source, event)

    def result(self) -> MergedScan:
        """The merged report of every event added so far."""
        results: list[ProbeResult] = []
        conflicts: list[Conflict] = []
        duplicates = 0
        # per address: state -> ports counted by more than one source, to count once
        extra: dict[str, dict[str, int]] = {}
        for (address, _, _), seen in self._ports.items():
            best = min(seen, key=lambda sr: _RANK.get(sr[1].state, len(_RANK)))[1]
            results.append(best)
            if len(seen) > 1:
                duplicates += 1
                over = extra.setdefault(address, {})
                for _, r in seen:
                    over[r.state.value] = over.get(r.state.value, 0) + 1
                over[best.state.value] -= 1
                if len({r.state for _, r in seen}) > 1:
                    conflicts.append(
                        Conflict(
                            best.address, best.proto, best.port,
                            tuple((src, r.state, r.reason) for src, r in seen), best.state,
                        )
                    )  # fmt: skip
        for address in {key[0] for key in self._ports} - set(self._hosts):
            self._hosts[address] = _Host()  # ports without a host line (a cut file)
        summaries = [
            _merge_host(address, host.summaries, extra.get(address, {}), results)
            for address, host in self._hosts.items()
        ]
        summaries.sort(key=lambda s: _address_key(s.address))
        results.sort(key=lambda r: (_address_key(r.address), r.proto.value, r.port))
        shards, mismatch = _shard_set([r for _, r in self._reports])
        report = _merge_reports([r for _, r in self._reports], summaries, duplicates)
        return MergedScan(
            results, summaries, report, conflicts, duplicates, list(self._sources), shards,
            mismatch,
        )  # fmt: skip


def _address_key(address: str) -> tuple[int, int, str]:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return (9, 0, address)
    return (ip.version, int(ip), "")


def _merge_host(
    address: str,
    parts: list[tuple[str, HostSummary]],
    extra: dict[str, int],
    results: list[ProbeResult],
) -> HostSummary:
    counts: dict[str, int] = {}
    for _, s in parts:
        for k, v in s.counts.items():
            counts[k] = counts.get(k, 0) + v
    for k, v in extra.items():
        if k in counts:
            counts[k] = max(0, counts[k] - v)
    counts = {k: v for k, v in counts.items() if v}
    if not parts:  # ports listed without a host line (a cut file): what they say
        for r in results:
            if r.address == address:
                counts[r.state.value] = counts.get(r.state.value, 0) + 1
        first = next(r for r in results if r.address == address)
        return HostSummary(
            first.host, address, "up", sum(counts.values()), counts, 0, 0, 0, None, None,
            0.0, 0.0,
        )  # fmt: skip
    best = max(parts, key=lambda p: sum(p[1].counts.values()) - p[1].timed_out)[1]
    statuses = [s.status for _, s in parts]
    status = "up" if "up" in statuses else best.status
    dup = sum(extra.values())
    return HostSummary(
        host=next((s.host for _, s in parts if s.host != address), best.host),
        address=address,
        status=status,
        ports=max(0, sum(s.ports for _, s in parts) - dup),
        counts=counts,
        not_scanned=sum(s.not_scanned for _, s in parts),
        retried=sum(s.retried for _, s in parts),
        timed_out=sum(s.timed_out for _, s in parts),
        srtt_s=best.srtt_s,
        rttvar_s=best.rttvar_s,
        timeout_s=best.timeout_s,
        elapsed_s=max(s.elapsed_s for _, s in parts),
    )


def _shard_set(reports: list[ScanReport]) -> tuple[ShardSet | None, str | None]:
    shards = [r.shard for r in reports if r.shard is not None]
    if not shards:
        return None, None
    if len(shards) < len(reports):
        return None, "some sources are shards and some are whole scans"
    first = shards[0]
    for s in shards[1:]:
        if (s.count, s.seed, s.total_pairs) != (first.count, first.seed, first.total_pairs):
            return None, (
                f"shards of different scans: {first.index}/{first.count} seed {first.seed} "
                f"({first.total_pairs:,} pairs) and {s.index}/{s.count} seed {s.seed} "
                f"({s.total_pairs:,} pairs)"
            )
    present = sorted({s.index for s in shards})
    if len(present) < len(shards):
        dup = sorted({s.index for s in shards if sum(t.index == s.index for t in shards) > 1})
        return None, "shard " + ", ".join(f"{i}/{first.count}" for i in dup) + " given twice"
    missing = tuple(i for i in range(1, first.count + 1) if i not in set(present))
    return ShardSet(
        first.count, first.seed, tuple(present), missing, sum(s.pairs for s in shards),
        first.total_pairs,
    ), None  # fmt: skip


def _merge_reports(
    reports: list[ScanReport], summaries: list[HostSummary], duplicates: int
) -> ScanReport:
    counts: dict[str, int] = {}
    for s in summaries:
        for k, v in s.counts.items():
            counts[k] = counts.get(k, 0) + v
    cov = [r.coverage for r in reports]
    names = [f.name for f in fields(Coverage)]
    coverage = Coverage(**{n: sum(getattr(c, n) for c in cov) for n in names})
    if not reports:  # only ports and hosts (a cut file): coverage from the host lines
        timed_out = sum(s.timed_out for s in summaries)
        coverage = Coverage(
            answered=sum(counts.values()) - timed_out - counts.get("undecided", 0),
            retried=sum(s.retried for s in summaries),
            timed_out=timed_out,
            not_scanned=sum(s.not_scanned for s in summaries),
            undecided=counts.get("undecided", 0),
        )
    if duplicates and coverage.answered >= duplicates:
        coverage = replace(coverage, answered=coverage.answered - duplicates)
    return ScanReport(
        hosts=len(summaries),
        hosts_up=sum(1 for s in summaries if s.status == "up"),
        ports=max((r.ports for r in reports), default=max((s.ports for s in summaries), default=0)),
        counts=counts,
        coverage=coverage,
        probes_sent=sum(r.probes_sent for r in reports),
        elapsed_s=max((r.elapsed_s for r in reports), default=0.0),
        interrupted=any(r.interrupted for r in reports),
        options=reports[0].options if reports else ScanOptions(),
        shard=None,
    )


# ---------------------------------------------------------------- reading files


def read_scan_file(path: str) -> list[ScanEvent | ScanReport]:
    """The events of a ``scan --json`` file or an nmap XML report (``-oX``).

    Raises:
        InvalidInput: the file cannot be read, is larger than ``MAX_FILE_BYTES``, or is
            neither (naming the file, and the line of a bad JSON line).
    """
    import os
    import stat

    from portscope._files import FileTooLarge, read_bounded

    try:
        # a device or a pipe (/dev/zero, <(scan --json)): a smaller cap, read to it at most
        regular = stat.S_ISREG(os.stat(path).st_mode)
        data = read_bounded(path, MAX_FILE_BYTES if regular else MAX_STREAM_BYTES)
    except FileTooLarge as err:
        raise InvalidInput(f"{path!r}: {err}") from None
    except OSError as err:
        raise InvalidInput(f"cannot read {path!r}: {err.strerror or err}") from None
    text = data.lstrip()
    if not text:
        raise InvalidInput(f"{path!r} is empty: expected scan --json lines or nmap XML (-oX)")
    if text[:1] == b"<":
        return _read_xml(path, data)
    if text[:1] == b"{":
        return list(_read_json_lines(path, data))
    raise InvalidInput(f"{path!r} is neither scan --json lines nor nmap XML (-oX)")


def _read_json_lines(path: str, data: bytes) -> Iterator[ScanEvent | ScanReport]:
    for n, line in enumerate(data.decode("utf-8", "replace").splitlines(), 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
            if not isinstance(obj, dict):
                raise ValueError("not an object")
            kind = obj.get("type")
            if kind == "port":
                yield _port(obj)
            elif kind == "host":
                yield _host(obj)
            elif kind == "summary":
                yield _summary(obj)
            elif kind not in ("conflict", "worker"):  # merge and --dask lines: skipped
                raise ValueError(f"type {kind!r} is not port, host or summary")
        except (ValueError, TypeError, KeyError) as err:
            raise InvalidInput(
                f"{path!r} line {n}: not a portscope scan --json line ({_short(err)})"
            ) from None


def _short(err: Exception) -> str:
    text = str(err) if not isinstance(err, KeyError) else f"missing {err}"
    return text if len(text) <= 80 else text[:77] + "..."


def _int(obj: dict[str, Any], key: str, *, optional: bool = False) -> Any:
    value = obj.get(key) if optional else obj[key]
    if value is None and optional:
        return None
    if not isinstance(value, int) or isinstance(value, bool):
        raise ValueError(f"{key} {value!r} is not a whole number")
    return value


def _num(obj: dict[str, Any], key: str, *, optional: bool = True) -> Any:
    value = obj.get(key) if optional else obj[key]
    if value is None and optional:
        return None
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        raise ValueError(f"{key} {value!r} is not a number")
    return float(value)


def _str(obj: dict[str, Any], key: str) -> str:
    value = obj[key]
    if not isinstance(value, str):
        raise ValueError(f"{key} {value!r} is not text")
    return value


def _port(obj: dict[str, Any]) -> ProbeResult:
    port = _int(obj, "port")
    if not 0 <= port <= 65535:
        raise ValueError(f"port {port} out of range")
    banner = obj.get("banner")
    return ProbeResult(
        host=_str(obj, "host"),
        address=_str(obj, "address"),
        port=port,
        proto=Proto(obj["proto"]),
        state=PortState(obj["state"]),
        reason=_str(obj, "reason"),
        errno=_int(obj, "errno", optional=True),
        rtt_s=_num(obj, "rtt_s"),
        banner=banner.encode("utf-8", "surrogateescape") if isinstance(banner, str) else None,
        reason_ttl=_int(obj, "reason_ttl", optional=True),
    )


def _counts(value: Any) -> dict[str, int]:
    if not isinstance(value, dict):
        raise ValueError("counts is not an object")
    out = {}
    for k, v in value.items():
        PortState(k)
        if not isinstance(v, int) or v < 0:
            raise ValueError(f"count {k} {v!r}")
        out[k] = v
    return out


def _host(obj: dict[str, Any]) -> HostSummary:
    return HostSummary(
        host=_str(obj, "host"),
        address=_str(obj, "address"),
        status=_str(obj, "status"),
        ports=_int(obj, "ports"),
        counts=_counts(obj["counts"]),
        not_scanned=_int(obj, "not_scanned"),
        retried=_int(obj, "retried"),
        timed_out=_int(obj, "timed_out"),
        srtt_s=_num(obj, "srtt_s"),
        rttvar_s=_num(obj, "rttvar_s"),
        timeout_s=_num(obj, "timeout_s") or 0.0,
        elapsed_s=_num(obj, "elapsed_s") or 0.0,
    )


def _summary(obj: dict[str, Any]) -> ScanReport:
    cov = obj["coverage"]
    if not isinstance(cov, dict):
        raise ValueError("coverage is not an object")
    coverage = Coverage(**{f.name: _int(cov, f.name) for f in fields(Coverage) if f.name in cov})
    shard = obj.get("shard")
    shard_cov = None
    if shard is not None:
        if not isinstance(shard, dict):
            raise ValueError("shard is not an object")
        shard_cov = ShardCoverage(*(_int(shard, f.name) for f in fields(ShardCoverage)))
    options = ScanOptions()
    raw = obj.get("options")
    if isinstance(raw, dict):
        known = {f.name for f in fields(ScanOptions)}
        kw = {k: v for k, v in raw.items() if k in known}
        if isinstance(kw.get("source_addresses"), list):
            kw["source_addresses"] = tuple(kw["source_addresses"])
        options = ScanOptions(**kw)
    return ScanReport(
        hosts=_int(obj, "hosts"),
        hosts_up=_int(obj, "hosts_up"),
        ports=_int(obj, "ports"),
        counts=_counts(obj["counts"]),
        coverage=coverage,
        probes_sent=_int(obj, "probes_sent"),
        elapsed_s=_num(obj, "elapsed_s") or 0.0,
        interrupted=bool(obj.get("interrupted")),
        options=options,
        shard=shard_cov,
    )


_PROTOS = {"tcp": Proto.TCP, "udp": Proto.UDP, "sctp": Proto.SCTP}
_STATES = {s.value: s for s in PortState}
_TIMED_OUT = ("filtered", "open|filtered", "closed|filtered")


def _read_xml(path: str, data: bytes) -> list[ScanEvent | ScanReport]:
    """nmap's XML (nmap.dtd): hosts, listed ports, ``extraports`` counts, ``runstats``.

    The coverage of an XML source is derived (XML has none): silent states (filtered,
    open|filtered, closed|filtered) count as decided by timeout, the others as answered.
    """
    import xml.etree.ElementTree as ET

    try:
        root = ET.fromstring(data)
    except ET.ParseError as err:
        raise InvalidInput(f"{path!r} is not an nmap XML report: {err}") from None
    if root.tag != "nmaprun":
        raise InvalidInput(f"{path!r} is not an nmap XML report (root <{root.tag}>)")
    events: list[ScanEvent | ScanReport] = []
    summaries: list[HostSummary] = []
    for h in root.iter("host"):
        address = next(
            (
                a.get("addr", "")
                for a in h.findall("address")
                if a.get("addrtype") in ("ipv4", "ipv6") and a.get("addr")
            ),
            None,
        )
        if address is None:
            continue
        name = h.find("hostnames/hostname")
        target = (name.get("name") if name is not None else None) or address
        status = h.find("status")
        up = status is None or status.get("state", "up") == "up"
        counts: dict[str, int] = {}
        for p in h.findall("ports/port"):
            proto = _PROTOS.get(p.get("protocol", ""))
            portid = p.get("portid", "")
            st = p.find("state")
            state = _STATES.get(st.get("state", "")) if st is not None else None
            if proto is None or not portid.isdigit() or state is None or st is None:
                continue
            counts[state.value] = counts.get(state.value, 0) + 1
            if state is not PortState.CLOSED:
                ttl = st.get("reason_ttl", "")
                events.append(
                    ProbeResult(
                        target, address, int(portid), proto, state, st.get("reason", ""),
                        reason_ttl=int(ttl) if ttl.isdigit() and int(ttl) else None,
                    )
                )  # fmt: skip
        for extra in h.findall("ports/extraports"):
            state_name = extra.get("state", "")
            n = extra.get("count", "")
            if state_name in _STATES and n.isdigit():
                counts[state_name] = counts.get(state_name, 0) + int(n)
        times = h.find("times")
        srtt = rttvar = None
        timeout = 0.0
        if times is not None:
            srtt = _micro(times.get("srtt"))
            rttvar = _micro(times.get("rttvar"))
            timeout = _micro(times.get("to")) or 0.0
        begin, end = h.get("starttime", ""), h.get("endtime", "")
        took = float(int(end) - int(begin)) if begin.isdigit() and end.isdigit() else 0.0
        timed_out = sum(counts.get(s, 0) for s in _TIMED_OUT)
        summary = HostSummary(
            target, address, "up" if up else "down", sum(counts.values()), counts, 0, 0,
            timed_out, srtt, rttvar, timeout, took,
        )  # fmt: skip
        summaries.append(summary)
        events.append(summary)
    counts_all: dict[str, int] = {}
    for s in summaries:
        for k, v in s.counts.items():
            counts_all[k] = counts_all.get(k, 0) + v
    timed_out = sum(s.timed_out for s in summaries)
    finished = root.find("runstats/finished")
    elapsed = finished.get("elapsed", "") if finished is not None else ""
    ports = sum(int(si.get("numservices", "0") or 0) for si in root.findall("scaninfo"))
    events.append(
        ScanReport(
            hosts=len(summaries),
            hosts_up=sum(1 for s in summaries if s.status == "up"),
            ports=ports,
            counts=counts_all,
            coverage=Coverage(sum(counts_all.values()) - timed_out, 0, timed_out, 0),
            probes_sent=0,
            elapsed_s=_float(elapsed),
            interrupted=finished is not None and finished.get("exit") == "error",
            shard=_xml_shard(data),
        )
    )
    return events


_SHARD_COMMENT = re.compile(
    rb"<!-- portscope shard (\d+)/(\d+) seed (\d+): (\d+) of (\d+) \(address, port\) pairs -->"
)


def _xml_shard(data: bytes) -> ShardCoverage | None:
    """The shard a portscope ``scan --shard -oX`` report was (a comment nmap tools skip)."""
    m = _SHARD_COMMENT.search(data[-4096:])
    if m is None:
        return None
    return ShardCoverage(*(int(g) for g in m.groups()))


def _micro(text: str | None) -> float | None:
    return int(text) / 1e6 if text and text.isdigit() else None


def _float(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        return 0.0
