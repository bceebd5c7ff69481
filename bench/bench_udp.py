#!/usr/bin/env python3
"""UDP scan benchmark: ``portscope scan -sU`` vs ``nmap -sU`` against a target that keeps
Linux's ICMP rate limit (a burst of 6 port-unreachables, then one per second per source).

Builds a lab whose target keeps the default ``icmp_ratelimit`` (namespaces ``ps13-*``), runs
each tool from the scanner namespace (no default route, bounded run time), checks every
port against the lab's truth and prints: wall time, wrong answers, the floor the rate limit
sets ((closed ports - 6) / 1 per second, per source address) and the ratio to it.

Scenarios:

* ``lab20``: 20 ports of the lab target, 15 closed (floor 9 s).
* ``top100``: nmap's 100 most often open UDP ports (about 95 closed: floor about 89 s).
* ``pool``: ``top100`` from a pool of ``--pool`` source addresses (``--source-addresses``),
  each with its own budget at the target: the floor divided by the pool size.

The full range (65,535 ports) has a floor of about 65,500 s (18 hours) from one source, so it
is not run; with a pool of N addresses it is 18/N hours.

A pause of 7 s between runs lets the target's bucket fill again (6 tokens at 1 per second),
so each tool starts with the burst. Needs root. Usage::

    sudo .venv/bin/python bench/bench_udp.py [--scenario lab20] [--pool 4]
"""

from __future__ import annotations

import argparse
import os
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
SCENARIOS = ("lab20", "top100", "pool")
LAB20 = [7, 19, 53, 54, 111, 123, 124, 137, 161, 162, 500, 514, 1900, 9999, *range(20000, 20006)]
BURST = 6


@dataclass
class Run:
    scenario: str
    tool: str
    floor_s: float
    seconds: float | None = None
    wrong: int = 0
    examples: list[str] = field(default_factory=list)
    error: str | None = None


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


def run_tool(
    lb: labmod.Lab, scenario: str, tool: str, argv: list[str], ports: list[int],
    xml: Path, floor_s: float, timeout_s: float,
) -> Run:  # fmt: skip
    res = Run(scenario, tool, floor_s)
    xml.unlink(missing_ok=True)
    time.sleep(7)  # the target's bucket fills again: every tool starts with the burst
    start = time.perf_counter()
    try:
        proc = lb.exec(argv, timeout_s=timeout_s)
    except subprocess.TimeoutExpired:
        res.error = f"> {timeout_s:.0f} s (cut off)"
        return res
    res.seconds = time.perf_counter() - start
    if proc.returncode not in (0, 1) or not xml.exists():
        res.error = f"exit {proc.returncode}: {proc.stderr.strip()[-200:]}"
        return res
    states = udp_states(xml, ports)
    for port in ports:
        want, have = lb.expected("udp", port), states.get(port, "missing")
        if have != want:
            res.wrong += 1
            if len(res.examples) < 6:
                res.examples.append(f"{port} {have} (truth {want})")
    return res


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--scenario", action="append", choices=SCENARIOS, help="repeatable")
    parser.add_argument("--pool", type=int, default=4, help="source addresses in 'pool'")
    parser.add_argument("--timeout-s", type=float, default=400.0, help="bound per tool run")
    parser.add_argument("--skip-nmap", action="store_true")
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("bench_udp: needs root (network namespaces)", file=sys.stderr)
        return 2
    if not 1 <= args.pool <= 200:
        print("bench_udp: --pool: expected 1-200", file=sys.stderr)
        return 2
    from portscope.registry import top_ports

    scenarios = args.scenario or list(SCENARIOS)
    runs: list[Run] = []
    with tempfile.TemporaryDirectory(prefix="bench-udp-") as tmp_name, labmod.running(
        prefix="ps13", icmp_limit=True, async_rx=False
    ) as lb:  # fmt: skip
        tmp = Path(tmp_name)
        os.chmod(tmp, 0o755)
        pool = [f"198.18.0.{10 + i}" for i in range(args.pool)]
        for address in pool:
            labmod._ip("-n", lb.scanner_ns, "addr", "add", f"{address}/24", "dev", "lan0")
        for scenario in scenarios:
            ports = LAB20 if scenario == "lab20" else sorted(int(p) for p in top_ports(100, "udp"))
            closed = sum(1 for p in ports if lb.expected("udp", p) == "closed")
            sources = args.pool if scenario == "pool" else 1
            floor_s = max(0, closed - BURST * sources) / sources
            spec = ",".join(map(str, ports))
            xml = tmp / f"{scenario}.xml"
            ours = [str(PORTSCOPE), "scan", "-sU", lb.target_v4, "-p", spec, "--json",
                    "-oX", str(xml)]  # fmt: skip
            if scenario == "pool":
                ours += ["--source-addresses", ",".join(pool)]
            tools = [("portscope -sU", ours)]
            if not args.skip_nmap and scenario != "pool":  # nmap has no source pool
                nmap = ["nmap", "-sU", "-n", "-Pn", "-p", spec, "-oX", str(xml), lb.target_v4]
                tools.append(("nmap -sU", nmap))
            for tool, argv in tools:
                res = run_tool(lb, scenario, tool, argv, ports, xml, floor_s, args.timeout_s)
                runs.append(res)
                print(f"  {scenario:7} {tool:14} {res.seconds or 0:7.2f} s  wrong {res.wrong} "
                      f"{res.error or ''}", file=sys.stderr, flush=True)  # fmt: skip
    print(f"{'scenario':8}  {'tool':14}  {'ports':>5}  {'seconds':>8}  {'floor':>6}  "
          f"{'vs floor':>8}  {'wrong':>5}  notes")  # fmt: skip
    for r in runs:
        secs = "-" if r.seconds is None else f"{r.seconds:.2f}"
        ratio = f"{r.seconds / r.floor_s:.2f}x" if r.seconds and r.floor_s else "-"
        n = len(LAB20) if r.scenario == "lab20" else 100
        print(f"{r.scenario:8}  {r.tool:14}  {n:>5}  {secs:>8}  {r.floor_s:>6.1f}  {ratio:>8}  "
              f"{r.wrong:>5}  {(r.error or '') + '; '.join(r.examples)}")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
