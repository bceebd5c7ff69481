#!/usr/bin/env python3
"""``who PORT`` at scale: N connections accepted on one port, against ss and lsof.

``loadgen.Load(N, port=P)`` starts server processes that all listen on port P (each on its
own 127.10.0.x address) and client processes that connect to them, so P carries N
accepted connections (N + servers sockets with local port P; the clients' sockets have
ephemeral local ports). Timed as whole processes, ``--runs`` rounds, medians:

* ``portscope who P``                   (every socket on P, grouped by owning process)
* ``portscope who P --json``            (the same, every socket in the document)
* ``ss -Htanp sport = :P``              (the same sockets with their processes)
* ``lsof -nP -iTCP:P`` (``--lsof``)     (slow at this size: off by default)
* ``--old-src DIR``: the same ``who`` from another checkout's ``src`` (before/after; a
  copy of it in a temporary directory is what runs)

Goal (issue 18): ``who`` linear in the connections, under 1 s at 100,000. Sanity check in
the same run: the JSON names every server process and counts N + servers sockets.
Loopback only. The sources are byte-compiled first (``compileall``), as ``pip install``
does for an installed package (this environment sets PYTHONDONTWRITEBYTECODE, so each
run would otherwise compile portscope anew); the load average is printed beside each size.

Usage (as root, from the venv)::

    python bench/bench_who.py                      # N = 10,000 and 100,000
    python bench/bench_who.py -n 100000 --runs 5 --old-src /work/main/src
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from loadgen import SERVER_NET, Load  # noqa: E402

OLD_TIMEOUT_S = 120.0


def _free_port() -> int:
    """A port below the ephemeral range (no client may draw it as its source port) that
    is free on 127.10.0.1, the first server address."""
    for port in range(21_000, 22_000):
        with socket.socket() as s:
            try:
                s.bind((SERVER_NET[:-1] + "1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port in 21000-21999")


def _time(argv: list[str], env: dict[str, str], timeout_s: float) -> tuple[float, bytes]:
    started = time.perf_counter()
    done = subprocess.run(argv, capture_output=True, env=env, timeout=timeout_s, check=False)
    took = time.perf_counter() - started
    if done.returncode not in (0, 1):
        raise RuntimeError(f"{argv[:3]} exited {done.returncode}: {done.stderr[-300:]!r}")
    return took, done.stdout


def measure(n: int, runs: int, lsof: bool, old_src: str | None) -> list[tuple[str, float]]:
    port = _free_port()
    tools: list[tuple[str, list[str], dict[str, str]]] = [
        ("portscope who P", ["portscope", "who", str(port)], dict(os.environ)),
        ("portscope who P --json", ["portscope", "who", str(port), "--json"], dict(os.environ)),
        ("ss -Htanp sport = :P", ["ss", "-Htanp", f"sport = :{port}"], dict(os.environ)),
    ]
    if lsof and shutil.which("lsof"):
        tools.append(("lsof -nP -iTCP:P", ["lsof", "-nP", f"-iTCP:{port}"], dict(os.environ)))
    if old_src:
        old_env = dict(os.environ, PYTHONPATH=old_src)
        argv = [sys.executable, "-m", "portscope", "who", str(port)]
        tools.append(("who (old src)", argv, old_env))
    with Load(n, port=port) as load:
        servers = load.pids[: load.n_servers]
        _, out = _time(tools[1][1], tools[1][2], 900)
        doc = json.loads(out)
        pids = {h["pid"] for h in doc["holders"]}
        count = sum(len(h["sockets"]) for h in doc["holders"])
        assert set(servers) <= pids, ("server pids missing", servers, pids)
        assert count == n + len(servers), (count, n, len(servers))
        results: dict[str, list[float]] = {name: [] for name, _, _ in tools}
        for _ in range(runs):
            for name, argv, env in tools:
                if name == "who (old src)" and results[name] and results[name][0] > 30:
                    continue  # quadratic: one run is enough
                try:
                    took, _ = _time(argv, env, OLD_TIMEOUT_S)
                except subprocess.TimeoutExpired:
                    took = float("inf")
                results[name].append(took)
    return [(name, statistics.median(times)) for name, times in results.items()]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("-n", action="append", type=int, help="connections on the port")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--lsof", action="store_true", help="also time lsof (slow)")
    parser.add_argument("--old-src", help="another checkout's src/ to time beside this one")
    args = parser.parse_args()
    sizes = args.n or [10_000, 100_000]
    import compileall
    import tempfile

    import portscope

    if args.old_src:  # a copy: byte-compiling must not write into the other checkout
        copy = Path(tempfile.mkdtemp(prefix="bench-who-")) / "src"
        shutil.copytree(args.old_src, copy, ignore=shutil.ignore_patterns("__pycache__"))
        args.old_src = str(copy)
    for src in {str(Path(portscope.__file__).parent), *([args.old_src] if args.old_src else [])}:
        compileall.compile_dir(src, quiet=1)
    print("| N | tool | median s | vs ss |")
    print("|---|---|---|---|")
    ok = True
    for n in sizes:
        rows = measure(n, args.runs, args.lsof, args.old_src)
        print(f"| {n:,} | load average {' '.join(f'{x:.2f}' for x in os.getloadavg())} | | |")
        base = dict(rows)["ss -Htanp sport = :P"]
        for name, median in rows:
            shown = "timeout" if median == float("inf") else f"{median:.3f}"
            ratio = "-" if median == float("inf") else f"{median / base:.2f}x"
            print(f"| {n:,} | {name} | {shown} | {ratio} |", flush=True)
        who_s = dict(rows)["portscope who P"]
        if n >= 100_000 and who_s >= 1.0:
            ok = False
    print("goal: who at 100,000 connections under 1 s:", "met" if ok else "NOT met")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
