"""Output of ``probe`` and ``scan``: tables, JSON documents and lines, nmap XML.

Renderers return what to show (rich renderables, text lines); a face writes them (the CLI
through ``Env.show``). ``NmapXmlWriter`` writes a file it is given.

JSON schemas (stable; new keys may be added, none removed):

``portscope probe --json``: one object ``{"host", "proto", "results": [RESULT...], "all_open"}``
where RESULT is ``{"host", "address", "port", "proto", "state", "reason", "errno",
"errno_name", "rtt_s", "banner", "advice"}``.

``portscope scan --json``: JSON lines, each with a ``"type"``:
``"port"`` (a non-closed port: the RESULT keys above plus ``"service"``, and with ``-sV``
``"identity"``, see ``render.identify``; an open port's line then comes once identified),
``"host"`` (an address is done: ``host, address, status, ports, counts, not_scanned,
retried, timed_out, srtt_s, rttvar_s, timeout_s, elapsed_s``), and last ``"summary"``
(``hosts, hosts_up, ports, counts, coverage{answered, retried, timed_out, not_scanned},
probes_sent, elapsed_s, interrupted, options{...}, shard``; ``shard`` is ``null`` or, for
``scan --shard I/N``, ``{index, count, seed, pairs, total_pairs}``).
"""

from __future__ import annotations

import errno as _errno
import json
import re
import time
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any, TextIO

from portscope.models import PortState, ProbeResult, Proto, to_dict
from portscope.render import ms, safe
from portscope.render._table import Column, Table

if TYPE_CHECKING:
    from collections.abc import Mapping

    from rich.console import RenderableType

    from portscope.identify import Identity
    from portscope.scanner import HostSummary, ScanReport
    from portscope.scanner.targets import PortSpec

__all__ = [
    "ADVICE",
    "NmapXmlWriter",
    "advice",
    "is_name",
    "printable",
    "probe_json",
    "reason_text",
    "render_host",
    "render_probe",
    "render_report",
    "result_dict",
    "scan_line",
]

ADVICE: dict[str, str] = {
    "syn-ack": "a service accepted the connection",
    "udp-response": "a service answered the datagram",
    "conn-refused": "nothing listens on that port at that address (the host sent a RST)",
    "self-connect": ("nothing listens there: the connect met its own socket (source port = port)"),
    "reset": "the connection was reset: nothing listens there, or a firewall resets it",
    "port-unreach": "nothing listens on that UDP port (ICMP port unreachable)",
    "no-response": (
        "no answer before the timeout: a firewall drops the packets, or the host is down "
        "or far away (try a longer --timeout)"
    ),
    "host-unreach": (
        "the host cannot be reached: no route or neighbour (ARP/NDP) answer, or a router said so"
    ),
    "net-unreach": "no route to that network from here (check 'ip route get ADDRESS')",
    "admin-prohibited": ("a firewall rejected the connection (ICMP administratively prohibited)"),
    "host-prohibited": "a firewall rejected the connection (ICMP host prohibited)",
    "net-prohibited": "a firewall rejected the connection (ICMP network prohibited)",
    "no-route": "no route to that network (ICMPv6 no route to destination)",
    "addr-unreach": "the address is not reachable (ICMPv6 address unreachable)",
    "local-firewall": "this host's own firewall refused to send the packet (EPERM)",
    "local-policy": "this host refused the connect (EACCES), e.g. a broadcast address",
    "no-local-address": "no local address or port available for the connect",
    "host-down": "the host is down",
    "net-down": "the network interface is down",
}


_XML_ATTR = str.maketrans(
    {"&": "&amp;", "<": "&lt;", ">": "&gt;", "\n": "&#10;", "\r": "&#13;", "\t": "&#9;"}
)


def quoteattr(data: str) -> str:
    """An XML attribute value with its quotes, as ``xml.sax.saxutils.quoteattr`` writes it
    (that module imports ``urllib.request``: about 20 ms of every scan's start-up)."""
    data = data.translate(_XML_ATTR)
    if '"' not in data:
        return f'"{data}"'
    if "'" not in data:
        return f"'{data}'"
    return '"{}"'.format(data.replace('"', "&quot;"))


def advice(reason: str) -> str:
    """Plain-language advice for a reason word (empty when there is none)."""
    return ADVICE.get(reason, "")


def printable(data: bytes, limit: int = 200) -> str:
    """Bytes as one printable line: text kept, control and non-UTF-8 bytes escaped."""
    text = data[:limit].decode("utf-8", "backslashreplace")
    out = safe(text.rstrip("\r\n"))
    return out + ("..." if len(data) > limit else "")


def _mostly_text(data: bytes) -> bool:
    text = sum(1 for b in data if 32 <= b < 127 or b in (9, 10, 13))
    return text >= 0.9 * len(data)


def is_name(host: str) -> bool:
    """True when a target as given is a host name (not an address, block or range)."""
    return ":" not in host and "/" not in host and not re.fullmatch(r"[\d.,*\-]+", host)


def _errno_name(code: int | None) -> str | None:
    return _errno.errorcode.get(code) if code else None


def result_dict(result: ProbeResult) -> dict[str, Any]:
    """A result as the documented JSON object."""
    data: dict[str, Any] = to_dict(result)
    data["errno_name"] = _errno_name(result.errno)
    data["advice"] = advice(result.reason)
    return data


# ---------------------------------------------------------------- probe


def probe_json(host: str, proto: Proto, results: Sequence[ProbeResult]) -> dict[str, Any]:
    """The ``probe --json`` document."""
    return {
        "host": host,
        "proto": proto.value,
        "results": [result_dict(r) for r in results],
        "all_open": bool(results) and all(r.state is PortState.OPEN for r in results),
    }


_STATE_STYLE = {
    PortState.OPEN: "green",
    PortState.CLOSED: "red",
    PortState.FILTERED: "yellow",
    PortState.OPEN_FILTERED: "yellow",
    PortState.UNREACHABLE: "magenta",
}


# Columns that never give way: where (ADDRESS, PORT) and the answer (STATE); the rest
# drops on a narrow terminal in the order of ``drop`` (docs/output.md).
_STATE_COLUMN = Column("STATE", styles={s.value: style for s, style in _STATE_STYLE.items()})
_PROBE_COLUMNS = (
    Column("HOST", drop=3, min_width=8, overflow="ellipsis"),
    Column("ADDRESS"),
    Column("PORT"),
    _STATE_COLUMN,
    Column("TIME", "right", drop=2),
    Column("REASON", drop=4),
    Column("ERRNO", drop=1),
)
_HOST_COLUMNS = (
    Column("PORT"),
    _STATE_COLUMN,
    Column("SERVICE", drop=2, min_width=8, overflow="ellipsis"),
    Column("REASON", drop=3),
    Column("RTT", "right", drop=1),
)


def render_probe(
    results: Sequence[ProbeResult], *, ttl: bool = False
) -> list[RenderableType | Table]:
    """The human ``probe`` output: a row per (address, port), then what each reason means.

    ``ttl`` adds the reply's TTL to each reason where it was read (``--reason``).
    """
    from rich.text import Text

    table = Table(_PROBE_COLUMNS)
    for r in results:
        table.rows.append(
            [
                r.host,
                r.address,
                f"{r.port}/{r.proto.value}",
                r.state.value,
                ms(r.rtt_s),
                reason_text(r, ttl=ttl),
                _errno_name(r.errno) or "-",
            ]
        )
    out: list[RenderableType | Table] = [table]
    for r in results:
        if not r.banner:
            continue
        where = f"{r.address} {r.port}/{r.proto.value}"
        if _mostly_text(r.banner):
            out.append(Text(f"banner {where}: {printable(r.banner)}"))
        else:
            out.append(Text(f"reply {where}: {len(r.banner)} bytes (binary; --json shows them)"))
    seen: set[str] = set()
    for r in results:
        if r.reason in seen or not advice(r.reason):
            continue
        seen.add(r.reason)
        errno_part = f" ({_errno_name(r.errno)})" if r.errno else ""
        out.append(Text(f"{r.reason}{errno_part}: {advice(r.reason)}"))
    return out


# ---------------------------------------------------------------- scan


def _service(port: int, proto: Proto) -> str | None:
    from portscope.registry import service_name

    try:
        return service_name(port, proto.value)
    except Exception:  # the registry is optional for rendering
        return None


_NMAP_NAMES: dict[tuple[int, str], str] | None = None


def _xml_service(port: int, proto: Proto) -> str | None:
    """The service name nmap's XML would give the port: ``nmap-services``' name (the most
    often open entry), ``unknown`` for a port it does not list; the registry's name when
    nmap's data is not installed. Read from the installed file, once per process."""
    global _NMAP_NAMES
    if _NMAP_NAMES is None:
        _NMAP_NAMES = {}
        try:
            from pathlib import Path

            from portscope.registry._layout import _NMAP_PATHS
            from portscope.registry._sources import parse_services

            path = next((Path(p) for p in _NMAP_PATHS if Path(p).is_file()), None)
            if path is not None:
                best: dict[tuple[int, str], float] = {}
                with path.open(encoding="utf-8", errors="replace") as lines:
                    for e in parse_services(lines, source="nmap", frequency_column=True):
                        key = (e.port, e.proto)
                        if e.port_end is None and (e.frequency or 0.0) > best.get(key, -1.0):
                            best[key] = e.frequency or 0.0
                            _NMAP_NAMES[key] = e.name
        except (OSError, ImportError):
            _NMAP_NAMES = {}
    if _NMAP_NAMES:
        return _NMAP_NAMES.get((port, proto.value), "unknown")
    return _service(port, proto)


def scan_line(
    event: ProbeResult | HostSummary | ScanReport, identity: Identity | None = None
) -> str:
    """One JSON line of ``scan --json``, without the newline (schema: the module docstring;
    with ``-sV`` a port line has ``"identity"``, ``render.identify.identity_dict``)."""
    if isinstance(event, ProbeResult):
        data = {"type": "port", **result_dict(event)}
        data["service"] = _service(event.port, event.proto)
        if identity is not None:
            from portscope.render.identify import identity_dict

            data["identity"] = identity_dict(identity)
    else:
        kind = "host" if hasattr(event, "address") else "summary"
        data = {"type": kind, **to_dict(event)}
    return json.dumps(to_dict(data), ensure_ascii=False, separators=(",", ":"))


def reason_text(result: ProbeResult, *, ttl: bool = False) -> str:
    """The reason word, with the reply's TTL when asked (nmap ``--reason``: ``syn-ack ttl 64``)."""
    if ttl and result.reason_ttl is not None:
        return f"{result.reason} ttl {result.reason_ttl}"
    return result.reason


def render_host(
    summary: HostSummary,
    results: Sequence[ProbeResult],
    identities: Mapping[tuple[str, int, str], Identity] | None = None,
    *,
    ttl: bool = False,
) -> list[RenderableType | Table]:
    """One host of the human ``scan`` output: its non-closed ports and a summary line.

    With ``identities`` (``scan -sV``: (address, port, transport) -> identity), SERVICE is what
    answered (``ssl/http``; a registry guess ends in ``?``), VERSION the product and
    version, and each identified port's facts and evidence follow the table. With ``ttl``
    (``--reason``), each reason carries the reply's TTL.
    """
    from rich.text import Text

    if identities is not None:
        return _render_host_versions(summary, results, identities, ttl=ttl)

    name = summary.host if is_name(summary.host) else ""
    title = f"{summary.address}" + (f" ({name})" if name else "") + f"  {summary.status}"
    out: list[RenderableType | Table] = [Text(title, style="bold")]
    # as nmap's "Not shown": closed (and an ACK scan's unfiltered) ports are only counted
    shown = [r for r in results if r.state not in (PortState.CLOSED, PortState.UNFILTERED)]
    if shown:
        table = Table(_HOST_COLUMNS)
        for r in sorted(shown, key=lambda r: (r.proto.value, r.port)):
            table.rows.append(
                [
                    f"{r.port}/{r.proto.value}",
                    r.state.value,
                    _service(r.port, r.proto) or "-",
                    reason_text(r, ttl=ttl),
                    ms(r.rtt_s),
                ]
            )
        out.append(table)
    counts = summary.counts
    parts = [f"{counts.get('closed', 0):,} closed", f"{counts.get('filtered', 0):,} filtered"]
    for state in ("open|filtered", "unfiltered", "undecided"):
        if counts.get(state):
            parts.append(f"{counts[state]:,} {state}")
    if summary.not_scanned:
        parts.append(f"{summary.not_scanned:,} not scanned ({summary.status})")
    srtt = f", srtt {ms(summary.srtt_s)}" if summary.srtt_s is not None else ""
    out += [Text(f"{', '.join(parts)}{srtt}"), Text("")]
    return out


def _render_host_versions(
    summary: HostSummary,
    results: Sequence[ProbeResult],
    identities: Mapping[tuple[str, int, str], Identity],
    *,
    ttl: bool = False,
) -> list[RenderableType | Table]:
    from rich.text import Text

    from portscope.render.identify import CONFIDENCE_STYLE, identity_details

    out = render_host(summary, results, ttl=ttl)
    shown = sorted(
        (r for r in results if r.state not in (PortState.CLOSED, PortState.UNFILTERED)),
        key=lambda r: (r.proto.value, r.port),
    )
    if not shown:
        return out
    table = Table(_VERSION_COLUMNS)
    notes: list[RenderableType | Table] = []
    for r in shown:
        ident = identities.get((r.address, r.port, r.proto.value))
        service = ident.label if ident else (_service(r.port, r.proto) or "-")
        conf = ident.confidence.value if ident else "-"
        version = (ident.product_version if ident else None) or "-"
        table.rows.append([f"{r.port}/{r.proto.value}", r.state.value, service, conf, version,
                           reason_text(r, ttl=ttl), ms(r.rtt_s)])  # fmt: skip
        if ident is not None and (ident.identified or ident.tls):
            style = CONFIDENCE_STYLE.get(ident.confidence.value, "")
            notes.append(Text(f"{r.port}/{r.proto.value} {ident.label}:", style=style))
            notes += [Text(f"  {line}") for line in identity_details(ident)]
    return [out[0], table, *notes, *out[2:]]


_VERSION_COLUMNS = (
    Column("PORT"),
    _STATE_COLUMN,
    Column("SERVICE", drop=4, min_width=8, overflow="ellipsis"),
    Column("CONFIDENCE", drop=2),
    Column("VERSION", drop=5, min_width=10, overflow="ellipsis"),
    Column("REASON", drop=3),
    Column("RTT", "right", drop=1),
)


def render_report(report: ScanReport) -> list[str]:
    """The end of the human ``scan`` output: totals and the coverage line."""
    c = report.counts
    states = ", ".join(f"{n:,} {s}" for s, n in sorted(c.items(), key=lambda kv: -kv[1]))
    head = "Interrupted after" if report.interrupted else "Scanned"
    cov = report.coverage
    of = f"{report.ports:,} port(s)"
    label = "coverage"
    if (shard := report.shard) is not None:
        of = f"their share of {report.ports:,} port(s)"
        label = (
            f"coverage of shard {shard.index}/{shard.count} (seed {shard.seed}, "
            f"{shard.pairs:,} of {shard.total_pairs:,} (address, port) pairs)"
        )
    return [
        f"{head} {report.hosts:,} address(es) ({report.hosts_up:,} up) x "
        f"{of} in {report.elapsed_s:.2f} s: {states or 'nothing'}",
        f"{label}: {cov.answered:,} answered, {cov.retried:,} retried, "
        f"{cov.timed_out:,} decided by timeout, {cov.not_scanned:,} not scanned"
        + (f", {cov.undecided:,} undecided (--max-wait)" if cov.undecided else "")
        + f" ({report.probes_sent:,} probes)",
    ]


# ---------------------------------------------------------------- nmap XML


def _probed_service(ident: Identity) -> str:
    """nmap's ``<service ... method="probed" conf="10"/>`` for an identified port (nmap.dtd
    attributes: name, product, version, extrainfo, tunnel, method, conf)."""
    from portscope.render.identify import nmap_conf

    attrs = [f"name={quoteattr(ident.service or 'unknown')}"]
    if ident.product:
        attrs.append(f"product={quoteattr(_xml_text(ident.product))}")
    if ident.version:
        attrs.append(f"version={quoteattr(_xml_text(ident.version))}")
    # extrainfo as nmap fills it: the rest of an HTTP Server field ("Python/3.11.7"), the
    # SSH comment; and Redis' authentication state (titles are nmap script output, not here)
    extra = [v for k, v in ident.facts.items() if k == "comment"]
    server_rest = ident.facts.get("server", "").partition(" ")[2]
    if server_rest:
        extra.append(server_rest)
    if "auth" in ident.facts:
        extra.append(f"auth: {ident.facts['auth']}")
    if extra:
        attrs.append(f"extrainfo={quoteattr(_xml_text('; '.join(extra)))}")
    if ident.tls is not None:
        attrs.append('tunnel="ssl"')
    attrs.append(f'method="probed" conf="{nmap_conf(ident)}"')
    return f"<service {' '.join(attrs)}/>"


def _xml_text(text: str) -> str:
    """Text safe in XML 1.0: characters XML forbids (C0 controls but tab, CR, LF) escaped."""
    return "".join(
        c if c in "\t\n\r" or (ord(c) >= 0x20 and c not in "\ufffe\uffff") else f"\\x{ord(c):02x}"
        for c in text
    )


class NmapXmlWriter:
    """Writes nmap's XML output format (``-oX``) host by host, as the scan goes.

    Mirrors the elements ``nmap -sT -oX`` writes (``nmaprun``, ``scaninfo``, ``host``,
    ``status``, ``address``, ``hostnames``, ``ports``, ``extraports``, ``port``, ``state``,
    ``service``, ``times``, ``runstats``), as described by nmap's ``nmap.dtd``, so ndiff
    and report converters read it. As nmap does, the ports of a closed, filtered or
    closed|filtered state are listed one by one when there are at most 25 of them (``ndiff``
    then sees the same ports), and summarized in ``extraports`` (with ``extrareasons`` per
    reason and their port ranges) when there are more.
    """

    LISTED_MAX = 25  # nmap folds a state with more ports than this into <extraports>
    # nmap's PortList::isIgnoredState: every state but open can be folded (-sU shows "Not
    # shown: 997 open|filtered udp ports", -sA "unfiltered"); portlist.h order
    FOLDABLE = (
        PortState.CLOSED,
        PortState.FILTERED,
        PortState.UNFILTERED,
        PortState.OPEN_FILTERED,
        PortState.CLOSED_FILTERED,
    )

    def __init__(
        self,
        stream: TextIO,
        ports: PortSpec,
        args: str,
        *,
        technique: str = "connect",
        sharded: bool = False,
    ) -> None:
        self._out = stream
        self._ports = ports
        # a shard probes a subset of each host's ports: the ones not shown are not all
        # closed, so closed ports are only counted (extraports), never listed
        self._sharded = sharded
        self._technique = technique
        # the reason of a closed TCP port: a connect() sees ECONNREFUSED, a SYN scan a RST
        self._closed_tcp = "conn-refused" if technique == "connect" else "reset"
        self._start = time.time()
        start = int(self._start)
        w = stream.write
        w('<?xml version="1.0" encoding="UTF-8"?>\n<!DOCTYPE nmaprun>\n')
        w(
            f'<nmaprun scanner="nmap" args={quoteattr(args)} start="{start}" '
            f'startstr={quoteattr(time.ctime(start))} version="7.93" '
            'xmloutputversion="1.05">\n'
        )
        w(f"<!-- written by portscope (TCP {technique} scan) -->\n")
        for proto, ranges, kind in (
            (Proto.TCP, ports.tcp, technique if technique in ("syn", "ack") else "connect"),
            (Proto.UDP, ports.udp, "udp"),
        ):
            if ranges:
                n = sum(b - a + 1 for a, b in ranges)
                w(
                    f'<scaninfo type="{kind}" protocol="{proto.value}" numservices="{n}" '
                    f'services="{ports.ranges_text(ranges)}"/>\n'
                )
        w('<verbose level="0"/>\n<debugging level="0"/>\n')
        self._up = 0
        self._down = 0

    def host(
        self,
        summary: HostSummary,
        results: Iterable[ProbeResult],
        identities: Mapping[tuple[str, int, str], Identity] | None = None,
    ) -> None:
        """Write one host element; with ``identities`` (``-sV``) a port's ``service``
        element is ``method="probed"`` with ``conf``, ``product``, ``version``,
        ``extrainfo`` and ``tunnel="ssl"``, as nmap's version detection writes it."""
        w = self._out.write
        end = int(time.time())
        begin = int(end - summary.elapsed_s)
        # portscope never pings first (nmap -Pn): a host whose every port got a state is
        # "up", as nmap -Pn says, even when only silence answered; one given up is "down"
        up = summary.status in ("up", "interrupted") or not summary.not_scanned
        self._up += up
        self._down += not up
        family = "ipv6" if ":" in summary.address else "ipv4"
        w(f'<host starttime="{begin}" endtime="{end}">')
        w(
            f'<status state="{"up" if up else "down"}" '
            f'reason="{"user-set" if up else "no-response"}" reason_ttl="0"/>\n'
        )
        w(f'<address addr="{summary.address}" addrtype="{family}"/>\n')
        if self._technique != "connect":
            from portscope.scanner._raw import neighbour_mac

            # as nmap's raw scans: the MAC of a target on the local link (ndiff shows it)
            if (mac := neighbour_mac(summary.address)) is not None:
                w(f'<address addr="{mac}" addrtype="mac"/>\n')
        w("<hostnames>\n")
        if is_name(summary.host):
            w(f'<hostname name={quoteattr(summary.host)} type="user"/>\n')
        w("</hostnames>\n<ports>")
        shown = [r for r in results if r.state is not PortState.CLOSED]
        closed = summary.counts.get("closed", 0)
        complete = not summary.not_scanned and not self._sharded  # every port not shown: closed
        if 0 < closed <= self.LISTED_MAX and complete:
            shown += self._closed_results(summary, shown)
        by_state: dict[PortState, list[ProbeResult]] = {}
        for r in shown:
            by_state.setdefault(r.state, []).append(r)
        # nmap's PortList::isIgnoredState: closed, filtered and closed|filtered ports are
        # folded into <extraports> when a state has more than 25; open, open|filtered and
        # unfiltered never are. States in nmap's order (portlist.h: closed before filtered).
        for state in self.FOLDABLE:
            count = summary.counts.get(state.value, 0)
            if count <= self.LISTED_MAX:
                continue
            if state is PortState.CLOSED:  # not materialized: 65,000 of them are common
                reasons = [
                    (proto, self._closed_tcp if proto is Proto.TCP else "port-unreach", ranges)
                    for proto in (Proto.TCP, Proto.UDP)
                    if complete and (ranges := self._closed_ranges(proto, shown))
                ]
            else:
                reasons = self._reasons(by_state.pop(state, []))
            w(f'<extraports state="{state.value}" count="{count}">\n')
            for proto, reason, ranges in reasons:
                n = sum(b - a + 1 for a, b in ranges)
                w(
                    f'<extrareasons reason={quoteattr(reason)} count="{n}" '
                    f'proto="{proto.value}" ports="{self._ports.ranges_text(ranges)}"/>\n'
                )
            w("</extraports>\n")
        shown = sorted(
            (r for rs in by_state.values() for r in rs), key=lambda r: (r.proto.value, r.port)
        )
        for r in shown:
            name = _xml_service(r.port, r.proto)
            w(
                f'<port protocol="{r.proto.value}" portid="{r.port}">'
                f'<state state="{r.state.value}" reason={quoteattr(r.reason)} '
                f'reason_ttl="{r.reason_ttl or 0}"/>'
            )
            ident = (identities or {}).get((r.address, r.port, r.proto.value))
            if ident is not None and (ident.identified or ident.tls is not None):
                w(_probed_service(ident))
            elif name:
                w(f'<service name={quoteattr(name)} method="table" conf="3"/>')
            w("</port>\n")
        w("</ports>\n")
        srtt = int((summary.srtt_s or 0) * 1e6)
        rttvar = int((summary.rttvar_s or 0) * 1e6)
        w(f'<times srtt="{srtt}" rttvar="{rttvar}" to="{int(summary.timeout_s * 1e6)}"/>\n')
        w("</host>\n")
        self._out.flush()

    def _closed_results(
        self, summary: HostSummary, shown: Sequence[ProbeResult]
    ) -> list[ProbeResult]:
        """The closed ports of a fully scanned host: every scanned port not shown."""
        out = []
        for proto in (Proto.TCP, Proto.UDP):
            reason = self._closed_tcp if proto is Proto.TCP else "port-unreach"
            for a, b in self._closed_ranges(proto, shown):
                out += [
                    ProbeResult(summary.host, summary.address, port, proto, PortState.CLOSED,
                                reason)
                    for port in range(a, b + 1)
                ]  # fmt: skip
        return out

    @staticmethod
    def _reasons(
        results: Sequence[ProbeResult],
    ) -> list[tuple[Proto, str, list[tuple[int, int]]]]:
        """(transport, reason, port ranges) of folded results, as nmap's extrareasons."""
        groups: dict[tuple[Proto, str], list[int]] = {}
        for r in results:
            groups.setdefault((r.proto, r.reason), []).append(r.port)
        out = []
        for (proto, reason), ports in sorted(groups.items(), key=lambda kv: -len(kv[1])):
            ranges: list[tuple[int, int]] = []
            for port in sorted(ports):
                if ranges and port == ranges[-1][1] + 1:
                    ranges[-1] = (ranges[-1][0], port)
                else:
                    ranges.append((port, port))
            out.append((proto, reason, ranges))
        return out

    def _closed_ranges(self, proto: Proto, shown: Sequence[ProbeResult]) -> list[tuple[int, int]]:
        ranges = self._ports.tcp if proto is Proto.TCP else self._ports.udp
        skip = sorted(r.port for r in shown if r.proto is proto)
        out: list[tuple[int, int]] = []
        i = 0
        for a, b in ranges:
            start = a
            while i < len(skip) and skip[i] <= b:
                p = skip[i]
                i += 1
                if p < start:
                    continue
                if p > start:
                    out.append((start, p - 1))
                start = p + 1
            if start <= b:
                out.append((start, b))
        return out

    def close(self, report: ScanReport) -> None:
        """Write ``runstats`` and end the document."""
        end = int(time.time())
        total = self._up + self._down
        status = "error" if report.interrupted else "success"
        summary = (
            f"Nmap done at {time.ctime(end)}; {total} IP address"
            f"{'es' if total != 1 else ''} ({self._up} host{'s' if self._up != 1 else ''} up) "
            f"scanned in {report.elapsed_s:.2f} seconds"
        )
        if (shard := report.shard) is not None:  # read back by ``portscope merge``
            self._out.write(
                f"<!-- portscope shard {shard.index}/{shard.count} seed {shard.seed}: "
                f"{shard.pairs} of {shard.total_pairs} (address, port) pairs -->\n"
            )
        self._out.write(
            f'<runstats><finished time="{end}" timestr={quoteattr(time.ctime(end))} '
            f'summary={quoteattr(summary)} elapsed="{report.elapsed_s:.2f}" '
            f'exit="{status}"/><hosts up="{self._up}" down="{self._down}" total="{total}"/>\n'
            "</runstats>\n</nmaprun>\n"
        )
        self._out.flush()
