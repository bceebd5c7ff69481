#!/usr/bin/env python3
"""Socket-table benchmark: portscope against ss, netstat, lsof and psutil under load.

For each N (default 1,000, 10,000 and 100,000 loopback TCP connections, i.e. 2N sockets) it
starts ``loadgen.Load(N)``, times whole processes with hyperfine (stdout to a file, no shell),
checks that portscope's table matches ``ss`` in the same run, stops the load, and at the end
prints one table (tool, N, seconds, ratio vs ``ss -tan``) and the goal checks:

* ``portscope ls -a -n --json`` (no owners)      <= ``ss -tan``
* ``portscope ls -a -n -p --json`` (owners)      <= 2.5 x ``ss -tan``
* ``portscope --json`` (default listening view)  <= ``ss -tulpn``

Raw results (hyperfine JSON, the table as JSON and markdown) go to ``bench/results/``.

Usage (as root, from the venv so ``portscope`` and ``psutil`` resolve)::

    python bench/bench_sockets.py            # 1k, 10k, 100k (about 5 minutes)
    python bench/bench_sockets.py --quick    # 1k, 10k only (under a minute)
    python bench/bench_sockets.py -n 100000 --runs 10
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime
import ipaddress
import json
import os
import platform
import shlex
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from loadgen import CLIENT_NET, SERVER_NET, Load

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
REPO = HERE.parent
BASE = "ss -tan"  # the reference every ratio is taken against
SLOW_AT = 100_000  # TCP sockets in the table from which slow tools run once (ss -tanp: ~30 s)
LOAD_NETS = (
    ipaddress.ip_network(f"{SERVER_NET}/16"),
    ipaddress.ip_network(f"{CLIENT_NET}/16"),
)


@dataclasses.dataclass(frozen=True)
class Tool:
    """One command to time: a display name, its argv, and whether it is slow at 100k."""

    name: str
    argv: tuple[str, ...]
    slow: bool = False
    portscope: bool = False


@dataclasses.dataclass
class Timing:
    tool: str
    n: int
    runs: int
    median_s: float
    min_s: float
    mean_s: float
    stddev_s: float | None
    exit_codes: list[int]


def _portscope_exe() -> str:
    beside = Path(sys.executable).with_name("portscope")
    return str(beside) if beside.exists() else (shutil.which("portscope") or "portscope")


PSUTIL_CODE = "import psutil; print(len(psutil.net_connections('tcp')))"


def all_tools() -> list[Tool]:
    ps = _portscope_exe()
    return [
        Tool("portscope ls -a -n --json", (ps, "ls", "-a", "-n", "--json"), portscope=True),
        Tool(
            "portscope ls -a -n -p --json", (ps, "ls", "-a", "-n", "-p", "--json"), portscope=True
        ),
        Tool("portscope --json", (ps, "--json"), portscope=True),
        Tool("ss -tan", ("ss", "-tan")),
        Tool("ss -tanp", ("ss", "-tanp"), slow=True),
        Tool("ss -tulpn", ("ss", "-tulpn")),
        Tool("netstat -tanp", ("netstat", "-tanp"), slow=True),
        Tool("lsof -i -n -P", ("lsof", "-i", "-n", "-P")),
        Tool("psutil net_connections('tcp')", (sys.executable, "-c", PSUTIL_CODE)),
    ]


# --------------------------------------------------------------------------- timing


def _run_to_file(argv: tuple[str, ...], out: Path, timeout_s: float) -> tuple[float, int]:
    with out.open("wb") as f:
        started = time.perf_counter()
        proc = subprocess.run(argv, stdout=f, stderr=subprocess.DEVNULL, timeout=timeout_s)
        return time.perf_counter() - started, proc.returncode


def _slug(name: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in name).strip("_")


def _timing(tool: Tool, n: int, times: list[float], codes: list[int]) -> Timing:
    return Timing(
        tool=tool.name,
        n=n,
        runs=len(times),
        median_s=statistics.median(times),
        min_s=min(times),
        mean_s=statistics.fmean(times),
        stddev_s=statistics.stdev(times) if len(times) > 1 else None,
        exit_codes=codes,
    )


def time_tool(tool: Tool, n: int, runs: int, warmup: int, outdir: Path) -> Timing:
    """Time ``tool`` with hyperfine: ``runs`` runs after ``warmup`` ones, stdout to a file."""
    slug = _slug(tool.name)
    export = outdir / f"{slug}.hyperfine.json"
    cmd = [
        "hyperfine",
        "--shell=none",
        "--style=none",
        "--ignore-failure",
        f"--runs={runs}",
        f"--warmup={warmup}",
        f"--output={outdir / f'{slug}.out'}",
        f"--export-json={export}",
        "--command-name",
        tool.name,
        shlex.join(tool.argv),
    ]
    with (outdir / f"{slug}.hyperfine.log").open("w") as log:
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=log)
    result = json.loads(export.read_text())["results"][0]
    times = [float(t) for t in result["times"]]
    codes = [int(c) for c in result.get("exit_codes", [])]
    return _timing(tool, n, times, codes)


def time_interleaved(plan: list[tuple[Tool, int, int]], n: int, outdir: Path) -> list[Timing]:
    """Time every tool in rounds (tool A, B, C, then A, B, C ...) with ``perf_counter``.

    On a shared machine a burst of other work then slows one run of each tool rather than
    every run of one tool, so the ratios stay fair. ``plan``: (tool, runs, warmup).
    """
    times: dict[str, list[float]] = {t.name: [] for t, _, _ in plan}
    codes: dict[str, list[int]] = {t.name: [] for t, _, _ in plan}
    for rnd in range(max((w for _, _, w in plan), default=0)):
        for tool, _, warmup in plan:
            if rnd < warmup:
                _run_to_file(tool.argv, outdir / f"{_slug(tool.name)}.out", 600)
    for rnd in range(max((r for _, r, _ in plan), default=0)):
        for tool, runs, _ in plan:
            if rnd < runs:
                elapsed, code = _run_to_file(tool.argv, outdir / f"{_slug(tool.name)}.out", 600)
                times[tool.name].append(elapsed)
                codes[tool.name].append(code)
    return [_timing(t, n, times[t.name], codes[t.name]) for t, _, _ in plan]


# --------------------------------------------------------------------------- sanity


def _sockets_from_json(text: str) -> list[dict[str, Any]]:
    """portscope's JSON output as a list of socket objects (a list, a table, or JSON lines)."""
    try:
        data: Any = json.loads(text)
    except json.JSONDecodeError:
        data = [json.loads(line) for line in text.splitlines() if line.strip()]
    if isinstance(data, dict):
        data = data.get("sockets", data.get("listeners", [data]))
    return [d for d in data if isinstance(d, dict)]


def _in_load(address: str | None) -> bool:
    if not address:
        return False
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in net for net in LOAD_NETS)


def _ss_tcp_count() -> int:
    out = subprocess.run(["ss", "-tanH"], capture_output=True, text=True, check=True).stdout
    return sum(1 for line in out.splitlines() if line.strip())


def sanity(tools: dict[str, Tool], load: Load | None, n: int, outdir: Path) -> dict[str, Any]:
    """Compare portscope's TCP socket count with ``ss -tanH`` taken right after it.

    Also checks that every load socket is reported and, with owners, owned by a load process,
    and that the default view shows the load's listeners.
    """
    report: dict[str, Any] = {"n": n}
    pids = set(load.pids) if load else set()
    listeners = {(h, p) for h, p in load.listeners} if load else set()
    tool = tools.get("portscope ls -a -n --json")
    if tool:
        text = subprocess.run(tool.argv, capture_output=True, text=True).stdout
        ss_count = _ss_tcp_count()
        socks = _sockets_from_json(text)
        tcp = [s for s in socks if s.get("proto") == "tcp"]
        load_socks = [s for s in tcp if _in_load((s.get("local") or {}).get("address"))]
        report.update(
            portscope_tcp=len(tcp),
            ss_tcp=ss_count,
            diff=len(tcp) - ss_count,
            load_sockets_seen=len(load_socks),
            load_sockets_expected=2 * n + len(listeners),
        )
        (outdir / "sanity-no-owners.json").write_text(text)
    tool = tools.get("portscope ls -a -n -p --json")
    if tool and load:
        text = subprocess.run(tool.argv, capture_output=True, text=True).stdout
        socks = _sockets_from_json(text)
        load_socks = [
            s
            for s in socks
            if s.get("proto") == "tcp" and _in_load((s.get("local") or {}).get("address"))
        ]
        owned = [
            s for s in load_socks if any(o.get("pid") in pids for o in (s.get("owners") or ()))
        ]
        report.update(load_sockets_owned=len(owned), load_sockets_with_owner_field=len(load_socks))
    tool = tools.get("portscope --json")
    if tool and load:
        text = subprocess.run(tool.argv, capture_output=True, text=True).stdout
        socks = _sockets_from_json(text)
        seen = {
            ((s.get("local") or {}).get("address"), (s.get("local") or {}).get("port"))
            for s in socks
        }
        report.update(default_view_listeners_seen=len(listeners & seen), listeners=len(listeners))
    return report


def sanity_ok(rep: dict[str, Any]) -> bool:
    if "portscope_tcp" not in rep:
        return True
    tolerance = max(5, rep["ss_tcp"] // 1000)  # other sockets come and go between the two
    ok = bool(abs(rep["diff"]) <= tolerance)
    ok = ok and rep["load_sockets_seen"] == rep["load_sockets_expected"]
    if "load_sockets_owned" in rep:
        ok = ok and rep["load_sockets_owned"] == rep["load_sockets_expected"]
    if "default_view_listeners_seen" in rep:
        ok = ok and rep["default_view_listeners_seen"] == rep["listeners"]
    return ok


# --------------------------------------------------------------------------- report


def machine() -> dict[str, Any]:
    def first_line(argv: list[str]) -> str | None:
        try:
            out = subprocess.run(argv, capture_output=True, text=True, timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            return None
        text = (out.stdout or out.stderr).strip()
        return text.splitlines()[0] if text else None

    cpu = None
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return {
        "cpus": os.cpu_count(),
        "cpu_model": cpu,
        "memory_gib": round(mem_gib, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "ss": first_line(["ss", "-V"]),
        "hyperfine": first_line(["hyperfine", "--version"]),
        "portscope": first_line([_portscope_exe(), "--version"]),
        "psutil": first_line([sys.executable, "-c", "import psutil; print(psutil.__version__)"]),
        "git": first_line(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"]),
    }


def _fmt_n(n: int) -> str:
    return f"{n // 1000}k" if n % 1000 == 0 and n >= 1000 else str(n)


def table_rows(timings: list[Timing], table: dict[int, int]) -> list[dict[str, Any]]:
    base = {t.n: t.median_s for t in timings if t.tool == BASE}
    base_min = {t.n: t.min_s for t in timings if t.tool == BASE}
    rows = []
    for t in timings:
        ratio = t.median_s / base[t.n] if base.get(t.n) else None
        min_ratio = t.min_s / base_min[t.n] if base_min.get(t.n) else None
        rows.append(
            {
                "tool": t.tool,
                "connections": t.n,
                "sockets": 2 * t.n,
                "tcp_sockets_in_table": table.get(t.n),
                "runs": t.runs,
                "median_s": t.median_s,
                "min_s": t.min_s,
                "ratio_vs_ss_tan": ratio,
                "min_ratio_vs_ss_tan": min_ratio,
                "failed_runs": sum(1 for c in t.exit_codes if c != 0),
            }
        )
    return rows


GOAL_AT = 150_000  # TCP sockets in the table: the goals are set at 200,000 sockets


def goals(timings: list[Timing], table: dict[int, int]) -> list[dict[str, Any]]:
    """The goal checks; below ``GOAL_AT`` sockets they are shown for information only
    (a Python process's ~50 ms start-up is most of the time there), ``ok`` is None."""
    by = {(t.tool, t.n): t.median_s for t in timings}
    by_min = {(t.tool, t.n): t.min_s for t in timings}
    checks = [
        ("portscope ls -a -n --json", "ss -tan", 1.0, "without owners <= ss -tan"),
        ("portscope ls -a -n -p --json", "ss -tan", 2.5, "with owners <= 2.5x ss -tan"),
        ("portscope --json", "ss -tulpn", 1.0, "default view <= ss -tulpn"),
    ]
    out = []
    for n in sorted({t.n for t in timings}):
        for tool, ref, factor, label in checks:
            if (tool, n) in by and (ref, n) in by:
                ratio = by[(tool, n)] / by[(ref, n)]
                out.append(
                    {
                        "goal": label,
                        "connections": n,
                        "tool_s": by[(tool, n)],
                        "ref_s": by[(ref, n)],
                        "ratio": ratio,
                        "min_ratio": by_min[(tool, n)] / by_min[(ref, n)],
                        "limit": factor,
                        "ok": ratio <= factor if table.get(n, 0) >= GOAL_AT else None,
                    }
                )
    return out


def markdown(rows: list[dict[str, Any]], checks: list[dict[str, Any]], info: dict[str, Any]) -> str:
    lines = [
        f"Machine: {info['cpus']} CPUs ({info['cpu_model']}), {info['memory_gib']} GiB, "
        f"Linux {info['kernel']}, Python {info['python']}; {info['ss']}; portscope "
        f"{info['portscope']} at {info['git']}.",
        "",
        "| tool | connections (load sockets) | TCP sockets in table | runs | median s | min s "
        "| vs `ss -tan` (medians) | (mins) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        ratio = f"{r['ratio_vs_ss_tan']:.2f}x" if r["ratio_vs_ss_tan"] is not None else "-"
        mins = r["min_ratio_vs_ss_tan"]
        ratio += " | " + (f"{mins:.2f}x" if mins is not None else "-")
        fail = f" ({r['failed_runs']} failed)" if r["failed_runs"] else ""
        lines.append(
            f"| `{r['tool']}`{fail} | {_fmt_n(r['connections'])} ({_fmt_n(r['sockets'])}) | "
            f"{r['tcp_sockets_in_table']} | {r['runs']} | {r['median_s']:.3f} | "
            f"{r['min_s']:.3f} | {ratio} |"
        )
    if checks:
        lines += [
            "",
            f"Goals (set at 200,000 sockets; 'info' below {GOAL_AT:,} sockets in the table):",
            "",
            "| goal | connections | portscope s | reference s | ratio (medians) | (mins) "
            "| result |",
        ]
        lines += ["|---|---:|---:|---:|---:|---:|---|"]
        for c in checks:
            lines.append(
                f"| {c['goal']} | {_fmt_n(c['connections'])} | {c['tool_s']:.3f} | "
                f"{c['ref_s']:.3f} | {c['ratio']:.2f} (limit {c['limit']}) | "
                f"{c['min_ratio']:.2f} | "
                f"{'info' if c['ok'] is None else 'PASS' if c['ok'] else 'FAIL'} |"
            )
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- main


def _wait_for_table_below(limit: int, timeout_s: float = 30.0) -> int:
    deadline = time.monotonic() + timeout_s
    count = _ss_tcp_count()
    while count > limit and time.monotonic() < deadline:
        time.sleep(0.5)
        count = _ss_tcp_count()
    return count


def _usable(tool: Tool) -> str | None:
    """None when the tool runs here, else why not."""
    if shutil.which(tool.argv[0]) is None and not Path(tool.argv[0]).exists():
        return f"{tool.argv[0]} not installed"
    try:
        proc = subprocess.run(
            tool.argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=60, text=True
        )
    except subprocess.TimeoutExpired:
        return "took over 60 s with no load"
    if proc.returncode != 0 and not tool.name.startswith("lsof"):
        err = (proc.stderr.strip().splitlines() or ["?"])[-1]
        return f"exit {proc.returncode}: {err[:120]}"
    return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "-n",
        "--connections",
        type=int,
        action="append",
        help="N connections (2N sockets); repeatable; default 1000, 10000, 100000",
    )
    parser.add_argument("--quick", action="store_true", help="only N = 1000 and 10000")
    parser.add_argument("--runs", type=int, default=5, help="timed runs per tool (default 5)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed runs first (default 1)")
    parser.add_argument("--only", action="append", help="time only tools whose name contains this")
    parser.add_argument("--no-portscope", action="store_true", help="time the other tools only")
    parser.add_argument(
        "--timer",
        choices=("hyperfine", "interleaved"),
        default=None,
        help="hyperfine per tool (default), or our own timer in rounds over all tools",
    )
    args = parser.parse_args(argv)
    ns = args.connections or ([1000, 10_000] if args.quick else [1000, 10_000, 100_000])
    use_hyperfine = (args.timer or "hyperfine") == "hyperfine" and bool(shutil.which("hyperfine"))
    # Installed packages have their .pyc files; time that, not byte-compiling on every run.
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    if os.geteuid() != 0:
        print("note: not root; owner columns (-p) will be partial for every tool", file=sys.stderr)

    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y%m%dT%H%M%SZ")
    rundir = RESULTS / f"sockets-{stamp}"
    rundir.mkdir(parents=True, exist_ok=True)

    tools: dict[str, Tool] = {}
    skipped: dict[str, str] = {}
    for tool in all_tools():
        if args.no_portscope and tool.portscope:
            continue
        if args.only and not any(o in tool.name for o in args.only) and tool.name != BASE:
            continue
        why = _usable(tool)
        if why:
            skipped[tool.name] = why
            print(f"skip {tool.name}: {why}", file=sys.stderr)
        else:
            tools[tool.name] = tool
    info = machine()
    print(f"machine: {json.dumps(info)}", flush=True)

    timings: list[Timing] = []
    sanities: list[dict[str, Any]] = []
    setups: dict[int, float] = {}
    table: dict[int, int] = {}
    started = time.monotonic()
    baseline = _ss_tcp_count()
    if baseline > 1000:
        print(
            f"note: {baseline} TCP sockets exist before any load; every N below is on top of "
            "them (see the 'TCP sockets in table' column)",
            file=sys.stderr,
        )
    for n in ns:
        outdir = rundir / f"n{n}"
        outdir.mkdir(exist_ok=True)
        with Load(n, hold_s=900) as load:
            setups[n] = load.setup_s
            table[n] = _ss_tcp_count()
            print(
                f"\n== N={n} connections ({2 * n} sockets): load up in {load.setup_s:.1f} s, "
                f"{table[n]} TCP sockets in ss",
                flush=True,
            )
            big = table[n] >= SLOW_AT
            plan = [
                (tool, 1, 0) if tool.slow and big else (tool, args.runs, args.warmup)
                for tool in tools.values()
            ]
            if use_hyperfine:
                new = [time_tool(tool, n, runs, warmup, outdir) for tool, runs, warmup in plan]
            else:
                new = time_interleaved(plan, n, outdir)
            for t in new:
                failed = sum(c != 0 for c in t.exit_codes)
                print(
                    f"  {t.tool:<32} median {t.median_s:8.3f} s  min {t.min_s:8.3f} s  "
                    f"runs {t.runs}" + (f"  ({failed} runs failed)" if failed else ""),
                    flush=True,
                )
            timings += new
            rep = sanity(tools, load, n, outdir)
            rep["ok"] = sanity_ok(rep)
            sanities.append(rep)
            print(f"  sanity: {json.dumps(rep)}", flush=True)
        after = _wait_for_table_below(baseline + 50)
        print(f"  load stopped; {after} TCP sockets left in ss", flush=True)

    rows = table_rows(timings, table)
    checks = goals(timings, table)
    md = markdown(rows, checks, info)
    elapsed = time.monotonic() - started
    result = {
        "when": stamp,
        "machine": info,
        "timer": "hyperfine" if use_hyperfine else "interleaved",
        "elapsed_s": elapsed,
        "load_setup_s": setups,
        "tcp_sockets_before_load": baseline,
        "tcp_sockets_in_table": table,
        "skipped": skipped,
        "rows": rows,
        "goals": checks,
        "sanity": sanities,
    }
    (rundir / "result.json").write_text(json.dumps(result, indent=2) + "\n")
    (rundir / "result.md").write_text(md)
    shutil.copyfile(rundir / "result.md", RESULTS / "sockets-latest.md")
    shutil.copyfile(rundir / "result.json", RESULTS / "sockets-latest.json")
    print("\n" + md)
    for s in sanities:
        if not s["ok"]:
            print(f"SANITY FAILED at N={s['n']}: {json.dumps(s)}")
    print(f"total {elapsed:.0f} s; results in {rundir.relative_to(REPO)}")
    return 0 if all(s["ok"] for s in sanities) else 1


if __name__ == "__main__":
    sys.exit(main())
