"""``watch``: listeners as they come and go, from repeated kernel-filtered dumps.

Each poll is one NETLINK_SOCK_DIAG dump per (transport, family) of listening states
only (TCP ``LISTEN``, UDP ``UNCONN``): for TCP the kernel then walks its listening hash
alone, never the established one (``inet_diag_dump_icsk`` in ``net/ipv4/inet_diag.c``
skips ``ehash`` when the state mask is ``TCPF_LISTEN``), so 10,000 connections cost a poll
nothing. The poll's identities and inodes are compared as one frozenset with the last
one's; only when they differ is anything else done, and only sockets with a new inode
have their processes looked up (one ``/proc/*/fd`` scan restricted to those inodes).

Debounce, one interval (the poll period):

* a new identity is ``added`` when it is still there at the next poll; one gone by then
  is reported once as ``transient`` (a listener that lives less than one interval may
  also fall between two polls and not be seen at all: polling cannot see it);
* an identity that is missing is ``removed`` when still missing at the next poll, so a
  server restarting within one interval is no event (or ``owner-changed`` if another
  program took the port);
* ``removed`` and ``added`` on the same port in the same poll pair up as scope changes
  (``_events.pair_scopes``).

So an event is reported between one and two intervals after it happened, plus the dump
time; at the default 0.25 s, within 0.5 s.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Sequence
from typing import Any, Protocol

from portscope.history._capture import LISTEN_STATES, _row_netns, current_netns, stored_sockets
from portscope.history._events import owners_differ, pair_scopes
from portscope.history._model import Action, Event, Listener, ListenerKey
from portscope.history._store import fold_listeners
from portscope.models import Owner
from portscope.sockets import Row, SocketFilter

__all__ = ["DEFAULT_INTERVAL_S", "ListenerSource", "LiveListeners", "Watcher"]

DEFAULT_INTERVAL_S = 0.25


class ListenerSource(Protocol):
    """Where a watcher's listings come from (a seam: tests give a fake)."""

    def rows(self) -> list[Row]:
        """One dump of the listening sockets."""
        ...

    def owners(self, rows: Sequence[Row]) -> dict[int, tuple[Owner, ...]]:
        """The processes holding the sockets of ``rows``, by inode."""
        ...


class LiveListeners:
    """This host's listeners, dumped with the kernel-side state filter.

    Args:
        where: transports, families, ports (its ``states`` are replaced by listening ones).
        backend: the socket backend (``None``: the best one).
    """

    def __init__(self, where: SocketFilter | None = None, backend: str | None = None) -> None:
        from dataclasses import replace

        self.where = replace(where or SocketFilter(), states=LISTEN_STATES)
        self.backend = backend
        self.notes: list[str] = []

    def rows(self) -> list[Row]:
        from portscope.sockets import dump

        d = dump(self.where, backend=self.backend)
        rows = [r for batch in d.batches for r in batch]
        for note in d.notes:
            if note not in self.notes:
                self.notes.append(note)
        return rows

    def owners(self, rows: Sequence[Row]) -> dict[int, tuple[Owner, ...]]:
        from portscope.sockets._owners import OwnerMap

        wanted = {r.inode for r in rows if r.inode is not None}
        if not wanted:
            return {}
        omap = OwnerMap.scan(wanted)
        note = omap.note()
        if note is not None and note not in self.notes:
            self.notes.append(note)
        return {r.inode: omap.owners(r) for r in rows if r.inode is not None}


class _Owners:
    """The owner lookup ``stored_sockets`` reads: the watcher's cache by inode."""

    def __init__(self, by_inode: dict[int, tuple[Owner, ...]]) -> None:
        self.by_inode = by_inode

    def owners(self, row: Row) -> tuple[Owner, ...] | None:
        if row.inode is None:
            return ()
        return self.by_inode.get(row.inode, ())


class Watcher:
    """Turns successive listings into debounced events (see the module docstring).

    Call ``prime()`` once (the starting listing: no events), then ``poll()`` once per
    interval.

    Args:
        source: where the listings come from (``LiveListeners``).
        transient: report listeners seen at one poll only as ``transient`` (else drop them).
        clock: seconds since the epoch, for the events' time.
    """

    def __init__(
        self,
        source: ListenerSource,
        *,
        transient: bool = True,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.source = source
        self.transient = transient
        self.clock = clock
        self.netns = current_netns()
        self.known: dict[ListenerKey, Listener] = {}
        self._pending_new: dict[ListenerKey, Listener] = {}
        self._pending_gone: dict[ListenerKey, Listener] = {}
        self._signature: frozenset[tuple[Any, ...]] | None = None
        self._owners: dict[int, tuple[Owner, ...]] = {}

    def prime(self) -> list[Listener]:
        """Take the starting listing (no events) and return it."""
        self.known = self._listing(self.source.rows())
        return list(self.known.values())

    def _listing(self, rows: list[Row]) -> dict[ListenerKey, Listener]:
        netns = self.netns
        self._signature = frozenset(
            (r.proto, r.local_address, r.local_port, r.inode, _row_netns(r, netns)) for r in rows
        )
        inodes = {r.inode for r in rows if r.inode is not None}
        fresh = [r for r in rows if r.inode is not None and r.inode not in self._owners]
        if fresh:
            self._owners.update(self.source.owners(fresh))
        for gone in self._owners.keys() - inodes:
            del self._owners[gone]  # bounded: only the inodes of the last listing
        stored = stored_sockets(rows, _Owners(self._owners), netns)
        return {item.key: item for item in fold_listeners(stored)}

    def poll(self) -> list[Event]:
        """Take one listing and return the events it confirms (often none).

        Raises:
            BackendUnavailable, PermissionDenied: the socket table cannot be read.
        """
        rows = self.source.rows()
        pending = self._pending_new or self._pending_gone
        if not pending:
            netns = self.netns
            signature = frozenset(
                (r.proto, r.local_address, r.local_port, r.inode, _row_netns(r, netns))
                for r in rows
            )
            if signature == self._signature:
                return []
        current = self._listing(rows)
        return self._compare(current, self.clock())

    def _compare(self, current: dict[ListenerKey, Listener], now: float) -> list[Event]:
        known = self.known
        events: list[Event] = []
        came: list[Listener] = []
        for key in current.keys() - known.keys():
            if key in self._pending_new:
                del self._pending_new[key]
                came.append(current[key])
            else:
                self._pending_new[key] = current[key]
        for key in list(self._pending_new):
            if key not in current:
                item = self._pending_new.pop(key)
                if self.transient:
                    events.append(Event(Action.TRANSIENT, item, None, now))
        gone: list[Listener] = []
        for key in known.keys() - current.keys():
            if key in self._pending_gone:
                del self._pending_gone[key]
                gone.append(known.pop(key))
            else:
                self._pending_gone[key] = known[key]
        for key in list(self._pending_gone):
            if key in current:
                del self._pending_gone[key]
        for key in known.keys() & current.keys():
            old, new = known[key], current[key]
            if owners_differ(old, new):
                events.append(Event(Action.OWNER_CHANGED, old, new, now))
            known[key] = new
        events += pair_scopes(gone, came, at=now)
        for item in came:
            known[item.key] = item
        return events

    @property
    def watching(self) -> Collection[Listener]:
        """The listeners known now (confirmed)."""
        return self.known.values()
