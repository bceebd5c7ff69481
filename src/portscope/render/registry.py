"""Registry output from the typed API: ``lookup``, ``registry sources`` and ``registry
update`` as plain aligned text (no rich: the tables stay easy to grep) and as JSON
documents. Renderers return text or JSON-ready dicts; the faces write them.

``lookup``'s text and JSON come from ``render._lookup``, which the CLI's fast path also
uses on the registry's lean records. JSON schemas are documented in ``docs/registry.md``.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from portscope.models import to_dict
from portscope.registry._layout import Entry
from portscope.render import _lookup
from portscope.render._lookup import json_text as json_text

if TYPE_CHECKING:
    from portscope.models import Service
    from portscope.registry import PortFacts, Query, SourceInfo
    from portscope.registry._answer import Facts, Kernel, RawQuery

SOURCES_SCHEMA = "portscope.registry-sources/1"
UPDATE_SCHEMA = "portscope.registry-update/1"


def _raw_query(query: Query) -> RawQuery:
    proto = query.proto.value if query.proto is not None else None
    return (query.kind, query.text, query.port, query.port_end, query.name, proto)


def _entry(s: Service) -> Entry:
    return Entry(
        s.port,
        s.port_end,
        s.proto.value,
        s.name,
        s.aliases,
        s.description,
        s.source,
        s.notes,
        s.frequency,
    )


def _kernel_and_facts(facts: Sequence[PortFacts]) -> tuple[Kernel | None, list[Facts]]:
    if not facts:
        return None, []
    k = facts[0].kernel
    kernel = (k.ephemeral, k.reserved, k.unprivileged_start, k.from_kernel)
    rows = [(f.port, f.range.value, f.privileged, f.ephemeral, f.reserved) for f in facts]
    return kernel, rows


def lookup_text(
    query: Query,
    services: Sequence[Service],
    facts: Sequence[PortFacts],
    total: int,
) -> str:
    """A lookup's answer as plain aligned text, newline-terminated.

    Args:
        query: the parsed query.
        services: the services to show (already limited).
        facts: one ``PortFacts`` for a port query, every port's for a range, none for
            a name.
        total: how many services matched before the limit.
    """
    kernel, rows = _kernel_and_facts(facts)
    shown = [_entry(s) for s in services]
    return _lookup.lookup_text(_raw_query(query), shown, rows, kernel, total)


def lookup_document(
    query: Query,
    services: Sequence[Service],
    facts: Sequence[PortFacts],
    total: int,
    transports: Sequence[str] | None = None,
) -> dict[str, Any]:
    """The ``lookup --json`` document (schema ``portscope.lookup/1`` in docs/registry.md).

    Args:
        query: as for ``lookup_text``.
        services: as for ``lookup_text``.
        facts: as for ``lookup_text``.
        total: as for ``lookup_text``.
        transports: the transports the answer is restricted to, sorted; ``None``: all.
    """
    kernel, rows = _kernel_and_facts(facts)
    shown = [_entry(s) for s in services]
    return _lookup.lookup_document(_raw_query(query), shown, rows, kernel, total, transports)


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


def sources_text(sources: Sequence[SourceInfo]) -> str:
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
    return "\n".join(_plain_table(header, rows)) + "\n"


def sources_document(sources: Sequence[SourceInfo]) -> dict[str, Any]:
    """``registry sources --json``: ``{"schema": "portscope.registry-sources/1", "sources":
    [SourceInfo, ...]}``, sources in priority order (docs/registry.md)."""
    return {"schema": SOURCES_SCHEMA, "sources": to_dict(list(sources))}


def update_text(info: SourceInfo) -> str:
    """What ``registry update`` did, in one line (and the row counts on a second)."""
    if info.changed is False:
        what = "IANA registry not modified since the last download; kept"
    else:
        what = "IANA registry imported"
    origin = f" from {info.url}" if info.url else ""
    text = f"{what}{origin}: {info.entries} entries in {info.path}\n"
    return text + (f"  {info.detail}\n" if info.detail else "")


def update_document(info: SourceInfo) -> dict[str, Any]:
    """``registry update --json``: the IANA ``SourceInfo`` after the update, with a
    ``schema`` key first (``portscope.registry-update/1``)."""
    doc: dict[str, Any] = to_dict(info)
    return {"schema": UPDATE_SCHEMA, **doc}
