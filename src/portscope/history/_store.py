"""The history store: snapshots of listeners (or every socket), scans, and watch events.

Schema (version 1; ``schema_version`` holds every version applied, the store's version
is the highest)::

    snapshots    id, host, kind, label, taken_at, source, netns, items, complete
    sockets      snapshot_id, netns, proto, family, state, local_address, local_port,
                 remote_address, remote_port, recv_q, send_q, uid, inode, interface,
                 v6only, owners (JSON: [[pid, name, user, cmdline|null, start_time, fd]])
    scan_hosts   snapshot_id, target, address, status, extra_state
    scan_ports   snapshot_id, target, address, proto, port, state, reason, service
    events       id, host, at, source, action, netns, proto, address, port,
                 before_json, after_json (the listener, ``_data.listener_json``)

A snapshot is written in one transaction: its ``snapshots`` row and all its rows, or
nothing; ``items`` is the number of rows written, so a reader can tell a whole snapshot.
Opening a store applies the migrations it lacks, inside a write transaction that
re-reads the version (two processes opening a new store at once do it once). A store
whose version is newer than ``SCHEMA_VERSION`` is refused with ``StoreError``: an older
portscope never writes into a schema it does not know.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterable, Iterator, KeysView, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, NamedTuple

from portscope.errors import InvalidInput, StoreError
from portscope.history._backend import Dialect, StoreBackend, Writer
from portscope.history._model import (
    Action,
    Event,
    Listener,
    ListenerKey,
    ScanHost,
    ScanPort,
    SnapshotInfo,
    SnapshotKind,
)
from portscope.models import Owner, PortState, Proto, TcpState

__all__ = [
    "SCHEMA_VERSION",
    "ListenerTable",
    "PruneResult",
    "Store",
    "StoredSocket",
    "TimelineEntry",
    "default_path",
    "fold_listeners",
    "open_store",
]

SCHEMA_VERSION: Final = 2

#: (version, DDL statements with {identity}/{bigint}/{real} for ``Dialect`` names)
MIGRATIONS: Final[tuple[tuple[int, tuple[str, ...]], ...]] = (
    (
        1,
        (
            """CREATE TABLE snapshots (
                id {identity},
                host TEXT NOT NULL,
                kind TEXT NOT NULL,
                label TEXT,
                taken_at {real} NOT NULL,
                source TEXT NOT NULL,
                netns {bigint},
                items INTEGER NOT NULL,
                complete INTEGER NOT NULL
            )""",
            "CREATE INDEX snapshots_when ON snapshots (host, kind, taken_at)",
            """CREATE TABLE sockets (
                snapshot_id {bigint} NOT NULL,
                netns {bigint},
                proto TEXT NOT NULL,
                family INTEGER NOT NULL,
                state TEXT NOT NULL,
                local_address TEXT NOT NULL,
                local_port INTEGER NOT NULL,
                remote_address TEXT,
                remote_port INTEGER,
                recv_q {bigint},
                send_q {bigint},
                uid {bigint},
                inode {bigint},
                interface TEXT,
                v6only INTEGER,
                owners TEXT
            )""",
            "CREATE INDEX sockets_snapshot ON sockets (snapshot_id, local_port)",
            """CREATE TABLE scan_hosts (
                snapshot_id {bigint} NOT NULL,
                target TEXT NOT NULL,
                address TEXT NOT NULL,
                status TEXT NOT NULL,
                extra_state TEXT
            )""",
            "CREATE INDEX scan_hosts_snapshot ON scan_hosts (snapshot_id)",
            """CREATE TABLE scan_ports (
                snapshot_id {bigint} NOT NULL,
                target TEXT NOT NULL,
                address TEXT NOT NULL,
                proto TEXT NOT NULL,
                port INTEGER NOT NULL,
                state TEXT NOT NULL,
                reason TEXT,
                service TEXT
            )""",
            "CREATE INDEX scan_ports_snapshot ON scan_ports (snapshot_id)",
            """CREATE TABLE events (
                id {identity},
                host TEXT NOT NULL,
                at {real} NOT NULL,
                source TEXT NOT NULL,
                action TEXT NOT NULL,
                netns {bigint},
                proto TEXT NOT NULL,
                address TEXT NOT NULL,
                port INTEGER NOT NULL,
                before_json TEXT,
                after_json TEXT
            )""",
            "CREATE INDEX events_port ON events (port, at)",
            "CREATE INDEX events_when ON events (host, at)",
        ),
    ),
    (
        # issue 14: a shared (fleet) database tells two machines with one host name apart
        2,
        (
            "ALTER TABLE snapshots ADD COLUMN machine_id TEXT",
            "ALTER TABLE events ADD COLUMN machine_id TEXT",
        ),
    ),
)

_LISTENING: Final = ("LISTEN", "UNCONN")


class StoredSocket(NamedTuple):
    """One socket of a snapshot, as stored (the ``sockets`` row).

    The fields of ``portscope.sockets.Row`` plus ``netns`` and ``owners``.
    """

    netns: int | None
    proto: Proto
    family: int
    state: TcpState
    local_address: str
    local_port: int
    remote_address: str | None
    remote_port: int | None
    recv_q: int | None
    send_q: int | None
    uid: int | None
    inode: int | None
    interface: str | None
    v6only: bool | None
    owners: tuple[Owner, ...] | None


@dataclass(frozen=True, slots=True)
class PruneResult:
    """What ``prune`` deleted.

    Attributes:
        snapshots: snapshots deleted (with their rows).
        events: watch events deleted.
    """

    snapshots: int
    events: int


@dataclass(frozen=True, slots=True)
class TimelineEntry:
    """One step of a port's timeline (``Store.timeline``).

    Attributes:
        at: when, seconds since the epoch.
        source: ``snapshot`` (compared with the previous snapshot) or ``watch``.
        snapshot_id: the snapshot, or ``None`` for a watch event.
        label: the snapshot's label, or ``None``.
        action: an ``Action`` value, or ``present`` for the listeners of the first
            snapshot that has the port.
        before: the listener before (``None`` for added/present).
        after: the listener after (``None`` for removed).
    """

    at: float
    source: str
    snapshot_id: int | None
    label: str | None
    action: str
    before: Listener | None
    after: Listener | None


def default_path() -> str:
    """Where the store is: ``$PORTSCOPE_DB``, else ``$XDG_DATA_HOME/portscope/history.db``,
    else ``~/.local/share/portscope/history.db`` (XDG Base Directory specification)."""
    explicit = os.environ.get("PORTSCOPE_DB")
    if explicit:
        return explicit
    xdg = os.environ.get("XDG_DATA_HOME")
    if xdg and os.path.isabs(xdg):
        return os.path.join(xdg, "portscope", "history.db")
    home = os.path.expanduser("~")
    if home[:1] == "~":  # no $HOME and no passwd entry
        return os.path.join(os.environ.get("TMPDIR", "/tmp"), f"portscope-{os.getuid()}.db")
    return os.path.join(home, ".local", "share", "portscope", "history.db")


def open_store(
    path: str | None = None, *, create: bool = True, busy_timeout_s: float = 5.0
) -> Store:
    """Open (and with ``create``, create or migrate) the store at ``path``.

    Args:
        path: the SQLite file (``None``: ``default_path()``), or a PostgreSQL database
            (``postgresql://user@host/db``: needs the ``postgresql`` extra; the schema is
            created there on first use, whatever ``create`` says).
        create: create a missing store; without it a missing store is an error (readers).
        busy_timeout_s: how long a writer waits for another one. Default 5 s.

    Returns:
        The store; ``close()`` it (or use ``with``).

    Raises:
        StoreError: the store cannot be opened, is read-only or full, or has a newer
            schema than this portscope knows.
    """
    from portscope.history._postgres import PostgresBackend, is_dsn

    where = path or default_path()
    backend: StoreBackend
    if is_dsn(where):
        backend = PostgresBackend(where, busy_timeout_s=busy_timeout_s)
    else:
        from portscope.history._sqlite import SqliteBackend

        backend = SqliteBackend(where, create=create, busy_timeout_s=busy_timeout_s)
    try:
        return Store(backend)
    except BaseException:
        backend.close()
        raise


def this_host() -> str:
    """The host name rows are tagged with: ``$PORTSCOPE_HOST`` when set (a fleet that
    names its hosts itself), else ``uname -n`` (no DNS)."""
    return os.environ.get("PORTSCOPE_HOST") or os.uname().nodename


def machine_id(path: str = "/etc/machine-id") -> str | None:
    """This machine's id (machine-id(5)), stored beside the host name so that a shared
    database tells apart two machines that share a name; ``None`` when unreadable."""
    try:
        with open(path, encoding="ascii") as f:
            text = f.read().strip()
    except (OSError, UnicodeDecodeError):
        return None
    return text if len(text) == 32 and all(c in "0123456789abcdef" for c in text) else None


class Store:
    """Snapshots, scans and events in a database (``StoreBackend``).

    Reads (``snapshots``, ``resolve``, ``sockets``, ``listeners``, ``scan``, ``events``,
    ``timeline``) are the API the faces use (CLI, web page); each is one consistent query.

    Args:
        backend: the database.
        host: the host name written with new rows and read by default (``this_host()``).

    Raises:
        StoreError: a newer schema, or the migration failed.
    """

    def __init__(self, backend: StoreBackend, *, host: str | None = None) -> None:
        self.backend = backend
        self.host = host or this_host()
        self.machine_id = machine_id()
        self._migrate()

    @property
    def location(self) -> str:
        """The path (or DSN) of the database."""
        return self.backend.location

    def close(self) -> None:
        self.backend.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # schema -------------------------------------------------------------------------

    def schema_version(self) -> int:
        """The store's schema version (0 for an empty database)."""
        if not self._has_version_table():
            return 0
        rows = self.backend.read("SELECT MAX(version) FROM schema_version")
        return int(rows[0][0] or 0)

    def _has_version_table(self) -> bool:
        try:
            self.backend.read("SELECT version FROM schema_version WHERE version < 0")
        except StoreError as err:
            if "no such table" in str(err) or "does not exist" in str(err):
                return False
            raise
        return True

    def _migrate(self) -> None:
        current = self.schema_version()
        self._check_newer(current)
        if current == SCHEMA_VERSION:
            return
        with self.backend.write() as w:
            # again inside the write lock: another process may have migrated meanwhile
            w.execute(
                "CREATE TABLE IF NOT EXISTS schema_version "
                f"(version INTEGER NOT NULL, applied_at {self.backend.dialect.real} NOT NULL)"
            )
            current = int(w.execute("SELECT MAX(version) FROM schema_version")[0][0] or 0)
            self._check_newer(current)
            for version, statements in MIGRATIONS:
                if version > current:
                    for ddl in statements:
                        w.execute(_ddl(ddl, self.backend.dialect))
                    w.execute(
                        "INSERT INTO schema_version (version, applied_at) VALUES (?, ?)",
                        (version, time.time()),
                    )

    def _check_newer(self, version: int) -> None:
        if version > SCHEMA_VERSION:
            raise StoreError(
                f"the history store {self.location} has schema version {version}, newer than "
                f"this portscope knows ({SCHEMA_VERSION}); upgrade portscope, or give "
                "another --db"
            )

    # writes -------------------------------------------------------------------------

    def save_sockets(
        self,
        sockets: Sequence[StoredSocket],
        *,
        kind: SnapshotKind = SnapshotKind.LISTENERS,
        label: str | None = None,
        source: str = "snapshot",
        netns: int | None = None,
        complete: bool = True,
        taken_at: float | None = None,
    ) -> SnapshotInfo:
        """Write one snapshot of sockets (one transaction).

        Returns:
            The snapshot written.

        Raises:
            StoreError: the store cannot be written (read-only, full, busy).
        """
        taken = time.time() if taken_at is None else taken_at
        encode = _OwnersEncoder().encode
        names: dict[Any, str] = {**{p: p.value for p in Proto}, **{t: t.value for t in TcpState}}
        rows = [
            (
                s.netns, names[s.proto], s.family, names[s.state], s.local_address,
                s.local_port, s.remote_address, s.remote_port, s.recv_q, s.send_q, s.uid,
                s.inode, s.interface, None if s.v6only is None else int(s.v6only),
                encode(s.owners),
            )
            for s in sockets
        ]  # fmt: skip
        with self.backend.write() as w:
            sid = self._new_snapshot(w, kind, label, taken, source, netns, len(rows), complete)
            w.executemany(
                "INSERT INTO sockets (snapshot_id, netns, proto, family, state, local_address,"
                " local_port, remote_address, remote_port, recv_q, send_q, uid, inode,"
                " interface, v6only, owners) VALUES"
                " (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [(sid, *row) for row in rows],
            )
        return SnapshotInfo(sid, self.host, kind, label, taken, source, netns, len(rows), complete)

    def save_scan(
        self,
        hosts: Sequence[ScanHost],
        ports: Sequence[ScanPort],
        *,
        kind: SnapshotKind = SnapshotKind.SCAN,
        label: str | None = None,
        source: str = "scan",
        taken_at: float | None = None,
    ) -> SnapshotInfo:
        """Write the results of one scan (or an imported nmap report) as a snapshot.

        Raises:
            StoreError: the store cannot be written.
        """
        taken = time.time() if taken_at is None else taken_at
        with self.backend.write() as w:
            sid = self._new_snapshot(w, kind, label, taken, source, None, len(ports), True)
            w.executemany(
                "INSERT INTO scan_hosts (snapshot_id, target, address, status, extra_state)"
                " VALUES (?, ?, ?, ?, ?)",
                [
                    (sid, h.host, h.address, h.status, h.extra_state and h.extra_state.value)
                    for h in hosts
                ],
            )
            w.executemany(
                "INSERT INTO scan_ports (snapshot_id, target, address, proto, port, state,"
                " reason, service) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    (
                        sid,
                        p.host,
                        p.address,
                        p.proto.value,
                        p.port,
                        p.state.value,
                        p.reason,
                        p.service,
                    )
                    for p in ports
                ],
            )
        return SnapshotInfo(sid, self.host, kind, label, taken, source, None, len(ports), True)

    def _new_snapshot(
        self,
        w: Writer,
        kind: SnapshotKind,
        label: str | None,
        taken: float,
        source: str,
        netns: int | None,
        items: int,
        complete: bool,
    ) -> int:
        rows = w.execute(
            "INSERT INTO snapshots (host, machine_id, kind, label, taken_at, source, netns,"
            " items, complete) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
            (
                self.host,
                self.machine_id,
                kind.value,
                label,
                taken,
                source,
                netns,
                items,
                int(complete),
            ),
        )
        return int(rows[0][0])

    def save_events(self, events: Iterable[Event], *, source: str = "watch") -> int:
        """Append watch events (listener events only; one transaction).

        Returns:
            How many were written.

        Raises:
            StoreError: the store cannot be written (the caller keeps the events to retry).
        """
        from portscope.history._data import listener_json

        rows = []
        for e in events:
            subject = e.subject
            if not isinstance(subject, Listener):
                continue
            before = json.dumps(listener_json(e.before)) if isinstance(e.before, Listener) else None
            after = json.dumps(listener_json(e.after)) if isinstance(e.after, Listener) else None
            at = time.time() if e.at is None else e.at
            rows.append(
                (self.host, self.machine_id, at, source, e.action.value, subject.netns,
                 subject.proto.value, subject.address, subject.port, before, after)
            )  # fmt: skip
        if not rows:
            return 0
        with self.backend.write() as w:
            w.executemany(
                "INSERT INTO events (host, machine_id, at, source, action, netns, proto,"
                " address, port, before_json, after_json)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                rows,
            )
        return len(rows)

    def prune(self, older_than_s: float, *, now: float | None = None) -> PruneResult:
        """Delete snapshots and events older than ``older_than_s`` seconds (every host).

        Raises:
            StoreError: the store cannot be written.
        """
        cutoff = (time.time() if now is None else now) - older_than_s
        old = "SELECT id FROM snapshots WHERE taken_at < ?"
        with self.backend.write() as w:
            count = int(
                w.execute("SELECT COUNT(*) FROM snapshots WHERE taken_at < ?", (cutoff,))[0][0]
            )
            for table in ("sockets", "scan_hosts", "scan_ports"):
                w.execute(f"DELETE FROM {table} WHERE snapshot_id IN ({old})", (cutoff,))
            w.execute("DELETE FROM snapshots WHERE taken_at < ?", (cutoff,))
            events = int(w.execute("SELECT COUNT(*) FROM events WHERE at < ?", (cutoff,))[0][0])
            w.execute("DELETE FROM events WHERE at < ?", (cutoff,))
        return PruneResult(count, events)

    # reads --------------------------------------------------------------------------

    _SNAPSHOT_COLUMNS = "id, host, kind, label, taken_at, source, netns, items, complete"

    def snapshots(
        self,
        *,
        kinds: Iterable[SnapshotKind] | None = None,
        limit: int | None = None,
        all_hosts: bool = False,
    ) -> list[SnapshotInfo]:
        """Snapshots, newest first.

        Args:
            kinds: only these kinds (``None``: every kind).
            limit: at most this many.
            all_hosts: every host's (a shared database); default this host's.
        """
        where, params = [], []
        if not all_hosts:
            where.append("host = ?")
            params.append(self.host)
        if kinds is not None:
            names = [k.value for k in kinds]
            where.append(f"kind IN ({', '.join('?' for _ in names)})")
            params += names
        sql = f"SELECT {self._SNAPSHOT_COLUMNS} FROM snapshots"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY taken_at DESC, id DESC"
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        return [_snapshot_info(r) for r in self.backend.read(sql, params)]

    def resolve(self, ref: str | int) -> SnapshotInfo:
        """The snapshot named by ``ref``: its id, its label (the newest with it), ``last``
        (the newest listing), ``last-scan`` (the newest scan or import), or ``last~N`` (the
        N-th listing before the newest).

        Raises:
            InvalidInput: no snapshot goes by that name.
        """
        text = str(ref).strip()
        listings = (SnapshotKind.LISTENERS, SnapshotKind.SOCKETS)
        scans = (SnapshotKind.SCAN, SnapshotKind.NMAP)
        pick: list[SnapshotInfo] = []
        if text in ("last", "last-scan") or text.startswith("last~"):
            kinds = scans if text == "last-scan" else listings
            back = 0
            if text.startswith("last~"):
                if not text[5:].isdigit():
                    raise InvalidInput(f"bad snapshot {text!r}; accepted: last~N, N a number")
                back = int(text[5:])
            found = self.snapshots(kinds=kinds, limit=back + 1)
            pick = found[back:]
        elif text.isdigit():
            rows = self.backend.read(
                f"SELECT {self._SNAPSHOT_COLUMNS} FROM snapshots WHERE id = ?", (int(text),)
            )
            pick = [_snapshot_info(r) for r in rows]
        if not pick and not text.isdigit():
            rows = self.backend.read(
                f"SELECT {self._SNAPSHOT_COLUMNS} FROM snapshots WHERE label = ?"
                " ORDER BY taken_at DESC, id DESC LIMIT 1",
                (text,),
            )
            pick = [_snapshot_info(r) for r in rows]
        if not pick:
            raise InvalidInput(
                f"no snapshot {text!r} in {self.location}; accepted: an id, a label, last, "
                "last~N, last-scan, now ('portscope history --list' shows them)"
            )
        return pick[0]

    _SOCKET_COLUMNS = (
        "netns, proto, family, state, local_address, local_port, remote_address, remote_port,"
        " recv_q, send_q, uid, inode, interface, v6only, owners"
    )

    def sockets(self, snapshot_id: int, *, port: int | None = None) -> list[StoredSocket]:
        """The sockets of a listing snapshot (optionally of one local port)."""
        sql = f"SELECT {self._SOCKET_COLUMNS} FROM sockets WHERE snapshot_id = ?"
        params: list[Any] = [snapshot_id]
        if port is not None:
            sql += " AND local_port = ?"
            params.append(port)
        return [_stored_socket(r) for r in self.backend.read(sql, params)]

    def listeners(self, snapshot_id: int, *, port: int | None = None) -> list[Listener]:
        """The listeners of a listing snapshot, folded by identity (``fold_listeners``)."""
        return list(self.listener_table(snapshot_id, port=port).values())

    def listener_table(self, snapshot_id: int, *, port: int | None = None) -> ListenerTable:
        """The listeners of a listing snapshot by identity, each built on first use (what
        ``diff_listeners`` reads fast: it builds only the listeners that changed)."""
        sql = (
            f"SELECT {LISTENER_COLUMNS} FROM sockets WHERE snapshot_id = ?"
            " AND state IN ('LISTEN', 'UNCONN')"
        )
        params: list[Any] = [snapshot_id]
        if port is not None:
            sql += " AND local_port = ?"
            params.append(port)
        return ListenerTable(self.backend.read(sql, params))

    def changed_listeners(
        self, before_id: int, after_id: int
    ) -> tuple[ListenerTable, ListenerTable]:
        """The listeners of two listing snapshots that may differ, for ``diff_listeners``:
        the database drops every identity whose sockets and owners are the same on both
        sides, so 10,000 unchanged listeners never reach Python.

        Returns:
            (before, after), each holding only the identities that changed (all their
            sockets); ``diff_listeners`` of the two equals that of the whole snapshots.
        """
        listening = "state IN ('LISTEN', 'UNCONN')"
        unmatched = (
            f"SELECT a.netns, a.proto, a.local_address, a.local_port FROM sockets a"
            f" WHERE a.snapshot_id = ? AND a.{listening} AND NOT EXISTS ("
            f"SELECT 1 FROM sockets b WHERE b.snapshot_id = ? AND b.local_port = a.local_port"
            f" AND b.proto = a.proto AND b.local_address = a.local_address"
            f" AND COALESCE(b.netns, -1) = COALESCE(a.netns, -1) AND b.{listening}"
            f" AND COALESCE(b.owners, '') = COALESCE(a.owners, ''))"
        )
        keys = {
            tuple(r)
            for pair in ((before_id, after_id), (after_id, before_id))
            for r in self.backend.read(unmatched, pair)
        }
        tables = []
        for sid in (before_id, after_id):
            rows: list[Sequence[Any]] = []
            ports = sorted({k[3] for k in keys})
            for i in range(0, len(ports), 500):  # bounded statement size
                chunk = ports[i : i + 500]
                rows += self.backend.read(
                    f"SELECT {LISTENER_COLUMNS} FROM sockets WHERE snapshot_id = ?"
                    f" AND {listening} AND local_port IN ({', '.join('?' for _ in chunk)})",
                    (sid, *chunk),
                )
            tables.append(ListenerTable([r for r in rows if tuple(r[:4]) in keys]))
        return tables[0], tables[1]

    def scan(self, snapshot_id: int) -> tuple[list[ScanHost], list[ScanPort]]:
        """The hosts and the listed ports of a scan snapshot."""
        hosts = [
            ScanHost(t, a, s, None if x is None else PortState(x))
            for t, a, s, x in self.backend.read(
                "SELECT target, address, status, extra_state FROM scan_hosts WHERE snapshot_id = ?",
                (snapshot_id,),
            )
        ]
        ports = [
            ScanPort(t, a, Proto(pr), po, PortState(st), re, sv)
            for t, a, pr, po, st, re, sv in self.backend.read(
                "SELECT target, address, proto, port, state, reason, service FROM scan_ports"
                " WHERE snapshot_id = ? ORDER BY address, port",
                (snapshot_id,),
            )
        ]
        return hosts, ports

    def events(
        self,
        *,
        port: int | None = None,
        address: str | None = None,
        proto: Proto | None = None,
        since: float | None = None,
        limit: int | None = None,
    ) -> list[Event]:
        """Watch events saved for this host, oldest first (the newest ``limit``)."""
        where: list[str] = ["host = ?"]
        params: list[Any] = [self.host]
        for column, value in (("port", port), ("address", address), ("proto", proto)):
            if value is not None:
                where.append(f"{column} = ?")
                params.append(value.value if isinstance(value, Proto) else value)
        if since is not None:
            where.append("at >= ?")
            params.append(since)
        sql = (
            "SELECT at, action, before_json, after_json FROM events WHERE "
            + " AND ".join(where)
            + " ORDER BY at DESC, id DESC"
        )
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        from portscope.history._data import listener_from_json

        out = []
        for at, action, before, after in reversed(self.backend.read(sql, params)):
            out.append(
                Event(
                    Action(action),
                    None if before is None else listener_from_json(json.loads(before)),
                    None if after is None else listener_from_json(json.loads(after)),
                    at,
                )
            )
        return out

    def timeline(
        self, port: int, *, address: str | None = None, proto: Proto | None = None
    ) -> list[TimelineEntry]:
        """The history of one port on this host: what each listing snapshot changed
        (compared with the previous one) and the events ``watch --save`` recorded, in
        time order.

        Args:
            port: the local port.
            address: only this local address.
            proto: only this transport.
        """
        from portscope.history._events import diff_listeners, index_listeners

        def wanted(item: Listener) -> bool:
            return (address is None or item.address == address) and (
                proto is None or item.proto is proto
            )

        entries: list[TimelineEntry] = []
        listings = (SnapshotKind.LISTENERS, SnapshotKind.SOCKETS)
        previous: dict[Any, Listener] | None = None
        for snap in reversed(self.snapshots(kinds=listings)):
            now = index_listeners(i for i in self.listeners(snap.id, port=port) if wanted(i))
            if previous is None:
                if now:
                    entries += [
                        TimelineEntry(snap.taken_at, "snapshot", snap.id, snap.label,
                                      "present", None, item)
                        for item in now.values()
                    ]  # fmt: skip
                    previous = now
                continue
            for e in diff_listeners(previous, now):
                before = e.before if isinstance(e.before, Listener) else None
                after = e.after if isinstance(e.after, Listener) else None
                entries.append(
                    TimelineEntry(snap.taken_at, "snapshot", snap.id, snap.label,
                                  e.action.value, before, after)
                )  # fmt: skip
            previous = now
        for e in self.events(port=port, address=address, proto=proto):
            before = e.before if isinstance(e.before, Listener) else None
            after = e.after if isinstance(e.after, Listener) else None
            entries.append(
                TimelineEntry(e.at or 0.0, "watch", None, None, e.action.value, before, after)
            )
        entries.sort(key=lambda t: t.at)
        return entries


def _ddl(statement: str, dialect: Dialect) -> str:
    return statement.format(identity=dialect.identity, bigint=dialect.bigint, real=dialect.real)


def _snapshot_info(row: Sequence[Any]) -> SnapshotInfo:
    sid, host, kind, label, taken, source, netns, items, complete = row
    return SnapshotInfo(
        int(sid), host, SnapshotKind(kind), label, float(taken), source, netns, int(items),
        bool(complete),
    )  # fmt: skip


class _OwnersEncoder:
    """``_owners_json`` with each process's part encoded once (a server holding 10,000
    listeners has one command line, not 10,000)."""

    def __init__(self) -> None:
        # (pid, start time) is one process; its name, user and command line were read
        # once for the whole listing
        self._heads: dict[tuple[int, float | None], str] = {}

    def encode(self, owners: tuple[Owner, ...] | None) -> str | None:
        if owners is None:
            return None
        parts = []
        heads = self._heads
        for o in owners:
            key = (o.pid, o.start_time)
            head = heads.get(key)
            if head is None:
                one = Owner(o.pid, o.name, o.user, o.cmdline, o.start_time, 0)
                head = heads[key] = str(_owners_json((one,)))[1:-3]  # no "[", "0]]"
            parts.append(f"{head}{o.fd}]")
        return "[" + ",".join(parts) + "]"


def _owners_json(owners: tuple[Owner, ...] | None) -> str | None:
    if owners is None:
        return None
    return json.dumps(
        [[o.pid, o.name, o.user, o.cmdline, o.start_time, o.fd] for o in owners],
        ensure_ascii=False,
        separators=(",", ":"),
    )


def _owners_from_json(text: str | None) -> tuple[Owner, ...] | None:
    if text is None:
        return None
    return tuple(
        Owner(pid, name, user, None if cmd is None else tuple(cmd), start, fd)
        for pid, name, user, cmd, start, fd in json.loads(text)
    )


_PROTOS: Final = {p.value: p for p in Proto}
_STATES: Final = {s.value: s for s in TcpState}


def _stored_socket(row: Sequence[Any]) -> StoredSocket:
    (netns, proto, family, state, la, lp, ra, rp, rq, sq, uid, inode, iface, v6, owners) = row
    return StoredSocket(
        netns, _PROTOS[proto], family, _STATES[state], la, lp, ra, rp, rq, sq, uid, inode,
        iface, None if v6 is None else bool(v6), _owners_from_json(owners),
    )  # fmt: skip


class ListenerTable(Mapping[ListenerKey, Listener]):
    """Listeners by identity over stored rows (``LISTENER_COLUMNS``, owners as JSON text),
    each ``Listener`` built when first read.

    ``owner_tokens[key]`` is the owners' stored text: equal tokens mean equal owners, so a
    diff of two 10,000-listener snapshots builds only the listeners that changed.
    """

    def __init__(self, rows: Sequence[Sequence[Any]]) -> None:
        # the key is the row's first four columns; most keys have one socket
        single: dict[Any, Sequence[Any]] = {tuple(r[:4]): r for r in rows}
        multi: dict[Any, list[Sequence[Any]]] = {}
        tokens: dict[Any, Any] = {k: r[8] for k, r in single.items()}
        if len(single) != len(rows):
            for r in rows:
                multi.setdefault(tuple(r[:4]), []).append(r)
            for k, members in list(multi.items()):
                if len(members) == 1:
                    del multi[k]
                else:
                    tokens[k] = tuple(m[8] for m in members)
        self._single = single
        self._multi = multi
        self.owner_tokens: Mapping[ListenerKey, Any] = tokens
        self._built: dict[ListenerKey, Listener] = {}

    @classmethod
    def from_sockets(cls, sockets: Iterable[StoredSocket]) -> ListenerTable:
        """A table over sockets in memory (a live listing); only the listening ones."""
        return cls(
            [
                (
                    s.netns, s.proto.value, s.local_address, s.local_port, s.family,
                    s.state.value, s.interface, None if s.v6only is None else int(s.v6only),
                    _owners_json(s.owners),
                )
                for s in sockets
                if s.state.value in _LISTENING
            ]
        )  # fmt: skip

    def __getitem__(self, key: ListenerKey) -> Listener:
        built = self._built.get(key)
        if built is None:
            members = self._multi.get(key) or [self._single[key]]
            owners = _join_owners(_owners_from_json(m[8]) for m in members)
            netns, proto, address, port, family, state, interface, v6only, _ = members[0]
            built = self._built[key] = Listener(
                netns, _PROTOS[proto], family, address, port, _STATES[state],
                None if v6only is None else bool(v6only), interface, len(members), owners,
            )  # fmt: skip
        return built

    def __iter__(self) -> Iterator[ListenerKey]:
        return iter(self._single)

    def __len__(self) -> int:
        return len(self._single)

    def keys(self) -> KeysView[ListenerKey]:
        return self._single.keys()


#: the columns of a ``ListenerTable`` row, identity first
LISTENER_COLUMNS: Final = (
    "netns, proto, local_address, local_port, family, state, interface, v6only, owners"
)


def fold_listeners(sockets: Iterable[StoredSocket]) -> list[Listener]:
    """The listening sockets (TCP LISTEN, UDP UNCONN) folded by identity: one
    ``Listener`` per (netns, transport, address, port) with the sockets counted and
    their owners joined (a process holding several is listed once)."""
    groups: dict[tuple[Any, ...], list[StoredSocket]] = {}
    for s in sockets:
        if s.state.value in _LISTENING:
            groups.setdefault((s.netns, s.proto, s.local_address, s.local_port), []).append(s)
    out = []
    for (netns, proto, address, port), members in groups.items():
        first = members[0]
        owners: tuple[Owner, ...] | None = first.owners
        if len(members) > 1:
            owners = _join_owners(m.owners for m in members)
        out.append(
            Listener(netns, proto, first.family, address, port, first.state, first.v6only,
                     first.interface, len(members), owners)
        )  # fmt: skip
    return out


def _join_owners(parts: Iterable[tuple[Owner, ...] | None]) -> tuple[Owner, ...] | None:
    parts = list(parts)
    if len(parts) == 1:
        return parts[0]
    seen: dict[int, Owner] = {}
    known = False
    for owners in parts:
        if owners is None:
            continue
        known = True
        for o in owners:
            seen.setdefault(o.pid, o)
    return tuple(sorted(seen.values(), key=lambda o: o.pid)) if known else None
