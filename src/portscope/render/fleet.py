"""Fleet answers (``portscope fleet ls``, ``fleet diff``): tables and JSON."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from portscope.render import safe
from portscope.render.history import event_json, event_line, owners_short, snapshot_json, when

if TYPE_CHECKING:
    from portscope.history._fleet import FleetEvent, FleetListener
    from portscope.render._table import Table

SCHEMA_LS = "portscope.fleet-ls/1"
SCHEMA_DIFF = "portscope.fleet-diff/1"


def _endpoint(address: str, port: int) -> str:
    return f"[{address}]:{port}" if ":" in address else f"{address}:{port}"


def render_fleet_listeners(found: Sequence[FleetListener]) -> Table:
    """HOST, PROTO, LOCAL, SCOPE, PROCESS, SNAPSHOT (when that host's state was taken)."""
    from portscope.render._table import Column, Table
    from portscope.sockets import scope_words

    table = Table(
        (
            Column("HOST", min_width=8, overflow="ellipsis"),
            Column("PROTO"),
            Column("LOCAL"),
            Column("SCOPE", drop=2, min_width=10, overflow="ellipsis"),
            Column("PROCESS", drop=3, min_width=8, overflow="ellipsis"),
            Column("SNAPSHOT", drop=1),
        ),
        title=None,
    )
    for f in found:
        item = f.listener
        table.rows.append(
            [
                safe(f.host),
                item.proto.value,
                _endpoint(item.address, item.port),
                scope_words(item.family, item.address, item.v6only, item.interface),
                owners_short(item),
                when(f.snapshot.taken_at),
            ]
        )
    return table


def fleet_listeners_json(found: Sequence[FleetListener]) -> dict[str, Any]:
    """``{"schema", "listeners": [{"host", "snapshot", "proto", "address", "port",
    "owners"}]}``; exact values."""
    return {
        "schema": SCHEMA_LS,
        "listeners": [
            {
                "host": f.host,
                "snapshot": snapshot_json(f.snapshot),
                "proto": f.listener.proto.value,
                "family": f.listener.family,
                "address": f.listener.address,
                "port": f.listener.port,
                "state": f.listener.state.value,
                "owners": None
                if f.listener.owners is None
                else [
                    {"pid": o.pid, "name": o.name, "user": o.user, "cmdline": o.cmdline}
                    for o in f.listener.owners
                ],
            }
            for f in found
        ],
    }


def fleet_event_lines(events: Sequence[FleetEvent]) -> list[str]:
    """One line per change, led by its host: ``web1  added tcp 0.0.0.0:6379 redis[77]``."""
    width = max((len(safe(e.host)) for e in events), default=0)
    return [f"{safe(e.host):<{width}}  {event_line(e.event)}" for e in events]


def fleet_diff_json(events: Sequence[FleetEvent], since_s: float) -> dict[str, Any]:
    """``{"schema", "since_s", "events": [{"host", "before", "after", ...event}]}``."""
    return {
        "schema": SCHEMA_DIFF,
        "since_s": since_s,
        "events": [
            {
                "host": e.host,
                "before_snapshot": None if e.before is None else snapshot_json(e.before),
                "after_snapshot": snapshot_json(e.after),
                **event_json(e.event),
            }
            for e in events
        ],
    }
