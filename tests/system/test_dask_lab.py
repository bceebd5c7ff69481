"""``scan --dask`` on a local Dask cluster inside the lab's scanner namespace (``psdk-*``).

The scheduler and three workers (``--nthreads 1 --no-nanny``) are started by the test inside
the scanner namespace (no default route): the cluster's traffic stays on that namespace's
loopback and the scan's on the lab's veth, to 198.18.0.0/15 only. Processes are stopped by
PID. Compared: the single-process scan, the lab's truth, and each worker's coverage.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

import lab as labmod

pytestmark = pytest.mark.root

DASK = str(Path(sys.executable).with_name("dask"))
PORTS = "1-1100"


@dataclass
class Cluster:
    lab: labmod.Lab
    address: str
    workers: dict[int, subprocess.Popen[bytes]] = field(default_factory=dict)
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)


def _skip_reason() -> str | None:
    if os.geteuid() != 0:
        return "the Dask lab test needs root (network namespaces); CI runs as root"
    if missing := labmod.missing_tools():
        return f"the lab needs {', '.join(missing)} (scripts/install-test-deps)"
    if not Path(DASK).exists():
        return "dask.distributed is not installed (the [distributed] extra)"
    return None


def _start(lb: labmod.Lab, argv: list[str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as f:  # ip netns exec execs the command: the PID is the process's
        return lb.popen(argv, stdout=f, stderr=subprocess.STDOUT, start_new_session=True)


def _wait_for_workers(lb: labmod.Lab, address: str, n: int) -> None:
    code = (
        "from distributed import Client\n"
        f"c = Client({address!r}, timeout=30)\n"
        f"c.wait_for_workers({n}, timeout=30)\n"
        "c.close()\n"
    )
    proc = lb.exec([sys.executable, "-c", code], timeout_s=60)
    assert proc.returncode == 0, proc.stderr[-2000:]


def _stop(procs: list[subprocess.Popen[bytes]]) -> None:
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + 10
    for p in procs:
        try:
            p.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(timeout=5)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    if reason := _skip_reason():
        pytest.skip(reason)
    tmp = tmp_path_factory.mktemp("dask")
    with labmod.running(prefix="psdk") as lb:
        lb.check_no_default_route()
        sched_file = tmp / "scheduler.json"
        procs = [
            _start(lb, [DASK, "scheduler", "--host", "127.0.0.1", "--port", "0",
                        "--no-dashboard", "--no-show", "--scheduler-file", str(sched_file)],
                   tmp / "scheduler.log")
        ]  # fmt: skip
        try:
            deadline = time.monotonic() + 30
            while not sched_file.exists() and time.monotonic() < deadline:
                time.sleep(0.1)
            address = json.loads(sched_file.read_text())["address"]
            assert address.startswith("tcp://127.0.0.1:")
            c = Cluster(lb, address, procs=procs)
            for i in range(3):
                w = _start(lb, [DASK, "worker", address, "--nthreads", "1", "--no-nanny",
                                "--no-dashboard", "--host", "127.0.0.1"],
                           tmp / f"worker{i}.log")  # fmt: skip
                procs.append(w)
                c.workers[w.pid] = w
            _wait_for_workers(lb, address, 3)
            yield c
        finally:
            _stop(procs)


def _scan(lb: labmod.Lab, *args: str) -> list[dict[str, Any]]:
    proc = lb.exec([sys.executable, "-m", "portscope", "scan", "--json", *args], timeout_s=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return [json.loads(line) for line in proc.stdout.splitlines()]


def _states(lines: list[dict[str, Any]]) -> dict[tuple[str, str, int], str]:
    return {(d["address"], d["proto"], d["port"]): d["state"] for d in lines if d["type"] == "port"}


def _targets(lb: labmod.Lab) -> list[str]:
    return [lb.target_v4, *lb.targets_v4_28[:5]]


def test_dask_scan_equals_a_single_process_scan_port_for_port(cluster: Cluster) -> None:
    lb = cluster.lab
    single = _scan(lb, "-p", PORTS, *_targets(lb))
    spread = _scan(lb, "--dask", cluster.address, "--shards", "9", "--seed", "3", "-p", PORTS,
                   *_targets(lb))  # fmt: skip
    assert _states(spread) == _states(single)
    truth = {
        (a, "tcp", p): lb.expected("tcp", p)
        for a in _targets(lb)
        for p in range(1, 1101)
        if lb.expected("tcp", p) != "closed"
    }
    assert _states(spread) == truth
    hosts = {d["address"]: d for d in spread if d["type"] == "host"}
    want = {d["address"]: d for d in single if d["type"] == "host"}
    assert {a: h["counts"] for a, h in hosts.items()} == {a: h["counts"] for a, h in want.items()}
    assert all(h["ports"] == 1100 and h["status"] == "up" for h in hosts.values())
    # each worker's coverage adds up to the whole
    workers = [d for d in spread if d["type"] == "worker"]
    summary = spread[-1]
    assert summary["type"] == "summary"
    assert sum(w["shards"] for w in workers) == 9
    assert sum(w["pairs"] for w in workers) == len(_targets(lb)) * 1100
    for key in ("answered", "retried", "timed_out", "not_scanned"):
        assert sum(w["coverage"][key] for w in workers) == summary["coverage"][key]
    assert summary["coverage"]["answered"] + summary["coverage"]["timed_out"] == 6 * 1100
    assert len(workers) >= 2  # the shards were spread


def test_ctrl_c_cancels_every_task(cluster: Cluster) -> None:
    lb = cluster.lab
    argv = [sys.executable, "-m", "portscope", "scan", "--json", "--dask", cluster.address,
            "--rate", "300", "-p", PORTS, *_targets(lb)]  # fmt: skip
    scan = lb.popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        time.sleep(3)  # 6,600 pairs at 300/s: about 22 s of work
        assert scan.poll() is None
        scan.send_signal(signal.SIGINT)
        _, err = scan.communicate(timeout=20)
    finally:
        if scan.poll() is None:
            scan.kill()
            scan.wait(timeout=10)
    assert scan.returncode == 130, err[-2000:]
    assert b"interrupted" in err and b"Traceback" not in err
    code = (
        "import time\nfrom distributed import Client\n"
        f"c = Client({cluster.address!r}, timeout=30)\n"
        "for _ in range(100):\n"
        "    if not any(c.processing().values()):\n"
        "        break\n"
        "    time.sleep(0.1)\n"
        "print(sum(len(t) for t in c.processing().values()))\n"
        "c.close()\n"
    )
    left = lb.exec([sys.executable, "-c", code], timeout_s=60)
    assert left.stdout.strip() == "0", left.stderr[-1000:]


def test_a_worker_killed_mid_scan_still_yields_the_complete_result(cluster: Cluster) -> None:
    lb = cluster.lab
    argv = [sys.executable, "-m", "portscope", "scan", "--json", "--dask", cluster.address,
            "--shards", "6", "--rate", "3000", "-p", PORTS, *_targets(lb)]  # fmt: skip
    scan = lb.popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        time.sleep(1.5)  # 6,600 pairs at 3,000/s: the shards are running
        assert scan.poll() is None, "the scan ended before a worker could be killed"
        pid, victim = next(iter(cluster.workers.items()))
        os.kill(pid, signal.SIGKILL)
        victim.wait(timeout=10)
        del cluster.workers[pid]
        out, err = scan.communicate(timeout=120)
    finally:
        if scan.poll() is None:
            scan.kill()
            scan.wait(timeout=10)
    assert scan.returncode == 0, err[-2000:]
    lines = [json.loads(line) for line in out.splitlines()]
    truth = {
        (a, "tcp", p): lb.expected("tcp", p)
        for a in _targets(lb)
        for p in range(1, 1101)
        if lb.expected("tcp", p) != "closed"
    }
    assert _states(lines) == truth
    summary = lines[-1]
    assert (
        summary["counts"]["closed"] + sum(n for s, n in summary["counts"].items() if s != "closed")
        == 6 * 1100
    )
    workers = [d for d in lines if d["type"] == "worker"]
    assert sum(w["shards"] for w in workers) == 6
    assert sum(w["pairs"] for w in workers) == 6 * 1100
