"""Socket inode -> owning processes, from ``/proc/*/fd`` (``man 5 proc``).

One pass over every process's fd directory: ``readlink`` of each fd (relative to an open
directory fd, which keeps the kernel's path walk short) and ``socket:[INODE]`` links kept.
Process details (name, user, command line, start time) are read only for processes that
hold a socket somebody asks about. Processes that exit mid-scan are skipped; directories
this process may not read (another user's processes, not root) make the map partial.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING

from portscope.models import Owner

if TYPE_CHECKING:
    from collections.abc import Collection

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
    try:
        with open(f"{proc}/stat", "rb") as f:
            for line in f:
                if line.startswith(b"btime "):
                    return float(line.split()[1])
    except OSError:
        return None
    return None


@lru_cache(maxsize=1)
def _clock_ticks() -> int:
    try:
        return os.sysconf("SC_CLK_TCK")
    except (ValueError, OSError):
        return 100


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
    start: float | None = None
    try:
        with open(f"{base}/stat", "rb") as f:
            stat = f.read()
        # field 22 (starttime, clock ticks after boot), counted after the ")" of comm
        ticks = int(stat[stat.rindex(b")") + 2 :].split()[19])
        boot = _boot_time(proc)
        if boot is not None:
            start = round(boot + ticks / _clock_ticks(), 2)
    except (OSError, ValueError, IndexError):
        pass
    return ProcessInfo(name, user_name(uid), cmdline, start)


def usable_cpus() -> int:
    """How many CPUs this process may run on (its affinity mask), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


# a pid, or (pid, fd dir, fd names or numbers) of a part of a big one
_Task = int | tuple[int, int, list[bytes] | range]


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
        self._totals: dict[int, int] = {}

    @classmethod
    def scan(
        cls, wanted: Collection[int] | None = None, proc: str = "/proc", threads: int = 1
    ) -> OwnerMap:
        """Scan every process's fds for sockets.

        The kernel's work (``readlink`` of ``/proc/PID/fd/N``, about 2 us each) dominates.
        ``readlink`` releases the GIL, so threads can share the processes and split the
        fd lists of big ones; measured on 2 vCPUs they did not pay (same wall time, more
        CPU), so the default is one.

        Args:
            wanted: keep only these inodes (``None``: every socket).
            proc: the procfs mount point.
            threads: worker threads.

        Returns:
            The map; ``complete`` is False when some processes could not be read.
        """
        self = cls(proc)
        try:
            entries = os.listdir(proc)
        except OSError:
            self.complete = False
            return self
        tasks: list[_Task] = [int(e) for e in entries if e.isdigit()]
        links = None if wanted is None else {f"socket:[{i}]".encode() for i in wanted}
        shared: list[tuple[int, tuple[int, int]]] = []
        opened: list[int] = []
        holes: list[tuple[int, int, int]] = []
        count = threads
        if count <= 1 or len(tasks) < 2:
            self._work(tasks, links, shared, opened, holes)
        else:
            import threading

            workers = [
                threading.Thread(target=self._work, args=(tasks, links, shared, opened, holes))
                for _ in range(count)
            ]
            for w in workers:
                w.daemon = True
                w.start()
            for w in workers:
                w.join()
        # processes whose fds are not 0..N-1: list the directory for the ones above N
        done: set[int] = set()
        for pid, dfd, n in holes:
            if pid in done:
                continue
            done.add(pid)
            try:
                names = os.listdir(os.fsencode(f"{proc}/{pid}/fd"))
            except OSError:
                continue
            rest = [name for name in names if int(name) >= n]
            if rest:
                tasks.append((pid, dfd, rest))
                self._work(tasks, links, shared, opened, [])
        for dfd in opened:
            os.close(dfd)
        multi = self._multi
        for inode, holder in shared:
            if inode in multi:
                multi[inode].append(holder)
            else:
                multi[inode] = [self._single[inode], holder]
        for holders in multi.values():
            holders.sort()
        return self

    _CHUNK = 2048

    def _work(
        self,
        tasks: list[_Task],
        links: set[bytes] | None,
        shared: list[tuple[int, tuple[int, int]]],
        opened: list[int],
        holes: list[tuple[int, int, int]],
    ) -> None:
        """One worker: pop processes (or fd chunks of big ones) until none is left.

        Results go straight into the map: ``dict.setdefault`` and ``list.append`` are
        atomic under the GIL, so a socket two processes share (two workers may see it
        at once) lands in ``shared`` instead of being lost.

        Since Linux 6.2 ``stat`` of ``/proc/PID/fd`` gives the number N of open fds.
        Servers' fd tables are dense, so fds 0..N-1 are read directly, without listing
        the directory (which costs the kernel half as much again as the readlinks);
        a process with holes is listed afterwards (``holes``).
        """
        setdefault = self._single.setdefault
        share = shared.append
        readlink = os.readlink
        chunk = self._CHUNK
        proc = self._proc
        totals = self._totals
        while True:
            try:
                task = tasks.pop()  # list.pop is atomic under the GIL
            except IndexError:
                return
            if isinstance(task, int):
                pid = task
                path = f"{proc}/{pid}/fd"
                try:
                    dfd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
                except PermissionError:
                    self.denied += 1
                    self.complete = False
                    continue
                except OSError:
                    continue  # exited, or a kernel thread without fds
                opened.append(dfd)
                try:
                    total = os.fstat(dfd).st_size
                except OSError:
                    continue
                names: list[bytes] | range
                if total > 0:
                    totals[pid] = total
                    names = range(total)
                else:
                    try:
                        # bytes names and links: no str decoding per fd
                        names = os.listdir(os.fsencode(path))
                    except OSError:
                        continue
                if len(names) > chunk:
                    rest = range(chunk, len(names), chunk)
                    tasks.extend((pid, dfd, names[i : i + chunk]) for i in rest)
                    names = names[:chunk]
            else:
                pid, dfd, names = task
            if isinstance(names, range):
                missed = 0
                for fd in names:
                    try:
                        link = readlink(b"%d" % fd, dir_fd=dfd)
                    except OSError:
                        missed += 1
                        continue
                    if link[:8] == b"socket:[" if links is None else link in links:
                        inode = int(link[8:-1])
                        holder = (pid, fd)
                        if setdefault(inode, holder) is not holder:
                            share((inode, holder))
                if missed:
                    holes.append((pid, dfd, totals[pid]))
                continue
            for name in names:
                try:
                    link = readlink(name, dir_fd=dfd)
                except OSError:
                    continue  # fd closed meanwhile
                if link[:8] == b"socket:[" if links is None else link in links:
                    inode = int(link[8:-1])
                    holder = (pid, int(name))
                    if setdefault(inode, holder) is not holder:
                        share((inode, holder))

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
