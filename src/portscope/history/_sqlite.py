"""The SQLite backend (stdlib ``sqlite3``): one file, WAL, a busy timeout.

* WAL (``PRAGMA journal_mode=WAL``): readers never block the writer nor the writer them,
  and a process killed mid-transaction leaves only an uncommitted tail in the
  ``-wal`` file, which the next opener ignores (https://sqlite.org/wal.html).
* ``synchronous=NORMAL``: in WAL mode a commit survives the writer's crash (SIGKILL); only
  a power loss may undo the last commits, never corrupt the file (sqlite.org/pragma.html).
* Writers take the write lock at ``BEGIN IMMEDIATE`` and wait for each other up to
  ``busy_timeout_s`` (default 5 s), so two writers (``watch --save`` and a cron
  ``snapshot``) run one after the other instead of failing.
* ``isolation_level=None``: the module never opens transactions behind our back.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from portscope.errors import StoreError
from portscope.history._backend import SQLITE, Dialect, Params

__all__ = ["SqliteBackend"]

#: the store's file is for its owner (command lines of every process are in it)
_MODE = 0o600

# primary result codes (https://sqlite.org/rescode.html)
_PERM, _BUSY, _LOCKED, _READONLY, _IOERR, _CORRUPT, _FULL, _CANTOPEN, _NOTADB = (
    3, 5, 6, 8, 10, 11, 13, 14, 26,
)  # fmt: skip


class SqliteBackend:
    """A store in one SQLite file.

    Args:
        path: the database file; its directory is created (mode 0700) when ``create``.
        create: create the file when missing; else a missing file is an error.
        busy_timeout_s: how long a writer waits for another one. Default 5 s.

    Raises:
        StoreError: the file cannot be opened or created (read-only, missing, not a store).
    """

    name = "sqlite"
    dialect: Dialect = SQLITE

    def __init__(self, path: str, *, create: bool = True, busy_timeout_s: float = 5.0) -> None:
        self.location = path
        self._busy_s = busy_timeout_s
        if not create and not os.path.exists(path):
            raise StoreError(
                f"no history store at {path}; 'portscope snapshot' starts one "
                "(or give --db PATH / $PORTSCOPE_DB)"
            )
        if os.path.isdir(path):
            raise StoreError(f"the history store {path} is a directory; give a file path")
        if create:
            parent = os.path.dirname(os.path.abspath(path))
            try:
                os.makedirs(parent, mode=0o700, exist_ok=True)
            except OSError as err:
                raise StoreError(
                    f"cannot create the directory of the history store {path}: "
                    f"{err.strerror or err}",
                    errno=err.errno,
                ) from err
            if not os.path.exists(path):
                try:
                    os.close(os.open(path, os.O_RDWR | os.O_CREAT, _MODE))
                except OSError as err:
                    raise StoreError(
                        f"cannot create the history store {path}: {err.strerror or err}",
                        errno=err.errno,
                    ) from err
        try:
            self._conn = sqlite3.connect(
                path, timeout=busy_timeout_s, isolation_level=None, check_same_thread=False
            )
        except sqlite3.Error as err:
            raise self._translate(err) from err
        try:
            self._conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout_s * 1000)}")
            mode = self._conn.execute("PRAGMA journal_mode = WAL").fetchone()
            if mode is None or str(mode[0]).lower() != "wal":
                # a file system without shared memory (some network mounts): still safe,
                # with a rollback journal
                self._conn.execute("PRAGMA journal_mode = DELETE")
            self._conn.execute("PRAGMA synchronous = NORMAL")
        except sqlite3.Error as err:
            self._conn.close()
            raise self._translate(err) from err

    def read(self, sql: str, params: Params = ()) -> list[tuple[Any, ...]]:
        try:
            return self._conn.execute(sql, params).fetchall()
        except sqlite3.Error as err:
            raise self._translate(err) from err

    @contextmanager
    def write(self) -> Iterator[_SqliteWriter]:
        conn = self._conn
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as err:
            raise self._translate(err) from err
        try:
            yield _SqliteWriter(conn, self)
            conn.execute("COMMIT")
        except BaseException as err:
            with contextlib.suppress(sqlite3.Error):  # a failed COMMIT may have rolled back
                conn.execute("ROLLBACK")
            if isinstance(err, sqlite3.Error):
                raise self._translate(err) from err
            raise

    def close(self) -> None:
        self._conn.close()

    def _translate(self, err: sqlite3.Error) -> StoreError:
        """One line for the user, naming the file and what to do."""
        path = self.location
        code = (getattr(err, "sqlite_errorcode", None) or 0) & 0xFF
        if code == _READONLY or (code in (_CANTOPEN, _IOERR, _PERM) and _read_only_fs(path)):
            text = f"the history store {path} is read-only; give --db PATH on a writable disk"
        elif code == _FULL or (code == _IOERR and _no_space(path)):
            text = f"the disk holding the history store {path} is full; nothing was written"
        elif code in (_BUSY, _LOCKED):
            text = (
                f"the history store {path} stayed locked by another writer for over "
                f"{self._busy_s:g} s; try again"
            )
        elif code == _NOTADB:
            text = f"{path} is not a portscope history store (not an SQLite database)"
        elif code == _CORRUPT:
            text = f"the history store {path} is damaged ({err}); move it away to start anew"
        elif code in (_CANTOPEN, _PERM):
            text = f"cannot open the history store {path}: {_why_not(path)}"
        else:
            text = f"the history store {path} failed: {err}"
        return StoreError(text)


class _SqliteWriter:
    def __init__(self, conn: sqlite3.Connection, owner: SqliteBackend) -> None:
        self._conn = conn
        self._owner = owner

    def execute(self, sql: str, params: Params = ()) -> list[tuple[Any, ...]]:
        return self._conn.execute(sql, params).fetchall()

    def executemany(self, sql: str, rows: Iterable[Params]) -> None:
        self._conn.executemany(sql, rows)


def _read_only_fs(path: str) -> bool:
    try:
        flags = os.statvfs(os.path.dirname(os.path.abspath(path)) or ".").f_flag
    except OSError:
        return False
    return bool(flags & os.ST_RDONLY)


def _no_space(path: str) -> bool:
    """An I/O error on a full disk (a WAL or shared-memory write that hit ENOSPC)."""
    try:
        st = os.statvfs(os.path.dirname(os.path.abspath(path)) or ".")
    except OSError:
        return False
    return st.f_bavail * st.f_frsize < 64 * 1024


def _why_not(path: str) -> str:
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        return f"no directory {directory}"
    if not os.access(directory, os.W_OK):
        return f"no permission to write in {directory} (the WAL files go beside the store)"
    if os.path.exists(path) and not os.access(path, os.R_OK | os.W_OK):
        return "no permission to read and write it"
    return "the file cannot be opened"
