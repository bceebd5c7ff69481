"""Fleet questions over a shared store: which hosts listen on a port, what changed where.

Every host writes its own snapshots (``portscope snapshot --db postgresql://...``, tagged
with its host name and machine id); these read all hosts' rows. A host's state is its
newest listing snapshot (``listeners`` or ``sockets`` kind).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from portscope.history._events import diff_listeners
from portscope.history._model import Event, Listener, SnapshotInfo, SnapshotKind
from portscope.history._store import Store

_LISTINGS = (SnapshotKind.LISTENERS, SnapshotKind.SOCKETS)


@dataclass(frozen=True, slots=True)
class FleetListener:
    """One listener of one host, from that host's newest listing snapshot.

    Attributes:
        host: the host name its snapshot was tagged with.
        snapshot: that snapshot (id, time, label ...).
        listener: the listener (identity, scope, owners).
    """

    host: str
    snapshot: SnapshotInfo
    listener: Listener


@dataclass(frozen=True, slots=True)
class FleetEvent:
    """A change on one host between two of its listing snapshots.

    Attributes:
        host: the host.
        before: the snapshot compared from (``None``: the host's first snapshot is newer
            than the window, so everything in it counts as added).
        after: the host's newest snapshot.
        event: the change (``added``, ``removed``, ``scope-widened`` ...).
    """

    host: str
    before: SnapshotInfo | None
    after: SnapshotInfo
    event: Event


def latest_per_host(store: Store) -> dict[str, SnapshotInfo]:
    """Each host's newest listing snapshot, by host name."""
    newest: dict[str, SnapshotInfo] = {}
    for info in store.snapshots(kinds=_LISTINGS, all_hosts=True):  # newest first
        newest.setdefault(info.host, info)
    return newest


def fleet_listeners(
    store: Store, *, port: int | None = None, process: str | None = None
) -> list[FleetListener]:
    """Which hosts listen where: every listener of every host's newest snapshot.

    Args:
        store: a shared store (any backend).
        port: only this local port.
        process: only listeners one of whose owners has this process name (exact, any
            case), as ``/proc/PID/comm`` gives it.

    Returns:
        Sorted by host, port, transport, address.
    """
    wanted = process.lower() if process is not None else None
    found: list[FleetListener] = []
    for host, info in sorted(latest_per_host(store).items()):
        for item in store.listeners(info.id, port=port):
            if item.state.value not in ("LISTEN", "UNCONN"):
                continue
            if wanted is not None and not any(o.name.lower() == wanted for o in item.owners or ()):
                continue
            found.append(FleetListener(host, info, item))
    found.sort(key=lambda f: (f.host, f.listener.port, f.listener.proto.value, f.listener.address))
    return found


def fleet_diff(store: Store, *, since_s: float, now: float | None = None) -> list[FleetEvent]:
    """What changed on each host over the last ``since_s`` seconds: the host's newest
    listing snapshot against its newest one taken at or before the window's start (or,
    when it has none that old, its oldest in the window; a host with one snapshot in
    the window shows everything as added).

    Args:
        store: a shared store.
        since_s: the window, in seconds (> 0).
        now: the window's end (default: the current time).

    Returns:
        Events by host, then as ``diff_listeners`` orders them.
    """
    start = (time.time() if now is None else now) - since_s
    by_host: dict[str, list[SnapshotInfo]] = {}
    for info in store.snapshots(kinds=_LISTINGS, all_hosts=True):
        by_host.setdefault(info.host, []).append(info)
    out: list[FleetEvent] = []
    for host, infos in sorted(by_host.items()):
        newest = infos[0]
        if newest.taken_at < start:
            continue  # nothing new from this host in the window
        older = [i for i in infos[1:] if i.taken_at <= start]
        inside = [i for i in infos[1:] if i.taken_at > start]
        base = older[0] if older else (inside[-1] if inside else None)
        after = store.listener_table(newest.id)
        before = store.listener_table(base.id) if base is not None else {}
        for event in diff_listeners(before, after):
            out.append(FleetEvent(host, base, newest, event))
    return out
