#!/usr/bin/env python3
"""Scan benchmark in the lab: portscope's connect scan vs nmap -sT and nmap -sS -T4.

Builds the scan lab (tests/lab: network namespaces, known ground truth), runs every tool from
the scanner namespace, and prints one table: wall time, accuracy against the truth (% of
scanned ports whose state equals the truth, with the mismatches), and how many times faster
than ``nmap -sT`` / ``nmap -sS -T4`` in the same mode and scenario (``2.0x`` = half the time).

Scenarios: ``full`` = ``-p-`` against the target (65,535 TCP ports); ``top1000/28`` =
``--top-ports 1000`` over the 14 hosts 198.18.1.1-14 (14,000 probes). Modes: LAN (veth) and,
with ``--wan``, WAN (20 ms +- 5 ms one-way, 0.5 % loss each way; each WAN run is bounded by
``--wan-timeout-s``). The LAN lab here is a plain veth pair (``--async-rx`` uses the test
fixture's threaded-NAPI receive, which costs nmap -sT about 2x). Accuracy is read from each
tool's nmap XML (``-oX``); a port not listed takes the state of ``<extraports>``
(``extrareasons ports=`` when there are several).

Needs root (network namespaces). Usage::

    sudo .venv/bin/python bench/bench_scan.py                # LAN
    sudo .venv/bin/python bench/bench_scan.py --wan          # LAN, then WAN (minutes)
    sudo .venv/bin/python bench/bench_scan.py --wan-only --scenario full
    sudo .venv/bin/python bench/bench_scan.py --throughput   # the WAN forwarder's capacity
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

import lab as labmod  # noqa: E402  (tests/ is put on sys.path above)

PORTSCOPE = REPO / ".venv" / "bin" / "portscope"
TOOLS = ("portscope", "nmap -sT", "nmap -sS -T4")
SCENARIOS = ("full", "top1000/28")


@dataclass
class Result:
    mode: str
    scenario: str
    tool: str
    seconds: list[float] = field(default_factory=list)
    checked: int = 0
    matched: int = 0
    mismatches: list[str] = field(default_factory=list)
    error: str | None = None
    wan_dropped: int | None = None
    kernel_dropped: int = 0

    @property
    def median_s(self) -> float | None:
        return statistics.median(self.seconds) if self.seconds else None

    @property
    def accuracy(self) -> float | None:
        return 100.0 * self.matched / self.checked if self.checked else None


def parse_ports(spec: str) -> list[int]:
    """Expand nmap's ``services=`` list (``1-3,7``) into ports."""
    ports: list[int] = []
    for part in spec.split(","):
        if not part:
            continue
        lo, _, hi = part.partition("-")
        ports.extend(range(int(lo), int(hi or lo) + 1))
    return ports


def xml_states(path: Path) -> tuple[list[int], dict[str, dict[int, str]]]:
    """The scanned TCP ports and, per host address, the state of every port, from nmap XML."""
    root = ET.parse(path).getroot()
    scanned: list[int] = []
    for info in root.iter("scaninfo"):
        if info.get("protocol") == "tcp":
            scanned = parse_ports(info.get("services", ""))
    hosts: dict[str, dict[int, str]] = {}
    for host in root.iter("host"):
        addr_el = host.find("address")
        if addr_el is None:
            continue
        states: dict[int, str] = {}
        ports_el = host.find("ports")
        if ports_el is not None:
            extras = ports_el.findall("extraports")
            for extra in extras:
                for reason in extra.findall("extrareasons"):
                    for p in parse_ports(reason.get("ports", "")):
                        states[p] = extra.get("state", "")
            for port in ports_el.findall("port"):
                state_el = port.find("state")
                if port.get("protocol") == "tcp" and state_el is not None:
                    states[int(port.get("portid", "0"))] = state_el.get("state", "")
            if len(extras) == 1:
                default = extras[0].get("state", "")
                for p in scanned:
                    states.setdefault(p, default)
        hosts[addr_el.get("addr", "")] = states
    return scanned, hosts


def tool_argv(tool: str, ports: list[str], targets: list[str], xml: Path) -> list[str]:
    if tool == "portscope":
        return [str(PORTSCOPE), "scan", *ports, "--json", "-oX", str(xml), *targets]
    flags = ["-sT"] if tool == "nmap -sT" else ["-sS", "-T4"]
    return ["nmap", *flags, "-n", "-Pn", *ports, "-oX", str(xml), *targets]


def run_one(lb: labmod.Lab, res: Result, timeout_s: float, tmp: Path) -> None:
    if res.scenario == "full":
        ports, targets, hosts = ["-p-"], [lb.target_v4], [lb.target_v4]
    else:
        first, last = lb.targets_v4_28[0], lb.targets_v4_28[-1]
        ports = ["--top-ports", "1000"]
        targets = [f"{first}-{last.rsplit('.', 1)[1]}"]
        hosts = lb.targets_v4_28
    xml = tmp / f"{res.mode}-{res.tool.replace(' ', '_')}.xml"
    xml.unlink(missing_ok=True)
    before = lb.wan_counters()
    start = time.perf_counter()
    try:
        proc = lb.exec(tool_argv(res.tool, ports, targets, xml), timeout_s=timeout_s)
    except subprocess.TimeoutExpired:
        res.error = f"timeout after {timeout_s:.0f} s"
        return
    elapsed = time.perf_counter() - start
    after = lb.wan_counters()
    if before and after:
        res.wan_dropped = (res.wan_dropped or 0) + sum(
            after[w]["dropped"] - before[w]["dropped"] for w in ("a_to_b", "b_to_a")
        )
        res.kernel_dropped += sum(
            (after["kernel_tx_dropped"][side] or 0) - (before["kernel_tx_dropped"][side] or 0)
            for side in ("scanner", "target")
        )
    if proc.returncode not in (0, 1) or not xml.exists():
        res.error = f"exit {proc.returncode}: {proc.stderr.strip()[-200:]}"
        return
    res.seconds.append(elapsed)
    scanned, states = xml_states(xml)
    for host in hosts:
        got = states.get(host, {})
        for port in scanned:
            want = lb.expected("tcp", port)
            have = got.get(port, "missing")
            res.checked += 1
            if have == want:
                res.matched += 1
            elif len(res.mismatches) < 200:
                res.mismatches.append(f"{host}:{port} {have} (truth {want})")


def fmt_s(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def print_table(results: list[Result]) -> None:
    base: dict[tuple[str, str, str], float] = {}
    for r in results:
        if r.median_s is not None:
            base[(r.mode, r.scenario, r.tool)] = r.median_s
    header = (
        f"{'mode':4}  {'scenario':10}  {'tool':13}  {'seconds':>8}  {'runs':>4}  "
        f"{'accuracy':>8}  {'vs -sT':>7}  {'vs -sS':>7}  notes"
    )
    print(header)
    print("-" * len(header))
    for r in results:
        ratios = []
        for ref in ("nmap -sT", "nmap -sS -T4"):
            b = base.get((r.mode, r.scenario, ref))
            ratios.append(f"{b / r.median_s:.2f}x" if b and r.median_s else "-")
        acc = "-" if r.accuracy is None else f"{r.accuracy:.2f}%"
        notes = r.error or ""
        if r.mismatches:
            notes += f"{len(r.mismatches)} mismatches: " + "; ".join(r.mismatches[:4])
        if r.wan_dropped is not None:
            notes += f" [WAN stage: {r.wan_dropped} frames lost at random"
            notes += f", {r.kernel_dropped} by overload]"
        runs = ", ".join(f"{s:.1f}" for s in r.seconds) if len(r.seconds) > 1 else ""
        print(
            f"{r.mode:4}  {r.scenario:10}  {r.tool:13}  {fmt_s(r.median_s):>8}  "
            f"{len(r.seconds):>4}  {acc:>8}  {ratios[0]:>7}  {ratios[1]:>7}  "
            f"{notes.strip()}{' runs: ' + runs if runs else ''}"
        )


def bench_mode(wan: bool, args: argparse.Namespace, tmp: Path) -> list[Result]:
    mode = "WAN" if wan else "LAN"
    timeout_s = args.wan_timeout_s if wan else args.lan_timeout_s
    results = []
    with labmod.running(wan=wan, seed=args.seed, async_rx=args.async_rx) as lb:
        for scenario in args.scenario:
            for tool in args.tools:
                res = Result(mode, scenario, tool)
                for _ in range(args.runs):
                    run_one(lb, res, timeout_s, tmp)
                    if res.error:
                        break
                print(
                    f"  {mode} {scenario:10} {tool:13} {fmt_s(res.median_s):>8} s  "
                    f"{res.error or ''}",
                    file=sys.stderr,
                    flush=True,
                )
                results.append(res)
    return results


BLAST = """
import socket, sys, time
rate, seconds, dest = float(sys.argv[1]), float(sys.argv[2]), sys.argv[3]
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setblocking(False)
burst = 50
sent = 0
start = time.perf_counter()
while True:
    now = time.perf_counter() - start
    if now >= seconds:
        break
    due = int(now * rate) + burst
    while sent < due:
        try:
            s.sendto(b'x', (dest, 9))
        except BlockingIOError:
            pass
        sent += 1
print(sent, time.perf_counter() - start)
"""


def throughput(args: argparse.Namespace) -> None:
    """Paced UDP to a closed port through the WAN stage (no loss): every datagram and its ICMP
    answer cross the forwarder; count frames the forwarder handled and the kernel dropped."""
    print("WAN forwarder capacity (20 ms +- 5 ms, no loss; 1 s per step)")
    print(f"{'offered probes/s':>16}  {'sent/s':>8}  {'frames fwd/s':>12}  {'kernel drops':>12}")
    with labmod.running(wan=True, seed=args.seed, loss=0.0) as lb:
        for rate in (10000, 25000, 50000, 75000, 100000, 150000, 200000):
            before = lb.wan_counters()
            proc = lb.exec([sys.executable, "-c", BLAST, str(rate), "1.0", lb.target_v4])
            sent_s, secs = proc.stdout.split()
            time.sleep(0.5)
            after = lb.wan_counters()
            assert before and after
            fwd = sum(after[w]["forwarded"] - before[w]["forwarded"] for w in ("a_to_b", "b_to_a"))
            kd = sum(
                (after["kernel_tx_dropped"][s] or 0) - (before["kernel_tx_dropped"][s] or 0)
                for s in ("scanner", "target")
            )
            secs_f = float(secs)
            print(f"{rate:>16}  {int(sent_s) / secs_f:>8.0f}  {fwd / secs_f:>12.0f}  {kd:>12}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--wan", action="store_true", help="also run in WAN mode (slow)")
    parser.add_argument("--wan-only", action="store_true", help="only WAN mode")
    parser.add_argument("--scenario", action="append", choices=SCENARIOS, help="repeatable")
    parser.add_argument("--tools", default=",".join(TOOLS), help="comma-separated subset")
    parser.add_argument("--runs", type=int, default=1, help="runs per tool (median shown)")
    parser.add_argument("--lan-timeout-s", type=float, default=120.0)
    parser.add_argument("--wan-timeout-s", type=float, default=600.0)
    parser.add_argument("--seed", type=int, default=1, help="WAN stage RNG seed")
    parser.add_argument("--throughput", action="store_true", help="measure the WAN forwarder")
    parser.add_argument(
        "--async-rx",
        action="store_true",
        help="LAN veth receives in threaded NAPI, as in the test fixture (default: plain veth)",
    )
    parser.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("bench_scan: needs root (network namespaces)", file=sys.stderr)
        return 2
    if args.throughput:
        throughput(args)
        return 0
    args.scenario = args.scenario or list(SCENARIOS)
    args.tools = [t.strip() for t in args.tools.split(",") if t.strip()]
    if "portscope" in args.tools and not PORTSCOPE.exists():
        print("bench_scan: portscope not installed in .venv; skipping it", file=sys.stderr)
        args.tools.remove("portscope")
    if shutil.which("nmap") is None:
        print("bench_scan: nmap not found", file=sys.stderr)
        return 2
    modes = [True] if args.wan_only else ([False, True] if args.wan else [False])
    results: list[Result] = []
    with tempfile.TemporaryDirectory(prefix="bench-scan-") as tmp:
        os.chmod(tmp, 0o755)
        for wan in modes:
            results += bench_mode(wan, args, Path(tmp))
    print_table(results)
    if args.json:
        Path(args.json).write_text(
            json.dumps(
                [
                    {
                        "mode": r.mode,
                        "scenario": r.scenario,
                        "tool": r.tool,
                        "seconds": r.seconds,
                        "accuracy_pct": r.accuracy,
                        "checked": r.checked,
                        "mismatches": r.mismatches,
                        "error": r.error,
                        "wan_frames_lost": r.wan_dropped,
                    }
                    for r in results
                ],
                indent=1,
            )
        )
    return 0 if all(r.error is None for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
