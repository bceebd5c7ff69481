"""What ``portscope serve`` shows from the history store (issue 11): a port's timeline,
the stored scans and listings, one snapshot's contents, and the diff of two.

Every function here opens the store read-only (``open_store(..., create=False)``), reads,
closes it, and returns plain records of exact text for the templates (which autoescape:
process names, command lines, labels and nmap service names are other people's strings).
They block (SQLite, PostgreSQL): the app calls them in a worker thread. Nothing here
raises for a store problem: a missing store, a ``StoreError`` (damaged, newer schema,
unreachable) or a bad snapshot reference is one sentence in ``StoreView.error``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from portscope.history import Event, Listener, ScanPort, SnapshotInfo, Store

T = TypeVar("T")

#: Snapshots listed per kind on the scans page.
MAX_SNAPSHOTS = 200
#: Rows shown of one snapshot or one diff.
MAX_ROWS = 2000
#: Entries of a port's timeline shown (the newest).
MAX_TIMELINE = 500


@dataclass(frozen=True, slots=True)
class StoreView:
    """A read of the store for a page: ``value`` or one sentence why not.

    Attributes:
        location: the store's path (a PostgreSQL DSN without its password).
        value: what was read, or ``None``.
        error: why nothing was read (missing store, store error, bad reference).
    """

    location: str
    value: Any = None
    error: str | None = None


@dataclass(frozen=True, slots=True)
class SnapRow:
    """One snapshot as listed: ``id``, ``when`` (local time), ``kind``, ``label`` (or
    ``""``), ``source``, ``items``, ``complete``."""

    id: int
    when: str
    kind: str
    label: str
    source: str
    items: int
    complete: bool
    is_scan: bool


@dataclass(frozen=True, slots=True)
class ChangeRow:
    """One event or timeline step: ``action``, ``proto``, ``before`` and ``after`` as
    ``address:port`` plus owners (listeners) or state (scanned ports), ``where`` the
    snapshot (timeline) and ``when`` (timeline)."""

    action: str
    proto: str
    before: str
    after: str
    port: int
    when: str = ""
    where: str = ""


@dataclass(frozen=True, slots=True)
class ScanContents:
    """One scan: its hosts (``address``, ``host``, ``status``, ``unlisted`` state) and its
    listed ports (``endpoint``, ``target`` when it is a name, ``proto``, ``port``,
    ``state``, ``reason``, ``service``)."""

    hosts: list[dict[str, str]]
    ports: list[dict[str, Any]]


@dataclass(frozen=True, slots=True)
class ScansPage:
    """What ``/scans`` shows: the snapshots of each kind, an opened one, a diff."""

    scans: list[SnapRow] = field(default_factory=list)
    listings: list[SnapRow] = field(default_factory=list)
    opened: SnapRow | None = None
    scan: ScanContents | None = None
    listeners: list[ChangeRow] | None = None
    diff: list[ChangeRow] | None = None
    diff_of: tuple[SnapRow | None, SnapRow | None] | None = None
    truncated: int = 0
    problem: str | None = None


def location_of(path: str | None) -> str:
    """The store's path as shown: ``path`` or ``history.default_path()``; a PostgreSQL
    DSN without its password."""
    from portscope.history import default_path
    from portscope.history._postgres import _redacted, is_dsn

    where = path or default_path()
    return _redacted(where) if is_dsn(where) else where


def read_store(path: str | None, read: Callable[[Store], T]) -> StoreView:
    """Open the store read-only, ``read(store)``, close it.

    Returns:
        ``StoreView(value=...)``, or with ``error``: ``no history store at PATH
        ('portscope snapshot' starts one)``, a ``StoreError``'s one line, a bad
        reference's (``InvalidInput``), or any other ``PortscopeError``'s.
    """
    from portscope.errors import PortscopeError
    from portscope.history import default_path, open_store
    from portscope.history._postgres import is_dsn

    where = path or default_path()
    shown = location_of(where)
    if not is_dsn(where) and not os.path.exists(where):
        return StoreView(
            shown, error=f"no history store at {where} ('portscope snapshot' starts one)"
        )
    try:
        with open_store(where, create=False) as store:
            return StoreView(shown, value=read(store))
    except PortscopeError as err:  # StoreError, a bad reference, a listing refused
        return StoreView(shown, error=" ".join(str(err).split()))


# text of records ------------------------------------------------------------------------


def when(at: float | None) -> str:
    from portscope.render.history import when as local_time

    return local_time(at)


def endpoint(address: str, port: int) -> str:
    return f"[{address}]:{port}" if ":" in address else f"{address}:{port}"


def owners_text(item: Listener) -> str:
    """``name[pid]`` of each owner (exact text), ``?`` not looked up, ``-`` none seen."""
    if item.owners is None:
        return "?"
    return ", ".join(dict.fromkeys(f"{o.name}[{o.pid}]" for o in item.owners)) or "-"


def record_text(item: Listener | ScanPort | None) -> str:
    """A listener as ``address:port owners``, a scanned port as ``address:port state``."""
    from portscope.history import Listener

    if item is None:
        return ""
    if isinstance(item, Listener):
        return f"{endpoint(item.address, item.port)} {owners_text(item)}"
    host = "" if item.host == item.address else f" ({item.host})"
    return f"{endpoint(item.address, item.port)}{host} {item.state.value}"


def change_row(event: Event) -> ChangeRow:
    subject = event.subject
    return ChangeRow(
        event.action.value,
        subject.proto.value,
        record_text(event.before),
        record_text(event.after),
        subject.port,
    )


def snap_row(info: SnapshotInfo) -> SnapRow:
    return SnapRow(
        info.id,
        when(info.taken_at),
        info.kind.value,
        info.label or "",
        info.source,
        info.items,
        info.complete,
        info.kind.is_scan,
    )


# reads --------------------------------------------------------------------------------


def port_timeline(path: str | None, port: int) -> StoreView:
    """The timeline of ``port`` (``Store.timeline``: what each listing snapshot changed,
    and the events ``watch --save`` recorded), the newest ``MAX_TIMELINE`` steps, in time
    order."""

    def read(store: Store) -> list[ChangeRow]:
        rows = []
        for t in store.timeline(port)[-MAX_TIMELINE:]:
            item = t.after if t.after is not None else t.before
            if item is None:
                continue
            where = "watch" if t.snapshot_id is None else f"snapshot {t.snapshot_id}"
            if t.label:
                where += f" ({t.label})"
            rows.append(
                ChangeRow(t.action, item.proto.value, record_text(t.before),
                          record_text(t.after), item.port, when(t.at), where)
            )  # fmt: skip
        return rows

    return read_store(path, read)


def _ref(text: str) -> str:
    from portscope.errors import InvalidInput

    ref = text.strip()
    if not ref or len(ref) > 100:
        raise InvalidInput(
            f"bad snapshot {text[:100]!r}; accepted: an id, a label, last, last~N, last-scan, now"
        )
    return ref


def scans_page(
    path: str | None, *, opened: str | None = None, a: str | None = None, b: str | None = None
) -> StoreView:
    """The scans page: stored scans and imports (``kinds=[SCAN, NMAP]``) and listing
    snapshots, newest first; with ``opened``, that snapshot's ports or listeners; with
    ``a`` and ``b``, their diff as ``portscope diff A B`` makes it (``diff_scans`` for two
    scans, ``diff_listeners`` for two listings, ``now`` a fresh listing; a scan and a
    listing do not compare).

    ``a``/``b``/``opened``: an id, a label, ``last``, ``last~N``, ``last-scan`` (and
    ``now`` for a diff side). A bad one is ``ScansPage.problem``, the lists stay.
    """
    from portscope.errors import InvalidInput
    from portscope.history import (
        SnapshotKind,
        diff_listeners,
        diff_scans,
    )

    def read(store: Store) -> ScansPage:
        scans = store.snapshots(kinds=[SnapshotKind.SCAN, SnapshotKind.NMAP], limit=MAX_SNAPSHOTS)
        listings = store.snapshots(
            kinds=[SnapshotKind.LISTENERS, SnapshotKind.SOCKETS], limit=MAX_SNAPSHOTS
        )
        page = ScansPage([snap_row(s) for s in scans], [snap_row(s) for s in listings])
        try:
            return chosen(store, page)
        except InvalidInput as err:  # a bad reference: said above the lists
            return _replace(page, problem=" ".join(str(err).split()))

    def chosen(store: Store, page: ScansPage) -> ScansPage:
        truncated = 0
        if opened is not None:
            info = store.resolve(_ref(opened))
            if info.kind.is_scan:
                hosts, ports = store.scan(info.id)
                truncated = max(0, len(ports) - MAX_ROWS)
                contents = ScanContents(
                    [
                        {"address": h.address, "host": h.host, "status": h.status,
                         "unlisted": h.extra_state.value if h.extra_state else "?"}
                        for h in hosts
                    ],
                    [
                        {"endpoint": endpoint(p.address, p.port),
                         "target": "" if p.host == p.address else p.host,
                         "proto": p.proto.value, "port": p.port, "state": p.state.value,
                         "reason": p.reason or "", "service": p.service or ""}
                        for p in ports[:MAX_ROWS]
                    ],
                )  # fmt: skip
                page = _replace(page, opened=snap_row(info), scan=contents)
            else:
                items = sorted(
                    store.listeners(info.id), key=lambda i: (i.port, i.proto.value, i.address)
                )
                truncated = max(0, len(items) - MAX_ROWS)
                rows = [
                    ChangeRow(i.state.value, i.proto.value, "", record_text(i), i.port)
                    for i in items[:MAX_ROWS]
                ]
                page = _replace(page, opened=snap_row(info), listeners=rows)
        if a is not None and b is not None:
            ref_a, ref_b = _ref(a), _ref(b)
            if ref_a == "now" and ref_b == "now":
                raise InvalidInput(
                    "diff now now: give at least one snapshot (an id, a label, last)"
                )
            side_a = None if ref_a == "now" else store.resolve(ref_a)
            side_b = None if ref_b == "now" else store.resolve(ref_b)
            sides = [s for s in (side_a, side_b) if s is not None]
            events: list[Event]
            if any(s.kind.is_scan for s in sides):
                if side_a is None or side_b is None or not all(s.kind.is_scan for s in sides):
                    raise InvalidInput(
                        "a scan compares with another scan only (not with a listing or now)"
                    )
                events = diff_scans(*store.scan(side_a.id), *store.scan(side_b.id))
            else:
                tables = [_now() if s is None else store.listener_table(s.id)
                          for s in (side_a, side_b)]  # fmt: skip
                events = diff_listeners(tables[0], tables[1])
            truncated = max(truncated, len(events) - MAX_ROWS)
            page = _replace(
                page,
                diff=[change_row(e) for e in events[:MAX_ROWS]],
                diff_of=(
                    None if side_a is None else snap_row(side_a),
                    None if side_b is None else snap_row(side_b),
                ),
            )
        return _replace(page, truncated=truncated)

    return read_store(path, read)


def _replace(page: ScansPage, **changes: Any) -> ScansPage:
    from dataclasses import replace

    return replace(page, **changes)


def _now() -> Any:
    """A fresh listing of this host's listeners, as ``portscope diff ... now`` takes it."""
    from portscope.history._capture import capture
    from portscope.history._store import ListenerTable

    return ListenerTable.from_sockets(capture().sockets)


__all__: Sequence[str] = (
    "ChangeRow",
    "ScanContents",
    "ScansPage",
    "SnapRow",
    "StoreView",
    "location_of",
    "port_timeline",
    "read_store",
    "scans_page",
)
