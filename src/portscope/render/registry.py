"""Registry output: ``lookup``, ``registry sources`` and ``registry update`` as plain
aligned text (no rich: ``lookup`` must start fast, and the tables stay easy to grep), and
the JSON documents.

JSON schemas are documented in ``docs/registry.md``.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, TextIO

from portscope.models import to_dict
from portscope.registry import _answer

if TYPE_CHECKING:
    from portscope.cli._base import Env
    from portscope.models import Service
    from portscope.registry import PortFacts, Query, SourceInfo
    from portscope.registry._answer import Facts, Kernel, RawQuery
    from portscope.registry._sources import Entry


def _raw_query(query: Query) -> RawQuery:
    proto = query.proto.value if query.proto is not None else None
    return (query.kind, query.text, query.port, query.port_end, query.name, proto)


def _entry(s: Service) -> Entry:
    return (
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


def write_lookup(
    stream: TextIO,
    query: Query,
    services: Sequence[Service],
    facts: Sequence[PortFacts],
    total: int,
) -> None:
    """Write a lookup's answer as plain aligned text.

    The text comes from ``registry._answer.answer_text``, which ``portscope lookup``'s
    fast path also uses on the cache's tuples.

    Args:
        stream: where to write.
        query: the parsed query.
        services: the services to show (already limited).
        facts: one ``PortFacts`` for a port query, every port's for a range, none for
            a name.
        total: how many services matched before the limit.
    """
    kernel, rows = _kernel_and_facts(facts)
    shown = [_entry(s) for s in services]
    stream.write(_answer.answer_text(_raw_query(query), shown, rows, kernel, total))


def lookup_document(
    query: Query,
    services: Sequence[Service],
    facts: Sequence[PortFacts],
    total: int,
) -> dict[str, Any]:
    """The ``lookup --json`` document (schema in docs/registry.md)."""
    kernel, rows = _kernel_and_facts(facts)
    shown = to_dict(list(services))
    return _answer.answer_document(_raw_query(query), shown, rows, kernel, total)


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
