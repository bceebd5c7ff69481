"""The owner scan's paths on a fake /proc whose fd directories report, like Linux >= 6.2,
their count of open fds as ``st_size``: dense tables, holes below the count (fds above it
found by reading on), sparse tables (the directory listed), a socket on two fds of one
process and in two processes, threads."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from portscope.sockets._owners import OwnerMap


def make_proc(root: Path, tables: dict[int, dict[int, str]]) -> Path:
    (root / "stat").write_text("cpu  1 2 3\nbtime 1700000000\n")
    for pid, fds in tables.items():
        base = root / str(pid)
        (base / "fd").mkdir(parents=True)
        (base / "comm").write_text(f"p{pid}\n")
        for fd, target in fds.items():
            os.symlink(target, base / "fd" / str(fd))
    return root


@pytest.fixture
def fd_counts(monkeypatch: pytest.MonkeyPatch) -> None:
    """``fstat`` of a fake ``PID/fd`` directory gives its number of entries (Linux 6.2)."""
    real, real_listdir = os.fstat, os.listdir

    def fstat(fd: int) -> os.stat_result:
        st = real(fd)
        path = os.readlink(f"/proc/self/fd/{fd}")
        if path.endswith("/fd") and not path.startswith("/proc/"):
            values = list(st)
            values[6] = len(real_listdir(path))  # st_size
            return os.stat_result(values)
        return st

    monkeypatch.setattr(os, "fstat", fstat)


def holders(omap: OwnerMap, inodes: range) -> dict[int, list[tuple[int, int]]]:
    return {i: omap.holders(i) for i in inodes if omap.holders(i)}


@pytest.mark.usefixtures("fd_counts")
@pytest.mark.parametrize("threads", [1, 3])
def test_holes_below_the_count_and_fds_above_it(
    tmp_path: Path, threads: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(OwnerMap, "_CHUNK", 64)  # big processes are read in chunks
    dense = {fd: f"socket:[{1000 + fd}]" for fd in range(150)}
    # 140 fds; every 7th number below 140 free, so 20 open fds lie above the count
    holey = {fd: f"socket:[{20000 + fd}]" for fd in range(160) if fd % 7 != 3 or fd >= 140}
    holey[1] = "pipe:[5]"
    sparse = {0: "/dev/null", 3: "socket:[30003]", 9000: "socket:[39000]"}
    proc = make_proc(tmp_path, {10: dense, 11: holey, 12: sparse})
    listed: list[str] = []
    real_listdir = os.listdir

    def listdir(path: str | bytes = ".") -> list[str] | list[bytes]:
        listed.append(os.fsdecode(path))
        return real_listdir(path)

    monkeypatch.setattr(os, "listdir", listdir)
    omap = OwnerMap.scan(proc=str(proc), threads=threads)
    want = {1000 + fd: [(10, fd)] for fd in dense}
    want |= {20000 + fd: [(11, fd)] for fd in holey if fd != 1}
    want |= {30003: [(12, 3)], 39000: [(12, 9000)]}
    assert holders(omap, range(40000)) == want
    assert omap.complete
    # the holey table is read on past its count, not listed; the sparse one is listed
    assert listed == [str(proc), f"{proc}/12/fd"]


@pytest.mark.usefixtures("fd_counts")
def test_a_socket_on_two_fds_of_one_process_and_in_two_processes(tmp_path: Path) -> None:
    proc = make_proc(
        tmp_path,
        {
            20: {0: "socket:[7]", 1: "socket:[8]", 2: "socket:[7]", 3: "socket:[9]"},
            21: {4: "socket:[8]", 5: "socket:[10]"},
            22: {0: "socket:[8]"},
        },
    )
    omap = OwnerMap.scan(proc=str(proc))
    assert omap.holders(7) == [(20, 0), (20, 2)]
    assert omap.holders(8) == [(20, 1), (21, 4), (22, 0)]
    assert omap.holders(9) == [(20, 3)] and omap.holders(10) == [(21, 5)]
    assert omap.single_holder(9) == (20, 3) and omap.single_holder(8) is None
    only = OwnerMap.scan({7, 10}, proc=str(proc))
    assert only.holders(7) == [(20, 0), (20, 2)] and only.holders(10) == [(21, 5)]
    assert only.holders(8) == [] and only.holders(9) == []


def test_without_an_fd_count_the_directory_is_listed(tmp_path: Path) -> None:
    # tmpfs gives a directory a size that is no fd count: the scan must not trust it blindly
    proc = make_proc(tmp_path, {30: {5: "socket:[50]", 900: "socket:[51]"}})
    omap = OwnerMap.scan(proc=str(proc))
    assert omap.holders(50) == [(30, 5)] and omap.holders(51) == [(30, 900)]
