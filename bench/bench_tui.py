"""How fast ``portscope top`` repaints after a keystroke with 10,000 rows (Textual's pilot).

Not a timed test: for a key press (a filter character, a sort key, a cursor move) it
prints the CPU time the process spent until the app was idle again (handling the key,
re-filtering or re-sorting, repainting the screen), median and worst of N presses,
against the goal of 100 ms; beside it the same with 10 rows (what a press costs with
nothing to sort), and the wall time, which includes the pilot's own idle waits (about
4 x 20 ms sleeps per press). Rows are synthetic sockets (no kernel read in the loop);
the app, the table and the drawing are the real ones, in a headless 120x40 terminal.

Then one refresh of each view on this host (the read ``top`` does each second, with
owners) beside ``ss -tlnup`` / ``ss -tanup`` (what ``watch ss`` runs).

    python bench/bench_tui.py [--rows 10000] [--presses 15] [--runs 5]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time

from portscope.models import Endpoint, Owner, Proto, Socket, SocketTable, TcpState
from portscope.render.live import Snapshot, View, snapshot_of


def synthetic(rows: int, view: View) -> Snapshot:
    socks = []
    for i in range(rows):
        owner = Owner(1000 + i % 97, f"proc{i % 97}", "root", ("/usr/bin/x", str(i)), None, 3)
        if view == "listen":
            socks.append(
                Socket(Proto.TCP, 4, TcpState.LISTEN, Endpoint(f"10.{i // 65536 % 256}."
                       f"{i // 256 % 256}.{i % 256}", 1024 + i % 60000), None, 0, 128, 0,
                       10_000 + i, owners=(owner,))
            )  # fmt: skip
        else:
            socks.append(
                Socket(Proto.TCP, 4, TcpState.ESTABLISHED, Endpoint("127.0.0.1", 20000 + i),
                       Endpoint(f"10.0.{i // 256 % 256}.{i % 256}", 443), 0, 0, 0,
                       10_000 + i, owners=(owner,))
            )  # fmt: skip
    return snapshot_of(SocketTable(tuple(socks), "synthetic", True), view)


async def measure(rows: int, presses: int) -> dict[str, list[float]]:
    from portscope.tui.app import TopApp

    snap = synthetic(rows, "connections")
    app = TopApp(source=lambda view: snap, refresh_s=0, view="connections")
    times: dict[str, list[float]] = {}
    for name in ("cursor down", "sort (s)", "filter char"):
        times[name] = []
        times[name + " wall"] = []
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        while app.snapshot is None:
            await pilot.pause(0.05)
        for _ in range(presses):
            for name, key in (("cursor down", "down"), ("sort (s)", "s")):
                t0, c0 = time.perf_counter(), time.process_time()
                await pilot.press(key)
                await pilot.pause()
                times[name].append(time.process_time() - c0)
                times[name + " wall"].append(time.perf_counter() - t0)
        await pilot.press("slash")
        for i in range(presses):
            t0, c0 = time.perf_counter(), time.process_time()
            await pilot.press("1" if i % 2 == 0 else "backspace")
            await pilot.pause()
            times["filter char"].append(time.process_time() - c0)
            times["filter char wall"].append(time.perf_counter() - t0)
    return times


def refresh_cost(runs: int) -> None:
    """One refresh of each view (a read with owners, shaped into rows) beside what
    ``watch ss`` runs each time: ``ss -tlnup`` and ``ss -tanup`` (a process each)."""
    import shutil
    import subprocess

    from portscope.render.live import read_snapshot

    print(f"\none refresh on this host, median of {runs} (ms)")
    print(f"{'view':<12} {'portscope':>10} {'ss':>8} {'ratio':>7} {'sockets':>8}")
    for view, flags in (("listen", "-tlnup"), ("connections", "-tanup")):
        ours, theirs = [], []
        total = 0
        for _ in range(runs):
            t0 = time.perf_counter()
            total = read_snapshot(view).total  # type: ignore[arg-type]
            ours.append(time.perf_counter() - t0)
            if shutil.which("ss"):
                t0 = time.perf_counter()
                subprocess.run(["ss", flags], capture_output=True, check=True)
                theirs.append(time.perf_counter() - t0)
        a = statistics.median(ours) * 1000
        b = statistics.median(theirs) * 1000 if theirs else float("nan")
        print(f"{view:<12} {a:>10.1f} {b:>8.1f} {a / b:>6.2f}x {total:>8,}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--presses", type=int, default=15)
    parser.add_argument("--runs", type=int, default=5, help="refreshes to time (0: none)")
    args = parser.parse_args()
    big = asyncio.run(measure(args.rows, args.presses))
    small = asyncio.run(measure(10, args.presses))
    print(f"portscope top, {args.presses} presses each; CPU ms per keystroke (goal < 100 ms)")
    head = f"{args.rows:,} rows"
    print(f"{'keystroke':<18} {head + ' median':>18} {'worst':>7} {'10 rows median':>15}")
    for name in big:
        med, worst = statistics.median(big[name]) * 1000, max(big[name]) * 1000
        base = statistics.median(small[name]) * 1000
        print(f"{name:<18} {med:>18.1f} {worst:>7.1f} {base:>15.1f}")
    if args.runs:
        refresh_cost(args.runs)


if __name__ == "__main__":
    main()
