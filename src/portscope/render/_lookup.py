"""``lookup``'s answer as text and as a JSON document, from the registry's lean records.

Both ways of ``portscope lookup`` end here: the fast path with the cache's entries, and the
typed path (``render.registry``) with ``Service`` and ``PortFacts`` turned back into the
same records, so the two print the same bytes. Nothing here imports ``typing``,
``dataclasses`` or ``json`` at import time (the fast path's start-up budget); ``json``
loads only to write a document.

Shapes (``registry._answer``): a query ``(kind, text, port, port_end, name, proto)``,
entries (``registry._layout.Entry``), facts ``(port, range, privileged, ephemeral,
reserved)`` and kernel settings ``((first, last), reserved ports, unprivileged start,
from_kernel)``.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence
    from typing import Any

    from portscope.registry._answer import Facts, Kernel, RawQuery
    from portscope.registry._layout import Entry

SCHEMA = "portscope.lookup/1"
RANGE_WORDS = {
    "system": "System port (RFC 6335: 0-1023, assigned by IANA with IETF review)",
    "user": "User port (RFC 6335: 1024-49151, registered with IANA)",
    "dynamic": "Dynamic/private port (RFC 6335: 49152-65535, never assigned)",
}
_RANGE_ORDER = list(RANGE_WORDS)
_HEADER = ("PORT", "PROTO", "SERVICE", "SOURCE", "FREQ", "DESCRIPTION")


def _group(found: Sequence[Entry]) -> list[tuple[Entry, list[str]]]:
    """Rows: entries that differ only by transport share one row (``tcp,udp``)."""
    rows: list[tuple[Entry, list[str]]] = []
    where: dict[tuple[Any, ...], int] = {}
    for e in found:
        key = (e.port, e.port_end, e.name, e.aliases, e.description, e.source, e.notes)
        if key in where:
            rows[where[key]][1].append(e.proto)
        else:
            where[key] = len(rows)
            rows.append((e, [e.proto]))
    return rows


def _freq_text(frequency: float | None) -> str:
    if frequency is None or frequency == 0:
        return "-"
    pct = frequency * 100
    return f"{pct:.1f}%" if pct >= 0.1 else "<0.1%"


def service_lines(found: Sequence[Entry]) -> list[str]:
    """The services table: PORT, PROTO, SERVICE (aliases), SOURCE, FREQ, DESCRIPTION.

    Plain aligned text, two spaces between columns; a security note follows its row on a
    line of its own, under DESCRIPTION, starting with ``!``.
    """
    from portscope.render import safe

    rows = _group(found)
    # names and descriptions come from files anyone can hand to 'registry update --from'
    cells = [
        (
            f"{e.port}-{e.port_end}" if e.port_end is not None else str(e.port),
            ",".join(protos),
            safe(e.name + (f" ({', '.join(e.aliases)})" if e.aliases else "")),
            safe(e.source),
            _freq_text(e.frequency),
            safe(e.description or "-"),
        )
        for e, protos in rows
    ]
    widths = [max(len(c[i]) for c in [_HEADER, *cells]) for i in range(5)]
    out = ["  ".join(h.ljust(w) for h, w in zip(_HEADER, [*widths, 0], strict=False)).rstrip()]
    for (e, _), c in zip(rows, cells, strict=True):
        out.append("  ".join(v.ljust(w) for v, w in zip(c, [*widths, 0], strict=False)).rstrip())
        if e.notes:
            out.append(" " * (sum(widths) + 10) + f"! {safe(e.notes)}")
    return out


def _facts_lines(f: Facts, kernel: Kernel) -> list[str]:
    port, range_name, privileged, ephemeral, reserved = f
    (lo, hi), _, start, from_kernel = kernel
    src = "" if from_kernel else " (Linux default; /proc/sys not readable)"
    lines = [f"{port}: {RANGE_WORDS[range_name]}"]
    if port == 0:
        lines.append(
            "  reserved (RFC 6335): no service is reached on port 0; binding to port 0 asks "
            f"the kernel for any free port (net.ipv4.ip_local_port_range = {lo}-{hi}){src}"
        )
        return lines
    if privileged:
        lines.append(
            f"  privileged here: binding needs root or CAP_NET_BIND_SERVICE "
            f"(net.ipv4.ip_unprivileged_port_start = {start}){src}"
        )
    else:
        lines.append(
            f"  unprivileged here: any user may bind it "
            f"(net.ipv4.ip_unprivileged_port_start = {start}){src}"
        )
    if reserved:
        lines.append(
            "  reserved here: listed in net.ipv4.ip_local_reserved_ports, so the kernel "
            "never picks it as an ephemeral port"
        )
    elif ephemeral:
        lines.append(
            f"  ephemeral here: the kernel may pick it as a source port for outgoing "
            f"connections (net.ipv4.ip_local_port_range = {lo}-{hi}){src}"
        )
    else:
        lines.append(f"  not ephemeral here: outside net.ipv4.ip_local_port_range = {lo}-{hi}{src}")
    return lines


def _range_summary(facts: Sequence[Facts], kernel: Kernel) -> list[str]:
    (lo, hi), _, start, _ = kernel
    classes = sorted({r for _, r, _, _, _ in facts}, key=_RANGE_ORDER.index)
    eph = sum(ephemeral for _, _, _, ephemeral, _ in facts)
    priv = sum(privileged for _, _, privileged, _, _ in facts)
    first, last = facts[0][0], facts[-1][0]
    return [
        f"{first}-{last}: {len(facts)} ports; RFC 6335 {' + '.join(classes)}",
        f"  {priv} privileged here (below {start}), {eph} in this kernel's "
        f"ephemeral range {lo}-{hi}",
    ]


def lookup_text(
    query: RawQuery,
    shown: Sequence[Entry],
    facts: Sequence[Facts],
    kernel: Kernel | None,
    total: int,
) -> str:
    """A lookup's answer as plain aligned text.

    Args:
        query: the parsed query.
        shown: the entries to show (already limited).
        facts: every port's facts for a port or a range query; none for a name.
        kernel: the settings the facts come from (``None`` without facts).
        total: how many entries matched before the limit.

    Returns:
        The text, newline-terminated.
    """
    kind, name, proto = query[0], query[4], query[5]
    lines: list[str] = []
    if kind == "port" and facts and kernel is not None:
        lines += _facts_lines(facts[0], kernel)
    elif kind == "range" and facts and kernel is not None:
        lines += _range_summary(facts, kernel)
    if shown:
        if lines:
            lines.append("")
        lines += service_lines(shown)
    elif kind == "name":
        lines.append(f"no service named or described {name!r} in the registry")
    else:
        lines.append(f"  no service registered{f'/{proto}' if proto else ''} in any loaded source")
    if total > len(shown):
        lines.append(f"... {total - len(shown)} more (--limit 0 shows all)")
    return "\n".join(lines) + "\n"


def service_json(e: Entry) -> dict[str, Any]:
    """An entry as ``to_dict`` of its ``Service`` gives it (the same keys, in order)."""
    return {
        "port": e.port,
        "proto": e.proto,
        "name": e.name,
        "aliases": list(e.aliases),
        "description": e.description,
        "source": e.source,
        "notes": e.notes,
        "port_end": e.port_end,
        "frequency": e.frequency,
    }


def lookup_document(
    query: RawQuery,
    shown: Sequence[Entry],
    facts: Sequence[Facts],
    kernel: Kernel | None,
    total: int,
    transports: Sequence[str] | None = None,
) -> dict[str, Any]:
    """The ``lookup --json`` document (schema ``portscope.lookup/1``, docs/registry.md).

    Args:
        query: as for ``lookup_text``.
        shown: as for ``lookup_text``.
        facts: as for ``lookup_text``.
        kernel: as for ``lookup_text``.
        total: how many services matched before the limit.
        transports: the transports shown when restricted (``-t``, ``-u``, ``--proto``,
            ``53/udp``), sorted; ``None`` for all.
    """
    kind, text, port, port_end, name, proto = query
    doc_facts: dict[str, Any] | None = None
    if facts and kernel is not None:
        (lo, hi), _, start, from_kernel = kernel
        common = {
            "ephemeral_range": [lo, hi],
            "unprivileged_port_start": start,
            "from_kernel": from_kernel,
        }
        if kind == "port":
            _, range_name, privileged, ephemeral, reserved = facts[0]
            doc_facts = {
                "range": range_name,
                "privileged": privileged,
                "ephemeral": ephemeral,
                "reserved": reserved,
                **common,
            }
        else:
            doc_facts = {
                "ranges": sorted({r for _, r, _, _, _ in facts}, key=_RANGE_ORDER.index),
                "privileged": sum(p for _, _, p, _, _ in facts),
                "ephemeral": sum(e for _, _, _, e, _ in facts),
                "reserved": sum(r for _, _, _, _, r in facts),
                **common,
            }
    return {
        "schema": SCHEMA,
        "query": text,
        "kind": kind,
        "proto": proto,
        "transports": list(transports) if transports is not None else None,
        "port": port,
        "port_end": port_end,
        "name": name,
        "facts": doc_facts,
        "total": total,
        "services": [service_json(e) for e in shown],
    }


def json_text(doc: Any) -> str:
    """A JSON-ready document as indented JSON text, newline-terminated (UTF-8 kept)."""
    import json

    return json.dumps(doc, indent=2, ensure_ascii=False) + "\n"
