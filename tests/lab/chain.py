"""A routed chain of namespaces for ``portscope trace``: scanner -> router -> router -> target.

Layout (all addresses in 198.18.0.0/15, RFC 2544)::

    scanner              router 1                 router 2                 target
    198.18.64.1/24 --- 198.18.64.2/24
                       198.18.65.1/24  ------  198.18.65.2/24
                                                198.18.66.1/24  ------  198.18.66.2/24

The scanner has routes to 198.18.65.0/24 and 198.18.66.0/24 via router 1 and NO default
route (checked before use). Routers forward; router 2 drops TCP to ``DROPPED_PORT`` and
rejects TCP to ``REJECTED_PORT`` with ICMP admin-prohibited (nft ``forward`` chain); the
target listens on ``OPEN_PORT`` (a Python listener started here, killed by PID) and answers
every other TCP port with a RST. The routers' ICMP rate limit is off, so every test gets
its time-exceeded messages however many traces ran before.

Names are ``ps13-ch{s,1,2,t}-PID-N``; :func:`running` builds and tears down (by PID).
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field

from . import _PROCS, LabError, _ip, _kill_pids, _netns_exec, _run, _sysctl, delete_namespace

SCANNER = "198.18.64.1"
ROUTER1 = "198.18.64.2"
ROUTER2 = "198.18.65.2"  # the address router 2 answers the scanner from
TARGET = "198.18.66.2"
OPEN_PORT = 22
CLOSED_PORT = 80
DROPPED_PORT = 23
REJECTED_PORT = 113
_counter = 0

_LISTENER = (
    "import socket,sys,time\n"
    "s=socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n"
    "s.bind(('0.0.0.0', int(sys.argv[1]))); s.listen(64)\n"
    "print('ready', flush=True)\n"
    "end=time.monotonic()+3600\n"
    "s.settimeout(1)\n"
    "while time.monotonic()<end:\n"
    "  try: c,_=s.accept(); c.close()\n"
    "  except OSError: pass\n"
)


@dataclass
class Chain:
    """A running chain: namespace names and the listener's PID."""

    scanner_ns: str
    router1_ns: str
    router2_ns: str
    target_ns: str
    pids: list[int] = field(default_factory=list)

    @property
    def namespaces(self) -> tuple[str, str, str, str]:
        return (self.scanner_ns, self.router1_ns, self.router2_ns, self.target_ns)

    def exec(self, argv: list[str], timeout_s: float = 60) -> subprocess.CompletedProcess[str]:
        """Run ``argv`` in the scanner namespace and wait."""
        return subprocess.run(
            ["ip", "netns", "exec", self.scanner_ns, *argv],
            capture_output=True, text=True, timeout=timeout_s, check=False,
        )  # fmt: skip

    def check_no_default_route(self) -> None:
        for fam in ("-4", "-6"):
            if _ip(fam, "-n", self.scanner_ns, "route", "show", "default").strip():
                raise LabError(f"{self.scanner_ns} has a default route")


def _veth(a: str, a_if: str, b: str, b_if: str) -> None:
    _ip("-n", a, "link", "add", a_if, "type", "veth", "peer", "name", b_if, "netns", b)
    _ip("-n", a, "link", "set", a_if, "up")
    _ip("-n", b, "link", "set", b_if, "up")


def build() -> Chain:
    """Build the chain; everything built so far is removed on failure."""
    global _counter
    if os.geteuid() != 0:
        raise LabError("the chain lab needs root (network namespaces)")
    _counter += 1
    tag = f"{os.getpid()}-{_counter}"
    ch = Chain(*(f"ps13-ch{role}-{tag}" for role in ("s", "1", "2", "t")))
    try:
        for ns in ch.namespaces:
            _ip("netns", "add", ns)
            _ip("-n", ns, "link", "set", "lo", "up")
            _sysctl(ns, net__ipv6__conf__all__accept_ra=0, net__ipv4__ip_forward=0)
        s, r1, r2, t = ch.namespaces
        for ns in (r1, r2):
            # routers answer every probe (a trace test must not meet the ICMP rate limit
            # that an earlier test's probes used up)
            _sysctl(ns, net__ipv4__ip_forward=1, net__ipv4__icmp_ratelimit=0)
        _veth(s, "c0", r1, "c0")
        _veth(r1, "c1", r2, "c1")
        _veth(r2, "c2", t, "c2")
        _ip("-n", s, "addr", "add", f"{SCANNER}/24", "dev", "c0")
        _ip("-n", r1, "addr", "add", f"{ROUTER1}/24", "dev", "c0")
        _ip("-n", r1, "addr", "add", "198.18.65.1/24", "dev", "c1")
        _ip("-n", r2, "addr", "add", f"{ROUTER2}/24", "dev", "c1")
        _ip("-n", r2, "addr", "add", "198.18.66.1/24", "dev", "c2")
        _ip("-n", t, "addr", "add", f"{TARGET}/24", "dev", "c2")
        for net in ("198.18.65.0/24", "198.18.66.0/24"):
            _ip("-n", s, "route", "add", net, "via", ROUTER1)
        _ip("-n", r1, "route", "add", "198.18.66.0/24", "via", ROUTER2)
        _ip("-n", r2, "route", "add", "198.18.64.0/24", "via", "198.18.65.1")
        for net in ("198.18.64.0/24", "198.18.65.0/24"):
            _ip("-n", t, "route", "add", net, "via", "198.18.66.1")
        rules = f"""
table inet portscope_chain {{
    chain forward {{
        type filter hook forward priority filter; policy accept;
        tcp dport {DROPPED_PORT} drop
        tcp dport {REJECTED_PORT} reject with icmp type admin-prohibited
    }}
}}
"""
        _run(["ip", "netns", "exec", r2, "nft", "-f", "-"], input_text=rules)
        proc = subprocess.Popen(
            ["ip", "netns", "exec", t, sys.executable, "-c", _LISTENER, str(OPEN_PORT)],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
            start_new_session=True,
        )  # fmt: skip
        ch.pids.append(proc.pid)
        _PROCS[proc.pid] = proc  # reaped by _kill_pids at teardown
        assert proc.stdout is not None
        ready = proc.stdout.readline()
        proc.stdout.close()
        if not ready.startswith("ready"):
            raise LabError("the chain's target listener did not start")
        ch.check_no_default_route()
        reach = f"import socket; socket.create_connection(('{TARGET}', {OPEN_PORT}), 5).close()"
        _netns_exec(s, sys.executable, "-c", reach)
    except BaseException:
        teardown(ch)
        raise
    return ch


def teardown(ch: Chain) -> None:
    """Kill the chain's processes by PID and delete its namespaces."""
    _kill_pids(list(ch.pids))
    ch.pids.clear()
    for ns in ch.namespaces:
        delete_namespace(ns)


@contextlib.contextmanager
def running() -> Iterator[Chain]:
    """Build the chain for the ``with`` block and tear it down afterwards."""
    ch = build()
    try:
        yield ch
    finally:
        teardown(ch)
