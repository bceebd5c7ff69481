"""Output of ``trace``: the hop table and the verdict line, and its JSON document.

JSON (stable; keys may be added): ``{"host", "address", "port", "proto", "verdict",
"stop_hop", "stop_address", "summary", "hops": [{"ttl", "address", "rtt_s", "answer"}]}``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from portscope.models import to_dict
from portscope.render import ms
from portscope.render._table import Column, Table

if TYPE_CHECKING:
    from rich.console import RenderableType

    from portscope.scanner.trace import TraceResult

__all__ = ["render_trace", "trace_json"]

_COLUMNS = (
    Column("HOP", "right"),
    Column("ADDRESS"),
    Column("RTT", "right", drop=1),
    Column("ANSWER", drop=2),
)


def trace_json(result: TraceResult) -> dict[str, Any]:
    """The ``trace --json`` document."""
    data: dict[str, Any] = to_dict(result)
    return data


def render_trace(result: TraceResult) -> list[RenderableType | Table]:
    """The hop table, then the verdict in words."""
    from rich.text import Text

    table = Table(_COLUMNS)
    for hop in result.hops:
        table.rows.append(
            [str(hop.ttl), hop.address or "*", ms(hop.rtt_s), hop.answer or "no answer"]
        )
    return [table, Text(result.summary)]
