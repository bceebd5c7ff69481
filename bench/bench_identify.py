#!/usr/bin/env python3
"""Service identification benchmark: ``portscope scan -sV`` vs ``nmap -sV`` on real servers.

Starts every server of tests/lab/real_servers.py on 127.0.0.1 (nginx HTTP and TLS, Redis,
PostgreSQL, MariaDB, OpenSSH, memcached, Mosquitto, an aiosmtpd SMTP and a pyftpdlib FTP
server, plus nginx on 6379 and OpenSSH on an https-alt port), then in one run scans their
ports with ``portscope scan -sV`` and with ``nmap -sT -sV`` (connect scan for both, so only
identification differs), and prints one table: each tool's service / product / version, and
a verdict per port -- ``agree`` (same service and product, version where both give one),
``we say more`` / ``we say less`` (one names a product or version the other does not),
``differ``; then the wall time of each (``--runs`` repetitions, the median).

Traffic: loopback only. Servers are stopped by PID at the end. Usage::

    . .venv/bin/activate
    python bench/bench_identify.py            # one run of each tool
    python bench/bench_identify.py --runs 3   # median of three
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.lab.real_servers import SERVERS, Missing, Running  # noqa: E402

# the same service under each tool's name (nmap's names are the nmap-services ones)
SAME = {("domain", "domain"), ("mysql", "mysql"), ("postgresql", "postgresql"),
        ("mqtt", "mqtt"), ("memcached", "memcached")}  # fmt: skip
NMAP_NAMES = {
    "http": {"http", "https", "ssl/http"}, "ssh": {"ssh"}, "smtp": {"smtp"}, "ftp": {"ftp"},
    "redis": {"redis"}, "memcached": {"memcache", "memcached"},
}  # fmt: skip


def _start_all() -> dict[str, Running | str]:
    def start(name: str) -> tuple[str, Running | str]:
        try:
            return name, SERVERS[name]()
        except Missing as err:
            return name, str(err)
        except Exception as err:
            return name, f"failed: {err}"

    with ThreadPoolExecutor(max_workers=6) as pool:
        return dict(pool.map(start, SERVERS))


def _run_portscope(ports: str) -> tuple[float, dict[int, dict[str, object]]]:
    started = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "portscope", "scan", "127.0.0.1", "-p", ports, "-sV", "--json"],
        capture_output=True, text=True, timeout=600, check=True,
    )  # fmt: skip
    elapsed = time.monotonic() - started
    out = {}
    for line in proc.stdout.splitlines():
        doc = json.loads(line)
        if doc["type"] == "port" and doc.get("identity"):
            ident = doc["identity"]
            out[doc["port"]] = {
                "service": ident["label"],
                "product": ident["product"],
                "version": ident["version"],
                "conf": ident["confidence"],
            }
    return elapsed, out


def _run_nmap(ports: str) -> tuple[float, dict[int, dict[str, object]]]:
    started = time.monotonic()
    proc = subprocess.run(
        ["nmap", "-sT", "-sV", "-Pn", "-n", "-p", ports, "127.0.0.1", "-oX", "-"],
        capture_output=True, text=True, timeout=900, check=True,
    )  # fmt: skip
    elapsed = time.monotonic() - started
    out = {}
    for port in ET.fromstring(proc.stdout).iter("port"):
        svc = port.find("service")
        if svc is None:
            continue
        name = svc.get("name", "")
        if svc.get("tunnel") == "ssl":
            name = f"ssl/{name}"
        out[int(port.get("portid", "0"))] = {
            "service": name,
            "product": svc.get("product"),
            "version": svc.get("version"),
            "conf": f"{svc.get('method')} {svc.get('conf')}",
        }
    return elapsed, out


def _norm(text: object) -> str:
    return str(text or "").lower().replace(" ", "").replace("httpd", "")


def _same_service(ours: str, theirs: str) -> bool:
    a, b = ours.removeprefix("ssl/"), theirs.removeprefix("ssl/")
    if ours.startswith("ssl/") and b == "https":
        return a == "http"
    return a == b or b in NMAP_NAMES.get(a, set()) or (a, b) in SAME


def _verdict(ours: dict[str, object] | None, theirs: dict[str, object] | None) -> str:
    if not ours or not theirs:
        return "we say more" if ours else "we say less" if theirs else "neither"
    if not _same_service(str(ours["service"]), str(theirs["service"])):
        return "differ"
    notes = []
    op, tp = _norm(ours["product"]), _norm(theirs["product"])
    if op and tp and not (op in tp or tp in op):
        notes.append("product differs")
    if op and not tp:
        notes.append("we name the product")
    if tp and not op:
        notes.append("nmap names the product")
    ov, tv = str(ours["version"] or ""), str(theirs["version"] or "")
    if ov and tv and not (ov.startswith(tv) or tv.startswith(ov)):
        notes.append("version differs")
    if ov and not tv:
        notes.append("we give the version")
    if tv and not ov:
        notes.append("nmap gives the version")
    more = any(n.startswith("we ") for n in notes)
    less = any(n.startswith("nmap ") for n in notes)
    head = "agree" if not notes else "we say more" if more and not less else (
        "we say less" if less and not more else "mixed" if more and less else "differ"
    )  # fmt: skip
    return head + (f" ({'; '.join(notes)})" if notes else "")


def _cell(d: dict[str, object] | None) -> str:
    if not d:
        return "-"
    parts = [str(d["service"]), str(d["product"] or ""), str(d["version"] or "")]
    return " ".join(p for p in parts if p) + f" [{d['conf']}]"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=1, help="runs of each tool (median time)")
    args = ap.parse_args(argv)
    if not shutil.which("nmap"):
        print("bench_identify: nmap is not installed", file=sys.stderr)
        return 2
    servers = _start_all()
    try:
        running = {n: r for n, r in servers.items() if isinstance(r, Running)}
        for name, why in servers.items():
            if not isinstance(why, Running):
                print(f"skipped {name}: {why}", file=sys.stderr)
        ports = ",".join(str(r.port) for r in running.values())
        ours_t, theirs_t = [], []
        ours: dict[int, dict[str, object]] = {}
        theirs: dict[int, dict[str, object]] = {}
        for _ in range(max(1, args.runs)):
            t, ours = _run_portscope(ports)
            ours_t.append(t)
            t, theirs = _run_nmap(ports)
            theirs_t.append(t)
        lines = [
            "| server | port | portscope -sV | nmap -sV | verdict |",
            "|---|---:|---|---|---|",
        ]
        counts: dict[str, int] = {}
        for name, run in running.items():
            verdict = _verdict(ours.get(run.port), theirs.get(run.port))
            counts[verdict.split(" (")[0]] = counts.get(verdict.split(" (")[0], 0) + 1
            lines.append(
                f"| {name} | {run.port} | {_cell(ours.get(run.port))} | "
                f"{_cell(theirs.get(run.port))} | {verdict} |"
            )
        ot, nt = statistics.median(ours_t), statistics.median(theirs_t)
        lines += [
            "",
            "verdicts: " + ", ".join(f"{v} {k}" for k, v in sorted(counts.items())),
            f"wall time ({len(running)} ports, median of {len(ours_t)}): portscope -sV "
            f"{ot:.2f} s, nmap -sT -sV {nt:.2f} s ({nt / ot:.1f}x)",
        ]
        print("\n".join(lines))
        results = REPO / "bench" / "results"
        results.mkdir(parents=True, exist_ok=True)
        (results / "identify-latest.md").write_text("\n".join(lines) + "\n")
    finally:
        for run in servers.values():
            if isinstance(run, Running):
                run.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
