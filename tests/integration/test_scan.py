"""scan on loopback: compared with ss and with nmap itself; JSON lines, XML, limits, Ctrl-C."""

# ruff: noqa: F811  (fixtures imported from test_probe_fixtures are redefined as arguments)

from __future__ import annotations

import asyncio
import fcntl
import io
import json
import os
import re
import select
import shutil
import signal
import struct
import subprocess
import sys
import termios
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from portscope.cli import Env, main
from portscope.models import PortState, ProbeResult, Proto
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
    import threading

    # other test suites may share the machine and open short-lived listeners: ss is also
    # asked while the scan runs (bounded: at most 600 times), so "never showed" means never
    sure_before, maybe_before = ss_listeners()
    seen_during: set[int] = set()
    done = threading.Event()

    def watch() -> None:
        for _ in range(600):
            if done.wait(0.05):
                return
            seen_during.update(ss_listeners()[1])

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        job = scan("127.0.0.1", "1-65535")
        events = list(job)
    finally:
        done.set()
        watcher.join(10)
    sure_after, maybe_after = ss_listeners()
    open_ports = {
        e.port for e in events if isinstance(e, ProbeResult) and e.state is PortState.OPEN
    }
    assert tcp_server in open_ports
    # listeners present before and after must be found; nothing found that ss never showed
    assert (sure_before & sure_after) <= open_ports
    assert open_ports <= (maybe_before | maybe_after | seen_during)
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
    assert summary["coverage"] == {
        "answered": 2, "retried": 1, "timed_out": 1, "not_scanned": 0, "undecided": 0
    }  # fmt: skip
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


# ---------------------------------------------------------------- the terminal


def _screen(raw: str, width: int) -> list[str]:
    """What a terminal shows after ``raw``: CR, LF, backspace and the CSI sequences rich uses.

    Enough of a VT100 for rich's live display: cursor up (``A``), down (``B``), column
    (``G``), erase in line (``K``); colours and modes (``m``, ``h``, ``l``) change nothing.
    """
    lines: list[list[str]] = [[]]
    row = col = 0
    i = 0
    while i < len(raw):
        ch = raw[i]
        if ch == "\x1b" and raw[i + 1 : i + 2] == "[":
            m = re.match(r"\x1b\[([?\d;]*)([A-Za-z])", raw[i:])
            assert m, repr(raw[i : i + 10])
            arg, op = m.group(1), m.group(2)
            n = int(arg) if arg.isdigit() else None
            if op == "A":
                row = max(0, row - (n or 1))
            elif op == "B":
                row += n or 1
            elif op == "G":
                col = (n or 1) - 1
            elif op == "K":
                line = lines[row] if row < len(lines) else []
                if n == 2:
                    line[:] = []
                elif n == 1:
                    line[: col + 1] = [" "] * min(len(line), col + 1)
                else:
                    del line[col:]
            i += m.end()
            continue
        while row >= len(lines):
            lines.append([])
        line = lines[row]
        if ch == "\r":
            col = 0
        elif ch == "\n":
            row += 1
            while row >= len(lines):
                lines.append([])
        elif ch == "\b":
            col = max(0, col - 1)
        elif ch >= " ":
            if col >= width:
                row, col = row + 1, 0
                while row >= len(lines):
                    lines.append([])
                line = lines[row]
            line.extend(" " * (col - len(line)))
            if col < len(line):
                line[col] = ch
            else:
                line.append(ch)
            col += 1
        i += 1
    return ["".join(line).rstrip() for line in lines]


def test_progress_bar_is_cleared_before_results_on_a_terminal(tcp_server: int) -> None:
    # stdout and stderr on one pseudo-terminal, as in a shell: the bar (stderr) must be off
    # the screen whenever a host's results (stdout) are written, or they begin with its residue
    width = 120
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, width, 0, 0))
    env = {k: v for k, v in os.environ.items() if k not in ("NO_COLOR", "COLUMNS", "LINES")}
    env["TERM"] = "xterm-256color"
    argv = [sys.executable, "-m", "portscope", "scan", "127.0.0.1-3", "-p", f"1-3000,{tcp_server}"]
    proc = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave, env=env, close_fds=True)
    os.close(slave)
    chunks: list[bytes] = []
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.5)
            if ready:
                try:
                    data = os.read(master, 65536)
                except OSError:  # EIO: the other side is closed
                    break
                if not data:
                    break
                chunks.append(data)
            elif proc.poll() is not None:
                break
    finally:
        os.close(master)
        proc.wait(timeout=20)
    assert proc.returncode == 0
    raw = b"".join(chunks).decode("utf-8", "replace")
    assert "━" in raw or "scanning" in raw  # the bar was drawn
    screen = _screen(raw, width)
    results = [line for line in screen if re.search(r"127\.0\.0\.\d|/tcp|closed|coverage", line)]
    assert len([line for line in results if re.match(r"127\.0\.0\.[123]  up$", line)]) == 3, screen
    for line in results:
        assert "━" not in line and "scanning" not in line, screen
    assert any(line.startswith(f"{tcp_server}/tcp") for line in screen), screen
    assert not any("scanning" in line for line in screen), screen  # erased at the end


def test_api_default_ports_are_the_clis() -> None:
    # one default, in one place: the top 1,000 TCP ports (the API used 1-1000)
    from portscope.cli import scan as cli_scan
    from portscope.cli._base import Parser
    from portscope.registry import top_ports
    from portscope.scanner import DEFAULT_TOP_PORTS

    api = scan("127.0.0.1")
    parser = Parser(prog="portscope scan")
    cli_scan.configure(parser)
    args = parser.parse_args(["127.0.0.1"])
    cli = cli_scan._prepare(args)
    assert api.ports == cli.ports
    assert sorted(api.ports.ports(Proto.TCP)) == sorted(top_ports(DEFAULT_TOP_PORTS, "tcp"))
    assert api.options == cli.options  # retries and every other knob: the same defaults


def test_results_and_hosts_are_typed_streams(tcp_server: int) -> None:
    job = scan(["127.0.0.1", "127.0.0.2"], f"{tcp_server},41000-41009")
    results = list(job.results())
    assert all(isinstance(r, ProbeResult) for r in results)
    assert {(r.address, r.port) for r in results if r.state is PortState.OPEN} >= {
        ("127.0.0.1", tcp_server)
    }
    assert sorted(s.address for s in job.summaries) == ["127.0.0.1", "127.0.0.2"]
    assert job.report.hosts == 2 and not job.report.interrupted

    async def hosts_only() -> list[HostSummary]:
        return [s async for s in scan("127.0.0.1", "41000-41009").hosts()]

    [summary] = asyncio.run(hosts_only())
    assert isinstance(summary, HostSummary) and summary.counts == {"closed": 10}
    with pytest.raises(RuntimeError, match="runs once"):
        list(job.hosts())


def test_udp_ports_in_a_scan_share_the_scheduler(tcp_server: int) -> None:
    import socket as socket_mod

    silent = socket_mod.socket(socket_mod.AF_INET, socket_mod.SOCK_DGRAM)
    silent.bind(("127.0.0.1", 0))
    closed = free_port(socket_mod.SOCK_DGRAM)
    try:
        port = silent.getsockname()[1]
        job = scan("127.0.0.1", f"T:{tcp_server},U:{closed},{port}", include_closed=True)
        results = {(r.proto.value, r.port): r for r in job.results()}
    finally:
        silent.close()
    assert results[("tcp", tcp_server)].state is PortState.OPEN
    assert (results[("udp", closed)].state, results[("udp", closed)].reason) == (
        PortState.CLOSED, "port-unreach",
    )  # fmt: skip
    assert results[("udp", port)].state is PortState.OPEN_FILTERED
    [summary] = job.summaries
    assert summary.timed_out == 1 and summary.counts["open|filtered"] == 1
    assert job.report.probes_sent == 1 + 1 + 3  # the silent UDP port: three datagrams
