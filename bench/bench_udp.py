#!/usr/bin/env python3
"""UDP scan benchmark: ``portscope scan -sU`` vs ``nmap -sU`` against a target that keeps
Linux's ICMP rate limits (per source address: a burst of 6 port unreachables, then one per
second, ``icmp_ratelimit``; over all sources: ``icmp_msgs_per_sec`` 1,000 with a burst of
``icmp_msgs_burst`` 50).

Builds a lab whose target keeps the default limits (namespaces ``ps13b-*``), runs each tool
from the scanner namespace (no default route, bounded run time), checks every port against
the lab's truth and prints one table: wall time, the floor the rate limits set, the ratio to
it, ports decided right, wrong and left unknown (``undecided``, or missing from the output),
the ratio to nmap, and the load average.

The floor of C closed ports from N source addresses is the larger of the per-source one,
(C - 6 N) / N seconds, and the global one, (C - 50) / 1,000 seconds.

Scenarios:

* ``lab20``: 20 ports of the lab target, 15 closed (floor 9 s); portscope and nmap.
* ``top100``: nmap's 100 most often open UDP ports (95 closed: floor 89 s); both.
* ``pool``: ``top100`` from N = ``--pool-sizes`` (1, 2, 4, 8, 16) source addresses
  (``--source-addresses``), each with its own budget at the target.
* ``wide``: ports 1-10,000 from N = ``--wide-sizes`` (64, 256, 1,022) sources: where the
  global limit (1,000 per second) stops "N times faster".
* ``full``: all 65,535 ports. portscope from ``--full-pool`` (1,022) sources; portscope from
  one source stopped by ``--max-wait`` (what is not decided is ``undecided``); nmap with its
  defaults stopped by ``--host-timeout`` (its own "About X% done" gives the projected
  time; a timed-out host has no port results); nmap tuned for time (``--min-rate 1000
  --max-retries 1 --max-scan-delay 0``), bounded by ``--host-timeout 300s``.

The pool is a local route in the scanner namespace (``ip route add local 198.19.16.0/22 dev
lo``: every address in it is the scanner's, as aliases would be) routed back by the target;
with ``--family 6`` it is ``2001:db8:ff::/64`` (IPv6: the target gives sources behind a /64
route 4 errors per second each, ``icmpv6_xrlim_allow``).

A pause of 7 s before each run lets the target's buckets fill again (6 tokens at 1 per
second), so each tool starts with the burst. Needs root. Usage::

    sudo .venv/bin/python bench/bench_udp.py [--scenario lab20 ...] [--pool-sizes 1,2,4]
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

import lab as labmod  # noqa: E402

PORTSCOPE = REPO / ".venv" / "bin" / "portscope"
SCENARIOS = ("lab20", "top100", "pool", "wide", "full")
LAB20 = [7, 19, 53, 54, 111, 123, 124, 137, 161, 162, 500, 514, 1900, 9999, *range(20000, 20006)]
BURST = 6  # per source (XRLIM_BURST_FACTOR)
RATE = 1.0  # per source per second (icmp_ratelimit 1000 ms)
GLOBAL_RATE = 1000.0  # icmp_msgs_per_sec
GLOBAL_BURST = 50  # icmp_msgs_burst
POOL_V4 = "198.19.16.0/22"  # 1,022 usable addresses
POOL_V6 = "2001:db8:ff::/64"
_ABOUT = re.compile(r"About ([0-9.]+)% done")


@dataclass
class Run:
    scenario: str
    tool: str
    sources: int
    ports: int
    floor_s: float
    binds: str
    seconds: float | None = None
    right: int = 0
    wrong: int = 0
    unknown: int = 0
    load: str = ""
    projected_s: float | None = None  # nmap's own projection when stopped by its bound
    examples: list[str] = field(default_factory=list)
    note: str = ""


def floor(closed: int, sources: int, rate: float = RATE) -> tuple[float, str]:
    """The time the target's ICMP limits set for ``closed`` ports from ``sources``."""
    own = max(0, closed - BURST * sources) / (sources * rate)
    glob = max(0, closed - GLOBAL_BURST) / GLOBAL_RATE
    return (own, "source") if own >= glob else (glob, "global")


def udp_states(path: Path, ports: list[int]) -> dict[int, str]:
    """Each UDP port's state in an nmap XML file (folded ports from ``extraports``)."""
    root = ET.parse(path).getroot()
    states: dict[int, str] = {}
    for host in root.iter("host"):
        ports_el = host.find("ports")
        if ports_el is None:
            continue
        extras = ports_el.findall("extraports")
        for port in ports_el.findall("port"):
            state = port.find("state")
            if port.get("protocol") == "udp" and state is not None:
                states[int(port.get("portid", "0"))] = state.get("state", "")
        for extra in extras:
            for reason in extra.findall("extrareasons"):
                for part in reason.get("ports", "").split(","):
                    if part:
                        lo, _, hi = part.partition("-")
                        for p in range(int(lo), int(hi or lo) + 1):
                            states.setdefault(p, extra.get("state", ""))
        if len(extras) == 1:
            for p in ports:
                states.setdefault(p, extras[0].get("state", ""))
    return states


def loadavg() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def run_tool(
    lb: labmod.Lab, res: Run, argv: list[str], ports: list[int], xml: Path, timeout_s: float
) -> Run:
    xml.unlink(missing_ok=True)
    time.sleep(7)  # the target's buckets fill again: every tool starts with the burst
    start = time.perf_counter()
    try:
        proc = lb.exec(argv, timeout_s=timeout_s)
    except subprocess.TimeoutExpired:
        res.note = f"> {timeout_s:.0f} s (cut off)"
        res.unknown = len(ports)
        return res
    res.seconds = time.perf_counter() - start
    res.load = loadavg()
    if proc.returncode not in (0, 1) or not xml.exists():
        res.note = f"exit {proc.returncode}: {proc.stderr.strip()[-200:]}"
        res.unknown = len(ports)
        return res
    if "nmap" in argv[0]:
        about = _ABOUT.findall(proc.stdout)
        if "host timeout" in proc.stdout.lower() or "skipping host" in proc.stdout.lower():
            done = float(about[-1]) if about else 0.0
            projected = res.seconds / (done / 100) if done else float("inf")
            res.projected_s = projected
            res.note = f"host timeout at {done:.2f}% done: projected {projected / 3600:.1f} h; "
    states = udp_states(xml, ports)
    for port in ports:
        want, have = lb.expected("udp", port), states.get(port, "missing")
        if have in ("missing", "undecided"):
            res.unknown += 1
        elif have != want:
            res.wrong += 1
            if len(res.examples) < 4:
                res.examples.append(f"{port} {have} (truth {want})")
        else:
            res.right += 1
    return res


def add_pool(lb: labmod.Lab, family: int) -> None:
    """Make ``POOL_V4``/``POOL_V6`` the scanner's (a local route) and route it back."""
    if family == 6:
        labmod._ip("-n", lb.scanner_ns, "-6", "route", "add", "local", POOL_V6, "dev", "lo")
        labmod._ip("-n", lb.target_ns, "-6", "route", "add", POOL_V6, "via", lb.scanner_v6)
        subprocess.run(["ip", "netns", "exec", lb.scanner_ns, "sysctl", "-qw",
                        "net.ipv6.ip_nonlocal_bind=1"], check=True)  # fmt: skip
    else:
        labmod._ip("-n", lb.scanner_ns, "route", "add", "local", POOL_V4, "dev", "lo")
        labmod._ip("-n", lb.target_ns, "route", "add", POOL_V4, "via", lb.scanner_v4)


def pool_spec(family: int, n: int) -> str:
    """The first ``n`` addresses of the pool, as ``--source-addresses`` takes them."""
    if family == 6:
        return ",".join(f"2001:db8:ff::{i + 1:x}" for i in range(n))
    if n == 1022:
        return POOL_V4
    return ",".join(f"198.19.{16 + (i + 1) // 256}.{(i + 1) % 256}" for i in range(n))


def sizes(text: str) -> list[int]:
    out = [int(x) for x in text.split(",") if x.strip()]
    if not out or any(not 1 <= n <= 1022 for n in out):
        raise argparse.ArgumentTypeError(f"{text!r}: expected sizes 1-1022, comma-separated")
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--scenario", action="append", choices=SCENARIOS, help="repeatable")
    parser.add_argument("--pool-sizes", type=sizes, default=[1, 2, 4, 8, 16])
    parser.add_argument("--wide-sizes", type=sizes, default=[64, 256, 1022])
    parser.add_argument("--full-pool", type=sizes, default=[1022])
    parser.add_argument("--family", type=int, choices=(4, 6), default=4)
    parser.add_argument("--timeout-s", type=float, default=400.0, help="bound per tool run")
    parser.add_argument("--nmap-bound-s", type=int, default=180, help="nmap --host-timeout (full)")
    parser.add_argument(
        "--max-wait-s", type=int, default=120, help="portscope one source (full); 0: not run"
    )
    parser.add_argument("--skip-nmap", action="store_true")
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("bench_udp: needs root (network namespaces)", file=sys.stderr)
        return 2
    from portscope.registry import top_ports

    scenarios = args.scenario or ["lab20", "top100", "pool"]
    runs: list[Run] = []
    print(f"load average at start: {loadavg()}", file=sys.stderr, flush=True)
    with tempfile.TemporaryDirectory(prefix="bench-udp-") as tmp_name, labmod.running(
        prefix="ps13b", icmp_limit=True, async_rx=False
    ) as lb:  # fmt: skip
        tmp = Path(tmp_name)
        os.chmod(tmp, 0o755)
        add_pool(lb, args.family)
        target = lb.target_v6 if args.family == 6 else lb.target_v4
        top100 = sorted(int(p) for p in top_ports(100, "udp"))
        rate = 4.0 if args.family == 6 else RATE

        def go(scenario: str, tool: str, argv: list[str], ports: list[int], n: int,
               timeout_s: float | None = None) -> None:  # fmt: skip
            closed = sum(1 for p in ports if lb.expected("udp", p) == "closed")
            secs, binds = floor(closed, n, rate)
            xml = tmp / f"{scenario}-{len(runs)}.xml"
            res = Run(scenario, tool, n, len(ports), secs, binds)
            run_tool(lb, res, [*argv, "-oX", str(xml)], ports, xml, timeout_s or args.timeout_s)
            runs.append(res)
            print(f"  {scenario:7} {tool:22} N={n:<5} {res.seconds or 0:8.2f} s  right "
                  f"{res.right} wrong {res.wrong} unknown {res.unknown}  load {res.load}  "
                  f"{res.note}{'; '.join(res.examples)}", file=sys.stderr, flush=True)  # fmt: skip

        def ours(ports: list[int], *extra: str) -> list[str]:
            spec = "-" if len(ports) == 65535 else ",".join(map(str, ports))
            return [str(PORTSCOPE), "scan", "-sU", target, "-p", spec, "--json", "--yes", *extra]

        def nmap(ports: list[int], *extra: str) -> list[str]:
            spec = "-" if len(ports) == 65535 else ",".join(map(str, ports))
            return ["nmap", "-sU", "-n", "-Pn", "-p", spec, *extra, target]

        for scenario in scenarios:
            if scenario in ("lab20", "top100"):
                ports = LAB20 if scenario == "lab20" else top100
                go(scenario, "portscope -sU", ours(ports), ports, 1)
                if not args.skip_nmap:
                    go(scenario, "nmap -sU", nmap(ports), ports, 1)
            elif scenario in ("pool", "wide"):
                ports = top100 if scenario == "pool" else list(range(1, 10001))
                for n in args.pool_sizes if scenario == "pool" else args.wide_sizes:
                    argv = ours(ports, "--source-addresses", pool_spec(args.family, n))
                    go(scenario, "portscope -sU pool", argv, ports, n)
            else:
                ports = list(range(1, 65536))
                for n in args.full_pool:
                    argv = ours(ports, "--source-addresses", pool_spec(args.family, n))
                    go(scenario, "portscope -sU pool", argv, ports, n, 900)
                if args.max_wait_s:
                    argv = ours(ports, "--max-wait", str(args.max_wait_s))
                    go(scenario, "portscope -sU max-wait", argv, ports, 1, args.max_wait_s + 90)
                if not args.skip_nmap:
                    bound = f"{args.nmap_bound_s}s"
                    argv = nmap(ports, "-v", "--stats-every", "10s", "--host-timeout", bound)
                    go(scenario, "nmap -sU", argv, ports, 1, args.nmap_bound_s + 60)
                    argv = nmap(ports, "--min-rate", "1000", "--max-retries", "1",
                                "--max-scan-delay", "0", "--host-timeout", "300s")  # fmt: skip
                    go(scenario, "nmap -sU tuned", argv, ports, 1, 360)
    print_table(runs)
    return 0


def print_table(runs: list[Run]) -> None:
    # nmap's time, or its own projection when its --host-timeout stopped it
    nmap_time = {
        r.scenario: r.projected_s or r.seconds for r in runs if r.tool == "nmap -sU" and r.seconds
    }
    base: dict[str, float] = {}  # the first pool size's time, for the speed-up column
    for r in runs:
        if r.tool.endswith("pool") and r.seconds:
            base.setdefault(r.scenario, r.seconds)
    print(f"{'scenario':8}  {'tool':22}  {'N':>4}  {'ports':>5}  {'seconds':>8}  "
          f"{'floor':>7}  {'binds':6}  {'x floor':>7}  {'vs 1st N':>8}  {'vs nmap':>7}  "
          f"{'right':>5}  {'wrong':>5}  {'unknown':>7}  {'load':14}  notes")  # fmt: skip
    for r in runs:
        secs = "-" if r.seconds is None else f"{r.seconds:.2f}"
        ratio = f"{r.seconds / r.floor_s:.2f}x" if r.seconds and r.floor_s else "-"
        vs = nmap_time.get(r.scenario)
        mine = r.unknown == 0 and r.tool.startswith("portscope")  # complete runs only
        vs_nmap = f"{r.seconds / vs:.4f}x" if vs and r.seconds and mine else "-"
        b = base.get(r.scenario)
        speed = f"{b / r.seconds:.1f}x" if b and r.seconds and r.tool.endswith("pool") else "-"
        print(f"{r.scenario:8}  {r.tool:22}  {r.sources:>4}  {r.ports:>5}  {secs:>8}  "
              f"{r.floor_s:>7.1f}  {r.binds:6}  {ratio:>7}  {speed:>8}  {vs_nmap:>7}  "
              f"{r.right:>5}  {r.wrong:>5}  {r.unknown:>7}  {r.load:14}  "
              f"{r.note}{'; '.join(r.examples)}")  # fmt: skip


if __name__ == "__main__":
    sys.exit(main())
