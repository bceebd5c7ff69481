#!/usr/bin/env python3
"""Scrape cost of ``portscope exporter``: one scrape at 10,000 connections and at
200,000 sockets, beside ``ss -tan`` (the kernel dump alone) in the same run.

Run: ``python bench/bench_exporter.py [--runs N] [--connections 10000 100000]
[--old-src /work/main/src]`` (the old collector's scrape in the same run, for before/after).
Holds the connections with bench/loadgen.py (loopback only: 127.10.x.y / 127.20.x.y),
then times ``SocketCollector.collect()`` in-process (what one HTTP scrape runs, without
the HTTP round trip) and ``ss -tan`` as a subprocess. Goals (issue 14): a scrape under
50 ms at 10,000 connections and under 1 s at 200,000 sockets; prints medians, the ratio
to ``ss -tan`` and whether each goal is met. 100,000 connections are 200,000 sockets.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from loadgen import Load

GOALS_S = {10_000: 0.05, 100_000: 1.0}

# one scrape timed in another interpreter: ``--old-src`` (another checkout's collector)
_TIMER = """
import statistics, sys, time
from prometheus_client import CollectorRegistry, generate_latest
from portscope.exporter import SocketCollector
registry = CollectorRegistry(auto_describe=False)
registry.register(SocketCollector())
generate_latest(registry)
times = []
for _ in range(int(sys.argv[1])):
    start = time.perf_counter()
    generate_latest(registry)
    times.append(time.perf_counter() - start)
print(statistics.median(times))
"""


def _old_scrape(old_src: str, runs: int) -> float:
    env = dict(os.environ, PYTHONPATH=old_src)
    done = subprocess.run(
        [sys.executable, "-c", _TIMER, str(runs)],
        capture_output=True, text=True, env=env, timeout=600, check=True,
    )  # fmt: skip
    return float(done.stdout.split()[-1])


def _median(fn, runs: int) -> float:  # type: ignore[no-untyped-def]
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=9)
    parser.add_argument("--connections", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--old-src", help="another checkout's src/: its scrape in the same run")
    args = parser.parse_args()
    from prometheus_client import CollectorRegistry, generate_latest

    from portscope.exporter import SocketCollector

    registry = CollectorRegistry(auto_describe=False)
    registry.register(SocketCollector())
    old = " old scrape ms" if args.old_src else ""
    print(f"{'connections':>11} {'sockets':>8} {'scrape ms':>10} {'ss -tan ms':>11} "
          f"{'ratio':>6}{old}  goal")  # fmt: skip
    missed = 0
    for n in args.connections:
        with Load(n):
            generate_latest(registry)  # warm: registry cache, imports
            scrape = _median(lambda: generate_latest(registry), args.runs)
            ss = _median(
                lambda: subprocess.run(["ss", "-tan"], stdout=subprocess.DEVNULL, check=True),
                args.runs,
            )
            sockets = int(subprocess.run(
                ["ss", "-Htan"], capture_output=True, text=True, check=True
            ).stdout.count("\n"))  # fmt: skip
            before = _old_scrape(args.old_src, args.runs) if args.old_src else None
        load = " ".join(f"{x:.2f}" for x in os.getloadavg())
        goal = GOALS_S.get(n)
        verdict = "" if goal is None else ("met" if scrape < goal else "MISSED")
        missed += verdict == "MISSED"
        print(
            f"{n:>11,} {sockets:>8,} {scrape * 1000:>10.1f} {ss * 1000:>11.1f} "
            f"{scrape / ss:>6.2f}"
            + (f" {before * 1000:>10.1f} ({before / ss:.2f}x)" if before is not None else "")
            + f"  {f'< {goal:g} s ' if goal else ''}{verdict}  (load {load})"
        )
    return 1 if missed else 0


if __name__ == "__main__":
    raise SystemExit(main())
