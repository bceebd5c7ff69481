"""Ground truth for the firewall model: every prediction against a real connection attempt.

Three network namespaces (``ps10-*``, removed at the end): a client with several source
addresses in 198.18.0.0/15 and 2001:db8::/32 and no default route, a target whose ruleset
changes from case set to case set (nftables rulesets and iptables-nft ones, loaded with
``nft -f`` / ``iptables-nft-restore``), and a container-like namespace behind the target
(Docker-style DNAT). For each (ruleset, source, port) the model predicts, from the ruleset
read back from the kernel (``portscope.firewall.read_ruleset``), the host facts and the
listeners it finds itself, and the client then really connects (TCP) or sends a datagram
(UDP). Every definite prediction must equal what the kernel did; ``unknown`` is counted and
must come only from the rules written to be beyond the model.

Prediction -> what the client sees: open -> handshake/reply; closed -> ECONNREFUSED (RST or
ICMP port unreachable); filtered -> no answer; rejected -> ECONNREFUSED for a TCP reset or a
port-unreachable, else the errno of the ICMP type (``net/ipv4/icmp.c`` icmp_err_convert,
``net/ipv6/icmp.c`` icmpv6_err_convert).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from portscope.diagnose.exposure import Listeners, _listen_json, foreign_lookup
from portscope.firewall import Evaluator, Packet, Verdict, read_host, read_ruleset

pytestmark = pytest.mark.root

HERE = Path(__file__).resolve().parent
TAG = f"{os.getpid() % 100000}"
CLI, TGT, CTR = f"ps10-cli-{TAG}", f"ps10-tgt-{TAG}", f"ps10-ctr-{TAG}"

# Addresses: everything in 198.18.0.0/15 and 2001:db8::/32 (RFC 2544 / RFC 3849).
T0, C0, ALLOWED, ADMIN = "198.19.210.1", "198.19.210.2", "198.19.210.77", "198.19.211.5"
T1, C1 = "198.19.212.1", "198.19.212.2"
T2, CT = "198.19.250.1", "198.19.250.2"
T0_6, C0_6, ADMIN_6 = "2001:db8:210::1", "2001:db8:210::2", "2001:db8:211::5"
T2_6, CT_6 = "2001:db8:250::1", "2001:db8:250::2"

# the target connecting to its own addresses (label, family, source, destination)
LOCAL_SOURCES = [
    ("self", 4, T0, T0, None),
    ("self-t1", 4, T0, T1, None),
    ("loopback", 4, "127.0.0.1", "127.0.0.1", None),
    ("self6", 6, T0_6, T0_6, None),
]
# (label, family, source, destination, target interface it arrives on)
SOURCES = [
    ("plain", 4, C0, T0, "t0"),
    ("allowed", 4, ALLOWED, T0, "t0"),
    ("admin", 4, ADMIN, T0, "t0"),
    ("via-t1", 4, C1, T1, "t1"),
    ("plain6", 6, C0_6, T0_6, "t0"),
    ("admin6", 6, ADMIN_6, T0_6, "t0"),
]
TGT_TCP = [
    1001,
    1003,
    1004,
    1005,
    1006,
    1007,
    1008,
    1009,
    1010,
    1011,
    1012,
    1013,
    1014,
    2001,
    2002,
    2003,
    2004,
    2005,
    6379,
]
TGT_UDP = [3001, 3002, 3003]
CTR_TCP = [80, 8443]
CTR_UDP = [5300]
TIMEOUT_S = 2.5  # > the 1 s SYN retransmission: an ICMP error dropped once still arrives

ERRNO_V4 = {
    "admin-prohibited": "EHOSTUNREACH",
    "host-unreachable": "EHOSTUNREACH",
    "host-prohibited": "EHOSTUNREACH",
    "net-unreachable": "ENETUNREACH",
    "net-prohibited": "ENETUNREACH",
    "no-route": "ENETUNREACH",
    "prot-unreachable": "ENOPROTOOPT",
}
ERRNO_V6 = {
    "admin-prohibited": "EACCES",
    "no-route": "ENETUNREACH",
    "addr-unreachable": "EHOSTUNREACH",
    "host-unreachable": "EHOSTUNREACH",
    "policy-fail": "EACCES",
    "reject-route": "EACCES",
}

NFT_DENY = r"""
table inet fw {
  set admins { type ipv4_addr; flags interval; elements = { 198.19.211.0/24, 198.19.210.77 } }
  set admins6 { type ipv6_addr; flags interval; elements = { 2001:db8:211::/64 } }
  map svc { type inet_service : verdict;
            elements = { 2001 : accept, 2002 : drop, 2003 : jump rej } }
  chain input {
    type filter hook input priority filter; policy drop;
    ct state established,related accept
    ct state invalid drop
    iifname "lo" accept
    icmpv6 type { nd-neighbor-solicit, nd-neighbor-advert } accept
    tcp dport { 1001, 1002 } accept
    ip saddr @admins tcp dport 1003 accept
    ip6 saddr @admins6 tcp dport 1003 accept
    iifname "t1" tcp dport 1004 accept
    tcp dport 1005 reject with tcp reset
    tcp dport 1006 reject with icmpx type admin-prohibited
    tcp dport 1007 reject with icmpx type host-unreachable
    tcp dport 1008 reject with icmpx type port-unreachable
    tcp dport 1009 reject with icmpx type no-route
    ip saddr 198.19.211.0/24 tcp dport 1010 reject with icmp type net-prohibited
    ip6 saddr 2001:db8:211::/64 tcp dport 1010 reject with icmpv6 type addr-unreachable
    tcp dport 1010 accept
    tcp dport 1011 limit rate over 1000/second drop
    tcp dport 1011 accept
    tcp dport 1012 meta mark 0x1 accept
    ip saddr != 198.19.210.77 tcp dport 1013 accept
    meta nfproto ipv6 tcp dport 1013 accept
    tcp dport vmap @svc
    tcp dport vmap { 2004 : accept, 2005 : jump sub }
    udp dport 3001 accept
    udp dport 3002 reject
    udp dport 3004 accept
    ip saddr . tcp dport { 198.19.210.2 . 6379 } accept
  }
  chain rej { reject with icmpx type admin-prohibited; }
  chain sub { ip saddr 198.19.211.0/24 return; ip6 saddr 2001:db8:211::/64 return; accept; }
}
"""

NFT_LAYERS = r"""
table inet a {
  chain in1 { type filter hook input priority -10; policy accept;
    tcp dport 1001 drop
    tcp dport 1003 accept
    tcp dport { 1004-1006 } jump inner
  }
  chain inner { tcp dport 1004 return; tcp dport 1005 goto deep; drop; }
  chain deep { ip saddr 198.19.211.0/24 reject with tcp reset; }
}
table ip b {
  chain in2 { type filter hook input priority 10; policy accept;
    tcp dport 1003 drop
    tcp dport 1007 goto g
    tcp dport 1008 jump j
    tcp dport 1009 reject
    udp dport 3001 reject with icmp type admin-prohibited
  }
  chain g { ip saddr 198.19.210.0/24 drop; }
  chain j { ip saddr 198.19.210.0/24 return; drop; }
}
table ip6 c {
  chain in3 { type filter hook input priority 5; policy accept;
    tcp dport 1009 reject with icmpv6 type admin-prohibited
    udp dport 3001 drop
  }
}
table inet r {
  chain pre { type filter hook prerouting priority raw; policy accept;
    iifname "t1" tcp dport 1010 drop
    iifname != "t0" tcp dport 1011 drop
    tcp dport 1012 notrack
  }
  chain post { type filter hook input priority 20; policy accept;
    tcp dport 1012 ct state untracked reject with tcp reset
    tcp dport 1013 ct state new drop
    tcp dport 1014 tcp flags & (syn|ack) == syn drop
  }
}
"""

NFT_NAT = r"""
table ip nat {
  chain pre { type nat hook prerouting priority dstnat; policy accept;
    fib daddr type local tcp dport 8080 dnat to 198.19.250.2:80
    fib daddr type local tcp dport 8081 dnat to 198.19.250.2:81
    tcp dport 8082 redirect to :1001
    tcp dport 8083 redirect to :1999
    iifname "t1" tcp dport 8084 dnat to 198.19.250.2:80
    udp dport 5353 dnat to 198.19.250.2:5300
    tcp dport 8085 dnat to 198.19.250.2:8443
    tcp dport 8086 dnat to 127.0.0.1:1001
  }
  chain post { type nat hook postrouting priority srcnat; policy accept; }
}
table ip6 nat6 {
  chain pre { type nat hook prerouting priority dstnat; policy accept;
    tcp dport 8080 dnat to [2001:db8:250::2]:80
  }
}
table inet filter {
  chain forward { type filter hook forward priority filter; policy drop;
    ct state established,related accept
    ip saddr 198.19.211.0/24 tcp dport 80 drop
    oifname "t2" ip daddr 198.19.250.2 tcp dport { 80, 81 } accept
    oifname "t2" ip6 daddr 2001:db8:250::2 tcp dport 80 accept
    ct status dnat udp dport 5300 accept
    tcp dport 8443 reject with icmpx type admin-prohibited
  }
  chain input { type filter hook input priority filter; policy drop;
    ct state established,related accept
    meta l4proto ipv6-icmp accept
    tcp dport { 1001, 1999 } accept
  }
}
"""

IPT_DENY_V4 = """*filter
:INPUT DROP [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
:ADMIN - [0:0]
-A INPUT -i lo -j ACCEPT
-A INPUT -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
-A INPUT -p tcp -m tcp --dport 1001 -j ACCEPT
-A INPUT -p tcp -m multiport --dports 1002,1003:1004 -j ACCEPT
-A INPUT -s 198.19.211.0/24 -j ADMIN
-A INPUT -i t1 -p tcp -m tcp --dport 1005 -j ACCEPT
-A INPUT -p tcp -m tcp --dport 1006 -j REJECT --reject-with tcp-reset
-A INPUT -p tcp -m tcp --dport 1007 -j REJECT --reject-with icmp-admin-prohibited
-A INPUT -p tcp -m tcp --dport 1008 -j REJECT
-A INPUT -p tcp -m tcp --dport 1009 -j REJECT --reject-with icmp-host-prohibited
-A INPUT -p udp -m udp --dport 3001 -j ACCEPT
-A INPUT -p udp -m udp --dport 3002 -j REJECT
-A INPUT -s 198.19.210.77/32 -p tcp -m tcp ! --dport 1010 -m addrtype --dst-type LOCAL -j ACCEPT
-A INPUT -p tcp -m tcp --dport 1011 -m recent --rcheck --name ps10 -j ACCEPT
-A INPUT -p tcp -m tcp --dport 1012 -m iprange --src-range 198.19.210.1-198.19.210.50 -j ACCEPT
-A INPUT -p tcp -m tcp --dport 1013 -j MARK --set-mark 0x7
-A INPUT -p tcp -m mark --mark 0x7 -j ACCEPT
-A ADMIN -p tcp -m tcp --dport 2001:2010 -j ACCEPT
-A ADMIN -j RETURN
COMMIT
"""

IPT_DENY_V6 = """*filter
:INPUT DROP [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
-A INPUT -i lo -j ACCEPT
-A INPUT -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
-A INPUT -p tcp -m tcp --dport 1001 -j ACCEPT
-A INPUT -s 2001:db8:211::/64 -p tcp -m multiport --dports 1003,2001:2003 -j ACCEPT
-A INPUT -p tcp -m tcp --dport 1007 -j REJECT --reject-with icmp6-adm-prohibited
-A INPUT -p tcp -m tcp --dport 1008 -j REJECT
-A INPUT -p tcp -m tcp --dport 1009 -j REJECT --reject-with tcp-reset
-A INPUT -p udp -m udp --dport 3001 -j ACCEPT
-A INPUT -p udp -m udp --dport 3003 -j REJECT --reject-with icmp6-adm-prohibited
COMMIT
"""

IPT_DOCKER_V4 = """*nat
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
:DOCKER - [0:0]
-A PREROUTING -m addrtype --dst-type LOCAL -j DOCKER
-A POSTROUTING -s 198.19.250.0/24 ! -o t2 -j MASQUERADE
-A DOCKER -i t2 -j RETURN
-A DOCKER ! -i t2 -p tcp -m tcp --dport 8080 -j DNAT --to-destination 198.19.250.2:80
-A DOCKER ! -i t2 -p tcp -m tcp --dport 8081 -j DNAT --to-destination 198.19.250.2:81
-A DOCKER ! -i t2 -p udp -m udp --dport 5353 -j DNAT --to-destination 198.19.250.2:5300
-A DOCKER ! -i t2 -p tcp -m tcp --dport 8443 -j DNAT --to-destination 198.19.250.2
COMMIT
*filter
:INPUT DROP [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
:DOCKER - [0:0]
:DOCKER-USER - [0:0]
-A INPUT -i lo -j ACCEPT
-A INPUT -p tcp -m tcp --dport 1001 -j ACCEPT
-A FORWARD -j DOCKER-USER
-A FORWARD -o t2 -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
-A FORWARD -o t2 -j DOCKER
-A DOCKER -d 198.19.250.2/32 ! -i t2 -o t2 -p tcp -m tcp --dport 80 -j ACCEPT
-A DOCKER -d 198.19.250.2/32 ! -i t2 -o t2 -p tcp -m tcp --dport 81 -j ACCEPT
-A DOCKER -d 198.19.250.2/32 ! -i t2 -o t2 -p udp -m udp --dport 5300 -j ACCEPT
-A DOCKER -d 198.19.250.2/32 ! -i t2 -o t2 -p tcp -m tcp --dport 8443 -j ACCEPT
-A DOCKER-USER -s 198.19.211.0/24 -j DROP
-A DOCKER-USER -i t1 -p tcp -m tcp --dport 8443 -j REJECT --reject-with icmp-port-unreachable
-A DOCKER-USER -j RETURN
COMMIT
"""


IPT_DOCKER_REAL_V4 = IPT_DOCKER_V4.replace(
    "-A FORWARD -o t2 -j DOCKER\n",
    "-A FORWARD -o t2 -j DOCKER\n"
    "-A FORWARD -i t2 ! -o t2 -j ACCEPT\n"
    "-A FORWARD -i t2 -o t2 -j ACCEPT\n",
)

# Connections from the target to itself (why connect to a local address): output,
# postrouting, then prerouting and input on lo; nat output may redirect.
NFT_LOCAL = r"""
table inet loc {
  chain output { type filter hook output priority filter; policy accept;
    oifname "lo" tcp dport 1001 drop
    tcp dport 1003 reject with tcp reset
    ip daddr 198.19.210.1 tcp dport 1004 reject with icmpx type admin-prohibited
    udp dport 3001 drop
  }
  chain pre { type filter hook prerouting priority raw; policy accept;
    iif "lo" tcp dport 1007 drop
  }
  chain input { type filter hook input priority filter; policy drop;
    iif "lo" tcp dport 1005 drop
    iif "lo" udp dport 3002 reject
    iif "lo" accept
  }
}
table ip nat {
  chain out { type nat hook output priority -100; policy accept;
    tcp dport 8082 redirect to :1006
    tcp dport 8087 dnat to 198.19.212.1:1001
  }
}
"""

IPT_LEGACY_V4 = """*nat
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
-A PREROUTING -p tcp -m tcp --dport 8080 -j DNAT --to-destination 198.19.250.2:80
-A PREROUTING -p tcp -m tcp --dport 8082 -j REDIRECT --to-ports 1001
COMMIT
*filter
:INPUT DROP [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
-A INPUT -m state --state RELATED,ESTABLISHED -j ACCEPT
-A INPUT -p tcp -m multiport --dports 1001,1003 -j ACCEPT
-A INPUT -s 198.19.211.0/24 -p tcp -j REJECT --reject-with icmp-net-prohibited
-A INPUT -i t1 -p tcp -j REJECT --reject-with tcp-reset
-A INPUT -p udp -m udp --dport 3001:3002 -j ACCEPT
-A FORWARD -s 198.19.210.77/32 -j DROP
COMMIT
"""


@dataclass
class Ruleset:
    """One case set: how to load it, which ports to try, which readers to check."""

    name: str
    nft: str | None = None
    ipt4: str | None = None
    ipt6: str | None = None
    tcp: list[int] = field(default_factory=list)
    udp: list[int] = field(default_factory=list)
    readers: tuple[str, ...] = ("auto",)
    # ports whose rule the model is meant not to understand (limit, recent ...)
    unknown_ok: frozenset[int] = frozenset()
    legacy: bool = False  # load ipt4 with iptables-legacy-restore
    local: bool = False  # the target connects to itself instead of the client


RULESETS = [
    Ruleset(
        "nft-default-deny",
        nft=NFT_DENY,
        tcp=[
            1001,
            1002,
            1003,
            1004,
            1005,
            1006,
            1007,
            1008,
            1009,
            1010,
            1011,
            1012,
            1013,
            2001,
            2002,
            2003,
            2004,
            2005,
            6379,
            7000,
        ],
        udp=[3001, 3002, 3003, 3004],
        unknown_ok=frozenset({1011}),
    ),
    Ruleset(
        "nft-layers",
        nft=NFT_LAYERS,
        tcp=[
            1001,
            1003,
            1004,
            1005,
            1006,
            1007,
            1008,
            1009,
            1010,
            1011,
            1012,
            1013,
            1014,
            2001,
            7000,
        ],
        udp=[3001, 3002, 3004],
    ),
    Ruleset(
        "nft-nat",
        nft=NFT_NAT,
        tcp=[1001, 1003, 8080, 8081, 8082, 8083, 8084, 8085, 8086, 9999],
        udp=[5353, 3001],
    ),
    Ruleset(
        "iptables-nft-deny",
        ipt4=IPT_DENY_V4,
        ipt6=IPT_DENY_V6,
        tcp=[
            1001,
            1002,
            1003,
            1004,
            1005,
            1006,
            1007,
            1008,
            1009,
            1010,
            1011,
            1012,
            1013,
            2001,
            2003,
            7000,
        ],
        udp=[3001, 3002, 3003],
        readers=("auto", "iptables"),
        unknown_ok=frozenset({1011}),
    ),
    Ruleset(
        "iptables-nft-docker",
        ipt4=IPT_DOCKER_V4,
        tcp=[1001, 1003, 8080, 8081, 8443, 9999],
        udp=[5353, 3001],
        readers=("auto", "iptables"),
    ),
    Ruleset(
        "iptables-nft-docker-real",
        ipt4=IPT_DOCKER_REAL_V4,
        tcp=[1001, 1003, 8080, 8081, 8443, 9999],
        udp=[5353, 3001],
        readers=("auto", "iptables"),
    ),
    Ruleset(
        "nft-local",
        nft=NFT_LOCAL,
        local=True,
        tcp=[1001, 1003, 1004, 1005, 1006, 1007, 1008, 8082, 8087],
        udp=[3001, 3002, 3003, 3004],
    ),
    # last: legacy xtables tables stay loaded (nft flush ruleset does not remove them)
    Ruleset(
        "iptables-legacy",
        ipt4=IPT_LEGACY_V4,
        legacy=True,
        tcp=[1001, 1003, 1004, 8080, 8082, 9999],
        udp=[3001, 3003],
    ),
]


def _sh(*argv: str, input_text: str | None = None, check: bool = True) -> str:
    proc = subprocess.run(argv, input=input_text, capture_output=True, text=True, timeout=60)
    if check and proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)}: {proc.stderr.strip()}")
    return proc.stdout


def _ns(ns: str, *argv: str, input_text: str | None = None) -> str:
    return _sh("ip", "netns", "exec", ns, *argv, input_text=input_text)


def _ready(argv: list[str]) -> subprocess.Popen[str]:
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True, start_new_session=True)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    proc.stdout.close()
    if not line.startswith("ready"):
        proc.kill()
        raise RuntimeError(f"server did not start: {line!r}")
    return proc


def _build(procs: list[subprocess.Popen[str]]) -> None:
    for ns in (CLI, TGT, CTR):
        _sh("ip", "netns", "add", ns)
        _sh("ip", "-n", ns, "link", "set", "lo", "up")
        _ns(
            ns,
            "sysctl",
            "-q",
            "-w",
            "net.ipv6.conf.all.accept_ra=0",
            "net.ipv6.conf.default.accept_ra=0",
        )
    _sh("ip", "-n", CLI, "link", "add", "c0", "type", "veth", "peer", "name", "t0", "netns", TGT)
    _sh("ip", "-n", CLI, "link", "add", "c1", "type", "veth", "peer", "name", "t1", "netns", TGT)
    _sh("ip", "-n", TGT, "link", "add", "t2", "type", "veth", "peer", "name", "k0", "netns", CTR)
    addrs = [
        (CLI, "c0", [f"{C0}/24", f"{ALLOWED}/24", f"{ADMIN}/32", f"{C0_6}/64", f"{ADMIN_6}/128"]),
        (CLI, "c1", [f"{C1}/24"]),
        (TGT, "t0", [f"{T0}/24", f"{T0_6}/64"]),
        (TGT, "t1", [f"{T1}/24"]),
        (TGT, "t2", [f"{T2}/24", f"{T2_6}/64"]),
        (CTR, "k0", [f"{CT}/24", f"{CT_6}/64"]),
    ]
    for ns, dev, items in addrs:
        for a in items:
            extra = ["nodad"] if ":" in a else []
            _sh("ip", "-n", ns, "addr", "add", a, "dev", dev, *extra)
        _sh("ip", "-n", ns, "link", "set", dev, "up")
    # routes back to the client's extra sources; the container's way back; no defaults
    _sh("ip", "-n", TGT, "route", "add", "198.19.211.0/24", "via", C0)
    _sh("ip", "-n", TGT, "-6", "route", "add", "2001:db8:211::/64", "via", C0_6)
    _sh("ip", "-n", CTR, "route", "add", "198.18.0.0/15", "via", T2)
    _sh("ip", "-n", CTR, "-6", "route", "add", "2001:db8::/32", "via", T2_6)
    _ns(
        TGT,
        "sysctl",
        "-q",
        "-w",
        "net.ipv4.ip_forward=1",
        "net.ipv6.conf.all.forwarding=1",
        "net.ipv4.icmp_ratelimit=0",
        "net.ipv4.icmp_msgs_per_sec=1000000",
        "net.ipv4.icmp_msgs_burst=1000000",
        "net.ipv6.icmp.ratelimit=0",
    )
    _ns(CTR, "sysctl", "-q", "-w", "net.ipv4.icmp_ratelimit=0", "net.ipv6.icmp.ratelimit=0")
    for ns in (CLI, CTR):
        routes = _sh("ip", "-n", ns, "route", "show", "default")
        routes += _sh("ip", "-n", ns, "-6", "route", "show", "default")
        assert not routes.strip(), f"{ns} must have no default route"
    server = str(HERE / "fwtruth_server.py")
    for ns, spec in (
        (TGT, {"tcp": TGT_TCP, "udp": TGT_UDP}),
        (CTR, {"tcp": CTR_TCP, "udp": CTR_UDP}),
    ):
        procs.append(_ready(["ip", "netns", "exec", ns, sys.executable, server, json.dumps(spec)]))


def _teardown(procs: list[subprocess.Popen[str]]) -> None:
    for p in procs:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(p.pid, signal.SIGKILL)
        p.wait(timeout=10)
    for ns in (CLI, TGT, CTR):
        subprocess.run(["ip", "netns", "del", ns], capture_output=True, check=False)


@pytest.fixture(scope="module")
def lab() -> Iterator[None]:
    if os.geteuid() != 0:
        pytest.skip("the firewall ground truth needs root (network namespaces, nft)")
    missing = [t for t in ("ip", "nft", "iptables-nft-restore", "nsenter") if not shutil.which(t)]
    if missing:
        pytest.skip(f"needs {', '.join(missing)} (scripts/install-test-deps)")
    procs: list[subprocess.Popen[str]] = []
    try:
        _build(procs)
        yield
    finally:
        _teardown(procs)


def _load(rs: Ruleset) -> None:
    _ns(TGT, "nft", "flush", "ruleset")
    if rs.nft:
        _ns(TGT, "nft", "-f", "-", input_text=rs.nft)
    if rs.ipt4:
        tool = "iptables-legacy-restore" if rs.legacy else "iptables-nft-restore"
        _ns(TGT, tool, input_text=rs.ipt4)
    if rs.ipt6:
        _ns(TGT, "ip6tables-nft-restore", input_text=rs.ipt6)
    _sh("ip", "netns", "exec", TGT, "conntrack", "-F", check=False)
    # IPv6 reachability depends on neighbour discovery passing the ruleset: start cold
    for ns in (CLI, TGT):
        _sh("ip", "-n", ns, "neigh", "flush", "all", check=False)


def _expected(d_verdict: Verdict, reject: str | None, family: int) -> str | None:
    if d_verdict is Verdict.OPEN:
        return "open"
    if d_verdict is Verdict.CLOSED:
        return "refused"
    if d_verdict is Verdict.FILTERED:
        return "timeout"
    if d_verdict is Verdict.REJECTED:
        if reject in ("tcp-reset", "port-unreachable"):
            return "refused"
        return (ERRNO_V4 if family == 4 else ERRNO_V6).get(reject or "", f"?{reject}")
    return None


# What a sender on this host sees when its own output hook drops the packet: the drop is
# returned to the caller as EPERM (nf_hook_slow); UDP send() reports it, TCP's connect()
# ignores it (tcp_connect only passes ECONNREFUSED on) and the SYN is retransmitted.
LOCAL_OUTPUT_DROP = {"tcp": "timeout", "udp": "EPERM"}

OBSERVED_VERDICT = {"open": "open", "refused": "closed/rejected", "timeout": "filtered"}


def test_firewall_predictions_match_the_kernel(lab: None) -> None:
    tgt_path = f"/run/netns/{TGT}"
    ephemeral = tuple(
        int(x) for x in _ns(CLI, "cat", "/proc/sys/net/ipv4/ip_local_port_range").split()
    )
    started = time.monotonic()
    counts: Counter[str] = Counter()
    observed_counts: Counter[str] = Counter()
    mismatches: list[str] = []
    unknowns: list[str] = []
    total = 0
    sockets = _listen_json(tgt_path)
    assert {s.local.port for s in sockets} >= set(TGT_TCP)
    for rs in RULESETS:
        _load(rs)
        host = read_host(TGT)
        evaluators = {
            reader: Evaluator(
                read_ruleset(TGT, prefer=reader),
                host,
                Listeners(sockets, foreign_lookup(tgt_path)),
            )
            for reader in rs.readers
        }
        cases = []
        predictions = {}
        for label, fam, src, dst, iif in LOCAL_SOURCES if rs.local else SOURCES:
            for proto, ports in (("tcp", rs.tcp), ("udp", rs.udp)):
                for port in ports:
                    cid = f"{rs.name}|{label}|{proto}/{port}"
                    pkt = Packet(
                        fam,
                        proto,
                        src,
                        dst,
                        port,
                        iif=iif,
                        sport=(ephemeral[0], ephemeral[1]),
                        local_origin=rs.local,
                    )
                    predictions[cid] = {r: ev.evaluate(pkt) for r, ev in evaluators.items()}
                    cases.append([cid, fam, proto, src, dst, port])
        spec = json.dumps({"timeout_s": TIMEOUT_S, "cases": cases})
        where = TGT if rs.local else CLI
        out = _ns(where, sys.executable, str(HERE / "fwtruth_client.py"), input_text=spec)
        for cid, outcome in json.loads(out):
            total += 1
            fam = 6 if cid.split("|")[1].endswith("6") else 4
            observed_counts[OBSERVED_VERDICT.get(outcome, f"icmp {outcome}")] += 1
            port = int(cid.rsplit("/", 1)[1])
            rs_def = next(r for r in RULESETS if cid.startswith(r.name + "|"))
            for reader, d in predictions[cid].items():
                key = d.verdict.value + (f" ({d.reject})" if d.reject else "")
                counts[f"{reader}: {key}"] += 1
                want = _expected(d.verdict, d.reject, fam)
                if rs_def.local and want == "timeout" and d.path[-1].hook == "output":
                    want = LOCAL_OUTPUT_DROP[cid.rsplit("|", 1)[1].split("/")[0]]
                if want is None:
                    unknowns.append(f"{cid} [{reader}]: {d.reason}")
                    if port not in rs_def.unknown_ok:
                        mismatches.append(f"{cid} [{reader}]: unexpected unknown: {d.reason}")
                elif want != outcome:
                    mismatches.append(
                        f"{cid} [{reader}]: predicted {key} (expects {want}), kernel: "
                        f"{outcome}; {d.reason}"
                    )
    elapsed = time.monotonic() - started
    summary = {
        "cases": total,
        "predictions": dict(sorted(counts.items())),
        "observed": dict(sorted(observed_counts.items())),
        "mismatches": len(mismatches),
        "unknown": len(unknowns),
        "elapsed_s": round(elapsed, 1),
    }
    print("firewall ground truth:", json.dumps(summary, indent=1))
    for u in unknowns:
        print("unknown:", u)
    report = os.environ.get("PORTSCOPE_FWTRUTH_REPORT")
    assert total >= 200
    if report:
        Path(report).write_text(
            json.dumps(
                {**summary, "unknown_cases": unknowns, "mismatch_cases": mismatches}, indent=1
            )
        )
    assert not mismatches, "\n".join(mismatches[:40])
    assert len(unknowns) <= total // 20
