#!/usr/bin/env python3
"""Socket-table benchmark: portscope against ss, netstat, lsof and psutil under load.

For each N (default 1,000, 10,000 and 100,000 loopback TCP connections, i.e. 2N sockets)
and each load shape (``loadgen.SHAPES``: ``split``, servers and clients in different
processes; ``few-big-processes``, about 11 processes each holding both ends of 9,000
connections) it starts ``loadgen.Load(N, shape=...)``, times whole processes with hyperfine
(stdout to a file, no shell) or in interleaved rounds, checks that portscope's table matches
``ss`` in the same run, stops the load, and at the end prints one table (tool, shape, N,
seconds, ratio vs ``ss -tan``), the shapes side by side, and the goal checks (each shape):

* ``portscope ls -a -n --json`` (no owners)               <= ``ss -tan``
* ``portscope ls -a -n -p --json`` and ``-t`` (owners)    <= 2.5 x ``ss -tan``
* ``portscope --json`` (default listening view)           <= ``ss -tulpn``
* ``portscope ls -a -i --json`` (tcp_info)                 <= ``ss -tani``

Raw results (hyperfine JSON, the table as JSON and markdown) go to ``bench/results/``.

Usage (as root, from the venv so ``portscope`` and ``psutil`` resolve)::

    python bench/bench_sockets.py            # 1k, 10k, 100k (about 5 minutes)
    python bench/bench_sockets.py --quick    # 1k, 10k only (under a minute)
    python bench/bench_sockets.py -n 100000 --runs 10
    python bench/bench_sockets.py -n 100000 --shape few-big-processes --timer interleaved
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime
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
from loadgen import SHAPES, Load

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
REPO = HERE.parent
BASE = "ss -tan"  # the reference every ratio is taken against
SLOW_AT = 100_000  # TCP sockets in the table from which slow tools run once (ss -tanp: ~30 s)


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
    shape: str
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
        Tool(
            "portscope ls -a -t -n -p --json",
            (ps, "ls", "-a", "-t", "-n", "-p", "--json"),
            portscope=True,
        ),
        Tool("portscope --json", (ps, "--json"), portscope=True),
        Tool("portscope ls -a -i --json", (ps, "ls", "-a", "-i", "--json"), portscope=True),
        Tool(
            "portscope ls -a -i -n --json", (ps, "ls", "-a", "-i", "-n", "--json"), portscope=True
        ),
        Tool("ss -tan", ("ss", "-tan")),
        Tool("ss -tani", ("ss", "-tani")),
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


def _timing(tool: Tool, n: int, shape: str, times: list[float], codes: list[int]) -> Timing:
    return Timing(
        tool=tool.name,
        n=n,
        shape=shape,
        runs=len(times),
        median_s=statistics.median(times),
        min_s=min(times),
        mean_s=statistics.fmean(times),
        stddev_s=statistics.stdev(times) if len(times) > 1 else None,
        exit_codes=codes,
    )


def time_tool(tool: Tool, n: int, shape: str, runs: int, warmup: int, outdir: Path) -> Timing:
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
    return _timing(tool, n, shape, times, codes)


def time_interleaved(
    plan: list[tuple[Tool, int, int]], n: int, shape: str, outdir: Path
) -> list[Timing]:
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
    return [_timing(t, n, shape, times[t.name], codes[t.name]) for t, _, _ in plan]


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


def _in_load(sock: dict[str, Any], listeners: set[tuple[str, int]]) -> bool:
    """Whether ``sock`` (portscope's JSON object) is one of the load's sockets: a listener,
    or a connection with a listener's address and port at one end. Exact even when another
    load generator uses the same networks (its listeners have other ports)."""
    for side in ("local", "remote"):
        end = sock.get(side) or {}
        if (end.get("address"), end.get("port")) in listeners:
            return True
    return False


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
        load_socks = [s for s in tcp if _in_load(s, listeners)]
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
        load_socks = [s for s in socks if s.get("proto") == "tcp" and _in_load(s, listeners)]
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
        "loadavg": " ".join(f"{x:.2f}" for x in os.getloadavg()),
    }


def _fmt_n(n: int) -> str:
    return f"{n // 1000}k" if n % 1000 == 0 and n >= 1000 else str(n)


Case = tuple[str, int]  # (load shape, N connections)


def table_rows(timings: list[Timing], table: dict[Case, int]) -> list[dict[str, Any]]:
    base = {(t.shape, t.n): t.median_s for t in timings if t.tool == BASE}
    base_min = {(t.shape, t.n): t.min_s for t in timings if t.tool == BASE}
    rows = []
    for t in timings:
        case = (t.shape, t.n)
        ratio = t.median_s / base[case] if base.get(case) else None
        min_ratio = t.min_s / base_min[case] if base_min.get(case) else None
        rows.append(
            {
                "tool": t.tool,
                "shape": t.shape,
                "connections": t.n,
                "sockets": 2 * t.n,
                "tcp_sockets_in_table": table.get(case),
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

CHECKS = (
    ("portscope ls -a -n --json", "ss -tan", 1.0, "without owners <= ss -tan"),
    ("portscope ls -a -n -p --json", "ss -tan", 2.5, "with owners <= 2.5x ss -tan"),
    ("portscope ls -a -t -n -p --json", "ss -tan", 2.5, "with owners, -t <= 2.5x ss -tan"),
    ("portscope --json", "ss -tulpn", 1.0, "default view <= ss -tulpn"),
    ("portscope ls -a -i --json", "ss -tani", 1.0, "tcp_info (-i) <= ss -tani"),
    ("portscope ls -a -i -n --json", "ss -tani", 1.0, "tcp_info (-i -n) <= ss -tani"),
)


def goals(timings: list[Timing], table: dict[Case, int]) -> list[dict[str, Any]]:
    """The goal checks, per shape and N; below ``GOAL_AT`` sockets they are shown for
    information only (a Python process's ~50 ms start-up is most of the time there),
    ``ok`` is None."""
    by = {(t.tool, t.shape, t.n): t.median_s for t in timings}
    by_min = {(t.tool, t.shape, t.n): t.min_s for t in timings}
    out = []
    for shape, n in sorted({(t.shape, t.n) for t in timings}, key=lambda c: (c[1], c[0])):
        for tool, ref, factor, label in CHECKS:
            if (tool, shape, n) in by and (ref, shape, n) in by:
                ratio = by[(tool, shape, n)] / by[(ref, shape, n)]
                out.append(
                    {
                        "goal": label,
                        "shape": shape,
                        "connections": n,
                        "tool_s": by[(tool, shape, n)],
                        "ref_s": by[(ref, shape, n)],
                        "ratio": ratio,
                        "min_ratio": by_min[(tool, shape, n)] / by_min[(ref, shape, n)],
                        "limit": factor,
                        "ok": ratio <= factor if table.get((shape, n), 0) >= GOAL_AT else None,
                    }
                )
    return out


def side_by_side(rows: list[dict[str, Any]]) -> list[str]:
    """Markdown: for each N, one line per tool, one column pair per shape (s, ratio)."""
    shapes = [sh for sh in SHAPES if any(r["shape"] == sh for r in rows)]
    if len(shapes) < 2:
        return []
    lines = ["", "Shapes side by side (median s, ratio to `ss -tan` of medians):", ""]
    lines.append("| tool | connections | " + " | ".join(f"`{sh}`" for sh in shapes) + " |")
    lines.append("|---|---:|" + "---:|" * len(shapes))
    cell = {(r["tool"], r["connections"], r["shape"]): r for r in rows}
    for n in sorted({r["connections"] for r in rows}):
        for tool in dict.fromkeys(r["tool"] for r in rows):
            cells = []
            for sh in shapes:
                r = cell.get((tool, n, sh))
                if r is None:
                    cells.append("-")
                else:
                    ratio = r["ratio_vs_ss_tan"]
                    cells.append(
                        f"{r['median_s']:.3f} s" + (f" ({ratio:.2f}x)" if ratio is not None else "")
                    )
            if any(c != "-" for c in cells):
                lines.append(f"| `{tool}` | {_fmt_n(n)} | " + " | ".join(cells) + " |")
    return lines


def markdown(rows: list[dict[str, Any]], checks: list[dict[str, Any]], info: dict[str, Any]) -> str:
    lines = [
        f"Machine: {info['cpus']} CPUs ({info['cpu_model']}), {info['memory_gib']} GiB, "
        f"Linux {info['kernel']}, Python {info['python']}; {info['ss']}; portscope "
        f"{info['portscope']} at {info['git']}; load average {info.get('loadavg', '?')}.",
        "",
        "| tool | shape | connections (load sockets) | TCP sockets in table | runs | median s "
        "| min s | vs `ss -tan` (medians) | (mins) |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        ratio = f"{r['ratio_vs_ss_tan']:.2f}x" if r["ratio_vs_ss_tan"] is not None else "-"
        mins = r["min_ratio_vs_ss_tan"]
        ratio += " | " + (f"{mins:.2f}x" if mins is not None else "-")
        fail = f" ({r['failed_runs']} failed)" if r["failed_runs"] else ""
        lines.append(
            f"| `{r['tool']}`{fail} | {r['shape']} | {_fmt_n(r['connections'])} "
            f"({_fmt_n(r['sockets'])}) | {r['tcp_sockets_in_table']} | {r['runs']} | "
            f"{r['median_s']:.3f} | {r['min_s']:.3f} | {ratio} |"
        )
    lines += side_by_side(rows)
    if checks:
        lines += [
            "",
            f"Goals (set at 200,000 sockets; 'info' below {GOAL_AT:,} sockets in the table):",
            "",
            "| goal | shape | connections | portscope s | reference s | ratio (medians) "
            "| (mins) | result |",
        ]
        lines += ["|---|---|---:|---:|---:|---:|---:|---|"]
        for c in checks:
            lines.append(
                f"| {c['goal']} | {c['shape']} | {_fmt_n(c['connections'])} | "
                f"{c['tool_s']:.3f} | {c['ref_s']:.3f} | {c['ratio']:.2f} (limit {c['limit']}) | "
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
    parser.add_argument(
        "--shape",
        action="append",
        choices=SHAPES,
        help=f"load shape; repeatable; default every one ({', '.join(SHAPES)})",
    )
    parser.add_argument("--runs", type=int, default=5, help="timed runs per tool (default 5)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed runs first (default 1)")
    parser.add_argument("--only", action="append", help="time only tools whose name contains this")
    parser.add_argument("--no-portscope", action="store_true", help="time the other tools only")
    parser.add_argument(
        "--old-src",
        help="another checkout's src/: its portscope commands too, as 'old ...' (before/after)",
    )
    parser.add_argument(
        "--timer",
        choices=("hyperfine", "interleaved"),
        default=None,
        help="hyperfine per tool (default), or our own timer in rounds over all tools",
    )
    args = parser.parse_args(argv)
    ns = args.connections or ([1000, 10_000] if args.quick else [1000, 10_000, 100_000])
    shapes = [sh for sh in SHAPES if sh in (args.shape or SHAPES)]
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
    candidates = all_tools()
    if args.old_src:
        import tempfile

        # a copy: the runs byte-compile it, which must not write into the other checkout
        copy = Path(tempfile.mkdtemp(prefix="bench-sockets-")) / "src"
        shutil.copytree(args.old_src, copy, ignore=shutil.ignore_patterns("__pycache__"))
        old = ("env", f"PYTHONPATH={copy}", sys.executable, "-m", "portscope")
        candidates += [
            dataclasses.replace(t, name=f"old {t.name}", argv=old + t.argv[1:])
            for t in candidates
            if t.portscope
        ]
    for tool in candidates:
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
    setups: dict[str, float] = {}
    table: dict[Case, int] = {}
    started = time.monotonic()
    baseline = _ss_tcp_count()
    if baseline > 1000:
        print(
            f"note: {baseline} TCP sockets exist before any load; every N below is on top of "
            "them (see the 'TCP sockets in table' column)",
            file=sys.stderr,
        )
    for n in ns:
        for shape in shapes:
            outdir = rundir / f"{shape}-n{n}"
            outdir.mkdir(exist_ok=True)
            with Load(n, shape=shape, hold_s=900) as load:
                case = (shape, n)
                setups[f"{shape}-{n}"] = load.setup_s
                table[case] = _ss_tcp_count()
                print(
                    f"\n== {shape}, N={n} connections ({2 * n} sockets, "
                    f"{len(load.pids)} processes, {len(load.listeners)} listeners): load up in "
                    f"{load.setup_s:.1f} s, {table[case]} TCP sockets in ss, load average "
                    f"{os.getloadavg()[0]:.2f}",
                    flush=True,
                )
                big = table[case] >= SLOW_AT
                plan = [
                    (tool, 1, 0) if tool.slow and big else (tool, args.runs, args.warmup)
                    for tool in tools.values()
                ]
                if use_hyperfine:
                    new = [
                        time_tool(tool, n, shape, runs, warmup, outdir)
                        for tool, runs, warmup in plan
                    ]
                else:
                    new = time_interleaved(plan, n, shape, outdir)
                for t in new:
                    failed = sum(c != 0 for c in t.exit_codes)
                    print(
                        f"  {t.tool:<34} median {t.median_s:8.3f} s  min {t.min_s:8.3f} s  "
                        f"runs {t.runs}" + (f"  ({failed} runs failed)" if failed else ""),
                        flush=True,
                    )
                timings += new
                rep = sanity(tools, load, n, outdir)
                rep["shape"] = shape
                rep["ok"] = sanity_ok(rep)
                sanities.append(rep)
                print(f"  sanity: {json.dumps(rep)}; load average {os.getloadavg()[0]:.2f}")
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
        "tcp_sockets_in_table": {f"{sh}-{n}": v for (sh, n), v in table.items()},
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
            print(f"SANITY FAILED at {s['shape']}, N={s['n']}: {json.dumps(s)}")
    print(f"total {elapsed:.0f} s; results in {rundir.relative_to(REPO)}")
    return 0 if all(s["ok"] for s in sanities) else 1


if __name__ == "__main__":
    sys.exit(main())
