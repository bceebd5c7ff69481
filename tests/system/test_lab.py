"""Tests of the scan lab itself: its ground truth checked with independent tools (nmap, ncat).

The scanner's own tests against the truth live beside these (tests/system/test_scan*.py).
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

import lab as labmod

# A spread of closed ports checked alongside every non-closed one.
CLOSED_SAMPLE = [2, 8, 24, 79, 81, 112, 114, 444, 1022, 1025, 8079, 32767, 49151, 65533]


def nmap_states(xml_text: str) -> dict[tuple[str, int], str]:
    """Port states from nmap's XML output, ports in <extraports> included only as listed."""
    root = ET.fromstring(xml_text)
    states = {}
    for port in root.iter("port"):
        state = port.find("state")
        assert state is not None
        states[(port.get("protocol", ""), int(port.get("portid", "0")))] = state.get("state", "")
    return states


def run_nmap(lb: labmod.Lab, args: list[str], timeout_s: float = 60) -> dict[tuple[str, int], str]:
    # -d: list every port, even the closed ones nmap would fold into <extraports>.
    proc = lb.exec(["nmap", "-n", "-Pn", "-d", "-oX", "-", *args], timeout_s=timeout_s)
    assert proc.returncode == 0, proc.stderr
    return nmap_states(proc.stdout)


def py(lb: labmod.Lab, code: str, *args: str, timeout_s: float = 30) -> str:
    proc = lb.exec([sys.executable, "-c", code, *args], timeout_s=timeout_s)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


@pytest.mark.root
def test_scanner_namespace_has_no_default_route(lab: labmod.Lab) -> None:
    for fam in ("-4", "-6"):
        out = subprocess.run(
            ["ip", fam, "-n", lab.scanner_ns, "route", "show", "default"],
            capture_output=True, text=True, check=True,
        ).stdout  # fmt: skip
        assert out.strip() == ""
    lab.check_no_default_route()
    # Anything outside the lab's prefixes is unroutable from the scanner side.
    out = py(
        lab,
        "import socket\n"
        "for a in ('192.0.2.1', '2001:4860::1'):\n"
        "    s = socket.socket(socket.AF_INET6 if ':' in a else socket.AF_INET)\n"
        "    try: s.connect((a, 80)); print('connected')\n"
        "    except OSError as e: print(e.errno)\n",
    )
    assert out.split() == ["101", "101"]  # ENETUNREACH


@pytest.mark.root
def test_truth_covers_every_tcp_port(lab: labmod.Lab, tmp_path: Path) -> None:
    tcp = {p: s for (proto, p), s in lab.truth.items() if proto == "tcp"}
    assert sorted(tcp) == list(range(1, 65536))
    assert {p for p, s in tcp.items() if s == "open"} == lab.open_tcp
    assert lab.unreachable_tcp <= {p for p, s in tcp.items() if s == "filtered"}
    assert lab.truth[("udp", 53)] == "open"
    assert lab.truth[("udp", 514)] == "open|filtered"
    assert lab.expected("udp", 40404) == "closed"
    path = tmp_path / "truth.json"
    lab.write_truth(path)
    data = json.loads(path.read_text())
    assert len(data["tcp"]) == 65535
    assert data["tcp"]["22"] == "open"
    assert data["targets"]["ipv4"] == "198.18.0.2"
    assert data["banners"]["22"] == "SSH-2.0-portscope-lab\r\n"


@pytest.mark.root
@pytest.mark.parametrize("target", ["target_v4", "target_v6", "extra_v4"])
def test_nmap_connect_scan_matches_truth(lab: labmod.Lab, target: str) -> None:
    addr = lab.targets_v4_28[-1] if target == "extra_v4" else getattr(lab, target)
    ports = sorted(set(lab.interesting_ports("tcp")) | set(CLOSED_SAMPLE))
    args = ["-sT", "-p", ",".join(map(str, ports)), addr]
    got = run_nmap(lab, ["-6", *args] if ":" in addr else args)
    assert got == {("tcp", p): lab.expected("tcp", p) for p in ports}


@pytest.mark.root
def test_nmap_udp_scan_matches_truth(lab: labmod.Lab) -> None:
    ports = lab.interesting_ports("udp")
    assert {53, 123, 161, 500, 514} <= set(ports)
    got = run_nmap(lab, ["-sU", "-p", ",".join(map(str, ports)), lab.target_v4])
    assert got == {("udp", p): lab.expected("udp", p) for p in ports}


@pytest.mark.root
@pytest.mark.parametrize("port", [22, 25])
def test_ncat_reads_banner(lab: labmod.Lab, port: int) -> None:
    proc = lab.exec(
        ["ncat", "--recv-only", "-w", "2", "-i", "1", lab.target_v4, str(port)],
        timeout_s=10,
        text=False,
    )
    assert proc.stdout == lab.banners[port]


@pytest.mark.root
def test_dns_and_ntp_responders_answer(lab: labmod.Lab) -> None:
    out = py(
        lab,
        "import socket, struct, sys\n"
        "s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(2)\n"
        "q = struct.pack('!HHHHHH', 0x1234, 0x0100, 1, 0, 0, 0)"
        " + b'\\x04host\\x03lab\\x00' + struct.pack('!HH', 1, 1)\n"
        "s.sendto(q, (sys.argv[1], 53)); r = s.recv(512)\n"
        "qid, flags, qd, an = struct.unpack('!HHHH', r[:8])\n"
        "print(hex(qid), flags >> 15, flags & 15, an, socket.inet_ntoa(r[-4:]))\n"
        "s.sendto(b'\\x23' + b'\\x00' * 47, (sys.argv[1], 123)); r = s.recv(512)\n"
        "print(len(r), r[0] & 7, r[1])\n",
        lab.target_v4,
    )
    assert out.split("\n")[:2] == ["0x1234 1 0 1 198.18.0.2", "48 4 2"]


@pytest.mark.root
def test_connect_errnos(lab: labmod.Lab) -> None:
    """ICMP admin-prohibited: EHOSTUNREACH (v4), EACCES (v6); drops time out; RST: refused.

    Each prohibited case runs 10 times with a timeout under the 1 s SYN retransmit: the
    answer must come from the first ICMP error every time (see lab._async_veth_rx).
    """
    prohibited = str(min(lab.unreachable_tcp))
    dropped = str(min(lab.dropped_tcp))
    cases = [
        *[(lab.target_v4, prohibited, "0.5", "EHOSTUNREACH")] * 10,
        *[(lab.target_v6, prohibited, "0.5", "EACCES")] * 10,
        (lab.target_v4, dropped, "0.5", "timeout"),
        (lab.target_v4, "2", "0.5", "ECONNREFUSED"),
        (lab.target_v6, "22", "0.5", "open"),
        (lab.silent_v4, "22", "0.5", "timeout"),
    ]
    out = py(
        lab,
        "import errno, socket, sys\n"
        "for a, p, t in zip(sys.argv[1::3], sys.argv[2::3], sys.argv[3::3]):\n"
        "    s = socket.socket(socket.AF_INET6 if ':' in a else socket.AF_INET)\n"
        "    s.settimeout(float(t))\n"
        "    try: s.connect((a, int(p))); print('open')\n"
        "    except socket.timeout: print('timeout')\n"
        "    except OSError as e: print(errno.errorcode[e.errno])\n",
        *(arg for case in cases for arg in case[:3]),
    )
    assert out.split() == [case[3] for case in cases]


@pytest.mark.root
def test_teardown_leaves_nothing_behind() -> None:
    with labmod.running() as lb:
        names = {lb.scanner_ns, lb.target_ns}
        pids = list(lb.pids.values())
        assert names <= set(labmod.namespaces())
        assert all(labmod._pid_alive(p) for p in pids)
    assert not names & set(labmod.namespaces())
    assert not any(os.path.exists(f"/proc/{p}") for p in pids)


@pytest.mark.root
def test_failed_build_cleans_up(monkeypatch: pytest.MonkeyPatch) -> None:
    before = set(labmod.namespaces())
    monkeypatch.setattr(labmod, "OPEN_TCP", (22, 22))  # the services fail to bind twice
    with pytest.raises(labmod.LabError), labmod.running():
        pass
    assert set(labmod.namespaces()) == before


@pytest.mark.root
def test_stale_namespaces_of_dead_creators_are_removed() -> None:
    dead = subprocess.Popen(["true"])
    dead.wait()
    name = f"ps-scan-{dead.pid}-1"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        assert name in labmod.cleanup_stale()
        assert name not in labmod.namespaces()
    finally:
        subprocess.run(["ip", "netns", "del", name], capture_output=True, check=False)
    # A namespace of a live creator (this process) is left alone.
    live = f"ps-scan-{os.getpid()}-999"
    subprocess.run(["ip", "netns", "add", live], check=True)
    try:
        assert live not in labmod.cleanup_stale()
    finally:
        subprocess.run(["ip", "netns", "del", live], check=True)


@pytest.mark.root
def test_netns_context_runs_in_scanner_namespace(lab: labmod.Lab) -> None:
    import socket

    before = os.readlink("/proc/thread-self/ns/net")
    with lab.netns():
        inside = os.readlink("/proc/thread-self/ns/net")
        with socket.create_connection((lab.target_v4, 22), timeout=2) as s:
            assert s.recv(64) == lab.banners[22]
    # Back in the original namespace (no traffic is sent from there: it has real routes).
    assert os.readlink("/proc/thread-self/ns/net") == before != inside


def _connect_times_s(lb: labmod.Lab, n: int) -> list[float]:
    out = py(
        lb,
        "import socket, sys, time\n"
        "for _ in range(int(sys.argv[2])):\n"
        "    t = time.perf_counter(); socket.create_connection((sys.argv[1], 22), 5).close()\n"
        "    print(time.perf_counter() - t)\n",
        lb.target_v4, str(n),
    )  # fmt: skip
    return [float(x) for x in out.split()]


@pytest.mark.root
def test_wan_adds_delay(wan_lab: labmod.Lab) -> None:
    times = _connect_times_s(wan_lab, 30)
    # SYN out + SYN-ACK back: 2 x (20 ms +- 5 ms); a lost packet adds a 1 s retransmit.
    assert 0.030 < statistics.median(times) < 0.060


@pytest.mark.root
def test_wan_drops_about_half_a_percent(wan_lab: labmod.Lab) -> None:
    before = wan_lab.wan_counters()
    assert before is not None
    # 20000 datagrams to a closed UDP port: each answered by an ICMP port unreachable.
    py(
        wan_lab,
        "import socket, sys, time\n"
        "s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
        "for i in range(20000):\n"
        "    s.sendto(b'x', (sys.argv[1], 9))\n"
        "    if i % 500 == 499: time.sleep(0.01)\n"
        "time.sleep(0.3)\n",
        wan_lab.target_v4,
    )
    after = wan_lab.wan_counters()
    assert after is not None
    for way in ("a_to_b", "b_to_a"):
        received = after[way]["received"] - before[way]["received"]
        dropped = after[way]["dropped"] - before[way]["dropped"]
        assert received >= 19000, (way, received)
        assert 0.002 < dropped / received < 0.010, (way, dropped, received)


@pytest.mark.root
def test_wan_truth_holds_for_nmap(wan_lab: labmod.Lab) -> None:
    ports = sorted(set(wan_lab.interesting_ports("tcp")) | set(CLOSED_SAMPLE))
    want = {("tcp", p): wan_lab.expected("tcp", p) for p in ports}
    got = run_nmap(wan_lab, ["-sT", "-p", ",".join(map(str, ports)), wan_lab.target_v4])
    # nmap itself now and then gives up on a port under random loss (its timing, not the
    # lab): such a port must show its true state when nmap asks again.
    odd = sorted(p for (_, p), state in want.items() if got.get(("tcp", p)) != state)
    if odd:
        again = run_nmap(wan_lab, ["-sT", "-p", ",".join(map(str, odd)), wan_lab.target_v4])
        got.update(again)
    assert got == want


# Without root: the pure parts of the lab.


def test_truth_sets_are_disjoint_and_in_range() -> None:
    groups = [labmod.OPEN_TCP, labmod.DROPPED_TCP, labmod.PROHIBITED_TCP]
    seen: set[int] = set()
    for group in groups:
        assert not seen & set(group)
        seen |= set(group)
    assert all(1 <= p <= 65535 for p in seen)
    assert set(labmod.BANNERS) <= set(labmod.OPEN_TCP)
    ruleset = labmod.nft_ruleset()
    assert "elements = { 113, 1080, 6000, 9000 }" in ruleset
    assert "reject with icmpv6 type admin-prohibited" in ruleset


def test_dns_responder_answers_a_queries_and_nodata() -> None:
    import struct

    from lab import services

    query = struct.pack("!HHHHHH", 7, 0x0100, 1, 0, 0, 0) + b"\x01a\x00" + b"\x00\x01\x00\x01"
    reply = services.dns_reply(query)
    assert reply is not None
    qid, flags, qd, an = struct.unpack("!HHHH", reply[:8])
    assert (qid, flags >> 15, flags & 0xF, qd, an) == (7, 1, 0, 1, 1)
    assert reply.endswith(bytes([198, 18, 0, 2]))
    aaaa = query[:-4] + b"\x00\x1c\x00\x01"
    reply = services.dns_reply(aaaa)
    assert reply is not None and struct.unpack("!H", reply[6:8])[0] == 0  # NODATA
    assert services.dns_reply(b"short") is None
    # nmap's UDP/53 payload: a header with no question.
    reply = services.dns_reply(bytes(2) + b"\x10\x00" + bytes(8))
    assert reply is not None and reply[2] & 0x80


def test_ntp_responder_echoes_the_client_transmit_time() -> None:
    from lab import services

    query = bytes([0x23]) + bytes(39) + b"ABCDEFGH"
    reply = services.ntp_reply(query)
    assert reply is not None and len(reply) == 48
    assert reply[0] & 7 == 4 and (reply[0] >> 3) & 7 == 4 and reply[1] == 2
    assert reply[24:32] == b"ABCDEFGH"
    assert services.ntp_reply(bytes(10)) is None
