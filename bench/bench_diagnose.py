#!/usr/bin/env python3
"""Diagnose commands against the tools people reach for, timed in one run with hyperfine.

- who: ``portscope who P`` vs ``ss -Hltnp sport = :P``, ``lsof -nP -iTCP:P -sTCP:LISTEN``,
  ``fuser -n tcp P``
- why bind: ``portscope why bind P --addr 127.0.0.1`` vs ``ss -Hltnp sport = :P``
- audit: ``portscope audit`` vs ``ss -Hltunp``
- ephemeral: ``portscope ephemeral`` vs ``ss -Htan | awk (peer) | sort | uniq -c``
- free: ``portscope free`` vs a ``python3 -c`` bind(port 0) one-liner

For each load N (``-n``, default 0 and 10,000 loopback connections from ``loadgen.Load``)
a child process listens on 127.0.0.1:P (a port from ``free_ports``). Ratios are medians
divided by the group's first other tool's median (``2.0x`` = portscope takes twice as long).
Sanity check in the same run: ``portscope who P --json`` names the child's pid, as ``ss -p``
does. Loopback only. Results go to ``bench/results/diagnose-*/`` and ``diagnose-latest.md``.

Usage::

    python bench/bench_diagnose.py [-n 0 -n 10000] [--runs 10] [--warmup 1]
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
sys.path.insert(0, str(HERE))

CHILD = (
    "import socket, sys, time; s = socket.create_server(('127.0.0.1', int(sys.argv[1])));"
    " print('ready', flush=True); time.sleep(600)"
)


BIND0 = "import socket; s = socket.socket(); s.bind(('', 0)); print(s.getsockname()[1])"


def portscope_exe() -> str:
    beside = Path(sys.executable).with_name("portscope")
    return str(beside) if beside.exists() else (shutil.which("portscope") or "portscope")


def groups(port: int) -> dict[str, list[tuple[str, list[str]]]]:
    ps = portscope_exe()
    count = "ss -Htan | awk '{print $5}' | sort | uniq -c | sort -rn | head -20"
    return {
        "who": [
            ("portscope who", [ps, "who", str(port)]),
            ("ss -ltnp sport", ["ss", "-Hltnp", f"sport = :{port}"]),
            ("lsof -iTCP:P", ["lsof", "-nP", f"-iTCP:{port}", "-sTCP:LISTEN"]),
            ("fuser -n tcp P", ["fuser", "-n", "tcp", str(port)]),
        ],
        "why bind": [
            ("portscope why bind", [ps, "why", "bind", str(port), "--addr", "127.0.0.1"]),
            ("ss -ltnp sport", ["ss", "-Hltnp", f"sport = :{port}"]),
        ],
        "audit": [
            ("portscope audit", [ps, "audit"]),
            ("ss -ltunp", ["ss", "-Hltunp"]),
        ],
        "ephemeral": [
            ("portscope ephemeral", [ps, "ephemeral"]),
            ("ss | awk | sort | uniq -c", ["sh", "-c", count]),
        ],
        "free": [
            ("portscope free", [ps, "free"]),
            (
                "python bind(0) one-liner",
                [sys.executable, "-c", BIND0],
            ),
        ],
    }  # fmt: skip


def hyperfine(
    cmds: list[tuple[str, list[str]]], runs: int, warmup: int, out: Path
) -> list[dict[str, Any]]:
    import shlex

    args = ["hyperfine", "--shell=none", "--style=none", f"--runs={runs}", f"--warmup={warmup}"]
    args += ["--ignore-failure", f"--export-json={out}"]
    for name, cmd in cmds:
        args += ["-n", name, shlex.join(cmd)]
    # Byte-code caching on, as for an installed package (the dev shell may switch it off).
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    subprocess.run(args, check=True, stdout=subprocess.DEVNULL, env=env)
    results: list[dict[str, Any]] = json.loads(out.read_text())["results"]
    return results


def tcp_sockets() -> int:
    out = subprocess.run(["ss", "-Htan"], capture_output=True, text=True).stdout
    return len(out.splitlines())


def sanity(port: int, pid: int) -> str:
    done = subprocess.run(
        [portscope_exe(), "who", str(port), "--json"], capture_output=True, text=True
    )
    mine = [h["pid"] for h in json.loads(done.stdout)["holders"]]
    ss = subprocess.run(["ss", "-Hltnp", f"sport = :{port}"], capture_output=True, text=True).stdout
    ss_pids = [int(c.split(",")[0]) for c in ss.split("pid=")[1:]]
    ok = mine == [pid] and ss_pids == [pid]
    return f"who {port}: portscope {mine}, ss {ss_pids}, child {pid}: {'ok' if ok else 'MISMATCH'}"


def measure(n: int, runs: int, warmup: int, outdir: Path) -> tuple[list[list[str]], str]:
    from contextlib import ExitStack

    from portscope.diagnose import free_ports

    rows: list[list[str]] = []
    with ExitStack() as stack:
        if n:
            from loadgen import Load

            stack.enter_context(Load(n))
        port = free_ports(1, address="127.0.0.1")[0].port
        child = subprocess.Popen(
            [sys.executable, "-c", CHILD, str(port)], stdout=subprocess.PIPE, text=True
        )
        stack.callback(child.wait)
        stack.callback(child.kill)
        assert child.stdout is not None and child.stdout.readline() == "ready\n"
        check = sanity(port, child.pid)
        for group, cmds in groups(port).items():
            # Counted per group: other programs' sockets come and go during a run.
            tcp = tcp_sockets()
            res = hyperfine(cmds, runs, warmup, outdir / f"{group.replace(' ', '_')}-{n}.json")
            base = res[1]["median"]
            for r in res:
                ratio = r["median"] / base if base else float("nan")
                rows.append(
                    [
                        group,
                        r["command"],
                        f"{n:,}",
                        f"{tcp:,}",
                        f"{r['median'] * 1000:.1f}",
                        f"{r['min'] * 1000:.1f}",
                        f"{ratio:.2f}x",
                    ]
                )
    return rows, check


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "-n", type=int, action="append", help="loopback connections held (repeatable)"
    )
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=1)
    args = parser.parse_args()
    loads = args.n or [0, 10_000]
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y%m%dT%H%M%SZ")
    outdir = RESULTS / f"diagnose-{stamp}"
    outdir.mkdir(parents=True, exist_ok=True)
    head = ["group", "tool", "load N", "TCP sockets", "median ms", "min ms", "vs other tool"]
    table: list[list[str]] = []
    checks = []
    for n in loads:
        rows, check = measure(n, args.runs, args.warmup, outdir)
        table += rows
        checks.append(check)
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(r) + " |" for r in table]
    lines += ["", *(f"- {c}" for c in checks)]
    text = "\n".join(lines) + "\n"
    print(text)
    (outdir / "result.md").write_text(text)
    (RESULTS / "diagnose-latest.md").write_text(text)
    return 0 if all(c.endswith("ok") for c in checks) else 1


if __name__ == "__main__":
    with tempfile.TemporaryDirectory():
        sys.exit(main())
