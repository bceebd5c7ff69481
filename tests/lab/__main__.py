"""``python -m lab`` (``scripts/lab``): build, inspect and remove a developer scan lab.

Commands: ``up [--wan]``, ``down``, ``status``, ``truth [--out FILE]``, ``exec CMD...``.
The lab made by ``up`` keeps running after the command exits; its state is kept in
``/run/portscope-lab/dev.json`` so ``down`` removes exactly what ``up`` made.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from typing import Any

from . import (
    STATE_DIR,
    Lab,
    LabError,
    _pid_alive,
    build,
    load_state,
    namespaces,
    save_state,
    teardown,
)

TAG = "dev"
STATE = STATE_DIR / f"{TAG}.json"
TRUTH = STATE_DIR / f"{TAG}.truth.json"


def _up(args: argparse.Namespace) -> int:
    if STATE.exists():
        print(f"lab: already up ({STATE}); run 'scripts/lab down' first", file=sys.stderr)
        return 1
    lb = build(
        wan=args.wan,
        tag=TAG,
        seed=args.seed,
        delay_ms=args.delay_ms,
        jitter_ms=args.jitter_ms,
        loss=args.loss,
        async_rx=not args.plain_veth,
    )
    save_state(lb, STATE)
    lb.write_truth(TRUTH)
    rx = "threaded NAPI" if lb.async_rx else "plain"
    mode = f"WAN {lb.wan_params}" if lb.wan else f"LAN (veth, {rx} receive)"
    print(f"lab up: {mode}")
    print(f"  scanner ns {lb.scanner_ns}: {lb.scanner_v4}, {lb.scanner_v6} (no default route)")
    print(f"  target ns  {lb.target_ns}: {lb.target_v4}, {lb.target_v6},")
    print(f"             {lb.targets_v4_28[0]}-{lb.targets_v4_28[-1]}; silent {lb.silent_v4}")
    print(f"  truth: {TRUTH}")
    print(f"  try:   scripts/lab exec nmap -sT -n -Pn -p- {lb.target_v4}")
    return 0


def _down(_args: argparse.Namespace) -> int:
    if STATE.exists():
        teardown(load_state(STATE))
    else:
        # No state (lost /run?): remove the dev namespaces and whatever runs in them.
        teardown(Lab(scanner_ns=f"ps-scan-{TAG}", target_ns=f"ps-tgt-{TAG}"))
    for path in (STATE, TRUTH, *STATE_DIR.glob(f"ps-scan-{TAG}.*")):
        path.unlink(missing_ok=True)
    print("lab down")
    return 0


def _status(args: argparse.Namespace) -> int:
    if not STATE.exists():
        print("lab: down")
        return 1
    lb = load_state(STATE)
    present = set(namespaces())
    ns_ok = {ns: ns in present for ns in (lb.scanner_ns, lb.target_ns)}
    procs_ok = {name: _pid_alive(pid) for name, pid in lb.pids.items()}
    report: dict[str, Any] = {
        "mode": "wan" if lb.wan else "lan",
        "namespaces": ns_ok,
        "processes": procs_ok,
        "wan_counters": lb.wan_counters(),
        "truth": str(TRUTH),
    }
    try:
        lb.check_no_default_route()
        report["scanner_default_route"] = False
    except LabError:
        report["scanner_default_route"] = True
    if args.json:
        print(json.dumps(report, indent=1))
    else:
        for key, value in report.items():
            print(f"{key:22} {value}")
    healthy = all(ns_ok.values()) and all(procs_ok.values())
    return 0 if healthy else 1


def _truth(args: argparse.Namespace) -> int:
    data = Lab(scanner_ns=f"ps-scan-{TAG}", target_ns=f"ps-tgt-{TAG}").truth_json()
    text = json.dumps(data, indent=1) + "\n"
    if args.out:
        with open(args.out, "w") as f:
            f.write(text)
    else:
        sys.stdout.write(text)
    return 0


def _exec(args: argparse.Namespace) -> int:
    if not STATE.exists():
        print("lab: down ('scripts/lab up' first)", file=sys.stderr)
        return 1
    lb = load_state(STATE)
    return subprocess.call(["ip", "netns", "exec", lb.scanner_ns, *args.argv])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="scripts/lab", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="build the lab (LAN; --wan for delay and loss)")
    up.add_argument("--wan", action="store_true", help="20 ms +- 5 ms, 0.5%% loss each way")
    up.add_argument("--delay-ms", type=float, default=20.0, help="one-way delay (WAN)")
    up.add_argument("--jitter-ms", type=float, default=5.0, help="uniform jitter (WAN)")
    up.add_argument("--loss", type=float, default=0.005, help="loss probability each way")
    up.add_argument("--seed", type=int, default=1, help="RNG seed of the WAN stage")
    up.add_argument(
        "--plain-veth",
        action="store_true",
        help="LAN: no threaded NAPI (faster; a v6 ICMP error may wait for a SYN retransmit)",
    )
    sub.add_parser("down", help="stop the lab's processes and delete its namespaces")
    status = sub.add_parser("status", help="namespaces, processes, WAN counters")
    status.add_argument("--json", action="store_true")
    truth = sub.add_parser("truth", help="print the ground truth as JSON")
    truth.add_argument("--out", help="write to this file instead")
    ex = sub.add_parser("exec", help="run a command in the scanner namespace")
    ex.add_argument("argv", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    if args.command != "truth" and os.geteuid() != 0:
        print("lab: needs root (network namespaces)", file=sys.stderr)
        return 2
    handler = {"up": _up, "down": _down, "status": _status, "truth": _truth, "exec": _exec}
    try:
        return handler[args.command](args)
    except LabError as err:
        print(f"lab: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
