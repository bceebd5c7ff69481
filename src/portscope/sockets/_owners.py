"""Socket inode -> owning processes, from ``/proc/*/fd`` (``man 5 proc``).

One pass over every process's fd directory: ``readlink`` of each fd (relative to an open
directory fd, which keeps the kernel's path walk short) and ``socket:[INODE]`` links kept.
Process details (name, user, command line, start time) are read only for processes that
hold a socket somebody asks about. Processes that exit mid-scan are skipped; directories
this process may not read (another user's processes, not root) make the map partial.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from functools import lru_cache, partial
from typing import TYPE_CHECKING

from portscope.models import Owner

if TYPE_CHECKING:
    from collections.abc import Collection, Iterable, Iterator, Sequence

    from portscope.sockets._diag_codec import Row


@dataclass(frozen=True, slots=True)
class ProcessInfo:
    """What is shown of one process.

    Attributes:
        name: ``/proc/PID/comm``.
        user: owner's user name (uid as text when it has no name), or ``None``.
        cmdline: argv, or ``None`` when empty or unreadable.
        start_time: seconds since the epoch, or ``None``.
    """

    name: str
    user: str | None
    cmdline: tuple[str, ...] | None
    start_time: float | None


@lru_cache(maxsize=1024)
def user_name(uid: int) -> str:
    """The user name of ``uid`` (``pwd``), or the uid as text when it has no name."""
    import pwd

    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


@lru_cache(maxsize=1)
def _boot_time(proc: str) -> float | None:
    from portscope._proc import boot_time

    return boot_time(proc)


def read_process(pid: int, proc: str = "/proc") -> ProcessInfo | None:
    """Read the name, user, command line and start time of ``pid``.

    Args:
        pid: the process.
        proc: the procfs mount point.

    Returns:
        The details, or ``None`` when the process has exited.
    """
    base = f"{proc}/{pid}"
    try:
        with open(f"{base}/comm", "rb") as f:
            name = f.read().rstrip(b"\n").decode("utf-8", "replace")
        uid = os.stat(base).st_uid
    except (FileNotFoundError, ProcessLookupError):
        return None
    except OSError:
        return None
    cmdline: tuple[str, ...] | None = None
    try:
        with open(f"{base}/cmdline", "rb") as f:
            raw = f.read()
        if raw:
            cmdline = tuple(a.decode("utf-8", "replace") for a in raw.rstrip(b"\0").split(b"\0"))
    except OSError:
        pass
    # the one reader of /proc/PID/stat (``_proc``): who --kill compares the same ticks
    from portscope._proc import start_ticks, ticks_to_epoch

    ticks = start_ticks(pid, proc)
    boot = _boot_time(proc)
    start = None if ticks is None or boot is None else ticks_to_epoch(ticks, boot)
    return ProcessInfo(name, user_name(uid), cmdline, start)


def usable_cpus() -> int:
    """How many CPUs this process may run on (its affinity mask), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


# inode -> (pid, fd) of the sockets one part of the scan found
_Part = dict[int, tuple[int, int]]

_FD_NAME = b"%d".__mod__  # fd number -> its name in /proc/PID/fd
_SOCKET = b"socket:["


def _read_links(dfd: int, names: Iterable[bytes]) -> list[bytes]:
    """``readlink`` of each of ``names`` in the directory ``dfd``; ``b""`` where none is.

    The loop runs in C (``map`` into ``list.extend``, which keeps what it appended when
    a call fails; ``map`` goes on with the next name). A name that is gone (a hole in
    the fd table, an fd closed meanwhile, a process that exited) gives ``b""``.
    """
    links: list[bytes] = []
    extend = links.extend
    calls = map(partial(os.readlink, dir_fd=dfd), names)
    while True:
        try:
            extend(calls)
        except OSError:
            links.append(b"")
        else:
            return links


def _collect(
    pid: int,
    fds: Sequence[int],
    got: list[bytes],
    links: set[bytes] | None,
    parts: list[_Part],
    shared: list[tuple[int, tuple[int, int]]],
) -> None:
    """Keep the sockets among ``got`` (the links of ``fds``) as one part of the map.

    One comprehension per part, not a dict call per fd. A socket on two of these fds
    (``dup``, an inherited fd) would collapse into one entry: when the count of socket
    links says so, the fds are walked one by one, the lowest fd kept, the others put in
    ``shared``.
    """
    pairs = zip(fds, got, strict=True)
    if links is None:
        part = {int(ln[8:-1]): (pid, fd) for fd, ln in pairs if ln[:8] == _SOCKET}
        found = b"\0".join(got).count(_SOCKET) if part else 0
    else:
        part = {int(ln[8:-1]): (pid, fd) for fd, ln in pairs if ln in links}
        found = sum(map(links.__contains__, got)) if part else 0
    if found != len(part):
        part = {}
        first = part.setdefault
        for fd, ln in zip(fds, got, strict=True):
            if ln[:8] == _SOCKET if links is None else ln in links:
                inode = int(ln[8:-1])
                holder = (pid, fd)
                if first(inode, holder) is not holder:
                    shared.append((inode, holder))
    if part:
        parts.append(part)


class OwnerMap:
    """Which processes hold which socket inodes (one scan of ``/proc/*/fd``).

    Attributes:
        complete: False when some processes' fds could not be read (not root).
        denied: how many processes could not be inspected.
    """

    #: sockets are found by inode (``holders``); other maps answer ``pids``/``owners`` only
    by_inode = True

    def __init__(self, proc: str = "/proc") -> None:
        self._proc = proc
        self._single: dict[int, tuple[int, int]] = {}
        self._multi: dict[int, list[tuple[int, int]]] = {}
        self._info: dict[int, ProcessInfo | None] = {}
        self._owners: dict[int, tuple[Owner, ...]] = {}
        self.complete = True
        self.denied = 0

    @classmethod
    def scan(
        cls,
        wanted: Collection[int] | None = None,
        proc: str = "/proc",
        threads: int = 1,
        pids: Collection[int] | None = None,
        first_holders: bool = False,
    ) -> OwnerMap:
        """Scan every process's fds for sockets.

        The kernel's work (``readlink`` of ``/proc/PID/fd/N``, 4 to 5 us each on the
        benchmark's VM) dominates. ``readlink`` releases the GIL, so threads can share
        the processes; measured on 2 vCPUs they did not pay (same wall time, more CPU),
        so the default is one.

        Args:
            wanted: keep only these inodes (``None``: every socket).
            proc: the procfs mount point.
            threads: worker threads.
            pids: scan only these processes (``None``: every one): the processes of
                one network namespace (``NetnsOwners``).
            first_holders: with ``wanted``, walk the processes in pid order (the older
                first: a server before the clients it serves) and stop once every wanted
                inode has a holder; then scan only the descendants of the holders found,
                which inherit their descriptors (a forked server's workers). A socket
                passed to an unrelated process (``SCM_RIGHTS``), or inherited by siblings
                from a parent that closed it, then shows its first holder only. At 100,000
                connections accepted on one port, with their 100,000 clients on the same
                host, this reads half the descriptors.

        Returns:
            The map; ``complete`` is False when some processes could not be read.
        """
        self = cls(proc)
        if pids is not None:
            tasks = list(pids)
        else:
            try:
                entries = os.listdir(proc)
            except OSError:
                self.complete = False
                return self
            tasks = [int(e) for e in entries if e.isdigit()]
        links = None if wanted is None else {f"socket:[{i}]".encode() for i in wanted}
        parts: list[_Part] = []
        shared: list[tuple[int, tuple[int, int]]] = []
        args = (tasks, links, parts, shared)
        if first_holders and wanted is not None:
            self._first_holders(set(wanted), *args)
        elif threads <= 1 or len(tasks) < 2:
            self._work(*args)
        else:
            import threading

            workers = [threading.Thread(target=self._work, args=args) for _ in range(threads)]
            for w in workers:
                w.daemon = True
                w.start()
            for w in workers:
                w.join()
        self._merge(parts, shared)
        return self

    _CHUNK = 2048

    def _first_holders(
        self,
        left: set[int],
        tasks: list[int],
        links: set[bytes] | None,
        parts: list[_Part],
        shared: list[tuple[int, tuple[int, int]]],
    ) -> None:
        """``scan(first_holders=True)``: processes in pid order until no inode of
        ``left`` is missing, then the descendants of the holders found."""
        from portscope._proc import parent_pid

        tasks.sort(reverse=True)  # ``pop`` takes the lowest pid
        while tasks and left:
            done = len(parts)
            self._work([tasks.pop()], links, parts, shared)
            for part in parts[done:]:
                left.difference_update(part.keys())
        if not tasks:
            return
        holders = {pid for part in parts for pid, _ in part.values()}
        holders.update(pid for _, (pid, _) in shared)
        if not holders:
            return  # nothing found: no descendants to read
        parents: dict[int, int | None] = {}

        def descends(pid: int) -> bool:
            seen = set()
            while pid > 1 and pid not in seen:
                seen.add(pid)
                if pid in holders:
                    return True
                if pid not in parents:
                    parents[pid] = parent_pid(pid, self._proc)
                up = parents[pid]
                if up is None:
                    return False
                pid = up
            return False

        rest = [pid for pid in tasks if descends(pid)]
        self._work(rest, links, parts, shared)

    def _work(
        self,
        tasks: list[int],
        links: set[bytes] | None,
        parts: list[_Part],
        shared: list[tuple[int, tuple[int, int]]],
    ) -> None:
        """One worker: pop processes until none is left and read each one's fds.

        Results go to ``parts`` (one dict per chunk of fds), merged once every worker
        is done; ``list.append`` and ``list.pop`` are atomic under the GIL. A process's
        fd directory is closed as soon as it is read: one open descriptor per worker,
        whatever the number of processes and the caller's ``RLIMIT_NOFILE``.
        """
        proc = self._proc
        while True:
            try:
                pid = tasks.pop()
            except IndexError:
                return
            path = f"{proc}/{pid}/fd"
            try:
                dfd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
            except PermissionError:
                self.denied += 1
                self.complete = False
                continue
            except OSError:
                continue  # exited, or a kernel thread without fds
            try:
                # root without CAP_SYS_PTRACE (a container) opens another user's fd
                # directory but reads none of its links: partial, not "no sockets"
                os.readlink(b"0", dir_fd=dfd)
            except PermissionError:
                other = os.fstat(dfd).st_uid != os.geteuid()
                os.close(dfd)
                if other:  # (one's own unreadable process, e.g. a sandbox's pid 1: as before)
                    self.denied += 1
                    self.complete = False
                continue
            except OSError:
                pass  # no fd 0
            try:
                self._read_process_fds(pid, dfd, path, links, parts, shared)
            finally:
                os.close(dfd)

    def _read_process_fds(
        self,
        pid: int,
        dfd: int,
        path: str,
        links: set[bytes] | None,
        parts: list[_Part],
        shared: list[tuple[int, tuple[int, int]]],
    ) -> None:
        """The sockets among the fds of one process (its fd directory open as ``dfd``).

        Since Linux 6.2 ``stat`` of ``/proc/PID/fd`` gives the number N of open fds.
        Most fd tables are dense or nearly so, so fds 0..N-1 are read directly, without
        listing the directory (which costs the kernel half as much again as the
        readlinks). A process with k holes below N (connection churn leaves them) holds
        k fds above N: N, N+1, ... are read until k are found. When more than
        ``2k + 64`` numbers come up empty (a sparse table, or fds closed meanwhile),
        the directory is listed for the rest. Before 6.2 (size 0) it is listed.
        """
        chunk = self._CHUNK
        try:
            total = os.fstat(dfd).st_size
        except OSError:
            return
        if total <= 0:
            try:
                # bytes names and links: no str decoding per fd
                names = os.listdir(os.fsencode(path))
            except OSError:
                return
            for i in range(0, len(names), chunk):
                part = names[i : i + chunk]
                got = _read_links(dfd, part)
                _collect(pid, [int(n) for n in part], got, links, parts, shared)
            return
        left = 0  # fds above N still to find
        for start in range(0, total, chunk):
            fds = range(start, min(start + chunk, total))
            got = _read_links(dfd, map(_FD_NAME, fds))
            left += got.count(b"")
            _collect(pid, fds, got, links, parts, shared)
        start = total
        budget = 2 * left + 64
        while left > 0 and budget > 0:
            fds = range(start, start + min(max(left, 16), chunk))
            got = _read_links(dfd, map(_FD_NAME, fds))
            empty = got.count(b"")
            _collect(pid, fds, got, links, parts, shared)
            left -= len(fds) - empty
            budget -= empty
            start = fds.stop
        if left > 0:
            try:
                listed = os.listdir(os.fsencode(path))
            except OSError:
                return
            rest = [name for name in listed if int(name) >= start]
            got = _read_links(dfd, rest)
            _collect(pid, [int(n) for n in rest], got, links, parts, shared)

    def _merge(self, parts: list[_Part], shared: list[tuple[int, tuple[int, int]]]) -> None:
        """Join the parts into ``_single``; sockets held by several fds into ``_multi``."""
        single = self._single
        merged: list[_Part] = []
        for part in parts:
            before = len(single)
            single.update(part)
            if len(single) - before != len(part):
                # a socket in two parts (a forked server's listener, a passed fd): the
                # first holder stays in ``_single``, the others go to ``shared``
                for earlier in merged:
                    for inode in earlier.keys() & part.keys():
                        single[inode] = earlier[inode]
                        shared.append((inode, part.pop(inode)))
            merged.append(part)
        multi = self._multi
        for inode, holder in shared:
            if inode in multi:
                multi[inode].append(holder)
            else:
                multi[inode] = [single[inode], holder]
        for holders in multi.values():
            holders.sort()

    def holders(self, inode: int | None) -> list[tuple[int, int]]:
        """(pid, fd) pairs holding ``inode``, without processes that have since exited."""
        if inode is None:
            return []
        many = self._multi.get(inode)
        if many is not None:
            return [h for h in many if self.process(h[0]) is not None]
        one = self._single.get(inode)
        if one is None or self.process(one[0]) is None:
            return []
        return [one]

    def by_process(
        self, rows: Iterable[Row]
    ) -> tuple[dict[int, tuple[list[Row], list[int]]], list[Row]]:
        """Group ``rows`` by the processes holding them, in one pass.

        Returns:
            pid -> (its rows, the fds holding them), pids in the order met; and the rows
            no living process holds. A row held by several fds of one process is listed
            once for it, each fd kept.
        """
        single = self._single
        multi = self._multi
        alive: dict[int, bool] = {}
        groups: dict[int, tuple[list[Row], list[int]]] = {}
        nobody: list[Row] = []
        for row in rows:
            inode = row.inode
            held = single.get(inode) if inode is not None else None
            if held is not None and inode not in multi:
                pid = held[0]
                live = alive.get(pid)
                if live is None:
                    live = alive[pid] = self.process(pid) is not None
                if live:
                    group = groups.get(pid)
                    if group is None:
                        group = groups[pid] = ([], [])
                    group[0].append(row)
                    group[1].append(held[1])
                    continue
            found = self.holders(inode) if held is not None else []
            if not found:
                nobody.append(row)
                continue
            last = -1
            for pid, fd in found:  # sorted by pid
                group = groups.get(pid)
                if group is None:
                    group = groups[pid] = ([], [])
                if pid != last:
                    group[0].append(row)
                    last = pid
                group[1].append(fd)
        return groups, nobody

    @classmethod
    def from_holders(
        cls,
        holders: dict[int, list[tuple[int, int]]],
        processes: dict[int, ProcessInfo],
        *,
        complete: bool = True,
    ) -> OwnerMap:
        """A map from known data (tests, other platforms): inode -> [(pid, fd)], pid -> info.

        Processes missing from ``processes`` count as exited.
        """
        self = cls("/nonexistent")
        for inode, pairs in holders.items():
            if len(pairs) == 1:
                self._single[inode] = pairs[0]
            elif pairs:
                self._single[inode] = pairs[0]
                self._multi[inode] = list(pairs)
        self._info = {pid: processes.get(pid) for pairs in holders.values() for pid, _ in pairs}
        self.complete = complete
        self.denied = 0 if complete else 1
        return self

    def single_holder(self, inode: int) -> tuple[int, int] | None:
        """The (pid, fd) holding ``inode`` when exactly one fd was seen, else ``None``.

        A fast path: the process may have exited since the scan.
        """
        if inode in self._multi:
            return None
        return self._single.get(inode)

    def pids(self, row: Row) -> list[int]:
        """Process ids holding the socket of ``row``."""
        return [pid for pid, _ in self.holders(row.inode)]

    def process(self, pid: int) -> ProcessInfo | None:
        """Details of ``pid`` (read once), or ``None`` if it has exited."""
        try:
            return self._info[pid]
        except KeyError:
            info = self._info[pid] = read_process(pid, self._proc)
            return info

    def owners(self, row: Row) -> tuple[Owner, ...]:
        """The owners of the socket of ``row`` (``()`` when none is visible)."""
        inode = row.inode
        if inode is None:
            return ()
        cached = self._owners.get(inode)
        if cached is not None:
            return cached
        result = []
        for pid, fd in self.holders(inode):
            info = self.process(pid)
            if info is not None:
                result.append(Owner(pid, info.name, info.user, info.cmdline, info.start_time, fd))
        owners = self._owners[inode] = tuple(result)
        return owners

    def note(self) -> str | None:
        """A note for the user when the map is partial, else ``None``."""
        if self.complete:
            return None
        return (
            f"process owners are partial: {self.denied} "
            f"{'process' if self.denied == 1 else 'processes'} of other users could not be "
            "inspected (that needs root or CAP_SYS_PTRACE)"
        )


def _tcp_in_use(proc: str) -> int:
    """TCP sockets in use in this network namespace (``TCP: inuse N`` of
    ``/proc/net/sockstat``, proc(5)); 0 when unreadable."""
    try:
        with open(f"{proc}/net/sockstat", "rb") as f:
            for line in f.read(4096).splitlines():
                if line.startswith(b"TCP:"):
                    fields = line.split()
                    return int(fields[fields.index(b"inuse") + 1])
    except (OSError, ValueError, IndexError):
        pass
    return 0


class ForkedScan:
    """An owner scan run by a child process while this one does other work (the dump).

    ``OwnerMap.scan(first_holders=True)`` needs the wanted inodes before it starts, and
    threads cannot share the work (each ``readlink`` hands the GIL back and forth with the
    decoding). So ``start`` forks a child that walks every process in pid order and writes
    each one's socket descriptors to a pipe while the parent dumps and decodes the socket
    table; ``finish(wanted)`` reads what the child found until every wanted inode has a
    holder, stops the child (SIGKILL by its pid), then reads the holders' descendants
    itself, as ``scan(first_holders=True)`` does. At 100,000 connections on one port the
    walk and the dump overlap on two CPUs.

    The child only calls ``os`` functions and ``marshal`` and leaves with ``os._exit``;
    ``start`` refuses (returns ``None``) where forking is not safe: another thread
    running, no ``os.fork``.
    """

    def __init__(self, pid: int, reader: int, proc: str) -> None:
        import queue
        import threading

        self._pid = pid
        self._reader = reader
        self._proc = proc
        # a thread empties the pipe as the child fills it (the child never waits for the
        # parent's decoding); os.read releases the GIL while it waits
        self._chunks: queue.SimpleQueue[bytes] = queue.SimpleQueue()
        self._drain = threading.Thread(target=self._read, name="portscope-owners", daemon=True)
        self._drain.start()

    def _read(self) -> None:
        try:
            while chunk := os.read(self._reader, 1 << 20):
                self._chunks.put(chunk)
        except OSError:
            pass
        finally:
            self._chunks.put(b"")

    #: TCP sockets in use (``/proc/net/sockstat``) from which forking pays: below, the
    #: walk is short and the fork, the pipe and the thread cost more than they save
    #: (measured: 0.06 s in this process, 0.10 s forked, for one listener on a quiet host)
    WORTH_FROM: int = 10_000

    @classmethod
    def start(cls, proc: str = "/proc") -> ForkedScan | None:
        """Fork the scanning child, or ``None`` where that is not safe, possible or worth
        it (fewer than ``WORTH_FROM`` TCP sockets in this namespace, one CPU)."""
        import threading

        if not hasattr(os, "fork") or threading.active_count() != 1 or usable_cpus() < 2:
            return None
        if _tcp_in_use(proc) < cls.WORTH_FROM:
            return None
        import marshal  # imported before the fork: the child imports nothing

        try:
            entries = os.listdir(proc)
            reader, writer = os.pipe()
        except OSError:
            return None
        pids = sorted(int(e) for e in entries if e.isdigit())
        child = os.fork()
        if child == 0:  # pragma: no cover (the child's coverage is not collected)
            status = 0
            try:
                os.close(reader)
                this = OwnerMap(proc)
                for pid in pids:
                    parts: list[_Part] = []
                    shared: list[tuple[int, tuple[int, int]]] = []
                    denied = this.denied
                    this._work([pid], None, parts, shared)
                    frame = marshal.dumps((pid, this.denied - denied, parts, shared))
                    data = len(frame).to_bytes(4, "little") + frame
                    while data:
                        data = data[os.write(writer, data) :]
            except BaseException:
                status = 1
            finally:
                os._exit(status)
        os.close(writer)
        return cls(child, reader, proc)

    def _frames(self) -> Iterator[tuple[int, int, list[_Part], list[tuple[int, tuple[int, int]]]]]:
        import marshal

        buffer = bytearray()
        while True:
            chunk = self._chunks.get()
            if not chunk:
                return
            buffer += chunk
            while len(buffer) >= 4:
                size = int.from_bytes(buffer[:4], "little")
                if len(buffer) < 4 + size:
                    break
                frame = bytes(buffer[4 : 4 + size])
                del buffer[: 4 + size]
                yield marshal.loads(frame)

    def stop(self) -> None:
        """Stop the child (SIGKILL by its pid), reap it, end the reading thread."""
        import signal

        with contextlib.suppress(ProcessLookupError):
            os.kill(self._pid, signal.SIGKILL)
        with contextlib.suppress(ChildProcessError):
            os.waitpid(self._pid, 0)
        self._drain.join(5)  # the pipe's writer is gone: the read ends
        with contextlib.suppress(OSError):
            os.close(self._reader)

    def finish(self, wanted: Collection[int]) -> OwnerMap:
        """The owner map of ``wanted``, as ``OwnerMap.scan(wanted, first_holders=True)``."""
        result = OwnerMap(self._proc)
        wanted = set(wanted)
        left = set(wanted)
        parts: list[_Part] = []
        shared: list[tuple[int, tuple[int, int]]] = []
        scanned: set[int] = set()
        try:
            if left:
                for pid, denied, found, also in self._frames():
                    scanned.add(pid)
                    if denied:
                        result.denied += denied
                        result.complete = False
                    for part in found:
                        keep = {i: h for i, h in part.items() if i in wanted}
                        if keep:
                            parts.append(keep)
                            left.difference_update(keep)
                    shared += [(i, h) for i, h in also if i in wanted]
                    if not left:
                        break
        finally:
            self.stop()
        # the processes the child did not read (it stopped, or they are new): in pid order
        # while inodes are missing, then the holders' descendants (``_first_holders``)
        try:
            rest = [int(e) for e in os.listdir(self._proc) if e.isdigit()]
        except OSError:
            rest = []
        tasks = [pid for pid in rest if pid not in scanned]
        links = {f"socket:[{i}]".encode() for i in wanted}
        result._first_holders(left, tasks, links, parts, shared)
        result._merge(parts, shared)
        return result


class NetnsOwners(OwnerMap):
    """Owners grouped by network namespace: one ``OwnerMap`` per namespace, built from
    the processes in that namespace only, and a row is matched in its own namespace's.

    Socket inodes are unique on the host (``sock_alloc`` takes them from the one global
    ``get_next_ino`` counter, net/socket.c), so grouping changes no correct answer; it
    keeps each lookup to the processes that can hold the socket, and a wrapped 32-bit
    counter from pairing a socket with a process of another namespace. A socket passed
    to a process in another namespace (SCM_RIGHTS, or a process that called ``setns``
    after opening it) shows no owner.

    Attributes:
        complete: False when some processes' fds or namespaces could not be read.
        denied: how many processes could not be inspected.
    """

    by_inode = False

    def __init__(self, maps: dict[int, OwnerMap], denied: int = 0, proc: str = "/proc") -> None:
        super().__init__(proc)
        self._maps = maps
        self._by_pid: dict[int, OwnerMap] = {}
        for omap in maps.values():
            for pid, _ in omap._single.values():
                self._by_pid[pid] = omap
            for holders in omap._multi.values():
                for pid, _ in holders:
                    self._by_pid[pid] = omap
        self.denied = denied + sum(m.denied for m in maps.values())
        self.complete = self.denied == 0 and all(m.complete for m in maps.values())

    @classmethod
    def scan_namespaces(
        cls,
        groups: dict[int, list[int]],
        wanted: Collection[int] | None = None,
        proc: str = "/proc",
        denied: int = 0,
    ) -> NetnsOwners:
        """Scan the processes of each namespace (netns inode -> pids) into its own map.

        Args:
            groups: netns inode -> the pids in it (``_netns.discover``).
            wanted: keep only these socket inodes (``None``: every socket).
            proc: the procfs mount point.
            denied: processes whose namespace could not be read (counted as denied).
        """
        maps = {inode: OwnerMap.scan(wanted, proc, pids=pids) for inode, pids in groups.items()}
        return cls(maps, denied, proc)

    def map_for(self, netns_inode: int) -> OwnerMap:
        """The owner map of one namespace (empty when it holds no visible process)."""
        omap = self._maps.get(netns_inode)
        if omap is None:
            omap = self._maps[netns_inode] = OwnerMap.from_holders({}, {})
        return omap

    def _map(self, row: Row) -> OwnerMap | None:
        ns = row.netns
        return None if ns is None else self._maps.get(ns.inode)

    def pids(self, row: Row) -> list[int]:
        omap = self._map(row)
        return [] if omap is None else omap.pids(row)

    def by_process(
        self, rows: Iterable[Row]
    ) -> tuple[dict[int, tuple[list[Row], list[int]]], list[Row]]:
        """``OwnerMap.by_process``, each row looked up in its own namespace's map."""
        groups: dict[int, tuple[list[Row], list[int]]] = {}
        nobody: list[Row] = []
        for row in rows:
            omap = self._map(row)
            found = [] if omap is None else omap.holders(row.inode)
            if not found:
                nobody.append(row)
                continue
            last = -1
            for pid, fd in found:
                group = groups.setdefault(pid, ([], []))
                if pid != last:
                    group[0].append(row)
                    last = pid
                group[1].append(fd)
        return groups, nobody

    def owners(self, row: Row) -> tuple[Owner, ...]:
        omap = self._map(row)
        return () if omap is None else omap.owners(row)

    def process(self, pid: int) -> ProcessInfo | None:
        omap = self._by_pid.get(pid)
        return None if omap is None else omap.process(pid)

    def note(self) -> str | None:
        if self.complete:
            return None
        return (
            f"process owners are partial: {self.denied} "
            f"{'process' if self.denied == 1 else 'processes'} of other users could not be "
            "inspected (that needs root or CAP_SYS_PTRACE)"
        )
