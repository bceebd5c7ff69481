"""Registry output: ``lookup``, ``registry sources`` and ``registry update`` as plain
aligned text (no rich: ``lookup`` must start fast, and the tables stay easy to grep), and
the JSON documents.

JSON schemas are documented in ``docs/registry.md``.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, TextIO

from portscope.models import Service, to_dict

if TYPE_CHECKING:
    from portscope.cli._base import Env
    from portscope.registry import PortFacts, Query, SourceInfo

_RANGE_WORDS = {
    "system": "System port (RFC 6335: 0-1023, assigned by IANA with IETF review)",
    "user": "User port (RFC 6335: 1024-49151, registered with IANA)",
    "dynamic": "Dynamic/private port (RFC 6335: 49152-65535, never assigned)",
}


def _group(services: Sequence[Service]) -> list[tuple[Service, list[str]]]:
    """Rows: services that differ only by transport share one row (``tcp,udp``)."""
    rows: list[tuple[Service, list[str]]] = []
    where: dict[tuple[Any, ...], int] = {}
    for s in services:
        key = (s.port, s.port_end, s.name, s.aliases, s.description, s.source, s.notes)
        if key in where:
            rows[where[key]][1].append(s.proto.value)
        else:
            where[key] = len(rows)
            rows.append((s, [s.proto.value]))
    return rows


def _port_text(s: Service) -> str:
    return f"{s.port}-{s.port_end}" if s.port_end is not None else str(s.port)


def _freq_text(s: Service) -> str:
    if s.frequency is None or s.frequency == 0:
        return "-"
    pct = s.frequency * 100
    return f"{pct:.1f}%" if pct >= 0.1 else "<0.1%"


def _service_lines(services: Sequence[Service]) -> list[str]:
    rows = _group(services)
    cells = [
        (
            _port_text(s),
            ",".join(protos),
            s.name + (f" ({', '.join(s.aliases)})" if s.aliases else ""),
            s.source,
            _freq_text(s),
            s.description or "-",
        )
        for s, protos in rows
    ]
    header = ("PORT", "PROTO", "SERVICE", "SOURCE", "FREQ", "DESCRIPTION")
    widths = [max(len(c[i]) for c in [header, *cells]) for i in range(5)]
    out = ["  ".join(h.ljust(w) for h, w in zip(header, [*widths, 0], strict=False)).rstrip()]
    for (s, _), c in zip(rows, cells, strict=True):
        out.append("  ".join(v.ljust(w) for v, w in zip(c, [*widths, 0], strict=False)).rstrip())
        if s.notes:
            out.append(" " * (sum(widths) + 10) + f"! {s.notes}")
    return out


def _facts_lines(f: PortFacts) -> list[str]:
    k = f.kernel
    lo, hi = k.ephemeral
    src = "" if k.from_kernel else " (Linux default; /proc/sys not readable)"
    lines = [f"{f.port}: {_RANGE_WORDS[f.range.value]}"]
    if f.privileged:
        lines.append(
            f"  privileged here: binding needs root or CAP_NET_BIND_SERVICE "
            f"(net.ipv4.ip_unprivileged_port_start = {k.unprivileged_start}){src}"
        )
    else:
        lines.append(
            f"  unprivileged here: any user may bind it "
            f"(net.ipv4.ip_unprivileged_port_start = {k.unprivileged_start}){src}"
        )
    if f.reserved:
        lines.append(
            "  reserved here: listed in net.ipv4.ip_local_reserved_ports, so the kernel "
            "never picks it as an ephemeral port"
        )
    elif f.ephemeral:
        lines.append(
            f"  ephemeral here: the kernel may pick it as a source port for outgoing "
            f"connections (net.ipv4.ip_local_port_range = {lo}-{hi}){src}"
        )
    else:
        lines.append(f"  not ephemeral here: outside net.ipv4.ip_local_port_range = {lo}-{hi}{src}")
    return lines


def _range_summary(first: PortFacts, last: PortFacts, facts: Sequence[PortFacts]) -> list[str]:
    k = first.kernel
    lo, hi = k.ephemeral
    classes = sorted({f.range.value for f in facts}, key=list(_RANGE_WORDS).index)
    eph = sum(f.ephemeral for f in facts)
    priv = sum(f.privileged for f in facts)
    return [
        f"{first.port}-{last.port}: {len(facts)} ports; RFC 6335 {' + '.join(classes)}",
        f"  {priv} privileged here (below {k.unprivileged_start}), {eph} in this kernel's "
        f"ephemeral range {lo}-{hi}",
    ]


def write_lookup(
    stream: TextIO,
    query: Query,
    services: Sequence[Service],
    facts: Sequence[PortFacts],
    total: int,
) -> None:
    """Write a lookup's answer as plain aligned text.

    Args:
        stream: where to write.
        query: the parsed query.
        services: the services to show (already limited).
        facts: one ``PortFacts`` for a port query, every port's for a range, none for
            a name.
        total: how many services matched before the limit.
    """
    lines: list[str] = []
    if query.kind == "port" and facts:
        lines += _facts_lines(facts[0])
    elif query.kind == "range" and facts:
        lines += _range_summary(facts[0], facts[-1], facts)
    if services:
        if lines:
            lines.append("")
        lines += _service_lines(services)
    elif query.kind == "name":
        lines.append(f"no service named or described {query.name!r} in the registry")
    else:
        proto = f"/{query.proto}" if query.proto else ""
        lines.append(f"  no service registered{proto} in any loaded source")
    if total > len(services):
        lines.append(f"... {total - len(services)} more (--limit 0 shows all)")
    stream.write("\n".join(lines) + "\n")


def lookup_document(
    query: Query,
    services: Sequence[Service],
    facts: Sequence[PortFacts],
    total: int,
) -> dict[str, Any]:
    """The ``lookup --json`` document (schema in docs/registry.md)."""
    doc_facts: dict[str, Any] | None = None
    if facts:
        k = facts[0].kernel
        common = {
            "ephemeral_range": list(k.ephemeral),
            "unprivileged_port_start": k.unprivileged_start,
            "from_kernel": k.from_kernel,
        }
        if query.kind == "port":
            f = facts[0]
            doc_facts = {
                "range": f.range.value,
                "privileged": f.privileged,
                "ephemeral": f.ephemeral,
                "reserved": f.reserved,
                **common,
            }
        else:
            doc_facts = {
                "ranges": sorted({f.range.value for f in facts}, key=list(_RANGE_WORDS).index),
                "privileged": sum(f.privileged for f in facts),
                "ephemeral": sum(f.ephemeral for f in facts),
                "reserved": sum(f.reserved for f in facts),
                **common,
            }
    return {
        "query": query.text,
        "kind": query.kind,
        "proto": query.proto.value if query.proto else None,
        "port": query.port,
        "port_end": query.port_end,
        "name": query.name,
        "facts": doc_facts,
        "total": total,
        "services": to_dict(list(services)),
    }


def _age(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds / size:.0f} {unit}"
    return f"{seconds:.0f} s"


def _when(epoch: float | None) -> str:
    if epoch is None:
        return "-"
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(epoch))


def _plain_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    """Columns padded to their widest cell, two spaces apart, no trailing blanks."""
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    return [
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
        for row in [header, *rows]
    ]


def write_sources(env: Env, sources: Sequence[SourceInfo]) -> None:
    """``registry sources`` as a table: source, loaded, entries, file, modified, age, detail."""
    rows = [
        (
            s.name,
            "yes" if s.loaded else "no",
            str(s.entries),
            s.path or "(built in)",
            _when(s.mtime),
            _age(s.age_s),
            s.detail or "",
        )
        for s in sources
    ]
    header = ("SOURCE", "LOADED", "ENTRIES", "FILE", "MODIFIED", "AGE", "DETAIL")
    env.stdout.write("\n".join(_plain_table(header, rows)) + "\n")


def write_update(env: Env, info: SourceInfo) -> None:
    """One line about what ``registry update`` did."""
    if info.changed is False:
        what = "IANA registry not modified since the last download; kept"
    else:
        what = "IANA registry imported"
    origin = f" from {info.url}" if info.url else ""
    env.stdout.write(f"{what}{origin}: {info.entries} entries in {info.path}\n")
    if info.detail:
        env.stdout.write(f"  {info.detail}\n")
