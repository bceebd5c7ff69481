#!/usr/bin/env python3
"""Every namespace at once: ``portscope ls -N all`` against ``nsenter ss`` loops and /proc.

Builds N network namespaces (default 200), each held by one forked child process that
``unshare(CLONE_NEWNET)``s, brings ``lo`` up and holds S sockets there (default 50: one TCP
listener on 127.0.0.1, 24 loopback connections = 48 sockets, one bound UDP socket). Then it
times, interleaved, in one run (median of ``--runs``):

* ``portscope ls -a -n --json``                       the caller's namespace only (baseline)
* ``portscope ls -a -n --netns all --json``           every namespace
* ``portscope ls -a -n -p --netns all --json``        every namespace, with owners
* ``sh -c 'for p in PIDS; do nsenter --net=/proc/$p/ns/net ss -tan; done'``  (the lsns + nsenter
  way; ``ss`` is also run once in the caller's namespace)
* osquery's method: one Python process reading ``/proc/PID/net/{tcp,tcp6,udp,udp6}`` of one
  process per namespace (as osquery's ``process_open_sockets`` does)
* the listening view, ``portscope -n -N all --json``, against ``nsenter ... ss -tuln`` loops

It also measures the kernel's floor: one all-states TCP dump inside one namespace. The
kernel walks the host-wide established hash (``tcp_ehash_entries`` buckets, sized by the
host's memory) for every namespace, whatever the method, so on a host with a big table
that walk, not portscope, sets the per-namespace cost of ``ls -a``; listeners-only dumps
skip it.

and checks that portscope finds, in every benchmark namespace, as many TCP sockets as ``ss``
does there. Goals (issue 9): at most 1 ms per namespace on top of the single-namespace cost;
at least 10x faster than the ``nsenter ss`` loop; with owners at most 2x without.

Bounded and clean: every child is killed by PID at the end (and exits by itself when this
process dies: it blocks on a pipe whose write end only this process holds); its namespace
goes with it. Only loopback traffic, inside namespaces this script creates.

Usage (as root, from the venv)::

    python bench/bench_netns.py                 # 200 namespaces x 50 sockets, 7 runs
    python bench/bench_netns.py -n 50 --runs 3  # quick
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import datetime
import json
import os
import shutil
import signal
import socket
import statistics
import struct
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
CLONE_NEWNET = 0x40000000
SIOCGIFFLAGS, SIOCSIFFLAGS, IFF_UP = 0x8913, 0x8914, 0x1


def _child(sockets: int, ready_w: int, hold_r: int, port: int) -> None:
    """In the forked child: a new namespace, lo up, ``sockets`` sockets, then wait."""
    import fcntl

    libc = ctypes.CDLL(None, use_errno=True)
    if libc.unshare(CLONE_NEWNET) != 0:
        os._exit(3)
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    ifr = struct.pack("16sH", b"lo", 0)
    flags = struct.unpack("16sH", fcntl.ioctl(s, SIOCGIFFLAGS, ifr)[:18])[1]
    fcntl.ioctl(s, SIOCSIFFLAGS, struct.pack("16sH", b"lo", flags | IFF_UP))
    s.bind(("127.0.0.1", port))  # the one UDP socket
    held = [s]
    srv = socket.socket()
    srv.bind(("127.0.0.1", port))
    srv.listen(128)
    held.append(srv)
    while len(held) + 2 <= sockets:
        c = socket.create_connection(("127.0.0.1", port))
        a, _ = srv.accept()
        held += [c, a]
    os.write(ready_w, b"r")
    os.close(ready_w)
    os.read(hold_r, 1)  # EOF when the parent exits or closes its end
    os._exit(0)


class Namespaces:
    """N children, each holding a namespace with S sockets; killed by PID on exit."""

    def __init__(self, count: int, sockets: int) -> None:
        self.pids: list[int] = []
        self._hold_r, self._hold_w = os.pipe()
        ready_r, ready_w = os.pipe()
        try:
            for i in range(count):
                pid = os.fork()
                if pid == 0:  # pragma: no cover - the child
                    try:
                        os.close(ready_r)
                        os.close(self._hold_w)
                        _child(sockets, ready_w, self._hold_r, 8000 + i % 1000)
                    finally:
                        os._exit(4)
                self.pids.append(pid)
            os.close(ready_w)
            got = b""
            deadline = time.monotonic() + 60 + count * 0.2
            while len(got) < count and time.monotonic() < deadline:
                chunk = os.read(ready_r, count)
                if not chunk:
                    break
                got += chunk
            if len(got) < count:
                raise RuntimeError(f"only {len(got)} of {count} namespaces came up")
        except BaseException:
            self.close()
            raise
        finally:
            os.close(ready_r)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            os.close(self._hold_w)
        for pid in self.pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        for pid in self.pids:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, 0)
        self.pids = []


def _portscope() -> str:
    beside = Path(sys.executable).with_name("portscope")
    return str(beside) if beside.exists() else (shutil.which("portscope") or "portscope")


OSQUERY = r"""
import sys
n = 0
for pid in sys.argv[1:]:
    for name in ("tcp", "tcp6", "udp", "udp6"):
        try:
            with open(f"/proc/{pid}/net/{name}", "rb") as f:
                lines = f.read().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            n += 1  # osquery parses each line into a row: local/remote, state, inode
            fields[1].split(b":"), fields[2].split(b":"), int(fields[3], 16), int(fields[9])
print(n)
"""


def _time(argv: list[str]) -> float:
    start = time.perf_counter()
    run = subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=600)
    took = time.perf_counter() - start
    if run.returncode != 0:
        raise RuntimeError(f"{argv[:4]} exited {run.returncode}")
    return took


def _tcp_counts_portscope(pids: list[int]) -> dict[int, int]:
    out = subprocess.run(
        [_portscope(), "ls", "-a", "-n", "-t", "--netns", "all", "--json"],
        capture_output=True, text=True, check=True, timeout=300,
    ).stdout  # fmt: skip
    wanted = {os.stat(f"/proc/{p}/ns/net").st_ino: p for p in pids}
    counts = dict.fromkeys(pids, 0)
    for s in json.loads(out)["sockets"]:
        pid = wanted.get(s["netns"]["inode"])
        if pid is not None:
            counts[pid] += 1
    return counts


def _tcp_counts_ss(pids: list[int]) -> dict[int, int]:
    counts = {}
    for pid in pids:
        out = subprocess.run(
            ["nsenter", f"--net=/proc/{pid}/ns/net", "ss", "-tanH"],
            capture_output=True, text=True, check=True, timeout=30,
        ).stdout  # fmt: skip
        counts[pid] = len(out.splitlines())
    return counts


def _ehash_entries() -> int | None:
    """The established hash's size (``net.ipv4.tcp_ehash_entries``, Linux 6.1+)."""
    try:
        return abs(int(Path("/proc/sys/net/ipv4/tcp_ehash_entries").read_text()))
    except (OSError, ValueError):
        return None


def _kernel_floor_ms(pid: int, rounds: int = 20) -> float:
    """Milliseconds of one all-states TCP dump (IPv4 then IPv6) inside ``pid``'s namespace:
    what every method pays per namespace before any decoding."""
    from portscope.sockets import _netns
    from portscope.sockets._netlink import dump, ends_dump, open_diag_socket

    ref = _netns.NetnsRef(os.stat(f"/proc/{pid}/ns/net").st_ino, f"/proc/{pid}/ns/net")
    sock = _netns.run_in(ref, open_diag_socket)
    try:
        start = time.perf_counter()
        for _ in range(rounds):
            for family in (socket.AF_INET, socket.AF_INET6):
                for chunk in dump(sock, family, socket.IPPROTO_TCP, 0xFFF):
                    if ends_dump(chunk):
                        break
        return (time.perf_counter() - start) / rounds * 1000
    finally:
        sock.close()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-n", "--namespaces", type=int, default=200)
    ap.add_argument("-s", "--sockets", type=int, default=50, help="sockets per namespace")
    ap.add_argument("--runs", type=int, default=7)
    args = ap.parse_args(argv)
    if os.geteuid() != 0:
        print("bench_netns: needs root (namespaces, nsenter)", file=sys.stderr)
        return 2
    if not 1 <= args.namespaces <= 1000 or not 4 <= args.sockets <= 500 or args.runs < 1:
        print("bench_netns: -n 1..1000, -s 4..500, --runs >= 1", file=sys.stderr)
        return 2
    for tool in ("nsenter", "ss", "sh"):
        if shutil.which(tool) is None:
            print(f"bench_netns: needs {tool}", file=sys.stderr)
            return 2
    ps = _portscope()
    spaces = Namespaces(args.namespaces, args.sockets)
    try:
        pids = list(spaces.pids)
        loop = "ss -tan; for p in " + " ".join(map(str, pids))
        loop += "; do nsenter --net=/proc/$p/ns/net ss -tan; done"
        listen_loop = "ss -tuln; for p in " + " ".join(map(str, pids))
        listen_loop += "; do nsenter --net=/proc/$p/ns/net ss -tuln; done"
        tools = {
            "portscope ls -a -n --json (this netns)": [ps, "ls", "-a", "-n", "--json"],
            "portscope ls -a -n -N all --json": [ps, "ls", "-a", "-n", "-N", "all", "--json"],
            "portscope ls -a -n -p -N all --json": [
                ps, "ls", "-a", "-n", "-p", "-N", "all", "--json",
            ],
            "nsenter ss -tan loop": ["sh", "-c", loop],
            "/proc/PID/net/* (osquery's method)": [sys.executable, "-c", OSQUERY, *map(str, pids)],
            "portscope -n -N all --json (listening)": [ps, "-n", "-N", "all", "--json"],
            "nsenter ss -tuln loop (listening)": ["sh", "-c", listen_loop],
        }  # fmt: skip
        floor_ms = _kernel_floor_ms(pids[0])
        ours, theirs = _tcp_counts_portscope(pids), _tcp_counts_ss(pids)
        mismatched = [p for p in pids if ours[p] != theirs[p]]
        times: dict[str, list[float]] = {name: [] for name in tools}
        for cmd in tools.values():  # warm-up
            _time(cmd)
        for _ in range(args.runs):
            for name, cmd in tools.items():
                times[name].append(_time(cmd))
    finally:
        spaces.close()
    med = {name: statistics.median(t) for name, t in times.items()}
    base = med["portscope ls -a -n --json (this netns)"]
    every = med["portscope ls -a -n -N all --json"]
    owners = med["portscope ls -a -n -p -N all --json"]
    loop_s = med["nsenter ss -tan loop"]
    n = args.namespaces
    lines = [
        f"bench_netns: {n} namespaces x {args.sockets} sockets (+ this one), "
        f"median of {args.runs}, {datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC",
        "",
        f"| {'command':<40} | {'seconds':>8} | {'vs -N all':>9} |",
        f"|{'-' * 42}|{'-' * 10}:|{'-' * 10}:|",
    ]
    for name, value in med.items():
        lines.append(f"| {name:<40} | {value:8.3f} | {value / every:8.2f}x |")
    per_ns_ms = (every - base) / n * 1000
    listen_s = med["portscope -n -N all --json (listening)"]
    listen_loop_s = med["nsenter ss -tuln loop (listening)"]
    buckets = _ehash_entries()
    lines += [
        "",
        f"kernel floor: one TCP dump (all states, IPv4 + IPv6) inside one namespace: "
        f"{floor_ms:.2f} ms (sock_diag walks the host-wide established hash"
        + (f", {buckets} buckets" if buckets else "")
        + "; nsenter ss and /proc/PID/net pay the same walk)",
        f"listening view: nsenter ss -tuln loop / -N all: {listen_loop_s / listen_s:.1f}x",
    ]
    checks = [
        (f"per namespace on top of one: {per_ns_ms:.2f} ms", per_ns_ms <= 1.0),
        (f"nsenter ss loop / -N all: {loop_s / every:.1f}x (goal >= 10x)", loop_s / every >= 10),
        (f"with owners / without: {owners / every:.2f}x (goal <= 2x)", owners / every <= 2.0),
        (f"TCP sockets equal to ss in every namespace: {n - len(mismatched)}/{n}", not mismatched),
    ]
    lines += ["", *(f"{'ok ' if ok else 'MISS'} {text}" for text, ok in checks)]
    text = "\n".join(lines)
    print(text)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "netns-latest.md").write_text(text + "\n")
    (RESULTS / "netns-latest.json").write_text(
        json.dumps(
            {"namespaces": n, "sockets": args.sockets, "runs": times, "median": med}, indent=2
        )
    )
    return 0 if all(ok for _, ok in checks) else 1


if __name__ == "__main__":
    sys.exit(main())
