#!/usr/bin/env python3
"""``scan --dask`` benchmark in the lab: 4,096 addresses x the top 100 ports on 1, 2, 4 workers.

Builds the lab with its network (tests/lab, namespaces ``psdkb-*``: the target namespace
answers for 198.18.16.0/20 through ``ip route add local 198.18.16.0/20 dev lo``, open ports
varying per address), then, all inside the scanner namespace (no default route):

* the single-process scan (``portscope scan``), the reference;
* for each worker count W: a Dask scheduler and W workers (``--nthreads 1 --no-nanny``,
  started here, stopped by PID), and ``portscope scan --dask`` with the default 4 x W
  shards.

Every run is checked port by port against the lab's truth (``wrong``), and the table gives
wall time, the speed-up over one worker and over the single-process scan, and the load
average after the run. Where it stops: this machine has 2 vCPUs (shared with other work)
and the lab one veth pair whose receive side is one softirq context; the table says when
more workers stop helping.

Needs root. Usage::

    sudo .venv/bin/python bench/bench_dask.py                  # LAN (veth), connect scan
    sudo .venv/bin/python bench/bench_dask.py --wan            # 20 ms +- 5 ms, 0.5 % loss
    sudo .venv/bin/python bench/bench_dask.py --workers 1,2 -- -sS
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

import lab as labmod  # noqa: E402

BIN = REPO / ".venv" / "bin"
PORTSCOPE = BIN / "portscope"
DASK = BIN / "dask"


@dataclass
class Run:
    label: str
    workers: int
    seconds: float = 0.0
    checked: int = 0
    wrong: int = 0
    load: float = 0.0
    shards: int = 0
    error: str | None = None
    examples: list[str] = field(default_factory=list)


def top_ports() -> list[int]:
    from portscope.registry import top_ports as top

    return sorted(int(p) for p in top(100, "tcp"))


def check(lb: labmod.Lab, out: str, ports: list[int], res: Run) -> None:
    states: dict[tuple[str, int], str] = {}
    for line in out.splitlines():
        d = json.loads(line)
        if d["type"] == "port":
            states[(d["address"], d["port"])] = d["state"]
        elif d["type"] == "worker":
            res.shards += d["shards"]
    for address in lb.network_addresses():
        for port in ports:
            res.checked += 1
            want = lb.network_expected(address, port)
            have = states.get((address, port), "closed")
            if have != want:
                res.wrong += 1
                if len(res.examples) < 3:
                    res.examples.append(f"{address}:{port} {have} (truth {want})")


def timed_scan(
    lb: labmod.Lab, argv: list[str], ports: list[int], res: Run, timeout_s: float
) -> Run:
    start = time.perf_counter()
    try:
        proc = lb.exec(argv, timeout_s=timeout_s)
    except subprocess.TimeoutExpired:
        res.error = f"> {timeout_s:.0f} s (cut off)"
        return res
    res.seconds = time.perf_counter() - start
    res.load = os.getloadavg()[0]
    if proc.returncode != 0:
        res.error = f"exit {proc.returncode}: {proc.stderr.strip()[-300:]}"
        return res
    check(lb, proc.stdout, ports, res)
    return res


def start_cluster(
    lb: labmod.Lab, workers: int, tmp: Path
) -> tuple[str, list[subprocess.Popen[bytes]]]:
    sched_file = tmp / f"scheduler-{workers}.json"
    procs: list[subprocess.Popen[bytes]] = []

    def start(argv: list[str], log: Path) -> None:
        with log.open("ab") as f:
            procs.append(lb.popen(argv, stdout=f, stderr=subprocess.STDOUT,
                                  start_new_session=True))  # fmt: skip

    start([str(DASK), "scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard",
           "--no-show", "--scheduler-file", str(sched_file)], tmp / "scheduler.log")  # fmt: skip
    deadline = time.monotonic() + 30
    while not sched_file.exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    address = json.loads(sched_file.read_text())["address"]
    for i in range(workers):
        start([str(DASK), "worker", address, "--nthreads", "1", "--no-nanny", "--no-dashboard",
               "--host", "127.0.0.1"], tmp / f"worker{i}.log")  # fmt: skip
    code = (f"from distributed import Client\nc = Client({address!r}, timeout=30)\n"
            f"c.wait_for_workers({workers}, timeout=60)\nc.close()\n")  # fmt: skip
    proc = lb.exec([sys.executable, "-c", code], timeout_s=90)
    if proc.returncode != 0:
        stop(procs)
        raise RuntimeError(f"the cluster did not start: {proc.stderr[-500:]}")
    return address, procs


def stop(procs: list[subprocess.Popen[bytes]]) -> None:
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    for p in procs:
        try:
            p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(timeout=5)


def print_table(runs: list[Run], lb: labmod.Lab, technique: list[str]) -> None:
    one = next((r for r in runs if r.workers == 1 and not r.error), None)
    single = next((r for r in runs if r.workers == 0 and not r.error), None)
    link = "WAN stage (20 ms +- 5 ms, 0.5 % loss)" if lb.wan else "one veth pair"
    print(f"4,096 addresses x top 100 ports ({' '.join(technique) or '-sT'}), {link}, "
          f"{os.cpu_count()} vCPUs")  # fmt: skip
    print(f"{'run':22}  {'seconds':>8}  {'checked':>9}  {'wrong':>5}  {'shards':>6}  "
          f"{'vs 1 worker':>11}  {'vs single':>9}  {'load 1m':>7}  notes")  # fmt: skip
    for r in runs:
        vs_one = f"{one.seconds / r.seconds:.2f}x" if one and r.seconds and r.workers else "-"
        vs_single = f"{single.seconds / r.seconds:.2f}x" if single and r.seconds else "-"
        notes = (r.error or "") + "; ".join(r.examples)
        shards = str(r.shards or "-")
        print(f"{r.label:22}  {r.seconds:8.2f}  {r.checked:>9,}  {r.wrong:>5}  {shards:>6}  "
              f"{vs_one:>11}  {vs_single:>9}  {r.load:7.2f}  {notes}")  # fmt: skip
    print("speed-up = time of 1 worker (or of the single-process scan) / time of this run")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workers", default="1,2,4", help="worker counts (default 1,2,4)")
    parser.add_argument("--wan", action="store_true", help="over the WAN stage instead")
    parser.add_argument("--timeout-s", type=float, default=600.0, help="bound per run")
    parser.add_argument("technique", nargs="*", help="extra scan options after --, e.g. -sS")
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("bench_dask: needs root (network namespaces)", file=sys.stderr)
        return 2
    counts = [int(w) for w in args.workers.split(",") if w.strip()]
    ports = top_ports()
    scan = [str(PORTSCOPE), "scan", "--json", "--yes", *args.technique,
            "-p", ",".join(map(str, ports)), labmod.NETWORK_V4]  # fmt: skip
    runs: list[Run] = []
    with (
        tempfile.TemporaryDirectory(prefix="bench-dask-") as tmp_name,
        labmod.running(wan=args.wan, prefix="psdkb", network=True) as lb,
    ):
        tmp = Path(tmp_name)
        lb.check_no_default_route()
        res = timed_scan(lb, scan, ports, Run("single process", 0), args.timeout_s)
        runs.append(res)
        print(f"  single process: {res.seconds:.2f} s wrong {res.wrong} {res.error or ''}",
              file=sys.stderr, flush=True)  # fmt: skip
        for w in counts:
            address, procs = start_cluster(lb, w, tmp)
            try:
                res = timed_scan(lb, [*scan, "--dask", address], ports,
                                 Run(f"--dask, {w} worker(s)", w), args.timeout_s)  # fmt: skip
            finally:
                stop(procs)
            runs.append(res)
            print(f"  {w} worker(s): {res.seconds:.2f} s wrong {res.wrong} {res.error or ''}",
                  file=sys.stderr, flush=True)  # fmt: skip
        print_table(runs, lb, args.technique)
    return 0


if __name__ == "__main__":
    sys.exit(main())
