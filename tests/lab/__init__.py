"""The scan test lab: two network namespaces, known target services, and their ground truth.

Layout (LAN mode)::

    scanner ns (no default route)            target ns
    198.18.0.1/24, 2001:db8::1/64  --veth--  198.18.0.2/24, 2001:db8::2/64
    route 198.18.1.0/24 via .0.2             198.18.1.1-14/32 (the /28 of extra targets)

In WAN mode the veth pair is replaced by two TAP devices joined by a userspace forwarder
(:mod:`lab.wan`) that delays every frame 20 ms +- 5 ms and drops 0.5 % in each direction:
this kernel has neither ``sch_netem`` nor ``act_gact``.

The target namespace runs :mod:`lab.services` (TCP listeners, banners, a DNS responder, an NTP
responder, a UDP echo and a silent UDP port) and an nftables table that drops some TCP ports
(nmap: ``filtered``) and answers a few with ICMP admin-prohibited (nmap: ``filtered``; a
``connect()`` fails with EHOSTUNREACH over IPv4 and EACCES over IPv6 on Linux, see
``net/ipv4/icmp.c`` ``icmp_err_convert`` and ``net/ipv6/icmp.c`` ``icmpv6_err_convert``).
Every other TCP port is closed (the kernel answers RST); every other UDP port is closed (ICMP
port unreachable; ICMP rate limits are disabled in the target namespace so that holds for
full-range scans).

Network safety: only namespaces created here are touched; the scanner namespace has no default
route (checked before any traffic, :class:`LabError` otherwise); addresses come from
198.18.0.0/15 (RFC 2544) and 2001:db8::/32 (RFC 3849).

Use :func:`running` (a context manager) in code, ``scripts/lab`` from a shell.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
STATE_DIR = Path("/run/portscope-lab")

SCANNER_V4 = "198.18.0.1"
TARGET_V4 = "198.18.0.2"
SCANNER_V6 = "2001:db8::1"
TARGET_V6 = "2001:db8::2"
TARGETS_V4_28 = [f"198.18.1.{i}" for i in range(1, 15)]
# Routed to the target namespace, which owns no such address and does not forward: every
# packet to it is dropped silently (no ICMP), so every port there is "filtered".
SILENT_V4 = "198.18.2.1"

# TCP listeners, spread over the whole range (well-known, registered, dynamic; both ends).
OPEN_TCP = (
    1, 7, 21, 22, 25, 53, 80, 110, 143, 443, 445, 587, 993, 1023, 1024, 1433, 2222, 3306,
    3389, 5432, 5900, 6379, 8000, 8080, 8443, 9200, 27017, 32768, 49152, 60000, 65534, 65535,
)  # fmt: skip
BANNERS: dict[int, bytes] = {
    21: b"220 portscope-lab FTP ready\r\n",
    22: b"SSH-2.0-portscope-lab\r\n",
    25: b"220 lab.portscope.test ESMTP portscope-lab\r\n",
    110: b"+OK portscope-lab POP3 ready\r\n",
    143: b"* OK portscope-lab IMAP4rev1 ready\r\n",
    587: b"220 lab.portscope.test ESMTP portscope-lab\r\n",
    2222: b"SSH-2.0-portscope-lab\r\n",
}
HTTP_TCP = (80, 8000, 8080)
# Dropped silently by nftables in the target namespace.
DROPPED_TCP = (23, 111, 135, 139, 2049, 5000, 8081, 10000, 40000, 50000)
# Answered with ICMP (v4) / ICMPv6 (v6) destination unreachable, administratively prohibited.
PROHIBITED_TCP = (113, 1080, 6000, 9000)
UDP_DNS = (53,)
UDP_NTP = (123,)
UDP_ECHO = (161,)  # answers any datagram with the same bytes (stands in for SNMP)
UDP_SILENT = (514,)  # bound, never answers
DROPPED_UDP = (500,)  # dropped by nftables
# Closed UDP ports listed in the truth so tests have named examples of "closed".
CLOSED_UDP = (54, 124, 162, 9999)

NFT_TABLE = "portscope_lab"
# The network of a ``network=True`` lab: 4,096 addresses the target answers for (a local
# route on its lo), each with the target's truth except the per-address rules below.
NETWORK_V4 = "198.18.16.0/20"
NETWORK_SIZE = 4096
NAME_RE = re.compile(r"^ps(?:13)?-(?:scan|tgt)-(\d+)-\d+$")
_counter = 0
# Processes this Python process started, by PID, so teardown can reap them.
_PROCS: dict[int, subprocess.Popen[str]] = {}


class LabError(RuntimeError):
    """The lab could not be built or is not safe to use (for example a default route)."""


def _elements(ports: tuple[int, ...]) -> str:
    return ", ".join(str(p) for p in ports)


def nft_ruleset() -> str:
    """The nftables ruleset loaded into the target namespace (``nft -f -``)."""
    return f"""
table inet {NFT_TABLE} {{
    set tcp_drop {{ type inet_service; elements = {{ {_elements(DROPPED_TCP)} }} }}
    set tcp_prohibit {{ type inet_service; elements = {{ {_elements(PROHIBITED_TCP)} }} }}
    set udp_drop {{ type inet_service; elements = {{ {_elements(DROPPED_UDP)} }} }}
    chain input {{
        type filter hook input priority filter; policy accept;
        tcp dport @tcp_drop drop
        udp dport @udp_drop drop
        meta nfproto ipv4 tcp dport @tcp_prohibit reject with icmp type admin-prohibited
        meta nfproto ipv6 tcp dport @tcp_prohibit reject with icmpv6 type admin-prohibited
    }}
}}
"""


def network_ruleset() -> str:
    """nftables rules that vary the open ports per address of ``NETWORK_V4``: 22 is closed
    on odd addresses, 80 open on one in four (bits 1-2 of the address clear), 443 dropped
    where bits 3-4 are set, 3306 closed where bit 8 is set (see ``Lab.network_expected``)."""
    net = NETWORK_V4
    return f"""
table ip portscope_net {{
    chain input {{
        type filter hook input priority filter - 1; policy accept;
        ip daddr {net} ip daddr & 0.0.0.1 == 0.0.0.1 tcp dport 22 reject with tcp reset
        ip daddr {net} ip daddr & 0.0.0.6 != 0.0.0.0 tcp dport 80 reject with tcp reset
        ip daddr {net} ip daddr & 0.0.0.24 == 0.0.0.24 tcp dport 443 drop
        ip daddr {net} ip daddr & 0.0.1.0 == 0.0.1.0 tcp dport 3306 reject with tcp reset
    }}
}}
"""


def build_truth() -> dict[tuple[str, int], str]:
    """Ground truth as nmap names it: every TCP port 1-65535 and the UDP ports of interest.

    UDP ports not in the map are closed (ICMP port unreachable); use :meth:`Lab.expected`.
    """
    truth: dict[tuple[str, int], str] = {("tcp", p): "closed" for p in range(1, 65536)}
    truth.update({("tcp", p): "open" for p in OPEN_TCP})
    truth.update({("tcp", p): "filtered" for p in DROPPED_TCP + PROHIBITED_TCP})
    truth.update({("udp", p): "open" for p in UDP_DNS + UDP_NTP + UDP_ECHO})
    truth.update({("udp", p): "open|filtered" for p in UDP_SILENT + DROPPED_UDP})
    truth.update({("udp", p): "closed" for p in CLOSED_UDP})
    return truth


def services_spec() -> dict[str, Any]:
    """The JSON spec handed to :mod:`lab.services`."""
    return {
        "tcp": list(OPEN_TCP),
        "banners": {str(p): b.decode() for p, b in BANNERS.items()},
        "http": list(HTTP_TCP),
        "udp_dns": list(UDP_DNS),
        "udp_ntp": list(UDP_NTP),
        "udp_echo": list(UDP_ECHO),
        "udp_silent": list(UDP_SILENT),
    }


def _run(argv: list[str], *, input_text: str | None = None, check: bool = True) -> str:
    proc = subprocess.run(
        argv, input=input_text, capture_output=True, text=True, timeout=30, check=False
    )
    if check and proc.returncode != 0:
        raise LabError(f"{' '.join(argv)} failed ({proc.returncode}): {proc.stderr.strip()}")
    return proc.stdout


def _ip(*args: str, check: bool = True) -> str:
    return _run(["ip", *args], check=check)


def _netns_exec(ns: str, *argv: str, check: bool = True) -> str:
    return _run(["ip", "netns", "exec", ns, *argv], check=check)


def missing_tools() -> list[str]:
    """Commands the lab needs that are not installed (``ip``, ``nft``)."""
    return [tool for tool in ("ip", "nft") if shutil.which(tool) is None]


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def namespaces() -> list[str]:
    """Names of all named network namespaces (``ip netns list``)."""
    return [line.split()[0] for line in _ip("netns", "list").splitlines() if line.strip()]


def _ns_pids(ns: str) -> list[int]:
    out = _ip("netns", "pids", ns, check=False)
    return [int(tok) for tok in out.split() if tok.isdigit()]


def _kill_pids(pids: list[int], grace_s: float = 2.0) -> None:
    """SIGTERM each PID, wait up to ``grace_s`` seconds, then SIGKILL the survivors."""
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    alive = list(pids)
    while alive and time.monotonic() < deadline:
        for pid in list(alive):
            proc = _PROCS.get(pid)
            if proc is not None and proc.poll() is not None:
                del _PROCS[pid]
                alive.remove(pid)
            elif proc is None and (not _pid_alive(pid) or _is_zombie(pid)):
                alive.remove(pid)
        if alive:
            time.sleep(0.02)
    for pid in alive:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        proc = _PROCS.pop(pid, None)
        if proc is not None:
            proc.wait(timeout=5)


def _is_zombie(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] == "Z"


def delete_namespace(ns: str) -> None:
    """Kill every process inside ``ns`` (by PID, from ``ip netns pids``), then delete it."""
    for _ in range(3):
        pids = [p for p in _ns_pids(ns) if p != os.getpid()]
        if not pids:
            break
        _kill_pids(pids)
    _ip("netns", "del", ns, check=False)


def cleanup_stale() -> list[str]:
    """Delete lab namespaces ``ps-scan-PID-N`` / ``ps-tgt-PID-N`` whose creator PID is dead.

    Returns:
        The names of the namespaces deleted.
    """
    removed = []
    for ns in namespaces():
        match = NAME_RE.match(ns)
        if match and not _pid_alive(int(match.group(1))):
            delete_namespace(ns)
            removed.append(ns)
    # Their logs and WAN counter files in STATE_DIR (kept after teardown for reading).
    if STATE_DIR.is_dir():
        for path in STATE_DIR.glob("ps-scan-*"):
            match = NAME_RE.match(path.name.split(".", 1)[0])
            if match and not _pid_alive(int(match.group(1))):
                path.unlink(missing_ok=True)
    return removed


def _setns(ns: str) -> int:
    """Move the calling thread into named netns ``ns``; return an fd of the previous one."""
    libc = ctypes.CDLL(None, use_errno=True)
    old = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    new = os.open(f"/var/run/netns/{ns}", os.O_RDONLY)
    try:
        if libc.setns(new, 0x40000000) != 0:  # CLONE_NEWNET
            err = ctypes.get_errno()
            os.close(old)
            raise LabError(f"setns({ns}) failed: {os.strerror(err)}")
    finally:
        os.close(new)
    return old


@contextlib.contextmanager
def joined_netns(name: str) -> Iterator[str]:
    """A new, empty network namespace ``name`` (``lo`` up) that the calling thread joins
    for the ``with`` block; on exit the thread returns home and the namespace is deleted.
    Live counts taken inside see only the test's own sockets. Needs root."""
    subprocess.run(["ip", "netns", "add", name], check=True, timeout=10)
    try:
        subprocess.run(["ip", "-n", name, "link", "set", "lo", "up"], check=True, timeout=10)
        old = _setns(name)
        try:
            yield name
        finally:
            ctypes.CDLL(None, use_errno=True).setns(old, 0x40000000)  # CLONE_NEWNET
            os.close(old)
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False, timeout=10)


@dataclass
class Lab:
    """A running lab. Build it with :func:`running`; every field is read-only in practice.

    ``targets_v4_28`` are 198.18.1.1-198.18.1.14 (the hosts of 198.18.1.0/28), all owned by the
    target namespace and all answering with the same truth as ``target_v4``. ``silent_v4``
    (198.18.2.1) is routed to the target but owned by nobody: every packet to it vanishes
    (no host: every port ``filtered``). ``truth`` maps ``(proto, port)`` to nmap's state name
    for every TCP port 1-65535 and the UDP ports of interest; ``unreachable_tcp`` are the TCP
    ports answered with ICMP admin-prohibited (nmap: ``filtered``; ``connect()``: EHOSTUNREACH
    over IPv4, EACCES over IPv6); ``dropped_tcp`` are silently dropped.
    """

    scanner_ns: str
    target_ns: str
    wan: bool = False
    scanner_v4: str = SCANNER_V4
    target_v4: str = TARGET_V4
    scanner_v6: str = SCANNER_V6
    target_v6: str = TARGET_V6
    targets_v4_28: list[str] = field(default_factory=lambda: list(TARGETS_V4_28))
    silent_v4: str = SILENT_V4
    truth: dict[tuple[str, int], str] = field(default_factory=build_truth)
    unreachable_tcp: set[int] = field(default_factory=lambda: set(PROHIBITED_TCP))
    dropped_tcp: set[int] = field(default_factory=lambda: set(DROPPED_TCP))
    open_tcp: set[int] = field(default_factory=lambda: set(OPEN_TCP))
    banners: dict[int, bytes] = field(default_factory=lambda: dict(BANNERS))
    pids: dict[str, int] = field(default_factory=dict)
    wan_stats_path: str | None = None
    wan_params: dict[str, float] = field(default_factory=dict)
    async_rx: bool = True
    icmp_limit: bool = False
    network: bool = False

    def expected(self, proto: str, port: int) -> str:
        """nmap's state for ``(proto, port)`` on ``target_v4``/``target_v6``/the /28."""
        return self.truth.get((proto, port), "closed")

    def network_expected(self, address: str, port: int) -> str:
        """nmap's state of TCP ``port`` on an address of ``NETWORK_V4`` (``network=True``)."""
        import ipaddress

        i = int(ipaddress.ip_address(address)) & (NETWORK_SIZE - 1)
        if port == 22 and i & 1:
            return "closed"
        if port == 80 and i & 6:
            return "closed"
        if port == 443 and i & 24 == 24:
            return "filtered"
        if port == 3306 and i & 256:
            return "closed"
        return self.expected("tcp", port)

    def network_addresses(self) -> list[str]:
        """The 4,096 addresses of ``NETWORK_V4``, in order."""
        import ipaddress

        return [str(a) for a in ipaddress.ip_network(NETWORK_V4)]

    def interesting_ports(self, proto: str = "tcp") -> list[int]:
        """Ports of ``proto`` whose truth is not ``closed``, plus the named closed UDP ports."""
        return sorted(p for (pr, p), s in self.truth.items() if pr == proto and s != "closed")

    def exec(
        self, argv: list[str], timeout_s: float = 60, **kw: Any
    ) -> subprocess.CompletedProcess[Any]:
        """Run ``argv`` in the scanner namespace and wait (``ip netns exec``).

        Args:
            argv: the command.
            timeout_s: seconds before the command is killed (subprocess.TimeoutExpired).
            **kw: passed to :func:`subprocess.run`; defaults ``capture_output=True``,
                ``text=True``, ``check=False``.

        Returns:
            The completed process.
        """
        kw.setdefault("capture_output", True)
        kw.setdefault("text", True)
        kw.setdefault("check", False)
        return subprocess.run(
            ["ip", "netns", "exec", self.scanner_ns, *argv], timeout=timeout_s, **kw
        )

    def target_exec(
        self, argv: list[str], timeout_s: float = 60, **kw: Any
    ) -> subprocess.CompletedProcess[Any]:
        """Like :meth:`exec`, in the target namespace."""
        kw.setdefault("capture_output", True)
        kw.setdefault("text", True)
        kw.setdefault("check", False)
        return subprocess.run(
            ["ip", "netns", "exec", self.target_ns, *argv], timeout=timeout_s, **kw
        )

    def popen(self, argv: list[str], **kw: Any) -> subprocess.Popen[Any]:
        """Start ``argv`` in the scanner namespace; the caller waits for or kills it.

        Processes still running in the namespace at teardown are killed by PID.
        """
        return subprocess.Popen(["ip", "netns", "exec", self.scanner_ns, *argv], **kw)

    @contextlib.contextmanager
    def netns(self) -> Iterator[None]:
        """Run the calling thread inside the scanner namespace for the ``with`` block.

        Sockets created inside the block stay in the scanner namespace after it ends; this lets
        tests run the scanner in-process (the thread's namespace only, via ``setns(2)``).
        """
        old = _setns(self.scanner_ns)
        libc = ctypes.CDLL(None, use_errno=True)
        try:
            yield
        finally:
            libc.setns(old, 0x40000000)
            os.close(old)

    def truth_json(self) -> dict[str, Any]:
        """The ground truth as a JSON-able dict (see :meth:`write_truth`)."""
        tcp = {str(p): s for (pr, p), s in sorted(self.truth.items()) if pr == "tcp"}
        udp = {str(p): s for (pr, p), s in sorted(self.truth.items()) if pr == "udp"}
        return {
            "mode": "wan" if self.wan else "lan",
            "scanner_ns": self.scanner_ns,
            "target_ns": self.target_ns,
            "scanner": {"ipv4": self.scanner_v4, "ipv6": self.scanner_v6},
            "targets": {
                "ipv4": self.target_v4,
                "ipv6": self.target_v6,
                "ipv4_28": self.targets_v4_28,
            },
            "silent_ipv4": self.silent_v4,
            "default_state": {"tcp": "closed", "udp": "closed"},
            "tcp": tcp,
            "udp": udp,
            "unreachable_tcp": sorted(self.unreachable_tcp),
            "banners": {str(p): b.decode() for p, b in sorted(self.banners.items())},
        }

    def write_truth(self, path: str | os.PathLike[str]) -> None:
        """Write the ground truth as JSON.

        Schema: ``{"mode", "scanner_ns", "target_ns", "scanner": {"ipv4", "ipv6"},
        "targets": {"ipv4", "ipv6", "ipv4_28": [..]}, "silent_ipv4", "default_state",
        "tcp": {"PORT": state} (all 65535), "udp": {"PORT": state} (ports of interest),
        "unreachable_tcp": [..], "banners": {"PORT": text}}``.
        """
        Path(path).write_text(json.dumps(self.truth_json(), indent=1) + "\n")

    def wan_counters(self) -> dict[str, Any] | None:
        """The WAN forwarder's counters (None in LAN mode): see :mod:`lab.wan`.

        Keys: ``a_to_b``/``b_to_a`` each with ``received``, ``forwarded``, ``dropped``
        (random loss), ``write_errors``; ``queued``, ``max_queued`` (frames held);
        ``updated`` (unix time); ``kernel_tx_dropped`` (``scanner``/``target``: frames the
        kernel dropped at a TAP because the forwarder fell behind). ``a`` is the scanner
        side. The forwarder rewrites its counters every 0.1 s.
        """
        if not self.wan_stats_path:
            return None
        try:
            data: dict[str, Any] = json.loads(Path(self.wan_stats_path).read_text())
        except (OSError, ValueError):
            return None
        # Frames the kernel dropped because the forwarder did not read them in time.
        data["kernel_tx_dropped"] = {
            "scanner": _tx_dropped(self.scanner_ns, "wan0"),
            "target": _tx_dropped(self.target_ns, "wan0"),
        }
        return data

    def check_no_default_route(self) -> None:
        """Raise :class:`LabError` unless the scanner namespace has no default route (v4, v6)."""
        for fam in ("-4", "-6"):
            out = _ip(fam, "-n", self.scanner_ns, "route", "show", "default").strip()
            if out:
                raise LabError(f"scanner namespace {self.scanner_ns} has a default route: {out}")


def _new_names(tag: str | None, prefix: str = "ps") -> tuple[str, str]:
    global _counter
    if tag is not None:
        return f"{prefix}-scan-{tag}", f"{prefix}-tgt-{tag}"
    _counter += 1
    pid = os.getpid()
    return f"{prefix}-scan-{pid}-{_counter}", f"{prefix}-tgt-{pid}-{_counter}"


def _sysctl(ns: str, **values: str | int) -> None:
    args = [f"{k.replace('__', '/')}={v}" for k, v in values.items()]
    _netns_exec(ns, "sysctl", "-q", "-w", *args)


def _start_ready(
    argv: list[str], log: Path, what: str, timeout_s: float = 10.0
) -> subprocess.Popen[str]:
    """Start ``argv`` detached (own session) and wait for its first stdout line ``ready``."""
    log_f = log.open("ab")
    try:
        proc = subprocess.Popen(
            argv, stdout=subprocess.PIPE, stderr=log_f, text=True, start_new_session=True
        )
    finally:
        log_f.close()
    assert proc.stdout is not None
    import selectors

    with selectors.DefaultSelector() as sel:
        sel.register(proc.stdout, selectors.EVENT_READ)
        ready = sel.select(timeout_s)
    line = proc.stdout.readline() if ready else ""
    proc.stdout.close()
    _PROCS[proc.pid] = proc
    if not line.startswith("ready"):
        _kill_pids([proc.pid])
        raise LabError(f"{what} did not start: {line.strip()!r}; see {log}")
    return proc


def _configure_link(lb: Lab, s_if: str, t_if: str) -> None:
    s, t = lb.scanner_ns, lb.target_ns
    _ip("-n", s, "addr", "add", f"{SCANNER_V4}/24", "dev", s_if)
    _ip("-n", s, "addr", "add", f"{SCANNER_V6}/64", "dev", s_if, "nodad")
    _ip("-n", t, "addr", "add", f"{TARGET_V4}/24", "dev", t_if)
    _ip("-n", t, "addr", "add", f"{TARGET_V6}/64", "dev", t_if, "nodad")
    for addr in TARGETS_V4_28:
        _ip("-n", t, "addr", "add", f"{addr}/32", "dev", t_if)
    _ip("-n", s, "link", "set", s_if, "up")
    _ip("-n", t, "link", "set", t_if, "up")
    _ip("-n", s, "route", "add", "198.18.1.0/24", "via", TARGET_V4)
    _ip("-n", s, "route", "add", "198.18.2.0/24", "via", TARGET_V4)


def build(
    *,
    wan: bool = False,
    tag: str | None = None,
    seed: int = 1,
    delay_ms: float = 20.0,
    jitter_ms: float = 5.0,
    loss: float = 0.005,
    async_rx: bool = True,
    prefix: str = "ps",
    icmp_limit: bool = False,
    network: bool = False,
) -> Lab:
    """Build a lab and return it; on any failure everything built so far is removed.

    Args:
        wan: replace the veth pair with the userspace delay/loss stage (:mod:`lab.wan`).
        tag: fixed name suffix (``scripts/lab`` uses ``dev``); default ``PID-N``.
        seed: RNG seed of the WAN stage's jitter and loss.
        delay_ms: WAN one-way delay, milliseconds, each direction.
        jitter_ms: WAN uniform jitter, milliseconds (``delay_ms +- jitter_ms``).
        loss: WAN loss probability (0..1), each direction.
        async_rx: LAN only: receive in threaded NAPI so ICMP errors reach connect() at once
            (see :func:`_async_veth_rx`); False keeps a plain veth, which is faster for
            scanners that wait for every answer (``nmap -sT`` full range: about 1.8 s
            instead of 3-4 s here) and is what the benchmark uses.

    Returns:
        The running lab; tear it down with :func:`teardown`.

    Raises:
        LabError: a step failed, or the scanner namespace has a default route.
    """
    if os.geteuid() != 0:
        raise LabError("the lab needs root (network namespaces)")
    if missing := missing_tools():
        raise LabError(f"the lab needs {', '.join(missing)}")
    cleanup_stale()
    scan_ns, tgt_ns = _new_names(tag, prefix)
    existing = set(namespaces())
    if scan_ns in existing or tgt_ns in existing:
        raise LabError(f"namespace {scan_ns} or {tgt_ns} already exists (scripts/lab down?)")
    STATE_DIR.mkdir(parents=True, exist_ok=True)
    lb = Lab(scanner_ns=scan_ns, target_ns=tgt_ns, wan=wan, async_rx=async_rx and not wan)
    lb.icmp_limit, lb.network = icmp_limit, network
    try:
        _build_into(lb, seed=seed, delay_ms=delay_ms, jitter_ms=jitter_ms, loss=loss)
    except BaseException:
        teardown(lb)
        raise
    return lb


def _build_into(lb: Lab, *, seed: int, delay_ms: float, jitter_ms: float, loss: float) -> None:
    s, t = lb.scanner_ns, lb.target_ns
    _ip("netns", "add", s)
    _ip("netns", "add", t)
    for ns in (s, t):
        _ip("-n", ns, "link", "set", "lo", "up")
        # No router advertisements can install a default route; no forwarding anywhere.
        _sysctl(
            ns,
            net__ipv6__conf__all__accept_ra=0,
            net__ipv6__conf__default__accept_ra=0,
            net__ipv4__ip_forward=0,
        )
    # Closed UDP ports and admin-prohibited rejects must answer every probe, not a rate
    # (unless the lab is built to show the rate limit: Linux's defaults are kept then).
    if not lb.icmp_limit:
        _sysctl(
            t,
            net__ipv4__icmp_ratelimit=0,
            net__ipv4__icmp_msgs_per_sec=1000000,
            net__ipv4__icmp_msgs_burst=1000000,
            net__ipv6__icmp__ratelimit=0,
        )
    log = STATE_DIR / f"{s}.log"
    if lb.wan:
        from . import wan as wan_mod

        params = {"delay_ms": delay_ms, "jitter_ms": jitter_ms, "loss": loss}
        lb.wan_params = params
        lb.wan_stats_path = str(STATE_DIR / f"{s}.wan.json")
        proc = _start_ready(
            [
                "ip", "netns", "exec", s, sys.executable, str(HERE / "wan.py"),
                "--tap-a", "wan0", "--tap-b", "wanpeer", "--seed", str(seed),
                "--delay-ms", str(params["delay_ms"]), "--jitter-ms", str(params["jitter_ms"]),
                "--loss", str(params["loss"]), "--stats", lb.wan_stats_path,
            ],
            log, "WAN forwarder",
        )  # fmt: skip
        lb.pids["wan"] = proc.pid
        _ip("-n", s, "link", "set", "wanpeer", "netns", t)
        _ip("-n", t, "link", "set", "wanpeer", "name", "wan0")
        for ns in (s, t):
            _ip("-n", ns, "link", "set", "wan0", "txqueuelen", str(wan_mod.TXQUEUELEN))
        _configure_link(lb, "wan0", "wan0")
        # Static neighbours: a lost ARP/ND packet must not turn into a lost probe.
        s_mac = _mac(s, "wan0")
        t_mac = _mac(t, "wan0")
        for ns, address, mac in (
            (s, TARGET_V4, t_mac),
            (s, TARGET_V6, t_mac),
            (t, SCANNER_V4, s_mac),
            (t, SCANNER_V6, s_mac),
        ):
            _ip("-n", ns, "neigh", "replace", address, "lladdr", mac, "dev", "wan0", "nud",
                "permanent")  # fmt: skip
    else:
        _ip("-n", s, "link", "add", "lan0", "type", "veth", "peer", "name", "lan0", "netns", t)
        _configure_link(lb, "lan0", "lan0")
        if lb.async_rx:
            _async_veth_rx(s, t)
    _run(["ip", "netns", "exec", t, "nft", "-f", "-"], input_text=nft_ruleset())
    if lb.network:
        _ip("-n", t, "route", "add", "local", NETWORK_V4, "dev", "lo")
        _ip("-n", s, "route", "add", NETWORK_V4, "via", TARGET_V4)
        _run(["ip", "netns", "exec", t, "nft", "-f", "-"], input_text=network_ruleset())
    proc = _start_ready(
        [
            "ip", "netns", "exec", t, sys.executable, str(HERE / "services.py"),
            json.dumps(services_spec()),
        ],
        log, "lab services",
    )  # fmt: skip
    lb.pids["services"] = proc.pid
    lb.check_no_default_route()
    _wait_reachable(lb)


def _tx_dropped(ns: str, dev: str) -> int | None:
    out = _ip("-n", ns, "-j", "-s", "link", "show", dev, check=False)
    try:
        return int(json.loads(out)[0]["stats64"]["tx"]["dropped"])
    except (ValueError, LookupError, TypeError):
        return None


# Sets ethtool flags by the legacy SIOCETHTOOL ioctl (linux/ethtool.h: ETHTOOL_STSO 0x1f,
# ETHTOOL_SGRO 0x2c) inside a namespace: TSO off, GRO on. No ethtool binary needed.
_ETHTOOL_CODE = """
import ctypes, fcntl, socket, struct, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for cmd, val in ((0x1F, 0), (0x2C, 1)):
    buf = ctypes.create_string_buffer(struct.pack("II", cmd, val), 8)
    ifr = struct.pack("16sP", sys.argv[1].encode(), ctypes.addressof(buf)).ljust(40, bytes(1))
    fcntl.ioctl(s.fileno(), 0x8946, ifr)
"""


def _async_veth_rx(*nss: str) -> None:
    """Make each ``lan0`` veth receive in its own NAPI kernel thread.

    A plain veth delivers the target's answer inside the sender's own softirq, possibly while
    connect() still holds the socket lock; TCP then drops an ICMPv6 error for the SYN
    (TcpExtLockDroppedIcmps) and connect() fails only on the SYN retransmit, 1 s later. With
    GRO on and TSO off the veth queues to NAPI (drivers/net/veth.c), and threaded NAPI
    (/sys/class/net/DEV/threaded) polls it in a kernel thread, after the lock is released.
    If that fails, RPS (deferring to the backlog of a hashed CPU) makes it rarer.
    """
    for ns in nss:
        try:
            _netns_exec(ns, sys.executable, "-c", _ETHTOOL_CODE, "lan0")
            _netns_exec(ns, "sh", "-c", "echo 1 > /sys/class/net/lan0/threaded")
        except LabError:
            rps = f"echo {_rps_mask()} > /sys/class/net/lan0/queues/rx-0/rps_cpus"
            _netns_exec(ns, "sh", "-c", rps)


def _rps_mask() -> str:
    """A CPU bitmap of every CPU, in sysfs format (hex, comma every 32 bits)."""
    digits = format((1 << (os.cpu_count() or 1)) - 1, "x")
    groups = [digits[max(0, i - 8) : i] for i in range(len(digits), 0, -8)]
    return ",".join(reversed(groups))


def _mac(ns: str, dev: str) -> str:
    out = _ip("-n", ns, "-j", "link", "show", dev)
    mac: str = json.loads(out)[0]["address"]
    return mac


def _wait_reachable(lb: Lab, timeout_s: float = 10.0) -> None:
    """Wait until a TCP connect from the scanner ns reaches port 22 over v4 and v6."""
    code = (
        "import socket,sys,time\n"
        "end=time.monotonic()+float(sys.argv[1])\n"
        "for a in sys.argv[2:]:\n"
        "  while True:\n"
        "    try:\n"
        "      socket.create_connection((a,22),timeout=1).close(); break\n"
        "    except OSError:\n"
        "      if time.monotonic()>end: sys.exit('unreachable '+a)\n"
        "      time.sleep(0.05)\n"
    )
    proc = lb.exec(
        [sys.executable, "-c", code, str(timeout_s), TARGET_V4, TARGET_V6],
        timeout_s=timeout_s + 5,
    )
    if proc.returncode != 0:
        raise LabError(f"lab target not reachable: {proc.stderr.strip()}")


def teardown(lb: Lab) -> None:
    """Stop the lab's processes (by PID) and delete its namespaces; safe to call twice."""
    _kill_pids(list(lb.pids.values()))
    lb.pids.clear()
    for ns in (lb.scanner_ns, lb.target_ns):
        delete_namespace(ns)


@contextlib.contextmanager
def running(
    wan: bool = False,
    *,
    seed: int = 1,
    delay_ms: float = 20.0,
    jitter_ms: float = 5.0,
    loss: float = 0.005,
    async_rx: bool = True,
    prefix: str = "ps",
    icmp_limit: bool = False,
    network: bool = False,
) -> Iterator[Lab]:
    """Build a lab for the ``with`` block and tear it down afterwards, even on failure.

    Args:
        wan: WAN mode (20 ms +- 5 ms one-way delay, 0.5 % loss each way) instead of LAN.
        seed: RNG seed of the WAN stage.
        delay_ms: WAN one-way delay, milliseconds, each direction.
        jitter_ms: WAN uniform jitter, milliseconds.
        loss: WAN loss probability (0..1), each direction.
        async_rx: LAN only; see :func:`build`.
        prefix, icmp_limit, network: see :func:`build`.

    Yields:
        The running :class:`Lab`.

    Raises:
        LabError: not root, ``ip``/``nft`` missing, or a build step failed.
    """
    lb = build(
        wan=wan, seed=seed, delay_ms=delay_ms, jitter_ms=jitter_ms, loss=loss,
        async_rx=async_rx, prefix=prefix, icmp_limit=icmp_limit, network=network,
    )  # fmt: skip
    try:
        yield lb
    finally:
        teardown(lb)


def save_state(lb: Lab, path: Path) -> None:
    """Record a lab built by ``scripts/lab up`` so ``down``/``status`` find it."""
    state = {
        "scanner_ns": lb.scanner_ns,
        "target_ns": lb.target_ns,
        "wan": lb.wan,
        "pids": lb.pids,
        "wan_stats_path": lb.wan_stats_path,
        "wan_params": lb.wan_params,
        "async_rx": lb.async_rx,
    }
    path.write_text(json.dumps(state, indent=1) + "\n")


def load_state(path: Path) -> Lab:
    """The :class:`Lab` recorded by :func:`save_state`."""
    state = json.loads(path.read_text())
    return Lab(
        scanner_ns=state["scanner_ns"],
        target_ns=state["target_ns"],
        wan=state["wan"],
        pids={k: int(v) for k, v in state["pids"].items()},
        wan_stats_path=state.get("wan_stats_path"),
        wan_params=state.get("wan_params", {}),
        async_rx=state.get("async_rx", True),
    )
