"""The raw engines against the labs: SYN and ACK scans (the LAN lab), the UDP scan against a
target that keeps Linux's ICMP rate limit (a ``ps13-*`` lab), and ``trace`` on a routed chain
(``ps13-ch*``). Compared with the labs' ground truth and with nmap, ndiff and tcptraceroute.

Every command runs in a scanner namespace without a default route, against 198.18.0.0/15
and 2001:db8::/32 only.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import lab as labmod
from lab import chain as chainmod

pytestmark = pytest.mark.root


def _skip_reason() -> str | None:
    import os

    if os.geteuid() != 0:
        return "the raw engines need root (raw sockets, network namespaces); CI runs as root"
    if missing := labmod.missing_tools():
        return f"the lab needs {', '.join(missing)} (scripts/install-test-deps)"
    return None


@pytest.fixture(scope="module")
def limited_lab() -> Iterator[labmod.Lab]:
    """A LAN lab whose target keeps Linux's default ICMP rate limits (burst 6, then 1/s)."""
    if reason := _skip_reason():
        pytest.skip(reason)
    with labmod.running(prefix="ps13", icmp_limit=True) as lb:
        yield lb


@pytest.fixture(scope="module")
def chain() -> Iterator[chainmod.Chain]:
    if reason := _skip_reason():
        pytest.skip(reason)
    with chainmod.running() as ch:
        yield ch


def run(
    lb: labmod.Lab | chainmod.Chain, *args: str, timeout_s: float = 120
) -> tuple[int, str, str]:
    proc = lb.exec([sys.executable, "-m", "portscope", *args], timeout_s=timeout_s)
    return proc.returncode, proc.stdout, proc.stderr


def json_lines(lb: labmod.Lab, *args: str) -> list[dict[str, Any]]:
    status, out, err = run(lb, "scan", *args, "--json")
    assert status == 0, err
    return [json.loads(line) for line in out.splitlines()]


def wrong(
    lb: labmod.Lab, lines: list[dict[str, Any]], address: str, proto: str, ports: list[int]
) -> list[Any]:
    got = {
        (x["proto"], x["port"]): x["state"]
        for x in lines
        if x["type"] == "port" and x["address"] == address
    }
    return [
        (p, lb.expected(proto, p), got.get((proto, p), "closed"))
        for p in ports
        if got.get((proto, p), "closed") != lb.expected(proto, p)
    ]  # fmt: skip


# ---------------------------------------------------------------- SYN / ACK


def test_syn_full_range_equals_truth_with_reasons_and_ttl(lab: labmod.Lab) -> None:
    lines = json_lines(lab, "-sS", lab.target_v4, "-p-")
    assert wrong(lab, lines, lab.target_v4, "tcp", list(range(1, 65536))) == []
    ports = {x["port"]: x for x in lines if x["type"] == "port"}
    assert (ports[22]["reason"], ports[22]["reason_ttl"]) == ("syn-ack", 64)
    assert (ports[113]["state"], ports[113]["reason"]) == ("filtered", "admin-prohibited")
    assert ports[23]["reason"] == "no-response" and ports[23]["reason_ttl"] is None
    summary = lines[-1]
    assert summary["counts"]["closed"] == 65535 - 32 - 14
    assert summary["options"]["technique"] == "syn"


def test_syn_ipv6_and_ack_scan(lab: labmod.Lab) -> None:
    interesting = lab.interesting_ports("tcp")
    ports = ",".join(map(str, [*interesting, 2, 3, 4]))
    lines = json_lines(lab, "-sS", lab.target_v6, "-p", ports)
    assert wrong(lab, lines, lab.target_v6, "tcp", [*interesting, 2, 3, 4]) == []
    lines = json_lines(lab, "-sA", lab.target_v4, "-p", "22,23,80,113,2")
    states = {x["port"]: (x["state"], x["reason"]) for x in lines if x["type"] == "port"}
    assert states == {
        2: ("unfiltered", "reset"), 22: ("unfiltered", "reset"), 80: ("unfiltered", "reset"),
        23: ("filtered", "no-response"), 113: ("filtered", "admin-prohibited"),
    }  # fmt: skip


@pytest.mark.skipif(
    shutil.which("ndiff") is None or shutil.which("nmap") is None, reason="no nmap/ndiff"
)
def test_syn_xml_has_no_ndiff_difference_from_nmap(lab: labmod.Lab, tmp_path: Path) -> None:
    # open, closed (folded: over 25), dropped and rejected ports (listed: 14)
    filtered = sorted(lab.dropped_tcp | lab.unreachable_tcp)
    ports = "1-60," + ",".join(map(str, filtered))
    hosts = [lab.target_v4]
    ours, theirs = tmp_path / "ours.xml", tmp_path / "nmap.xml"
    status, _, err = run(lab, "scan", "-sS", *hosts, "-p", ports, "--timeout", "0.5",
                         "--retries", "1", "-oX", str(ours))  # fmt: skip
    assert status == 0, err
    nmap = lab.exec(["nmap", "-sS", "-Pn", "-n", "-p", ports, "-oX", str(theirs), *hosts])
    assert nmap.returncode == 0, nmap.stderr
    diff = subprocess.run(
        ["ndiff", str(theirs), str(ours)], capture_output=True, text=True, timeout=60
    )
    # the only lines are the two "Nmap ... scan initiated" headers: 0 differences
    body = [
        line for line in diff.stdout.splitlines() if line.strip() and "scan initiated" not in line
    ]
    assert body == [], diff.stdout
    assert diff.returncode == 0, diff.stdout
    text = ours.read_text()
    assert '<scaninfo type="syn" protocol="tcp"' in text
    assert 'reason="syn-ack" reason_ttl="64"' in text
    assert '<extrareasons reason="reset"' in text


def test_raw_scan_without_privilege_is_one_line_and_exit_2(lab: labmod.Lab) -> None:
    if shutil.which("setpriv") is None:
        pytest.skip("setpriv (util-linux) is not installed")
    for flag in ("-sS", "-sA"):
        proc = lab.exec(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                         "--inh-caps=-all", sys.executable, "-m", "portscope", "scan", flag,
                         lab.target_v4, "-p", "22"])  # fmt: skip
        assert proc.returncode == 2, proc.stderr
        assert proc.stderr.count("\n") == 1 and "connect scan (-sT" in proc.stderr


# ---------------------------------------------------------------- UDP, rate-limited


UDP_PORTS = [
    7,
    19,
    53,
    54,
    111,
    123,
    124,
    137,
    161,
    162,
    500,
    514,
    1900,
    9999,
    *range(20000, 20006),
]


def test_udp_scan_is_right_under_the_icmp_rate_limit(limited_lab: labmod.Lab) -> None:
    lb = limited_lab
    # 15 of the 20 ports are closed: the target sends 6 errors at once, then 1 per second
    closed = [p for p in UDP_PORTS if lb.expected("udp", p) == "closed"]
    assert len(closed) > 6  # more closed ports than the burst: the limit is really met
    # every port decided right, none undecided (the time against the floor: bench/bench_udp.py)
    lines = json_lines(lb, "-sU", lb.target_v4, "-p", ",".join(map(str, UDP_PORTS)))
    assert wrong(lb, lines, lb.target_v4, "udp", UDP_PORTS) == []
    ports = {x["port"]: x for x in lines if x["type"] == "port"}
    assert ports[53]["reason"] == "udp-response" and ports[514]["reason"] == "no-response"


def test_udp_max_wait_leaves_ports_undecided_never_closed(limited_lab: labmod.Lab) -> None:
    lb = limited_lab
    lines = json_lines(lb, "-sU", lb.target_v4, "-p", ",".join(map(str, UDP_PORTS)),
                       "--max-wait", "1.5")  # fmt: skip
    states = {x["port"]: x["state"] for x in lines if x["type"] == "port"}
    summary = lines[-1]
    assert summary["coverage"]["undecided"] > 0
    assert summary["counts"].get("undecided", 0) == summary["coverage"]["undecided"]
    for port in UDP_PORTS:
        state = states.get(port, "closed")
        assert state in (lb.expected("udp", port), "undecided"), (port, state)


# ---------------------------------------------------------------- trace


def trace(ch: chainmod.Chain, port: int, *args: str) -> tuple[int, dict[str, Any]]:
    status, out, err = run(
        ch, "trace", f"{chainmod.TARGET}:{port}", "--timeout", "0.5", *args, "--json"
    )
    assert status in (0, 1), err
    return status, json.loads(out)


def test_trace_names_the_hop_where_syns_stop(chain: chainmod.Chain) -> None:
    status, found = trace(chain, chainmod.OPEN_PORT)
    assert status == 0 and found["verdict"] == "reached" and found["stop_hop"] == 3
    assert [h["address"] for h in found["hops"]] == [
        chainmod.ROUTER1,
        chainmod.ROUTER2,
        chainmod.TARGET,
    ]
    assert [h["answer"] for h in found["hops"]] == ["time-exceeded", "time-exceeded", "syn-ack"]
    assert all(h["rtt_s"] > 0 for h in found["hops"])
    _, closed = trace(chain, chainmod.CLOSED_PORT)
    assert closed["hops"][-1]["answer"] == "reset"
    status, dropped = trace(chain, chainmod.DROPPED_PORT)
    assert status == 1 and (dropped["verdict"], dropped["stop_hop"]) == ("dropped", 2)
    assert dropped["summary"] == (
        f"the SYN is dropped after hop 2, {chainmod.ROUTER2}: a firewall there or beyond"
    )
    _, rejected = trace(chain, chainmod.REJECTED_PORT)
    assert (rejected["verdict"], rejected["stop_hop"], rejected["stop_address"]) == (
        "rejected", 2, chainmod.ROUTER2
    )  # fmt: skip
    _, udp = trace(chain, 53, "-U")
    assert (udp["verdict"], udp["hops"][-1]["answer"]) == ("reached", "port-unreach")


@pytest.mark.skipif(shutil.which("tcptraceroute") is None, reason="tcptraceroute is not installed")
def test_trace_hops_equal_tcptraceroute(chain: chainmod.Chain) -> None:
    _, ours = trace(chain, chainmod.OPEN_PORT)
    theirs = chain.exec(["tcptraceroute", "-n", "-q", "1", "-w", "1", chainmod.TARGET,
                         str(chainmod.OPEN_PORT)])  # fmt: skip
    hops = [line.split()[1] for line in theirs.stdout.splitlines() if line[:3].strip().isdigit()]
    assert hops == [h["address"] for h in ours["hops"]], theirs.stdout


def test_why_connect_traces_a_timed_out_connect(chain: chainmod.Chain) -> None:
    status, out, err = run(chain, "why", "connect", f"{chainmod.TARGET}:{chainmod.DROPPED_PORT}",
                           "--timeout", "1")  # fmt: skip
    assert status == 1, err
    assert f"the SYN is dropped after hop 2, {chainmod.ROUTER2}" in out
