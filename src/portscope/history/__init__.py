"""History: snapshots of this host's listeners, scans, and change events.

``open_store()`` opens the store (SQLite at ``$PORTSCOPE_DB`` or the XDG data directory,
``default_path()``); ``capture()`` lists this host's listeners for
``Store.save_sockets``; ``diff_listeners``/``diff_scans`` turn two listings or scans into
events; ``Watcher`` turns repeated kernel-filtered dumps into debounced events. The read
API a face needs (the web page, the TUI): ``Store.snapshots``, ``Store.resolve``,
``Store.listeners``, ``Store.listener_table``, ``Store.sockets``, ``Store.scan``, ``Store.events``,
``Store.timeline``; every one returns frozen records (``Listener``, ``ScanPort``,
``SnapshotInfo``, ``Event``, ``TimelineEntry``).

Importing this package loads neither sqlite3 nor the socket backends: they load when a
store is opened or a listing taken. docs/history.md has the schema and the commands.
"""

from __future__ import annotations

from portscope.history._events import diff_listeners, diff_scans, index_listeners
from portscope.history._model import (
    Action,
    Event,
    Listener,
    ListenerKey,
    ScanHost,
    ScanKey,
    ScanPort,
    SnapshotInfo,
    SnapshotKind,
    owner_identity,
    scope_rank,
)
from portscope.history._store import (
    SCHEMA_VERSION,
    ListenerTable,
    PruneResult,
    Store,
    StoredSocket,
    TimelineEntry,
    default_path,
    fold_listeners,
    open_store,
)

__all__ = [
    "SCHEMA_VERSION",
    "Action",
    "Event",
    "Listener",
    "ListenerKey",
    "ListenerTable",
    "PruneResult",
    "ScanHost",
    "ScanKey",
    "ScanPort",
    "SnapshotInfo",
    "SnapshotKind",
    "Store",
    "StoredSocket",
    "TimelineEntry",
    "default_path",
    "diff_listeners",
    "diff_scans",
    "fold_listeners",
    "index_listeners",
    "open_store",
    "owner_identity",
    "parse_duration",
    "scope_rank",
]

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_duration(text: str) -> float:
    """Parse a duration: a number with a unit, ``s``, ``m``, ``h``, ``d`` or ``w``
    (``30d``, ``12h``, ``90m``, ``1.5s``); a bare number is seconds.

    Returns:
        Seconds (above 0).

    Raises:
        InvalidInput: anything else.
    """
    from portscope.errors import InvalidInput

    raw = text.strip().lower()
    unit = raw[-1:] if raw[-1:] in _UNITS else "s"
    number = raw[:-1] if raw[-1:] in _UNITS else raw
    try:
        value = float(number) * _UNITS[unit]
    except ValueError:
        value = -1.0
    if not 0 < value < 1e12 or number.startswith(("+", "-")) or "n" in number:
        raise InvalidInput(
            f"bad duration {text!r}; accepted: a number with a unit s, m, h, d or w "
            "(30d, 12h, 90m, 1.5s)"
        )
    return value
