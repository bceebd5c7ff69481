"""Table, text and JSON of ``portscope exposure`` (faces only).

JSON (``portscope.exposure/1``)::

    {"schema": "portscope.exposure/1", "netns": str|null, "firewall_read": bool,
     "firewall_error": str|null, "ruleset_source": str|null, "rule_count": int,
     "interfaces": [str], "sources": [{"label", "address"}], "notes": [str],
     "ports": [{"proto", "family", "port", "address", "verdict", "reject": str|null,
                "reason", "rule": {"family", "table", "chain", "handle", "text"}|null,
                "chain": str|null, "destination": "addr:port"|null, "receiver": str|null,
                "dnat": bool, "listener": Socket|null, "unknown_rules": [rule ...],
                "by_source": [{"source", "address", "interface", "verdict", "reject",
                               "reason", "rule"}]}]}

``verdict`` is the one for the first source class (``outside`` by default); ``by_source``
has every (source class, interface) evaluated.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from portscope.diagnose._common import endpoint_text
from portscope.models import to_dict
from portscope.render import safe
from portscope.render._table import Column, Table

if TYPE_CHECKING:
    from portscope.diagnose.exposure import Exposure, ExposureReport
    from portscope.firewall import Decision, Rule
    from portscope.render.diagnose import Item

SCHEMA = "portscope.exposure/1"
VERDICT_STYLES = {
    "open": "bold red",
    "closed": "green",
    "filtered": "green",
    "unknown": "yellow",
}


def _rule_json(rule: Rule | None) -> dict[str, Any] | None:
    if rule is None:
        return None
    return {
        "family": rule.family,
        "table": rule.table,
        "chain": rule.chain,
        "handle": rule.handle,
        "text": rule.text,
    }


def verdict_text(d: Decision) -> str:
    """``rejected (tcp-reset)``, ``open`` ..."""
    return d.verdict.value + (f" ({d.reject})" if d.reject else "")


def decided_by(d: Decision) -> str:
    """The deciding rule in one line: ``inet fw input #7: tcp dport 22 accept``, or the
    policy (``policy of inet fw input``), or the reason when no rule decided."""
    if d.rule is not None:
        handle = f" #{d.rule.handle}" if d.rule.handle is not None else ""
        return f"{d.rule.family} {d.rule.table} {d.rule.chain}{handle}: {d.rule.text}"
    if d.chain is not None:
        return f"policy of {d.chain}"
    return d.reason


def exposure_json(report: ExposureReport) -> dict[str, Any]:
    """The JSON document of ``portscope exposure`` (see the module docstring)."""
    ports = []
    for row in report.rows:
        d = row.decision
        ports.append(
            {
                "proto": row.proto.value,
                "family": row.family,
                "port": row.port,
                "address": row.address,
                "verdict": d.verdict.value,
                "reject": d.reject,
                "reason": d.reason,
                "rule": _rule_json(d.rule),
                "chain": d.chain,
                "destination": endpoint_text(*d.destination) if d.destination else None,
                "receiver": d.listener,
                "dnat": row.dnat,
                "listener": to_dict(row.listener) if row.listener is not None else None,
                "unknown_rules": [_rule_json(r) for r in d.unknown_rules],
                "by_source": [
                    {
                        "source": s.source.label,
                        "address": s.source.address,
                        "interface": s.interface,
                        "verdict": s.decision.verdict.value,
                        "reject": s.decision.reject,
                        "reason": s.decision.reason,
                        "rule": _rule_json(s.decision.rule),
                    }
                    for s in row.by_source
                ],
            }
        )
    return {
        "schema": SCHEMA,
        "netns": report.netns,
        "firewall_read": report.firewall_read,
        "firewall_error": report.firewall_error,
        "ruleset_source": report.ruleset_source,
        "rule_count": report.rule_count,
        "interfaces": list(report.interfaces),
        "sources": [{"label": s.label, "address": s.address} for s in report.sources],
        "notes": list(report.notes),
        "ports": ports,
    }


def _others(row: Exposure) -> str:
    """``open from 198.18.5.0/24; filtered on eth1``: where the verdict differs (an
    interface is named only when the verdict is not the same on every interface)."""
    main = row.by_source[0].source.label if row.by_source else ""
    all_ifaces = {x.interface for x in row.by_source}
    groups: dict[tuple[str, str], set[str | None]] = {}
    for s in row.exceptions():
        groups.setdefault((s.source.label, verdict_text(s.decision)), set()).add(s.interface)
    parts: list[str] = []
    for (label, verdict), ifaces in groups.items():
        where = [f"from {label}"] if label != main else []
        if ifaces != all_ifaces:
            where.append("on " + ", ".join(sorted(i or "-" for i in ifaces)))
        parts.append(f"{verdict} {' '.join(where)}".strip())
    return "; ".join(parts) or "-"


def render_exposure(report: ExposureReport) -> list[Item]:
    """The exposure table, a summary line, and the notes (faces show them in order)."""
    items: list[Item] = []
    if not report.firewall_read:
        items.append(
            safe(
                f"firewall NOT read ({report.firewall_error}): verdicts below judge by the "
                "bind address alone (loopback-only = closed to others, anything else = unknown)"
            )
        )
    main = report.sources[0].label if report.sources else "outside"
    table = Table(
        (
            Column("PROTO"),
            Column("PORT", justify="right"),
            Column("ADDRESS"),
            Column(
                f"FROM {main.upper()}" if main == "outside" else "VERDICT", styles=VERDICT_STYLES
            ),
            Column("DECIDED BY", drop=3, min_width=24),
            Column("RECEIVER", drop=2, min_width=16),
            Column("OTHER SOURCES", drop=1, min_width=16),
        ),
    )
    for row in report.rows:
        d = row.decision
        receiver = d.listener or ("-" if row.listener is None else "")
        if d.destination:
            receiver = f"-> {endpoint_text(*d.destination)} {receiver}".strip()
        table.rows.append(
            [
                f"{row.proto.value}{'6' if row.family == 6 else ''}",
                str(row.port),
                row.address,
                verdict_text(d),
                decided_by(d) if report.firewall_read else d.reason,
                receiver or "-",
                _others(row),
            ]
        )
    items.append(table)
    counts: dict[str, int] = {}
    for row in report.rows:
        counts[row.verdict.value] = counts.get(row.verdict.value, 0) + 1
    summary = ", ".join(f"{n} {v}" for v, n in sorted(counts.items())) or "no ports"
    if report.firewall_read:
        where = ", ".join(report.interfaces) or "no interface"
        items.append(
            safe(
                f"{len(report.rows)} port(s): {summary}; ruleset {report.ruleset_source} "
                f"({report.rule_count} rules); new connections from {main} arriving on {where}"
            )
        )
    else:
        items.append(f"{len(report.rows)} port(s): {summary}")
    return items


def notes(report: ExposureReport) -> Sequence[str]:
    """Lines for stderr: what the readers skipped (escaped: names come from the ruleset)."""
    return [safe(n) for n in report.notes]
