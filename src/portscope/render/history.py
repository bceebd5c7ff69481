"""History output: event lines, event JSON, snapshot and timeline tables.

An event line reads ``added tcp 0.0.0.0:9999 python3[4242]``; a change of scope or owner
shows both sides with ``->``. JSON documents: ``portscope.diff/1`` (``diff --json``: the
two sides and an ``events`` list) and ``portscope.event/1`` (``watch --json``, one object
per line with its time). Each event object has ``action``, ``socket`` (the record it is
about: the listener or scanned port after, else before) and ``before``/``after``.
Process names and command lines are other people's strings: lines and tables escape
them (``safe``), JSON keeps them exact.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Final

from portscope.history._data import listener_from_json, listener_json
from portscope.render import safe

if TYPE_CHECKING:
    from portscope.history import (
        Event,
        Listener,
        ScanPort,
        SnapshotInfo,
        TimelineEntry,
    )
    from portscope.render._table import Table

__all__ = [
    "DIFF_SCHEMA",
    "EVENT_SCHEMA",
    "diff_document",
    "event_json",
    "event_line",
    "listener_from_json",
    "listener_json",
    "netns_text",
    "render_snapshots",
    "render_timeline",
    "snapshot_json",
    "spans_namespaces",
    "when",
]

DIFF_SCHEMA: Final = "portscope.diff/1"
EVENT_SCHEMA: Final = "portscope.event/1"


def when(at: float | None, *, date: bool = True) -> str:
    """A time for humans, local time: ``2026-11-29 06:01:02`` (``06:01:02`` without date)."""
    if at is None:
        return "-"
    return time.strftime("%Y-%m-%d %H:%M:%S" if date else "%H:%M:%S", time.localtime(at))


def iso(at: float) -> str:
    """A time for JSON: RFC 3339 in UTC with milliseconds (``2026-11-29T06:01:02.125Z``)."""
    whole = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(at))
    return f"{whole}.{int((at % 1) * 1000):03d}Z"


def _record_json(item: Listener | ScanPort | None) -> dict[str, Any] | None:
    from portscope.history import Listener

    if item is None:
        return None
    if isinstance(item, Listener):
        return listener_json(item)
    return {
        "host": item.host,
        "address": item.address,
        "proto": item.proto.value,
        "port": item.port,
        "state": item.state.value,
        "reason": item.reason,
        "service": item.service,
    }


def event_json(event: Event, *, stamp: bool = False) -> dict[str, Any]:
    """An event as JSON data; with ``stamp`` (watch) its schema and time lead."""
    out: dict[str, Any] = {}
    if stamp:
        at = event.at if event.at is not None else time.time()
        out = {"schema": EVENT_SCHEMA, "time": iso(at), "at": round(at, 3)}
    out["action"] = event.action.value
    out["socket"] = _record_json(event.subject)
    out["before"] = _record_json(event.before)
    out["after"] = _record_json(event.after)
    return out


def snapshot_json(info: SnapshotInfo | None) -> dict[str, Any]:
    """A snapshot's description (``None``: the live listing, ``now``)."""
    if info is None:
        return {"id": None, "ref": "now", "taken_at": iso(time.time())}
    return {
        "id": info.id,
        "host": info.host,
        "kind": info.kind.value,
        "label": info.label,
        "taken_at": iso(info.taken_at),
        "source": info.source,
        "netns": info.netns,
        "netns_spec": info.netns_spec,
        "items": info.items,
        "complete": info.complete,
    }


def diff_document(
    before: SnapshotInfo | None, after: SnapshotInfo | None, events: Sequence[Event]
) -> dict[str, Any]:
    """The ``diff --json`` document."""
    return {
        "schema": DIFF_SCHEMA,
        "before": snapshot_json(before),
        "after": snapshot_json(after),
        "changed": bool(events),
        "events": [event_json(e) for e in events],
    }


def _endpoint(address: str, port: int) -> str:
    return f"[{address}]:{port}" if ":" in address else f"{address}:{port}"


def owners_short(item: Listener) -> str:
    """``name[pid]`` of each owner (escaped), ``?`` when not looked up, ``-`` when none."""
    if item.owners is None:
        return "?"
    return ",".join(f"{safe(o.name)}[{o.pid}]" for o in item.owners) or "-"


def _side(item: Listener | ScanPort) -> str:
    from portscope.history import Listener

    if isinstance(item, Listener):
        return f"{_endpoint(item.address, item.port)} {owners_short(item)}"
    return f"{_endpoint(item.address, item.port)} {item.state.value}"


def netns_text(item: Listener) -> str:
    """A listener's namespace for humans: its name (escaped), else ``net:[INODE]``."""
    if item.netns_name:
        return safe(item.netns_name)
    return "-" if item.netns is None else f"net:[{item.netns}]"


def spans_namespaces(events: Sequence[Event], *, home: int | None = None) -> bool:
    """Whether event lines should name their namespace: the listener events are in more
    than one, or in one other than ``home`` (the caller's)."""
    from portscope.history import Listener

    seen = {e.subject.netns for e in events if isinstance(e.subject, Listener)}
    return len(seen) > 1 or (len(seen) == 1 and home is not None and seen != {home})


def event_line(event: Event, *, stamp: bool = False, netns: bool = False) -> str:
    """One line: ``added tcp 0.0.0.0:9999 python3[4242]``; changes show ``before -> after``;
    with ``stamp``, the local time leads (``06:01:02 added ...``); with ``netns``, a
    listener's namespace ends it (``... in netns ps11n-a``, ``in netns net:[4026532513]``)."""
    subject = event.subject
    proto = subject.proto.value
    before, after = event.before, event.after
    if before is not None and after is not None:
        from portscope.history import Listener, ScanPort

        if isinstance(before, Listener) and isinstance(after, Listener):
            if before.address == after.address:  # owner changed
                text = (
                    f"{_endpoint(after.address, after.port)} {owners_short(before)} -> "
                    f"{owners_short(after)}"
                )
            else:
                text = (
                    f"{_endpoint(before.address, before.port)} -> "
                    f"{_endpoint(after.address, after.port)} {owners_short(after)}"
                )
        elif isinstance(before, ScanPort) and isinstance(after, ScanPort):
            host = "" if before.host == before.address else f" ({safe(before.host)})"
            text = (
                f"{_endpoint(before.address, before.port)}{host} "
                f"{before.state.value} -> {after.state.value}"
            )
        else:
            text = _side(subject)
    else:
        text = _side(subject)
    line = f"{event.action.value} {proto} {text}"
    if netns:
        from portscope.history import Listener

        if isinstance(subject, Listener):
            line += f" in netns {netns_text(subject)}"
    if stamp:
        line = f"{when(event.at, date=False)} {line}"
    return line


def _label(info: SnapshotInfo) -> str:
    return safe(info.label) if info.label else "-"


def render_snapshots(snapshots: Sequence[SnapshotInfo]) -> Table:
    """The table of snapshots (``history --list``)."""
    from portscope.render._table import Column, Table

    table = Table(
        (
            Column("ID", justify="right"),
            Column("TAKEN"),
            Column("KIND"),
            Column("ITEMS", justify="right"),
            Column("LABEL", drop=2, min_width=8),
            Column("SOURCE", drop=1, min_width=8, overflow="ellipsis"),
        ),
        title=None,
    )
    for s in snapshots:
        table.rows.append(
            [str(s.id), when(s.taken_at), s.kind.value, f"{s.items:,}", _label(s), s.source]
        )
    return table


def render_timeline(entries: Sequence[TimelineEntry], *, home: int | None = None) -> Table:
    """The table of one port's timeline (``history PORT``); a ``NETNS`` column when the
    entries are in more than one network namespace, or in one other than ``home``."""
    from portscope.render._table import Column, Table

    spaces = {item.netns for t in entries for item in (t.before, t.after) if item is not None}
    with_netns = len(spaces) > 1 or (home is not None and bool(spaces) and spaces != {home})
    columns = [
        Column("WHEN"),
        Column("SOURCE"),
        Column("ACTION"),
        Column("SOCKET"),
        Column("PROCESS", drop=1, min_width=10),
    ]
    if with_netns:
        columns.insert(3, Column("NETNS", drop=2, min_width=8))
    table = Table(tuple(columns), title=None)
    for t in entries:
        source = "watch" if t.snapshot_id is None else f"snapshot {t.snapshot_id}"
        if t.label:
            source += f" ({safe(t.label)})"
        item = t.after if t.after is not None else t.before
        if item is None:
            continue
        socket = f"{item.proto.value} {_endpoint(item.address, item.port)}"
        if t.before is not None and t.after is not None and t.before.address != t.after.address:
            socket = (
                f"{item.proto.value} {_endpoint(t.before.address, t.before.port)} -> "
                f"{_endpoint(t.after.address, t.after.port)}"
            )
        process = owners_short(item)
        if t.before is not None and t.after is not None and t.action == "owner-changed":
            process = f"{owners_short(t.before)} -> {owners_short(t.after)}"
        row = [when(t.at), source, t.action, socket, process]
        if with_netns:
            row.insert(3, netns_text(item))
        table.rows.append(row)
    return table
