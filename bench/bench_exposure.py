"""How long ``portscope exposure`` takes beside the tools a person runs by hand.

Builds a namespace (``ps10-bench-PID``, removed at the end; no traffic is sent) with a
generated nftables ruleset of ``--rules`` rules (an allow-list by port and source, a named
set, a verdict map, a DNAT per 50 rules) and ``--listeners`` TCP listeners, then times, each
``--runs`` times, interleaved:

- ``nft -j list ruleset`` and ``ss -tuln`` (reading what ``exposure`` reads, without the
  evaluation), and ``ss -tulpn`` (with processes, as ``exposure`` names them),
- ``portscope exposure --json`` (read, evaluate every port from every source class),
- the evaluator alone, in-process: evaluations per second.

Prints medians and ratios. Root only.

    sudo python bench/bench_exposure.py --rules 2000 --listeners 50 --runs 5
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def ruleset(n: int) -> str:
    lines = [
        "table inet fw {",
        "  set admins { type ipv4_addr; flags interval; elements = { 198.18.5.0/24 } }",
        "  map svc { type inet_service : verdict; elements = { 2001 : accept, 2002 : drop } }",
        "  chain input { type filter hook input priority filter; policy drop;",
        "    ct state established,related accept",
        '    iifname "lo" accept',
    ]
    for i in range(n):
        port = 10000 + i
        kind = i % 4
        if kind == 0:
            lines.append(f"    tcp dport {port} accept")
        elif kind == 1:
            lines.append(f"    ip saddr @admins tcp dport {port} accept")
        elif kind == 2:
            lines.append(f"    ip saddr 198.18.{i % 250}.0/24 tcp dport {port} drop")
        else:
            lines.append(f"    tcp dport {port} reject with tcp reset")
    lines += [
        "    tcp dport vmap @svc",
        "  }",
        "}",
        "table ip nat {",
        "  chain pre { type nat hook prerouting priority dstnat; policy accept;",
    ]
    for i in range(0, n, 50):
        lines.append(f"    tcp dport {20000 + i} dnat to 198.18.99.2:80")
    lines += ["  }", "}"]
    return "\n".join(lines) + "\n"


def timed(argv: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(argv, capture_output=True, check=True)
    return time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rules", type=int, default=2000)
    ap.add_argument("--listeners", type=int, default=50)
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("bench_exposure: needs root (a network namespace)")
    ns = f"ps10-bench-{os.getpid()}"
    subprocess.run(["ip", "netns", "add", ns], check=True)
    server = None
    try:
        ex = ["ip", "netns", "exec", ns]
        subprocess.run([*ex, "ip", "link", "set", "lo", "up"], check=True)
        subprocess.run(
            [*ex, "ip", "link", "add", "eth0", "type", "veth", "peer", "name", "p0"], check=True
        )
        subprocess.run([*ex, "ip", "addr", "add", "198.18.98.1/24", "dev", "eth0"], check=True)
        subprocess.run([*ex, "ip", "link", "set", "eth0", "up"], check=True)
        subprocess.run([*ex, "nft", "-f", "-"], input=ruleset(args.rules), text=True, check=True)
        ports = [10000 + i for i in range(0, args.rules, max(1, args.rules // args.listeners))]
        spec = json.dumps({"tcp": ports[: args.listeners]})
        server = subprocess.Popen(
            [*ex, sys.executable, str(HERE.parent / "tests/system/fwtruth_server.py"), spec],
            stdout=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        assert server.stdout is not None
        server.stdout.readline()
        cmds = {
            "nft -j list ruleset": [*ex, "nft", "-j", "list", "ruleset"],
            "ss -tuln": [*ex, "ss", "-tuln"],
            "ss -tulpn": [*ex, "ss", "-tulpn"],
            "portscope exposure --json": [
                *ex,
                sys.executable,
                "-m",
                "portscope",
                "exposure",
                "--json",
            ],
        }
        times: dict[str, list[float]] = {k: [] for k in cmds}
        for _ in range(args.runs):
            for name, argv in cmds.items():
                times[name].append(timed(argv))
        base = statistics.median(times["nft -j list ruleset"]) + statistics.median(
            times["ss -tulpn"]
        )  # what a person runs by hand to answer the same question
        print(f"{args.rules} rules, {len(ports[: args.listeners])} listeners, {args.runs} runs")
        for name, values in times.items():
            med = statistics.median(values)
            print(f"  {name:<28} {med * 1000:8.1f} ms  ({med / base:.2f}x nft -j + ss -tulpn)")
        # the evaluator alone, in this process, on the ruleset read from the namespace
        from portscope.firewall import Evaluator, Packet, Verdict, read_host, read_ruleset

        rs, host = read_ruleset(ns), read_host(ns)
        ev = Evaluator(rs, host, lambda a, p, pr, loc, iif: (Verdict.OPEN, None))
        n = 2000
        start = time.perf_counter()
        for i in range(n):
            ev.evaluate(
                Packet(4, "tcp", "203.0.113.7", "198.18.98.1", 10000 + i % args.rules, iif="eth0")
            )
        elapsed = time.perf_counter() - start
        print(f"  evaluator: {n / elapsed:,.0f} evaluations/s ({elapsed / n * 1e6:.0f} us each)")
    finally:
        if server is not None:
            os.killpg(server.pid, 9)
            server.wait()
        subprocess.run(["ip", "netns", "del", ns], check=False)


if __name__ == "__main__":
    main()
