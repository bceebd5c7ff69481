"""Which processes hold a few new sockets, found fast: the most recently started
processes first, stopping as soon as every socket has a holder.

``watch`` needs the owner of a listener that just appeared, within its latency budget,
on a host where other processes hold tens of thousands of descriptors: the full scan of
``/proc/*/fd`` (``sockets._owners.OwnerMap``) reads every one of them (seconds under
load). A new listener is most often in a new process, so the processes are read from the
most recently started down (``/proc/PID/stat`` field 22, ``man 5 proc``; not by PID:
PIDs wrap at ``kernel.pid_max``, often 32768), and the walk ends when each wanted inode
has been seen. The price: a socket shared by several processes (a forked server's workers)
gets the first holder found (the newest), not all of them; a snapshot's full scan lists
them all.
"""

from __future__ import annotations

import os
from collections.abc import Collection

from portscope.models import Owner

__all__ = ["find_owners"]


def find_owners(
    inodes: Collection[int], proc: str = "/proc", *, first: Collection[int] = ()
) -> dict[int, tuple[Owner, ...]]:
    """The holder of each socket inode (one process each), by inode.

    Args:
        inodes: socket inodes (``Row.inode``).
        proc: the procfs mount point.
        first: PIDs to read before the others (the holders of the last new listeners: a
            server that opens one listener often opens more).

    Returns:
        inode -> ``(Owner,)``; inodes whose holder was not found (another user's process
        without root, or closed meanwhile) are missing.
    """
    from portscope.sockets._owners import read_process

    wanted = {f"socket:[{i}]": i for i in inodes}
    found: dict[int, tuple[Owner, ...]] = {}
    if not wanted:
        return found
    from portscope._proc import start_ticks

    try:
        pids = [int(e) for e in os.listdir(proc) if e.isdigit()]
    except OSError:
        return found
    # newest first, by start time: PIDs wrap (pid_max is often 32768)
    pids.sort(key=lambda pid: (start_ticks(pid, proc) or 0, pid), reverse=True)
    hinted = [pid for pid in first if pid in set(pids)]
    pids = hinted + [pid for pid in pids if pid not in hinted]
    for pid in pids:
        try:
            dfd = os.open(f"{proc}/{pid}/fd", os.O_RDONLY | os.O_DIRECTORY)
        except OSError:
            continue  # exited, not permitted, or a kernel thread
        hits: list[tuple[int, int]] = []
        try:
            for name in os.listdir(dfd):
                try:
                    link = os.readlink(name, dir_fd=dfd)
                except OSError:
                    continue
                inode = wanted.get(link)
                if inode is not None and inode not in found:
                    hits.append((inode, int(name)))
        except OSError:
            continue
        finally:
            os.close(dfd)
        if hits:
            info = read_process(pid, proc)
            if info is not None:
                for inode, fd in hits:
                    found[inode] = (
                        Owner(pid, info.name, info.user, info.cmdline, info.start_time, fd),
                    )
            if len(found) == len(wanted):
                break
    return found
