#!/usr/bin/env python3
"""CLI start-up time: ``portscope --help`` and ``portscope lookup 443`` against ``python -c pass``.

The baseline is the interpreter the ``portscope`` console script runs with (its shebang), so
the ratio is what portscope adds on top of starting Python. Goals: ``--help`` well under
0.3 s; ``lookup 443`` within 2x of ``python -c pass``. Commands that do not work here yet
(``lookup`` lands separately) are skipped with a note.

Byte-code writing is switched on for the timed processes (``PYTHONDONTWRITEBYTECODE`` is
removed from their environment) and one untimed run writes the ``.pyc`` files first, as an
installed package has them. Also lists, from ``python -X importtime``, the slowest imports of
each command and whether a heavy module (asyncio, sqlite3, rich, psutil ...) was loaded.

Usage::

    python bench/bench_startup.py [--runs 40]
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import shlex
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
HEAVY = ("asyncio", "sqlite3", "rich", "psutil", "ssl", "httpx", "textual", "email", "decimal")


def child_env() -> dict[str, str]:
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def portscope_exe() -> str:
    beside = Path(sys.executable).with_name("portscope")
    return str(beside) if beside.exists() else (shutil.which("portscope") or "portscope")


def interpreter_of(script: str) -> str:
    """The interpreter named in a console script's ``#!`` line (else this one)."""
    try:
        with open(script, "rb") as f:
            first = f.readline().decode().strip()
    except OSError:
        return sys.executable
    if first.startswith("#!"):
        parts = first[2:].split()
        if parts and Path(parts[0]).name != "env":
            return parts[0]
    return sys.executable


def time_cmd(argv: list[str], runs: int, warmup: int, outdir: Path, slug: str) -> list[float]:
    """Wall-clock seconds of ``runs`` executions (hyperfine when present, else perf_counter)."""
    env = child_env()
    if shutil.which("hyperfine"):
        export = outdir / f"{slug}.hyperfine.json"
        cmd = [
            "hyperfine",
            "--shell=none",
            "--style=none",
            f"--runs={runs}",
            f"--warmup={warmup}",
            f"--export-json={export}",
            shlex.join(argv),
        ]
        subprocess.run(cmd, check=True, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        return [float(t) for t in json.loads(export.read_text())["results"][0]["times"]]
    times = []
    for i in range(warmup + runs):
        started = time.perf_counter()
        subprocess.run(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if i >= warmup:
            times.append(time.perf_counter() - started)
    return times


def import_profile(python: str, args: list[str], top: int = 6) -> dict[str, Any]:
    """Slowest top-level imports (cumulative microseconds) and heavy modules loaded."""
    proc = subprocess.run(
        [python, "-X", "importtime", "-m", "portscope", *args],
        env=child_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    rows: list[tuple[int, str]] = []
    loaded: set[str] = set()
    for line in proc.stderr.splitlines():
        if not line.startswith("import time:") or "|" not in line:
            continue
        _, cumulative, name = line.split("|", 2)
        if not cumulative.strip().isdigit():
            continue
        loaded.add(name.strip().split(".")[0])
        if not name.startswith("  "):  # one leading space: imported at top level
            rows.append((int(cumulative), name.strip()))
    rows.sort(reverse=True)
    return {
        "slowest_top_level_us": [{"module": m, "cumulative_us": us} for us, m in rows[:top]],
        "heavy_loaded": sorted(m for m in HEAVY if m in loaded),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--runs", type=int, default=40, help="timed runs per command (40)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed runs first (3)")
    args = parser.parse_args(argv)

    exe = portscope_exe()
    python = interpreter_of(exe)
    commands = {
        "python -c pass": [python, "-c", "pass"],
        "portscope --version": [exe, "--version"],
        "portscope --help": [exe, "--help"],
        "portscope lookup 443": [exe, "lookup", "443"],
        "portscope lookup ssh --json": [exe, "lookup", "ssh", "--json"],
    }
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y%m%dT%H%M%SZ")
    outdir = RESULTS / f"startup-{stamp}"
    outdir.mkdir(parents=True, exist_ok=True)

    results: dict[str, dict[str, Any]] = {}
    skipped: dict[str, str] = {}
    for name, cmd in commands.items():
        # One run with byte-code writing on: it also tells whether the command works here.
        probe = subprocess.run(cmd, env=child_env(), capture_output=True, text=True)
        if probe.returncode != 0:
            err = (probe.stderr.strip().splitlines() or ["?"])[-1][:120]
            skipped[name] = f"exit {probe.returncode}: {err}"
            print(f"skip {name}: {skipped[name]}", file=sys.stderr)
            continue
        slug = "".join(c if c.isalnum() else "_" for c in name).strip("_")
        times = time_cmd(cmd, args.runs, args.warmup, outdir, slug)
        results[name] = {
            "argv": cmd,
            "runs": len(times),
            "median_s": statistics.median(times),
            "min_s": min(times),
            "mean_s": statistics.fmean(times),
            "stddev_s": statistics.stdev(times) if len(times) > 1 else None,
        }
        if name.startswith("portscope"):
            results[name]["imports"] = import_profile(python, cmd[1:])

    base = results["python -c pass"]["median_s"]
    base_min = results["python -c pass"]["min_s"]
    lines = [
        f"Interpreter: {python} (Python {sys.version.split()[0]}), {os.cpu_count()} CPUs; "
        f"{args.runs} runs each after {args.warmup} warm-up runs.",
        "",
        "| command | median ms | min ms | vs `python -c pass` (median) | (min) |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, r in results.items():
        r["ratio_vs_python"] = r["median_s"] / base
        r["min_ratio_vs_python"] = r["min_s"] / base_min
        lines.append(
            f"| `{name}` | {r['median_s'] * 1000:.1f} | {r['min_s'] * 1000:.1f} | "
            f"{r['ratio_vs_python']:.2f}x | {r['min_ratio_vs_python']:.2f}x |"
        )
    checks = []
    if "portscope --help" in results:
        s = results["portscope --help"]["median_s"]
        checks.append(("portscope --help < 0.3 s", f"{s * 1000:.0f} ms", s < 0.3))
    if "portscope lookup 443" in results:
        ratio = results["portscope lookup 443"]["ratio_vs_python"]
        checks.append(("portscope lookup 443 <= 2x python -c pass", f"{ratio:.2f}x", ratio <= 2))
    if checks:
        lines += ["", "| goal | measured | result |", "|---|---:|---|"]
        lines += [f"| {g} | {m} | {'PASS' if ok else 'FAIL'} |" for g, m, ok in checks]
    lines += ["", "Slowest top-level imports (cumulative, from `python -X importtime`):", ""]
    for name, r in results.items():
        if "imports" in r:
            slow = ", ".join(
                f"{x['module']} {x['cumulative_us'] / 1000:.1f} ms"
                for x in r["imports"]["slowest_top_level_us"]
            )
            heavy = ", ".join(r["imports"]["heavy_loaded"]) or "none"
            lines.append(f"- `{name}`: {slow}; heavy modules loaded: {heavy}")
    md = "\n".join(lines) + "\n"
    data = {"when": stamp, "results": results, "skipped": skipped, "checks": checks}
    (outdir / "result.json").write_text(json.dumps(data, indent=2) + "\n")
    (outdir / "result.md").write_text(md)
    shutil.copyfile(outdir / "result.md", RESULTS / "startup-latest.md")
    print(md)
    for name, why in skipped.items():
        print(f"skipped {name}: {why}")
    return 0 if all(ok for _, _, ok in checks) else 1


if __name__ == "__main__":
    sys.exit(main())
