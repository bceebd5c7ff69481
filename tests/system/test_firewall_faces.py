"""``portscope exposure``, and the firewall in ``audit``, the listening view and ``why
connect``, run inside a namespace with a real ruleset (the root namespace's firewall is never
touched).

Layout (``ps10-f*`` namespaces): a host with ``eth0`` (198.19.177.1) and a container-like
namespace behind ``br-app`` (198.19.188.1 <-> 198.19.188.2) that a Docker-style DNAT publishes
(host port 443 -> 198.19.188.2:80). Only local traffic inside the host namespace is sent
(``why connect`` to its own address).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.root

HERE = Path(__file__).resolve().parent
TAG = f"{os.getpid() % 100000}"
HOST, APP, OUT = f"ps10-fh-{TAG}", f"ps10-fa-{TAG}", f"ps10-fo-{TAG}"

RULESET = r"""
table inet filter {
  chain input { type filter hook input priority filter; policy drop;
    ct state established,related accept
    iif "lo" accept
    ip saddr 198.18.5.0/24 tcp dport 22 accept
    tcp dport 8080 accept
  }
  chain forward { type filter hook forward priority filter; policy drop;
    ct state established,related accept
    oifname "br-app" tcp dport 80 accept
  }
  chain output { type filter hook output priority filter; policy accept;
    tcp dport 9000 drop
    tcp dport 9001 reject with tcp reset
  }
}
table ip nat {
  chain prerouting { type nat hook prerouting priority dstnat; policy accept;
    fib daddr type local tcp dport 443 dnat to 198.19.188.2:80
  }
}
"""


def _sh(*argv: str, input_text: str | None = None) -> str:
    proc = subprocess.run(argv, input=input_text, capture_output=True, text=True, timeout=60)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)}: {proc.stderr.strip()}")
    return proc.stdout


def _ready(argv: list[str]) -> subprocess.Popen[str]:
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True, start_new_session=True)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    proc.stdout.close()
    if not line.startswith("ready"):
        proc.kill()
        proc.wait()
        raise RuntimeError(f"server did not start: {line!r}")
    return proc


@pytest.fixture(scope="module")
def host() -> Iterator[str]:
    if os.geteuid() != 0:
        pytest.skip("needs root (network namespaces, nft)")
    if missing := [t for t in ("ip", "nft", "nsenter") if not shutil.which(t)]:
        pytest.skip(f"needs {', '.join(missing)} (scripts/install-test-deps)")
    procs: list[subprocess.Popen[str]] = []
    try:
        for ns in (HOST, APP, OUT):
            _sh("ip", "netns", "add", ns)
            _sh("ip", "-n", ns, "link", "set", "lo", "up")
        _sh(
            "ip",
            "-n",
            HOST,
            "link",
            "add",
            "eth0",
            "type",
            "veth",
            "peer",
            "name",
            "o0",
            "netns",
            OUT,
        )
        _sh(
            "ip",
            "-n",
            HOST,
            "link",
            "add",
            "br-app",
            "type",
            "veth",
            "peer",
            "name",
            "a0",
            "netns",
            APP,
        )
        for ns, dev, addr in (
            (HOST, "eth0", "198.19.177.1/24"),
            (OUT, "o0", "198.19.177.9/24"),
            (HOST, "br-app", "198.19.188.1/24"),
            (APP, "a0", "198.19.188.2/24"),
        ):
            _sh("ip", "-n", ns, "addr", "add", addr, "dev", dev)
            _sh("ip", "-n", ns, "link", "set", dev, "up")
        _sh("ip", "netns", "exec", HOST, "sysctl", "-q", "-w", "net.ipv4.ip_forward=1")
        _sh("ip", "netns", "exec", HOST, "nft", "-f", "-", input_text=RULESET)
        server = str(HERE / "fwtruth_server.py")
        spec = json.dumps({"tcp": [22, 6379, 8080], "udp": [5353]})
        procs.append(_ready(["ip", "netns", "exec", HOST, sys.executable, server, spec]))
        spec = json.dumps({"tcp": [80]})
        procs.append(_ready(["ip", "netns", "exec", APP, sys.executable, server, spec]))
        yield HOST
    finally:
        for p in procs:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(p.pid, signal.SIGKILL)
            p.wait(timeout=10)
        for ns in (HOST, APP, OUT):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, check=False)


def _portscope(
    ns: str | None, *args: str, user: str | None = None
) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-m", "portscope", *args]
    if user is not None:
        argv = ["setpriv", f"--reuid={user}", f"--regid={user}", "--clear-groups", *argv]
    if ns is not None:
        argv = ["ip", "netns", "exec", ns, *argv]
    return subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)


def _ports(doc: dict[str, Any]) -> dict[tuple[str, int], dict[str, Any]]:
    return {(p["proto"], p["port"]): p for p in doc["ports"] if p["family"] == 4}


def test_exposure_tells_port_by_port(host: str) -> None:
    proc = _portscope(host, "exposure", "--json", "-4")
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["schema"] == "portscope.exposure/1"
    assert doc["firewall_read"] is True
    ports = _ports(doc)
    ssh = ports[("tcp", 22)]
    assert ssh["verdict"] == "filtered"
    assert ssh["chain"] == "inet filter input" and ssh["rule"] is None  # the policy
    opened = {s["source"] for s in ssh["by_source"] if s["verdict"] == "open"}
    assert opened == {"198.18.5.0/24"}
    assert ports[("tcp", 6379)]["verdict"] == "filtered"
    web = ports[("tcp", 8080)]
    assert web["verdict"] == "open" and web["rule"]["text"] == "tcp dport 8080 accept"
    published = ports[("tcp", 443)]
    assert published["verdict"] == "open"
    assert published["listener"] is None and published["destination"] == "198.19.188.2:80"
    assert f"netns {APP}" in published["receiver"]
    assert ports[("udp", 5353)]["verdict"] == "filtered"
    # the human table says the same
    text = _portscope(host, "exposure", "-4").stdout
    assert "open from 198.18.5.0/24" in text and "-> 198.19.188.2:80" in text


def test_exposure_from_a_source_and_by_netns(host: str) -> None:
    proc = _portscope(None, "exposure", "--json", "-4", "--netns", host, "--from", "198.18.5.7")
    assert proc.returncode == 0, proc.stderr
    ports = _ports(json.loads(proc.stdout))
    assert ports[("tcp", 22)]["verdict"] == "open"
    assert ports[("tcp", 6379)]["verdict"] == "filtered"
    assert ports[("tcp", 443)]["verdict"] == "open"


def test_exposure_bad_input_is_one_line(host: str) -> None:
    for args in (("--netns", "ps10-no-such-ns"), ("--from", "banana")):
        proc = _portscope(None, "exposure", *args)
        assert proc.returncode == 2
        assert proc.stderr.startswith("portscope: error:") and proc.stderr.count("\n") == 1


def test_not_root_falls_back_clearly(host: str) -> None:
    if not shutil.which("setpriv"):
        pytest.skip("needs setpriv (util-linux)")
    proc = _portscope(host, "exposure", "--json", user="65534")
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["firewall_read"] is False
    assert "CAP_NET_ADMIN" in doc["firewall_error"]
    assert "the firewall could not be read" in proc.stderr
    text = _portscope(host, "exposure", user="65534").stdout
    assert text.startswith("firewall NOT read")


def test_audit_weighs_findings_by_the_firewall(host: str) -> None:
    proc = _portscope(host, "audit", "--json")
    assert proc.returncode == 0, proc.stderr
    findings = json.loads(proc.stdout)["findings"]
    redis = next(f for f in findings if f["rule"] == "datastore-exposed")
    assert redis["severity"] == "low"  # high without the drop
    assert redis["firewall"].startswith("filtered from outside")
    assert redis["firewall_rule"] == "policy of inet filter input"
    dnat = [f for f in findings if f["rule"] == "dnat-published"]
    assert len(dnat) == 1 and dnat[0]["socket"]["local"]["port"] == 443
    assert "198.19.188.2:80" in dnat[0]["title"]
    plain = json.loads(_portscope(host, "audit", "--json", "--no-firewall").stdout)
    redis0 = next(f for f in plain["findings"] if f["rule"] == "datastore-exposed")
    assert redis0["severity"] == "high" and redis0["firewall"] is None


def test_listening_view_scope_says_filtered(host: str) -> None:
    proc = _portscope(host, "-t", "--json")
    assert proc.returncode == 0, proc.stderr
    scopes = {(s["local"]["port"]): s["scope"] for s in json.loads(proc.stdout)["sockets"]}
    assert scopes[6379] == "all interfaces (IPv4+IPv6), firewall: filtered from outside"
    assert scopes[22] == (
        "all interfaces (IPv4+IPv6), firewall: filtered from outside, open from 198.18.5.0/24"
    )
    assert "firewall" not in scopes[8080]


def test_why_connect_names_the_rule(host: str) -> None:
    proc = _portscope(host, "why", "connect", "198.19.177.1:9000", "--timeout", "0.5")
    assert proc.returncode == 1
    assert "firewall drops 198.19.177.1:9000: inet filter output #" in proc.stdout
    assert "tcp dport 9000 drop" in proc.stdout
    proc = _portscope(host, "why", "connect", "198.19.177.1:9001", "--timeout", "0.5")
    assert "rejects 198.19.177.1:9001 (tcp-reset)" in proc.stdout
    assert "tcp dport 9001 reject with tcp reset" in proc.stdout
