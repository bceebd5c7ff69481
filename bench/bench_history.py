#!/usr/bin/env python3
"""History benchmark: watch latency and CPU, snapshot and diff at 10,000 listeners.

Runs in a network namespace of its own (``ps11-bench-*``, made and deleted here; the
bench re-executes itself inside it), so that only its own listeners and connections are
there. Side by side with the real tool doing the same job, in the same run:

* **watch latency**: 100 listeners opened one by one (50-150 ms apart); the time from each
  ``listen()`` to its ``added`` line on watch's stdout (p50/p90/p99/max; the goal: all
  within 1 s). Beside it, an ``ss -tlnpH`` poll loop at the same interval that reports a
  port the first time it sees it (no debounce, so it can only be faster).
* **watch CPU at 10,000 connections** (``bench/loadgen.py``): CPU time of ``portscope
  watch`` over ``--cpu-s`` seconds (default 60; the goal: at most 1 % of one core),
  against an ``ss -tlnpH`` poll loop at the same interval (``watch -n 0.25 ss -tlnp``).
* **snapshot of 10,000 listeners** (goal < 0.5 s): ``portscope snapshot`` (the whole
  command, Python start-up included) against ``ss -tlnp > file``.
* **diff of two 10,000-listener snapshots** (goal < 0.2 s): ``portscope diff A B``
  against ``diff`` of two saved ``ss -tlnp`` listings (the whole-listing diff people run).

Needs root (namespaces, RLIMIT_NOFILE). Usage::

    sudo .venv/bin/python bench/bench_history.py            # ~2.5 min
    sudo .venv/bin/python bench/bench_history.py --quick    # --cpu-s 10, 3 runs each
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results"
PORTSCOPE = [sys.executable, "-m", "portscope"]
INSIDE = "PS11_BENCH_INSIDE"

HOLDER = """
import resource, socket, sys, time
first, count, hold_s = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
need = count + 256
hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
resource.setrlimit(resource.RLIMIT_NOFILE, (need, max(need, hard)))
socks = {}
def open_port(port):
    s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", port)); s.listen(8); socks[port] = s
for port in range(first, first + count):
    open_port(port)
print("ready", flush=True)
for line in sys.stdin:  # "swap N": close N listeners, open N others
    n = int(line.split()[1])
    for port in list(socks)[:n]:
        socks.pop(port).close()
    top = max(socks) + 1
    for port in range(top, top + n):
        open_port(port)
    print("swapped", flush=True)
"""

OPENER = """
import random, socket, sys, time
first, count = int(sys.argv[1]), int(sys.argv[2])
random.seed(11)
held = []
for port in range(first, first + count):
    time.sleep(random.uniform(0.05, 0.15))
    s = socket.socket(); s.bind(("127.0.0.1", port)); s.listen()
    print(port, repr(time.time()), flush=True)
    held.append(s)
sys.stdin.read()
"""


def cpu_s(pid: int, children: bool = False) -> float:
    """utime+stime of ``pid`` (and of its waited-for children), in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = int(fields[11]) + int(fields[12])
    if children:
        ticks += int(fields[13]) + int(fields[14])
    return ticks / os.sysconf("SC_CLK_TCK")


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def latency_watch(n: int, interval_s: float) -> list[float]:
    watch = subprocess.Popen(
        [
            *PORTSCOPE,
            "watch",
            "--json",
            "--interval",
            str(interval_s),
            "--count",
            str(n),
            "--for",
            "120",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert watch.stdout is not None and watch.stderr is not None
    watch.stderr.readline()
    seen: dict[int, float] = {}

    def read() -> None:
        import json

        assert watch.stdout is not None
        for line in watch.stdout:
            event = json.loads(line)
            if event["action"] == "added":
                seen[event["socket"]["local"]["port"]] = time.time()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    opened = _open_listeners(30000, n)
    watch.wait(timeout=120)
    reader.join(5)
    return [seen[p] - t for p, t in opened.items() if p in seen] + [
        float("inf") for p in opened if p not in seen
    ]


def latency_ss(n: int, interval_s: float) -> list[float]:
    seen: dict[int, float] = {}
    stop = threading.Event()

    def poll() -> None:
        while not stop.is_set():
            out = subprocess.run(["ss", "-tlnpH"], capture_output=True, text=True).stdout
            now = time.time()
            for line in out.splitlines():
                port = int(line.split()[3].rsplit(":", 1)[1])
                seen.setdefault(port, now)
            stop.wait(interval_s)

    poller = threading.Thread(target=poll, daemon=True)
    poller.start()
    time.sleep(0.5)
    opened = _open_listeners(31000, n)
    time.sleep(2 * interval_s + 0.5)
    stop.set()
    poller.join(5)
    return [seen.get(p, float("inf")) - t for p, t in opened.items()]


def _open_listeners(first: int, n: int) -> dict[int, float]:
    opener = subprocess.Popen(
        [sys.executable, "-c", OPENER, str(first), str(n)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert opener.stdout is not None and opener.stdin is not None
    opened = {}
    for _ in range(n):
        port, at = opener.stdout.readline().split()
        opened[int(port)] = float(at)
    time.sleep(1.5)  # the last ones are reported
    opener.stdin.close()
    opener.wait(timeout=10)
    opener.stdout.close()
    return opened


def cpu_watch(seconds: float, interval_s: float) -> float:
    watch = subprocess.Popen(
        [*PORTSCOPE, "watch", "--interval", str(interval_s), "--for", str(seconds + 5)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert watch.stderr is not None
    watch.stderr.readline()  # primed: start-up is not counted
    time.sleep(0.5)
    before = cpu_s(watch.pid)
    time.sleep(seconds)
    used = cpu_s(watch.pid) - before
    watch.kill()
    watch.wait()
    watch.stderr.close()
    return used


def cpu_ss_loop(seconds: float, interval_s: float) -> float:
    loop = subprocess.Popen(
        ["sh", "-c", f"while :; do ss -tlnpH >/dev/null; sleep {interval_s}; done"]
    )
    time.sleep(0.5)
    before = cpu_s(loop.pid, children=True)
    time.sleep(seconds)
    used = cpu_s(loop.pid, children=True) - before
    loop.kill()
    loop.wait()
    return used


def timed(argv: list[str], runs: int, *, shell: bool = False) -> tuple[float, float]:
    """The median wall time and CPU time (user + system, the command and its children)
    of ``runs`` runs after one warm-up, in seconds. On a busy machine the CPU time is the
    fairer measure: the wall time includes waiting for a core."""
    walls, cpus = [], []
    for i in range(runs + 1):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        subprocess.run(
            argv if not shell else argv[0],
            shell=shell,
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wall = time.perf_counter() - start
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        if i:
            walls.append(wall)
            cpus.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
    return statistics.median(walls), statistics.median(cpus)


def timed_pair(
    ours: str, theirs: str, runs: int
) -> tuple[tuple[float, float], tuple[float, float]]:
    """``timed`` of two shell commands, interleaved (ours, theirs, ours, ...): on a machine
    whose load changes, both see the same moments."""
    a: list[tuple[float, float]] = []
    b: list[tuple[float, float]] = []
    for _ in range(runs):
        a.append(timed([ours], 1, shell=True))
        b.append(timed([theirs], 1, shell=True))

    def median(xs: list[tuple[float, float]]) -> tuple[float, float]:
        return statistics.median(x[0] for x in xs), statistics.median(x[1] for x in xs)

    return median(a), median(b)


def inside(args: argparse.Namespace) -> int:
    sys.path.insert(0, str(REPO / "bench"))
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    tmp = Path(tempfile.mkdtemp(prefix="ps11-bench-"))
    rows: list[tuple[str, str, str, str, str]] = []
    interval = args.interval
    try:
        if "latency" in args.parts:
            rows.append(latency_row(interval))
        if "cpu" in args.parts:
            rows.append(cpu_row(args, interval))
        if "store" in args.parts:
            rows += store_rows(args, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    report(rows)
    return 0


def latency_row(interval: float) -> tuple[str, str, str, str, str]:
    ours = latency_watch(100, interval)
    theirs = latency_ss(100, interval)
    within = sum(1 for x in ours if x <= 1.0)

    def dist(xs: list[float]) -> str:
        return (
            f"p50 {pct(xs, 0.5) * 1000:.0f} ms, p90 {pct(xs, 0.9) * 1000:.0f} ms, "
            f"p99 {pct(xs, 0.99) * 1000:.0f} ms, max {max(xs) * 1000:.0f} ms"
        )

    return (
        "watch latency, 100 listeners",
        dist(ours),
        f"ss -tlnpH loop: {dist(theirs)}",
        f"{within}/100 within 1 s",
        "debounced: reported at the 2nd sighting",
    )


def cpu_row(args: argparse.Namespace, interval: float) -> tuple[str, str, str, str, str]:
    from loadgen import Load

    with Load(10_000):
        ours_cpu = cpu_watch(args.cpu_s, interval)
        ss_cpu = cpu_ss_loop(args.cpu_s, interval)
    share = ours_cpu / args.cpu_s * 100
    return (
        f"watch CPU, {args.cpu_s:g} s at 10,000 connections",
        f"{ours_cpu:.3f} s ({share:.2f} % of a core)",
        f"ss -tlnpH loop: {ss_cpu:.3f} s ({ss_cpu / args.cpu_s * 100:.2f} %)",
        f"{ss_cpu / max(ours_cpu, 1e-9):.1f}x less CPU",
        "goal: <= 1 %",
    )


def store_rows(args: argparse.Namespace, tmp: Path) -> list[tuple[str, str, str, str, str]]:
    rows = []
    resource.setrlimit(
        resource.RLIMIT_NOFILE,
        (20000, max(20000, resource.getrlimit(resource.RLIMIT_NOFILE)[1])),
    )
    script = tmp / "holder.py"  # a short command line, as a real server's
    script.write_text(HOLDER)
    holder = subprocess.Popen(
        [sys.executable, str(script), "40000", "10000", "600"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout is not None and holder.stdin is not None
    assert holder.stdout.readline() == "ready\n"
    db = tmp / "h.db"
    ss_file = tmp / "a.txt"
    snap, ss_time = timed_pair(
        f"{' '.join(PORTSCOPE)} snapshot --db {db}", f"ss -tlnp > {ss_file}", args.runs
    )
    rows.append(
        (
            "snapshot, 10,000 listeners",
            f"{snap[0]:.3f} s wall, {snap[1]:.3f} s CPU",
            f"ss -tlnp > file: {ss_time[0]:.3f} s wall, {ss_time[1]:.3f} s CPU",
            f"{snap[0] / ss_time[0]:.2f}x the wall time of ss, {snap[1] / ss_time[1]:.2f}x CPU",
            "goal: < 0.5 s",
        )
    )
    subprocess.run(
        [*PORTSCOPE, "snapshot", "--db", str(db), "--label", "a"],
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    holder.stdin.write("swap 100\n")
    holder.stdin.flush()
    assert holder.stdout.readline() == "swapped\n"
    subprocess.run(
        [*PORTSCOPE, "snapshot", "--db", str(db), "--label", "b"],
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    subprocess.run(f"ss -tlnp > {tmp / 'b.txt'}", shell=True, check=True)
    subprocess.run(f"ss -tlnp > {tmp / 'a.txt'}.0", shell=True, check=True)
    events = subprocess.run(
        [*PORTSCOPE, "diff", "a", "b", "--db", str(db)], capture_output=True, text=True
    ).stdout.count("\n")
    dtime, plain = timed_pair(
        f"{' '.join(PORTSCOPE)} diff a b --db {db} || true",
        f"diff {ss_file} {tmp / 'b.txt'} || true",
        args.runs,
    )
    rows.append(
        (
            "diff, two 10,000-listener snapshots",
            f"{dtime[0]:.3f} s wall, {dtime[1]:.3f} s CPU ({events} events)",
            f"diff of two ss -tlnp files: {plain[0]:.3f} s wall, {plain[1]:.3f} s CPU",
            f"{dtime[0] / plain[0]:.1f}x the wall time of diff",
            "goal: < 0.2 s",
        )
    )
    rows.append(breakdown(db))
    holder.stdin.close()
    holder.wait(timeout=30)
    holder.stdout.close()
    return rows


BREAKDOWN = """
import json, os, sys, time
from portscope.history import open_store, diff_listeners
from portscope.history._capture import capture
from portscope.sockets import SocketFilter, dump
from portscope.history._capture import LISTEN_STATES
clock = time.process_time  # CPU: on a busy machine the wall time is mostly waiting
t0 = clock()
d = dump(SocketFilter(states=LISTEN_STATES), owners=False)
rows = [r for b in d.batches for r in b]
t1 = clock()
listing = capture()
t2 = clock()
with open_store(sys.argv[1]) as store:
    store.save_sockets(listing.sockets)
    t3 = clock()
    a, b = store.changed_listeners(store.resolve("a").id, store.resolve("b").id)
    events = diff_listeners(a, b)
    t4 = clock()
fds = 0
for pid in os.listdir("/proc"):
    if pid.isdigit():
        try:
            fds += len(os.listdir(f"/proc/{pid}/fd"))
        except OSError:
            pass
print(json.dumps({"dump": t1 - t0, "capture": t2 - t1, "save": t3 - t2, "diff": t4 - t3,
                  "rows": len(rows), "events": len(events), "fds": fds}))
"""


def breakdown(db: Path) -> tuple[str, str, str, str, str]:
    """In one process, CPU time: the kernel dump, the listing with owners, the store's
    write, the diff (after the imports: what a long-running face pays)."""
    import json

    out = subprocess.run(
        [sys.executable, "-c", BREAKDOWN, str(db)], capture_output=True, text=True, check=True
    )
    got = json.loads(out.stdout)
    return (
        "in-process CPU, 10,000 listeners",
        f"dump {got['dump'] * 1000:.0f} ms; listing with owners {got['capture'] * 1000:.0f} ms; "
        f"store write {got['save'] * 1000:.0f} ms; diff {got['diff'] * 1000:.0f} ms "
        f"({got['events']} events)",
        "-",
        "-",
        f"the owner scan reads every fd of every process: {got['fds']:,} on the host now",
    )


def report(rows: list[tuple[str, str, str, str, str]]) -> None:
    lines = ["| measure | portscope | real tool | ratio / result | note |", "|---|---|---|---|---|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    text = "\n".join(lines)
    print(text)
    RESULTS.mkdir(parents=True, exist_ok=True)
    cpu = os.popen("grep -m1 'model name' /proc/cpuinfo").read().split(":")[-1].strip()
    (RESULTS / "history-latest.md").write_text(
        f"# bench_history {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}\n\n"
        f"{cpu}, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}\n\n{text}\n"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="--cpu-s 10 and 3 runs each")
    parser.add_argument("--cpu-s", type=float, default=60.0, help="CPU measure window (60)")
    parser.add_argument("--runs", type=int, default=7, help="timed runs per command (7)")
    parser.add_argument("--interval", type=float, default=0.25, help="watch interval (0.25)")
    parser.add_argument(
        "--parts",
        default="latency,cpu,store",
        help="what to measure, comma-separated: latency, cpu, store (default: all)",
    )
    args = parser.parse_args()
    if args.quick:
        args.cpu_s, args.runs = 10.0, 3
    if os.environ.get(INSIDE) == "1":
        return inside(args)
    if os.geteuid() != 0:
        print("bench_history: needs root (a network namespace)", file=sys.stderr)
        return 2
    name = f"ps11-bench-{os.getpid()}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        env = {**os.environ, INSIDE: "1"}
        argv = ["ip", "netns", "exec", name, sys.executable, __file__, *sys.argv[1:]]
        return subprocess.run(argv, env=env, check=False).returncode
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False)


if __name__ == "__main__":
    sys.exit(main())
