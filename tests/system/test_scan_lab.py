"""portscope probe and scan against the namespace lab, compared with its ground truth.

Every command runs inside the lab's scanner namespace (no default route), against the lab's
198.18.0.0/15 and 2001:db8::/32 addresses only.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

import lab as labmod

pytestmark = pytest.mark.root


def portscope(lb: labmod.Lab, *args: str, timeout_s: float = 120) -> tuple[int, str, str]:
    proc = lb.exec([sys.executable, "-m", "portscope", *args], timeout_s=timeout_s)
    return proc.returncode, proc.stdout, proc.stderr


def scan_lines(lb: labmod.Lab, *args: str, timeout_s: float = 120) -> list[dict[str, Any]]:
    status, out, err = portscope(lb, "scan", *args, "--json", timeout_s=timeout_s)
    assert status == 0, err
    lines = [json.loads(line) for line in out.splitlines()]
    assert lines and lines[-1]["type"] == "summary"
    return lines


def states_by_address(lines: list[dict[str, Any]]) -> dict[str, dict[tuple[str, int], str]]:
    found: dict[str, dict[tuple[str, int], str]] = {}
    for line in lines:
        if line["type"] == "port":
            found.setdefault(line["address"], {})[(line["proto"], line["port"])] = line["state"]
    return found


def mismatches(
    lb: labmod.Lab, got: dict[tuple[str, int], str], ports: list[tuple[str, int]]
) -> list[tuple[str, int, str, str]]:
    """(proto, port, truth, scanned) for every scanned port whose state is not the truth."""
    out = []
    for proto, port in ports:
        seen = got.get((proto, port), "closed")  # closed ports are counted, not listed
        if seen != lb.expected(proto, port):
            out.append((proto, port, lb.expected(proto, port), seen))
    return out


def test_lan_full_range_equals_truth(lab: labmod.Lab) -> None:
    lines = scan_lines(lab, lab.target_v4, "-p-")
    got = states_by_address(lines).get(lab.target_v4, {})
    assert mismatches(lab, got, [("tcp", p) for p in range(1, 65536)]) == []
    [host] = [line for line in lines if line["type"] == "host"]
    assert host["status"] == "up" and sum(host["counts"].values()) == 65535
    summary = lines[-1]
    cov = summary["coverage"]
    assert cov["answered"] + cov["timed_out"] == 65535 and cov["not_scanned"] == 0
    assert cov["timed_out"] == len(lab.dropped_tcp)  # only the dropped ports by timeout
    reasons = {(line["port"], line["reason"]) for line in lines if line["type"] == "port"}
    assert {(p, "admin-prohibited") for p in lab.unreachable_tcp} <= reasons


def test_lan_top_ports_over_the_28_equals_truth(lab: labmod.Lab) -> None:
    from portscope.registry import top_ports

    ports = [("tcp", p) for p in top_ports(1000, "tcp")]
    # the 14 hosts of the /28 (its network and broadcast address are not lab hosts)
    lines = scan_lines(lab, "198.18.1.1-14", "--top-ports", "1000")
    got = states_by_address(lines)
    hosts = [line for line in lines if line["type"] == "host"]
    assert sorted(h["address"] for h in hosts) == sorted(lab.targets_v4_28)
    for address in lab.targets_v4_28:
        assert mismatches(lab, got.get(address, {}), ports) == [], address


def test_lan_ipv6_and_udp_ports_equal_truth(lab: labmod.Lab) -> None:
    udp = sorted(p for (proto, p) in lab.truth if proto == "udp")
    tcp = lab.interesting_ports("tcp")
    spec = "T:" + ",".join(map(str, tcp)) + ",U:" + ",".join(map(str, udp))
    lines = scan_lines(lab, lab.target_v6, "-p", spec, "--retries", "2")
    got = states_by_address(lines).get(lab.target_v6, {})
    assert mismatches(lab, got, [("tcp", p) for p in tcp] + [("udp", p) for p in udp]) == []


@pytest.mark.skipif(shutil.which("ndiff") is None, reason="ndiff is not installed")
def test_xml_folds_filtered_ports_as_nmap_and_ndiff_sees_no_difference(
    lab: labmod.Lab, tmp_path: Path
) -> None:
    # the silent host: 68 filtered ports (over 25: nmap folds them into <extraports>); the
    # target: 14 filtered ports (listed one by one), open ones, and closed ones folded
    filtered = sorted(lab.dropped_tcp | lab.unreachable_tcp)
    ports = "1-55," + ",".join(map(str, filtered))
    hosts = [lab.target_v4, lab.silent_v4]
    ours, theirs = tmp_path / "ours.xml", tmp_path / "nmap.xml"
    status, _, err = portscope(
        lab, "scan", *hosts, "-p", ports, "--timeout", "0.5", "--retries", "1", "-oX", str(ours)
    )
    assert status == 0, err
    nmap = lab.exec(
        ["nmap", "-sT", "-Pn", "-n", "-p", ports, "-oX", str(theirs), *hosts], timeout_s=120
    )
    assert nmap.returncode == 0, nmap.stderr
    diff = subprocess.run(
        ["ndiff", str(theirs), str(ours)], capture_output=True, text=True, timeout=60
    )
    assert diff.returncode in (0, 1), diff.stderr  # 2: a file it could not read
    # ndiff may only see other service names (ours come from the merged registry)
    changed = re.findall(r"^[-+]((?:\d+/tcp\s+\S+)|Not shown.*|.*Host is.*)$", diff.stdout, re.M)
    assert not [c for c in changed if "Not shown" in c or "Host" in c], diff.stdout
    ported = re.findall(r"^([-+])(\d+)/tcp\s+(\S+)", diff.stdout, re.MULTILINE)
    before = {(port, state) for sign, port, state in ported if sign == "-"}
    after = {(port, state) for sign, port, state in ported if sign == "+"}
    assert before == after, diff.stdout
    root = ET.parse(ours).getroot()
    silent = [h for h in root.iter("host") if h.find("address").get("addr") == lab.silent_v4]  # type: ignore[union-attr]
    [extra] = silent[0].findall("ports/extraports")
    assert (extra.get("state"), extra.get("count")) == ("filtered", str(55 + len(filtered) - 1))


def test_silent_host_is_reported_without_scanning_every_port(lab: labmod.Lab) -> None:
    lines = scan_lines(lab, lab.silent_v4, "-p", "1-2000", "--timeout", "0.3", timeout_s=60)
    [host] = [line for line in lines if line["type"] == "host"]
    assert host["status"] == "no-answer"
    assert host["not_scanned"] > 0
    assert host["counts"].get("filtered", 0) + host["not_scanned"] == 2000


def test_probe_open_closed_filtered_unreachable(lab: labmod.Lab) -> None:
    dropped = min(lab.dropped_tcp)
    prohibited = min(lab.unreachable_tcp)
    banner_port = min(lab.banners)
    ports = f"{banner_port},2,{dropped},{prohibited}"
    for address, errno_name in ((lab.target_v4, "EHOSTUNREACH"), (lab.target_v6, "EACCES")):
        status, out, err = portscope(
            lab, "probe", address, ports, "--timeout", "1", "--banner", "--json"
        )
        assert status == 1, err
        rows = {r["port"]: r for r in json.loads(out)["results"]}
        assert rows[banner_port]["state"] == "open"
        assert rows[banner_port]["banner"] == lab.banners[banner_port].decode()
        assert (rows[2]["state"], rows[2]["reason"]) == ("closed", "conn-refused")
        assert (rows[dropped]["state"], rows[dropped]["reason"]) == ("filtered", "no-response")
        p = rows[prohibited]
        assert (p["state"], p["reason"], p["errno_name"]) == (
            "unreachable", "admin-prohibited", errno_name,
        )  # fmt: skip
        assert "firewall" in p["advice"]


def test_probe_udp_services(lab: labmod.Lab) -> None:
    status, out, err = portscope(
        lab, "probe", lab.target_v4, "53,123,161,514,54", "-u", "--timeout", "1.5", "--json"
    )
    assert status == 1, err
    rows = {r["port"]: r for r in json.loads(out)["results"]}
    assert {p: r["state"] for p, r in rows.items()} == {
        53: "open",  # DNS answers the root NS query
        123: "open",  # NTP answers the client request
        161: "open",
        514: "open|filtered",  # bound, silent
        54: "closed",  # ICMP port unreachable
    }
    status, _, _ = portscope(lab, "probe", lab.target_v4, "53", "-u", "--json")
    assert status == 0


def test_wan_short_scan_equals_truth(wan_lab: labmod.Lab) -> None:
    # 2,000 ports: every interesting one plus closed ones spread over the range; the full
    # 65,535-port WAN comparison with nmap is bench/bench_scan.py's job (CI time).
    interesting = wan_lab.interesting_ports("tcp")
    spread = [p for p in range(2, 65536, 31) if p not in interesting]
    ports = sorted(set(interesting) | set(spread[: 2000 - len(interesting)]))
    assert len(ports) == 2000
    lines = scan_lines(wan_lab, wan_lab.target_v4, "-p", ",".join(map(str, ports)))
    got = states_by_address(lines).get(wan_lab.target_v4, {})
    assert mismatches(wan_lab, got, [("tcp", p) for p in ports]) == []
    cov = lines[-1]["coverage"]
    assert cov["timed_out"] == len(wan_lab.dropped_tcp)
