"""``watch``: listeners as they come and go, from repeated kernel-filtered dumps.

Each poll is one NETLINK_SOCK_DIAG dump per (transport, family) of listening states
only (TCP ``LISTEN``, UDP ``UNCONN``): for TCP the kernel then walks its listening hash
alone, never the established one (``inet_diag_dump_icsk`` in ``net/ipv4/inet_diag.c``
skips ``ehash`` when the state mask is ``TCPF_LISTEN``), so 10,000 connections cost a poll
nothing. The poll's identities and inodes are compared as one frozenset with the last
one's; only when they differ is anything else done, and only sockets with a new inode
have their processes looked up (``_holders.find_owners``: newest processes first, until
each is found).

Debounce, one interval (the poll period):

* a new identity is ``added`` when it is still there at the next poll; one gone by then
  is reported once as ``transient`` (TCP only: a UDP socket seen once is a client's
  unconnected exchange, a DNS query, not a listener); a listener that lives less than
  one interval may also fall between two polls and not be seen at all;
* an identity that is missing is ``removed`` when still missing at the next poll, so a
  server restarting within one interval is no event (or ``owner-changed`` if another
  program took the port);
* ``removed`` and ``added`` on the same port in the same poll pair up as scope changes
  (``_events.pair_scopes``).

So an event is reported between one and two intervals after it happened, plus the dump
time; at the default 0.25 s, within 0.5 s.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Collection, Sequence
from typing import TYPE_CHECKING, Any, Protocol

from portscope.history._capture import LISTEN_STATES, _row_netns, current_netns, stored_sockets
from portscope.history._events import owners_differ, pair_scopes
from portscope.history._model import Action, Event, Listener, ListenerKey
from portscope.history._store import fold_listeners
from portscope.models import Owner, Proto
from portscope.sockets import Row, SocketFilter

if TYPE_CHECKING:
    from portscope.history._store import Store

__all__ = ["DEFAULT_INTERVAL_S", "EventLog", "ListenerSource", "LiveListeners", "Watcher"]

DEFAULT_INTERVAL_S = 0.25
_NOT_ROOT = "some owners are unknown: other users' processes need root (or CAP_SYS_PTRACE)"


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
        self._recent: list[int] = []  # holders of the last new listeners, newest first

    def rows(self) -> list[Row]:
        from portscope.sockets import dump

        d = dump(self.where, backend=self.backend)
        rows = [r for batch in d.batches for r in batch]
        for note in d.notes:
            if note not in self.notes:
                self.notes.append(note)
        return rows

    def owners(self, rows: Sequence[Row]) -> dict[int, tuple[Owner, ...]]:
        from portscope.history._holders import find_owners

        wanted = {r.inode for r in rows if r.inode is not None}
        found = find_owners(wanted, first=self._recent)
        for owners in found.values():
            for o in owners:
                if o.pid in self._recent:
                    self._recent.remove(o.pid)
                self._recent.insert(0, o.pid)
        del self._recent[8:]  # bounded
        if len(found) < len(wanted) and os.geteuid() != 0 and _NOT_ROOT not in self.notes:
            self.notes.append(_NOT_ROOT)
        return found


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
                # a UDP socket seen once is a client's exchange (a DNS query sent from an
                # unconnected socket), not a listener
                if self.transient and item.proto is not Proto.UDP:
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


class EventLog:
    """Saves watch events in the store from a thread of its own, so that a writer holding
    the store (a long snapshot) never stalls the polls; events the store refuses (busy
    beyond its timeout) are kept and tried again, in order: none is lost while the
    process lives.

    Args:
        store: the store (used from the saving thread only, once given here).
        retry_s: the pause before trying a refused batch again. Default 0.5 s.
    """

    def __init__(self, store: Store, *, retry_s: float = 0.5) -> None:
        import queue
        import threading

        self.store = store
        self.retry_s = retry_s
        self.saved = 0
        self._queue: queue.SimpleQueue[list[Event] | None] = queue.SimpleQueue()
        self._problems: list[str] = []
        self._pending: list[Event] = []
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="watch-save", daemon=True)
        self._thread.start()

    def put(self, events: list[Event]) -> None:
        """Queue events to save (returns at once)."""
        self._queue.put(list(events))

    def _run(self) -> None:
        import queue

        from portscope.errors import StoreError

        closing = False
        last_problem = None
        while True:
            timeout = self.retry_s if self._pending else None
            try:
                batch = self._queue.get(timeout=timeout)
            except queue.Empty:
                batch = []
            if batch is None:
                closing = True
            else:
                self._pending += batch
            while True:  # take whatever else is queued: one transaction for all
                try:
                    more = self._queue.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    closing = True
                else:
                    self._pending += more
            if self._pending:
                try:
                    self.saved += self.store.save_events(self._pending)
                    self._pending = []
                    last_problem = None
                except StoreError as err:
                    if str(err) != last_problem:
                        last_problem = str(err)
                        with self._lock:
                            self._problems.append(
                                f"{len(self._pending)} events wait to be saved: {err}"
                            )
            if closing and (not self._pending or self._give_up):
                return

    _give_up = False

    def problems(self) -> list[str]:
        """What went wrong since the last call (and empties the list)."""
        with self._lock:
            out, self._problems = self._problems, []
        return out

    def close(self, timeout_s: float = 15.0) -> int:
        """Save what is left (trying for up to ``timeout_s``), close the store, and
        return how many events could not be saved."""
        self._queue.put(None)
        self._thread.join(timeout_s)
        if self._thread.is_alive():
            self._give_up = True  # the try under way ends within the busy timeout
            self._thread.join(30)
        unsaved = len(self._pending)
        if not self._thread.is_alive():
            self.store.close()
        return unsaved
