"""scan on loopback: compared with ss and with nmap itself; JSON lines, XML, limits, Ctrl-C."""

# ruff: noqa: F811  (fixtures imported from test_probe_fixtures are redefined as arguments)

from __future__ import annotations

import asyncio
import io
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from portscope.cli import Env, main
from portscope.models import PortState, ProbeResult
from portscope.scanner import HostSummary, scan

from .test_probe_fixtures import free_port, full_backlog_port, tcp_server  # noqa: F401


def run(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    status = main(list(argv), Env(stdout=out, stderr=err))
    return status, out.getvalue(), err.getvalue()


def ss_listeners() -> tuple[set[int], set[int]]:
    """(ports surely accepting on 127.0.0.1, ports that may: IPv6 wildcards too)."""
    out = subprocess.run(["ss", "-Htln"], capture_output=True, text=True, check=True).stdout
    sure: set[int] = set()
    maybe: set[int] = set()
    for line in out.splitlines():
        local = line.split()[3]
        addr, _, port = local.rpartition(":")
        if addr in ("127.0.0.1", "0.0.0.0"):
            sure.add(int(port))
        elif addr in ("*", "[::]"):
            maybe.add(int(port))  # dual-stack unless IPV6_V6ONLY
    return sure, sure | maybe


@pytest.mark.skipif(shutil.which("ss") is None, reason="ss (iproute2) is not installed")
def test_full_range_equals_what_ss_shows_listening(tcp_server: int) -> None:
    sure_before, maybe_before = ss_listeners()
    job = scan("127.0.0.1", "1-65535")
    events = list(job)
    sure_after, maybe_after = ss_listeners()
    open_ports = {
        e.port for e in events if isinstance(e, ProbeResult) and e.state is PortState.OPEN
    }
    assert tcp_server in open_ports
    # listeners present before and after must be found; nothing found that ss never showed
    assert (sure_before & sure_after) <= open_ports
    assert open_ports <= (maybe_before | maybe_after)
    [summary] = [e for e in events if isinstance(e, HostSummary)]
    assert summary.ports == 65535 and sum(summary.counts.values()) == 65535
    report = job.report
    assert report.coverage.answered + report.coverage.timed_out == 65535
    assert report.coverage.not_scanned == 0 and not report.interrupted


def test_states_json_lines_and_coverage(tcp_server: int, full_backlog_port: int) -> None:
    closed = free_port()
    ports = f"{tcp_server},{closed},{full_backlog_port}"
    status, out, err = run(
        "scan", "127.0.0.1", "-p", ports, "--timeout", "0.2", "--retries", "1", "--json"
    )
    assert status == 0, err
    lines = [json.loads(line) for line in out.splitlines()]
    kinds = [line["type"] for line in lines]
    assert kinds == ["port", "port", "host", "summary"]
    ports_seen = {line["port"]: line for line in lines if line["type"] == "port"}
    assert ports_seen[tcp_server]["state"] == "open"
    assert ports_seen[tcp_server]["reason"] == "syn-ack"
    assert ports_seen[full_backlog_port]["state"] == "filtered"
    assert ports_seen[full_backlog_port]["reason"] == "no-response"
    assert closed not in ports_seen  # closed ports are counted, not listed
    host = lines[-2]
    assert host["address"] == "127.0.0.1" and host["status"] == "up"
    assert host["counts"] == {"open": 1, "closed": 1, "filtered": 1}
    assert host["retried"] == 1 and host["timed_out"] == 1
    summary = lines[-1]
    assert summary["coverage"] == {"answered": 2, "retried": 1, "timed_out": 1, "not_scanned": 0}
    assert summary["probes_sent"] == 4  # the silent port was tried twice
    assert summary["interrupted"] is False


def test_human_output(tcp_server: int) -> None:
    closed = free_port()
    status, out, _ = run("scan", "127.0.0.1", "-p", f"{tcp_server},{closed}")
    assert status == 0
    assert re.search(rf"{tcp_server}/tcp\s+open\s+\S+\s+syn-ack\s+[\d.]+ ms", out)
    assert "1 closed, 0 filtered" in out
    assert "coverage: 2 answered, 0 retried, 0 decided by timeout, 0 not scanned" in out


@pytest.mark.skipif(shutil.which("nmap") is None, reason="nmap is not installed")
def test_xml_matches_nmaps_own_for_the_same_scan(tcp_server: int, tmp_path: Path) -> None:
    closed = free_port()
    ports = f"{closed},{tcp_server},1-20"
    ours, theirs = tmp_path / "ours.xml", tmp_path / "nmap.xml"
    status, _, err = run("scan", "127.0.0.1", "-p", ports, "-oX", str(ours))
    assert status == 0, err
    subprocess.run(
        ["nmap", "-sT", "-Pn", "-n", "-p", ports, "-oX", str(theirs), "127.0.0.1"],
        capture_output=True, check=True, timeout=60,
    )  # fmt: skip
    a, b = ET.parse(ours).getroot(), ET.parse(theirs).getroot()

    def states(root: ET.Element) -> dict[str, str]:
        return {
            p.get("portid", ""): p.find("state").get("state", "")  # type: ignore[union-attr]
            for p in root.iter("port")
        }

    def closed_count(root: ET.Element) -> int:
        extra = root.find("host/ports/extraports")
        listed = sum(1 for s in states(root).values() if s == "closed")
        return listed + (int(extra.get("count", "0")) if extra is not None else 0)

    # 21 closed ports: nmap lists each one (it collapses a state only above 25), so do we
    assert states(a) == states(b)
    assert closed_count(a) == closed_count(b) == 21
    assert a.find("host/ports/extraports") is None

    def shape(root: ET.Element) -> set[tuple[str, frozenset[str]]]:
        return {(e.tag, frozenset(e.attrib)) for e in root.iter() if e.tag != "extrareasons"}

    # every element and attribute set we write is one nmap writes too
    assert shape(a) - shape(b) <= {("extraports", frozenset({"state", "count"}))}
    assert a.find("scaninfo").attrib == b.find("scaninfo").attrib  # type: ignore[union-attr]


@pytest.mark.skipif(shutil.which("nmap") is None, reason="nmap is not installed")
@pytest.mark.parametrize("closed_ports", ["40001-40025", "40001-40026"])
def test_ndiff_sees_the_same_port_states_as_nmaps(
    tcp_server: int, tmp_path: Path, closed_ports: str
) -> None:
    # ndiff (nmap's own XML differ) reads our -oX; against nmap's XML of the same scan it
    # may only report other service names (ours come from the merged registry).
    if shutil.which("ndiff") is None:
        pytest.skip("ndiff is not installed (scripts/install-test-deps)")
    ports = f"{tcp_server},{closed_ports}"
    ours, theirs = tmp_path / "ours.xml", tmp_path / "nmap.xml"
    status, _, err = run("scan", "127.0.0.1", "-p", ports, "-oX", str(ours))
    assert status == 0, err
    subprocess.run(
        ["nmap", "-sT", "-Pn", "-n", "-p", ports, "-oX", str(theirs), "127.0.0.1"],
        capture_output=True, check=True, timeout=60,
    )  # fmt: skip
    diff = subprocess.run(
        ["ndiff", str(theirs), str(ours)], capture_output=True, text=True, timeout=60
    )
    assert diff.returncode in (0, 1), diff.stderr  # 2 would mean it could not read a file
    changed = re.findall(r"^([-+])(\d+)/tcp\s+(\S+)", diff.stdout, re.MULTILINE)
    before = {(port, state) for sign, port, state in changed if sign == "-"}
    after = {(port, state) for sign, port, state in changed if sign == "+"}
    assert before == after, diff.stdout
    assert "Not shown" not in diff.stdout, diff.stdout


def test_rate_limit_paces_connections() -> None:
    start = time.monotonic()
    job = scan("127.0.0.1", "40001-40060", rate_pps=100)
    list(job)
    elapsed = time.monotonic() - start
    assert job.report.probes_sent == 60
    assert 0.5 <= elapsed < 5  # 60 connects at 100/s: about 0.6 s


def test_low_fd_limit_never_hits_emfile(tcp_server: int) -> None:
    code = (
        "import resource, sys\n"
        "resource.setrlimit(resource.RLIMIT_NOFILE, (80, 80))\n"
        "from portscope.cli import main\n"
        f"sys.exit(main(['scan', '127.0.0.1', '-p', '1-3000,{tcp_server}', '--json']))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    lines = [json.loads(line) for line in proc.stdout.splitlines()]
    assert any(line.get("port") == tcp_server and line["state"] == "open" for line in lines)
    assert lines[-1]["type"] == "summary"
    assert sum(lines[-1]["counts"].values()) == 3001


def test_ctrl_c_stops_cleanly_and_prints_what_was_found(tcp_server: int) -> None:
    argv = [sys.executable, "-m", "portscope", "scan", "127.0.0.1", "-p", f"{tcp_server},1-65535"]
    proc = subprocess.Popen(
        [*argv, "--rate", "300"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    time.sleep(1.5)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=20)
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    assert err.strip().splitlines()[-1].startswith("portscope: error: interrupted")
    assert "interrupted" in out and "Interrupted after" in out
    assert re.search(r"coverage: [\d,]+ answered", out)


def test_library_break_closes_every_socket() -> None:
    fds_before = len(os.listdir("/proc/self/fd"))

    async def first_host_only() -> int:
        seen = 0
        async for _event in scan(["127.0.0.1", "127.0.0.2"], "1-2000", include_closed=True):
            seen += 1
            if seen == 500:
                break
        return seen

    assert asyncio.run(first_host_only()) == 500
    assert len(os.listdir("/proc/self/fd")) <= fds_before + 1


def test_include_closed_lists_every_port() -> None:
    events = list(scan("127.0.0.1", "41000-41009", include_closed=True))
    results = [e for e in events if isinstance(e, ProbeResult)]
    assert sorted(r.port for r in results) == list(range(41000, 41010))
    assert {r.state for r in results} <= {PortState.CLOSED, PortState.OPEN}


def test_memory_stays_bounded_on_a_slash16_times_1000_ports() -> None:
    import tracemalloc

    job = scan("127.0.0.0/16", "1-1000", yes=True, include_closed=True)
    assert len(job.targets) * job.ports.count == 65_536_000
    tracemalloc.start()
    seen = 0
    try:
        for _event in job:
            seen += 1
            if seen == 20_000:
                break
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 16 * 2**20  # bytes: a window of hosts, never the whole target set
    assert job.report.interrupted
