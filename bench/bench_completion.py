#!/usr/bin/env python3
"""Tab-press cost: ``portscope completion --values KIND`` against ``python -c pass``.

Run: ``python bench/bench_completion.py [--runs N] [--listeners N]``. Needs hyperfine.
Opens N loopback listeners first (so ``ports`` decodes a real dump), then times each kind
of value the completion scripts ask for. Goal (issue 19): every kind under 100 ms wall
time, so Tab feels instant; the script prints the mean, the ratio to the interpreter's
own start-up and whether the goal is met. Byte-code writing is on (users have .pyc).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

KINDS = ("ports", "netns", "services", "commands")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--listeners", type=int, default=1000)
    args = parser.parse_args()
    if shutil.which("hyperfine") is None:
        print("bench_completion: needs hyperfine (apt-get install hyperfine)", file=sys.stderr)
        return 2
    portscope = str(Path(sys.executable).parent / "portscope")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    listeners = []
    try:
        for _ in range(args.listeners):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            s.listen()
            listeners.append(s)
        commands = [f"{sys.executable} -c pass"] + [
            f"{portscope} completion --values {kind}" for kind in KINDS
        ]
        subprocess.run([*commands[1].split()], env=env, capture_output=True, check=True)
        with tempfile.NamedTemporaryFile(suffix=".json") as out:
            subprocess.run(
                ["hyperfine", "-N", "-w", "3", "-r", str(args.runs), "--export-json", out.name,
                 *commands],
                env=env, capture_output=True, check=True,
            )  # fmt: skip
            results = json.loads(Path(out.name).read_text())["results"]
    finally:
        for s in listeners:
            s.close()
    base = results[0]["mean"]
    print(f"{'command':<44} {'mean ms':>8} {'x python':>9}  goal <100 ms")
    worst = 0.0
    for result in results:
        mean = result["mean"]
        name = result["command"].replace(str(Path(portscope).parent) + "/", "")
        name = name.replace(sys.executable, "python")
        goal = "" if result is results[0] else ("met" if mean < 0.1 else "MISSED")
        if result is not results[0]:
            worst = max(worst, mean)
        print(f"{name:<44} {mean * 1000:8.1f} {mean / base:9.2f}  {goal}")
    print(f"listeners open: {args.listeners}; slowest kind {worst * 1000:.1f} ms")
    return 0 if worst < 0.1 else 1


if __name__ == "__main__":
    raise SystemExit(main())
