"""Effective exposure: for every listener and every DNAT'd port, what a new connection from
another host meets -- the host firewall, NAT, then the socket table.

``exposure_from`` is pure (a socket list, a ruleset, host facts, the sources); ``exposure``
reads the live host (or a network namespace). Without CAP_NET_ADMIN the ruleset cannot be
read: the report says so (``firewall_read`` false, ``firewall_error``) and every row falls
back to what the bind address alone says.

Sources: ``--from ADDR`` evaluates that address; ``--from CIDR`` and the default ("from
outside": any address that is not this host's) are split into classes by the source
prefixes the ruleset names, one representative address each, so a rule such as ``ip saddr
198.18.5.0/24 accept`` yields "filtered from outside, open from 198.18.5.0/24".
"""

from __future__ import annotations

import ipaddress
import json
import os
import subprocess
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from portscope.diagnose._common import covers, endpoint_text, is_listener, owners_text
from portscope.errors import PortscopeError
from portscope.firewall import (
    ActionKind,
    Decision,
    Evaluator,
    FirewallUnreadable,
    HostFacts,
    Packet,
    Ruleset,
    Verdict,
)
from portscope.models import Proto, Socket

if TYPE_CHECKING:
    from portscope.diagnose.audit import Finding

# Stand-ins for "any other host" when the ruleset names no source covering them
# (RFC 5737 / RFC 3849 documentation ranges: never sent to, only evaluated).
OUTSIDE_V4 = ("203.0.113.77", "198.51.100.77", "192.0.2.77", "100.64.0.77")
OUTSIDE_V6 = ("2001:db8:ffff::77", "3fff:ffff::77", "2001:db8:fffe::77")
MAX_CLASSES = 32


@dataclass(frozen=True, slots=True)
class SourceClass:
    """Sources that the ruleset treats alike: a prefix (or ``outside``) and a representative.

    Attributes:
        label: ``outside`` (any address not named by the ruleset), a prefix
            (``198.18.5.0/24``), or the address given with ``--from``.
        address: the representative address evaluated.
    """

    label: str
    address: str


@dataclass(frozen=True, slots=True)
class SourceVerdict:
    """The decision for one source class arriving on one interface."""

    source: SourceClass
    interface: str | None
    decision: Decision


@dataclass(frozen=True, slots=True)
class Exposure:
    """What new connections to one port meet.

    Attributes:
        proto: tcp or udp.
        family: 4 or 6.
        port: the port connected to (before NAT).
        address: the listener's local address, or the host address a DNAT rule serves.
        listener: the local listening socket, or ``None`` (a DNAT'd port with no local
            listener).
        verdict: the verdict for the main source class (``outside`` by default; the first
            class of ``--from``), on the interfaces where it is the same everywhere, else
            the first interface's.
        decision: that verdict's decision (deciding rule, NAT destination, listener).
        by_source: every (source class, interface) evaluated, in order.
        dnat: True when a NAT rule rewrites the destination of this port.
    """

    proto: Proto
    family: int
    port: int
    address: str
    listener: Socket | None
    verdict: Verdict
    decision: Decision
    by_source: tuple[SourceVerdict, ...] = ()
    dnat: bool = False

    def exceptions(self) -> list[SourceVerdict]:
        """The (source, interface) pairs whose verdict differs from ``verdict``."""
        return [s for s in self.by_source if s.decision.verdict is not self.verdict]


@dataclass(frozen=True, slots=True)
class ExposureReport:
    """The exposure of every port.

    Attributes:
        rows: per port.
        firewall_read: False when the ruleset could not be read (rows then judge by the
            bind address alone, each with verdict ``unknown`` unless loopback-only).
        firewall_error: why it could not be read, or ``None``.
        ruleset_source: ``nftables``, ``iptables-nft``, ``iptables-legacy`` (joined by
            ``+``), or ``None``.
        rule_count: rules read.
        sources: the source classes evaluated.
        interfaces: the arriving interfaces evaluated.
        notes: what the readers skipped or could not read.
        netns: the network namespace evaluated, or ``None`` for this process's.
    """

    rows: tuple[Exposure, ...]
    firewall_read: bool
    firewall_error: str | None
    ruleset_source: str | None
    rule_count: int
    sources: tuple[SourceClass, ...]
    interfaces: tuple[str, ...]
    notes: tuple[str, ...] = ()
    netns: str | None = None


# -- sources --------------------------------------------------------------------------------


def _mentioned_prefixes(
    rs: Ruleset, family: int, port: int | None = None
) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    """Source prefixes the ruleset names (matches on saddr, named sets used as sources);
    with ``port``, only in rules that can match that destination port."""
    from portscope.firewall._eval import _port_prefilter

    ports = _port_prefilter(rs) if port is not None else {}
    out: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = []
    seen: set[str] = set()

    def add(el: object) -> None:
        if isinstance(el, tuple) and len(el) == 3 and el[0] == family:
            _, lo, hi = el
            for net in ipaddress.summarize_address_range(
                ipaddress.ip_address(lo), ipaddress.ip_address(hi)
            ):
                if net.prefixlen == 0 or str(net) in seen:
                    continue
                seen.add(str(net))
                out.append(net)

    for chain in rs.chains.values():
        for rule in chain.rules:
            allowed = ports.get(id(rule))
            if allowed is not None and port not in allowed:
                continue
            for m in rule.matches:
                if "saddr" not in m.key:
                    continue
                idx = m.key.index("saddr")
                values = m.values
                if values is None and m.set_name:
                    values = rs.sets.get((rule.family, rule.table, m.set_name))
                for v in values or ():
                    add(v[idx] if len(m.key) > 1 and isinstance(v, tuple) else v)
    return out[:MAX_CLASSES]


def _representative(net: ipaddress.IPv4Network | ipaddress.IPv6Network) -> str:
    if net.num_addresses > 2:
        return str(net.network_address + 1)
    return str(net.network_address)


def source_classes(
    rs: Ruleset,
    host: HostFacts,
    family: int,
    given: str | None = None,
    port: int | None = None,
) -> list[SourceClass]:
    """The source classes to evaluate for ``family`` (see the module docstring); with
    ``port``, only the prefixes of rules that can match that destination port.

    Raises:
        InvalidTarget: ``given`` is not an address or prefix.
    """
    from portscope.errors import InvalidTarget

    prefixes = _mentioned_prefixes(rs, family, port)
    if given is not None:
        try:
            net = ipaddress.ip_network(given, strict=False)
        except ValueError:
            raise InvalidTarget(
                f"--from {given!r}: give an address or prefix, e.g. 198.18.5.9 or 198.18.5.0/24"
            ) from None
        if net.version != family:
            return []
        if net.num_addresses == 1:
            return [SourceClass(given, str(net.network_address))]
        inside = [p for p in prefixes if p.version == net.version and p.subnet_of(net)]  # type: ignore[arg-type]
        classes = [SourceClass(str(net), _representative(net))]
        classes += [SourceClass(str(p), _representative(p)) for p in inside if p != net]
        return classes
    candidates = OUTSIDE_V4 if family == 4 else OUTSIDE_V6
    outside = next(
        (
            c
            for c in candidates
            if not host.is_local(c) and not any(ipaddress.ip_address(c) in p for p in prefixes)
        ),
        candidates[0],
    )
    classes = [SourceClass("outside", outside)]
    for p in prefixes:
        rep = _representative(p)
        if not host.is_local(rep):
            classes.append(SourceClass(str(p), rep))
    return classes


# -- delivery: listeners here and in other namespaces ----------------------------------------


@dataclass
class Listeners:
    """The deliver() callback of the evaluator: this host's listeners, and those of other
    network namespaces a DNAT forwards to (looked up on first use)."""

    sockets: Sequence[Socket]
    foreign: Callable[[str], tuple[str, list[Socket]] | None] | None = None
    _cache: dict[str, tuple[str, list[Socket]] | None] = field(default_factory=dict)

    def find(
        self, sockets: Iterable[Socket], address: str, port: int, proto: str, iif: str | None
    ) -> Socket | None:
        for s in sockets:
            if s.proto.value != proto or s.local.port != port or not is_listener(s):
                continue
            if s.remote is not None and proto == "tcp":
                continue
            if s.interface is not None and iif is not None and s.interface != iif:
                continue
            if covers(s.local.address, s.v6only, address):
                return s
        return None

    def __call__(
        self, address: str, port: int, proto: str, local: bool, iif: str
    ) -> tuple[Verdict, str | None]:
        if local:
            sock = self.find(self.sockets, address, port, proto, iif or None)
            if sock is None:
                return Verdict.CLOSED, None
            return Verdict.OPEN, describe(sock)
        if self.foreign is None:
            return Verdict.UNKNOWN, "forwarded beyond this network namespace"
        if address not in self._cache:
            self._cache[address] = self.foreign(address)
        found = self._cache[address]
        if found is None:
            return Verdict.UNKNOWN, (
                "forwarded to another host (no network namespace here owns "
                f"{address}); what listens there is not known"
            )
        where, socks = found
        sock = self.find(socks, address, port, proto, None)
        if sock is None:
            return Verdict.CLOSED, f"{where}: nothing listens on {endpoint_text(address, port)}"
        return Verdict.OPEN, f"{where}: {describe(sock)}"


def describe(sock: Socket) -> str:
    """``python3[123] on 0.0.0.0:80`` (or ``a socket on ...`` without owners)."""
    who = owners_text(sock) if sock.owners else "a socket"
    return f"{who} on {endpoint_text(sock.local.address, sock.local.port)}"


def _listen_json(netns_path: str) -> list[Socket]:
    """The listeners of another namespace, read in this process (``sockets`` enters the
    namespace: ``list_sockets(netns=PATH)``), with their owners."""
    from portscope.diagnose._common import read_sockets
    from portscope.models import Proto

    table = read_sockets([Proto.TCP, Proto.UDP], owners=True, listening=True, netns=netns_path)
    return list(table.sockets)


def _namespaces(exclude: str | None) -> list[tuple[str, str]]:
    """(label, path) of network namespaces other than ``exclude`` and this process's: named
    ones (/run/netns, ``ip netns``) and those of processes (containers), one per inode."""
    seen: set[tuple[int, int]] = set()
    out: list[tuple[str, str]] = []
    for path in (exclude, "/proc/self/ns/net"):
        if path:
            try:
                st = os.stat(path)
                seen.add((st.st_dev, st.st_ino))
            except OSError:
                pass
    try:
        names = sorted(os.listdir("/run/netns"))
    except OSError:
        names = []
    for name in names:
        path = f"/run/netns/{name}"
        try:
            st = os.stat(path)
        except OSError:
            continue
        if (st.st_dev, st.st_ino) not in seen:
            seen.add((st.st_dev, st.st_ino))
            out.append((f"netns {name}", path))
    from portscope._proc import process_name

    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        path = f"/proc/{entry}/ns/net"
        try:
            st = os.stat(path)
        except OSError:
            continue
        if (st.st_dev, st.st_ino) in seen:
            continue
        seen.add((st.st_dev, st.st_ino))
        name = process_name(int(entry)) or "?"
        out.append((f"netns of {name}[{entry}]", path))
    return out[:256]


def _proc_addresses(pid_dir: str) -> set[str] | None:
    """The local addresses of a process's network namespace, from its own view of
    /proc/net (``fib_trie`` LOCAL entries, ``if_inet6``): no subprocess, no setns."""
    out: set[str] = set()
    try:
        with open(f"{pid_dir}/net/fib_trie") as f:
            last = None
            for line in f:
                text = line.strip()
                if text.startswith("|--"):
                    last = text[3:].strip()
                elif last and text.endswith("host LOCAL") and text.startswith("/32"):
                    out.add(last)
    except OSError:
        return None
    try:
        with open(f"{pid_dir}/net/if_inet6") as f:
            for line in f:
                hexaddr = line.split()[0]
                out.add(str(ipaddress.IPv6Address(bytes.fromhex(hexaddr))))
    except (OSError, ValueError, IndexError):
        pass
    return out


def _named_addresses(path: str) -> set[str]:
    try:
        proc = subprocess.run(
            ["nsenter", f"--net={path}", "--", "ip", "-j", "address", "show"],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
        links = json.loads(proc.stdout or "[]", strict=False) if proc.returncode == 0 else []
    except (OSError, subprocess.TimeoutExpired, ValueError):
        return set()
    return {str(a["local"]) for link in links for a in link.get("addr_info", []) if "local" in a}


def foreign_lookup(exclude: str | None) -> Callable[[str], tuple[str, list[Socket]] | None]:
    """A lookup of the network namespace that owns an address (a container behind a
    DNAT), with its listeners: named namespaces (``ip netns``) and those of processes
    (containers), read from ``/proc/PID/net``. ``None`` when no namespace or more than one
    owns it. Needs root (nsenter, other users' /proc)."""

    def lookup(address: str) -> tuple[str, list[Socket]] | None:
        owners = []
        for label, path in _namespaces(exclude):
            if path.startswith("/proc/"):
                addrs = _proc_addresses(path.removesuffix("/ns/net"))
            else:
                addrs = _named_addresses(path)
            if addrs and address in addrs:
                owners.append((label, path))
        if len(owners) != 1:
            return None
        label, path = owners[0]
        return label, _listen_json(path)

    return lookup


# -- the report ------------------------------------------------------------------------------


def _usable(address: str, family: int) -> bool:
    """An address other hosts may connect to: of ``family``, not link-local (fe80::/10
    reaches only the link, and every IPv6 interface has one)."""
    ip = ipaddress.ip_address(address)
    return ip.version == family and not ip.is_link_local


def _interfaces(host: HostFacts, family: int) -> list[str]:
    return [
        name
        for name, addrs in host.addresses.items()
        if name != "lo" and any(_usable(a, family) for a in addrs)
    ]


def _host_address(host: HostFacts, iface: str, family: int) -> str | None:
    return next((a for a in host.addresses.get(iface, ()) if _usable(a, family)), None)


def _interval(v: object) -> tuple[int, int] | None:
    if isinstance(v, tuple) and len(v) == 2 and all(isinstance(x, int) for x in v):
        return (v[0], v[1])
    return None


def _in_interval(n: int, v: object) -> bool:
    lo_hi = _interval(v)
    return lo_hi is not None and lo_hi[0] <= n <= lo_hi[1]


def dnat_ports(rs: Ruleset) -> set[tuple[str, int]]:
    """(proto, port) of every destination port a DNAT/REDIRECT rule matches on exactly."""
    out: set[tuple[str, int]] = set()
    for chain in rs.chains.values():
        for rule in chain.rules:
            if rule.action.kind not in (ActionKind.DNAT, ActionKind.REDIRECT):
                continue
            protos = {"tcp", "udp"}
            for m in rule.matches:
                if m.key == ("l4proto",) and m.values and not m.negate:
                    protos = {
                        p
                        for p, n in (("tcp", 6), ("udp", 17))
                        if any(_in_interval(n, v) for v in m.values)
                    }
                if m.key == ("dport",) and m.proto in ("tcp", "udp"):
                    protos &= {m.proto}
            for m in rule.matches:
                if m.key == ("dport",) and m.values and not m.negate:
                    for v in m.values:
                        lo_hi = _interval(v)
                        if lo_hi is not None and lo_hi[1] - lo_hi[0] < 64:
                            for p in range(lo_hi[0], lo_hi[1] + 1):
                                out.update((pr, p) for pr in protos)
    return out


def exposure_from(
    sockets: Sequence[Socket],
    ruleset: Ruleset,
    host: HostFacts,
    *,
    source: str | None = None,
    deliver: Listeners | None = None,
    protos: Iterable[Proto] = (Proto.TCP, Proto.UDP),
) -> list[Exposure]:
    """The exposure of every listener and DNAT'd port (pure but for ``deliver``'s lookups).

    Args:
        sockets: the host's listening sockets.
        ruleset: its firewall.
        host: its addresses, forwarding and routes.
        source: ``--from`` (an address or prefix), or ``None``: from outside.
        deliver: the socket lookup (default: ``Listeners(sockets)``, no other namespace).
        protos: transports to report.

    Returns:
        One row per (proto, family, port, address), sorted by port.

    Raises:
        InvalidTarget: ``source`` is not an address or prefix.
    """
    deliver = deliver or Listeners(sockets)
    ev = Evaluator(ruleset, host, deliver)
    wanted = {p.value for p in protos}
    targets: dict[tuple[str, int, int, str], Socket | None] = dict(_targets(sockets, wanted))
    for proto, port in sorted(dnat_ports(ruleset)):
        if proto not in wanted:
            continue
        for fam in (4, 6):
            if not _interfaces(host, fam):
                continue
            key = (proto, fam, port, "0.0.0.0" if fam == 4 else "::")
            if not any(k[0] == proto and k[1] == fam and k[2] == port for k in targets):
                targets[key] = None
    rows: list[Exposure] = []
    per_port: dict[tuple[int, int], list[SourceClass]] = {}

    def classes_for(fam: int, port: int) -> list[SourceClass]:
        if (fam, port) not in per_port:
            per_port[(fam, port)] = source_classes(ruleset, host, fam, source, port)
        return per_port[(fam, port)]

    for (proto, fam, port, addr), sock in sorted(
        targets.items(), key=lambda kv: (kv[0][2], kv[0][0], kv[0][1])
    ):
        results: list[SourceVerdict] = []
        for cls in classes_for(fam, port):
            for iface in _arrivals(host, fam, cls.address, source is not None):
                daddr = addr
                if addr in ("0.0.0.0", "::") or iface == "lo" or _loopback(addr):
                    # a loopback-bound listener: outside traffic comes to the interface's
                    # address, where nothing of it listens
                    daddr = _host_address(host, iface, fam) or ""
                if not daddr:
                    continue
                local = host.is_local(cls.address)
                pkt = Packet(
                    fam,
                    proto,
                    cls.address,
                    daddr,
                    port,
                    None if local else iface,
                    local_origin=local,
                )
                results.append(SourceVerdict(cls, iface, ev.evaluate(pkt)))
        if not results:
            continue
        main = [r for r in results if r.source is results[0].source]
        first = main[0].decision
        verdict = first.verdict
        rows.append(
            Exposure(
                Proto(proto),
                fam,
                port,
                addr,
                sock,
                verdict,
                first,
                tuple(results),
                dnat=any(r.decision.destination is not None for r in results),
            )
        )
    return rows


def _loopback(address: str) -> bool:
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False


def _arrivals(host: HostFacts, family: int, source: str, given: bool) -> list[str]:
    """The interfaces a packet from ``source`` arrives on: with ``--from``, the one the
    route back to it uses (else every one); from outside, every non-loopback interface."""
    if host.is_local(source):
        return ["lo"]
    ifaces = _interfaces(host, family)
    if given:
        route = host.route(source)
        if route is not None and route.device in ifaces:
            return [route.device]
    return ifaces


def _targets(
    sockets: Sequence[Socket], wanted: set[str]
) -> dict[tuple[str, int, int, str], Socket]:
    """(proto, family, port, address) -> listener; a dual-stack ``[::]`` socket gives an
    IPv6 and an IPv4 (``0.0.0.0``) target."""
    targets: dict[tuple[str, int, int, str], Socket] = {}
    for s in sockets:
        if not is_listener(s) or s.proto.value not in wanted:
            continue
        fams = [s.family]
        if s.local.address == "::" and s.v6only is not True:
            fams = [6, 4]
        for fam in fams:
            addr = s.local.address if fam == s.family else "0.0.0.0"
            targets.setdefault((s.proto.value, fam, s.local.port, addr), s)
    return targets


def _fallback(sockets: Sequence[Socket], reason: str, netns: str | None) -> ExposureReport:
    from portscope.diagnose._common import reach

    rows = []
    for (proto, fam, port, addr), s in _targets(sockets, {"tcp", "udp"}).items():
        loop = reach(s) == "loopback"
        verdict = Verdict.CLOSED if loop else Verdict.UNKNOWN
        why = (
            "loopback only: other hosts cannot reach it"
            if loop
            else f"bound to {addr}: reachable unless a firewall blocks it (the firewall "
            "could not be read)"
        )
        rows.append(Exposure(Proto(proto), fam, port, addr, s, verdict, Decision(verdict, why)))
    rows.sort(key=lambda r: (r.port, r.proto.value, r.family))
    return ExposureReport(tuple(rows), False, reason, None, 0, (), (), (), netns)


def exposure(
    *,
    source: str | None = None,
    netns: str | None = None,
    protos: Iterable[Proto] = (Proto.TCP, Proto.UDP),
    prefer: str = "auto",
) -> ExposureReport:
    """The exposure of this host's (or ``netns``'s) listeners and DNAT'd ports.

    Args:
        source: an address or prefix (``--from``); ``None``: from outside.
        netns: a network namespace name (``ip netns``) or path; ``None``: this process's.
        protos: transports to report.
        prefer: ruleset reader preference (``firewall.read_ruleset``).

    Returns:
        The report; ``firewall_read`` is False (with the reason) when the ruleset could not
        be read, and rows then fall back to the bind address.

    Raises:
        InvalidTarget: ``source`` is not an address or prefix.
        InvalidInput: no such network namespace.

    Privilege: CAP_NET_ADMIN to read the ruleset; root for ``netns`` and to look into
    container namespaces behind a DNAT.
    """
    from portscope.firewall import netns_path, read_host, read_ruleset

    path = netns_path(netns)
    wanted = list(protos)
    if path is None:
        from portscope.diagnose._common import read_sockets

        sockets = list(read_sockets(wanted, owners=True, listening=True).sockets)
    else:
        sockets = [s for s in _listen_json(path) if s.proto in wanted]
    if source is not None:
        source_classes(Ruleset(source=""), HostFacts({}), 4, source)  # validate first
    try:
        rs = read_ruleset(path, prefer=prefer)
        host = read_host(path)
    except FirewallUnreadable as err:
        return _fallback(sockets, err.reason, path)
    foreign = foreign_lookup(path) if os.geteuid() == 0 else None
    rows = exposure_from(
        sockets, rs, host, source=source, deliver=Listeners(sockets, foreign), protos=wanted
    )
    classes = tuple(c for fam in (4, 6) for c in source_classes(rs, host, fam, source))
    ifaces = tuple(dict.fromkeys(i for fam in (4, 6) for i in _interfaces(host, fam)))
    return ExposureReport(
        tuple(rows),
        True,
        None,
        rs.source,
        rs.rule_count(),
        classes,
        ifaces,
        tuple(rs.notes),
        path,
    )


# -- for other commands: audit, the listening view, why connect -----------------------------


@dataclass(frozen=True, slots=True)
class FirewallView:
    """The firewall verdict from outside for a set of listeners (audit, listen).

    Attributes:
        read: False when the ruleset could not be read (``error`` says why).
        error: why it could not be read, or ``None``.
        rows: (proto, family, port, address) -> the exposure row.
        report: the full report (DNAT'd ports included), or ``None`` when not read.
    """

    read: bool
    error: str | None
    rows: dict[tuple[str, int, int, str], Exposure]
    report: ExposureReport | None = None

    def rows_for(self, sock: Socket) -> list[Exposure]:
        """The rows of a listening socket: one, or for a dual-stack ``[::]`` the IPv6 row
        and the IPv4 one (either may be missing: no interface of that family)."""
        keys = [(sock.proto.value, sock.family, sock.local.port, sock.local.address)]
        if sock.local.address == "::" and sock.v6only is not True:
            keys.append((sock.proto.value, 4, sock.local.port, "0.0.0.0"))
        return [self.rows[k] for k in keys if k in self.rows]

    def row_for(self, sock: Socket) -> Exposure | None:
        """The row that matters most for a socket: of its rows (``rows_for``), one that some
        source gets through, else the first; ``None`` when it has none."""
        rows = self.rows_for(sock)
        passing = [r for r in rows if not blocked_everywhere(r)]
        chosen = passing or rows
        return chosen[0] if chosen else None


def firewall_view(sockets: Sequence[Socket], *, netns: str | None = None) -> FirewallView:
    """Evaluate ``sockets`` (listeners) from outside against this host's firewall.

    Never raises for an unreadable ruleset: ``read`` is False with the reason.
    """
    from portscope.firewall import netns_path, read_host, read_ruleset

    try:
        path = netns_path(netns)
        rs = read_ruleset(path)
        host = read_host(path)
    except (FirewallUnreadable, PortscopeError) as err:
        return FirewallView(False, str(err), {})
    foreign = foreign_lookup(path) if os.geteuid() == 0 else None
    rows = exposure_from(sockets, rs, host, deliver=Listeners(sockets, foreign))
    report = ExposureReport(
        tuple(rows),
        True,
        None,
        rs.source,
        rs.rule_count(),
        tuple(c for fam in (4, 6) for c in source_classes(rs, host, fam)),
        tuple(dict.fromkeys(i for fam in (4, 6) for i in _interfaces(host, fam))),
        tuple(rs.notes),
        path,
    )
    return FirewallView(
        True, None, {(r.proto.value, r.family, r.port, r.address): r for r in rows}, report
    )


def blocked_everywhere(row: Exposure) -> bool:
    """True when no source class on no interface gets through (nothing is ``open`` or
    ``unknown``)."""
    return all(
        s.decision.verdict in (Verdict.FILTERED, Verdict.REJECTED, Verdict.CLOSED)
        for s in row.by_source
    )


def scope_note(row: Exposure | None) -> str | None:
    """What the listening view adds to a scope: ``firewall: filtered from outside``,
    ``firewall: rejected from outside, open from 198.18.5.0/24`` ...; ``None`` when the
    firewall lets everyone in (the bind scope already says it)."""
    if row is None:
        return None
    verdict = row.verdict
    if verdict is Verdict.OPEN and not row.exceptions():
        return None
    if verdict is Verdict.CLOSED and row.listener is not None and not row.exceptions():
        return None  # e.g. bound to an address that outside traffic does not reach
    label = row.by_source[0].source.label if row.by_source else "outside"
    text = f"firewall: {verdict.value} from {label}"
    opened = sorted(
        {
            s.source.label
            for s in row.exceptions()
            if s.decision.verdict is Verdict.OPEN and s.source.label != label
        }
    )
    if opened:
        text += f", open from {', '.join(opened)}"
    return text


def local_connect(
    address: str, port: int, proto: str, source: str | None = None
) -> Decision | None:
    """The firewall's decision for a connection from this host to its own ``address``
    (``why connect`` to a local address): output, postrouting, then prerouting and input
    on ``lo``. ``None`` when the ruleset cannot be read."""
    from portscope.diagnose._common import read_sockets
    from portscope.firewall import read_host, read_ruleset

    try:
        rs = read_ruleset()
        host = read_host()
    except (FirewallUnreadable, PortscopeError):
        return None
    table = read_sockets([Proto(proto)], owners=True, listening=True, port=port)
    fam = 6 if ":" in address else 4
    pkt = Packet(fam, proto, source or address, address, port, None, local_origin=True)
    return Evaluator(rs, host, Listeners(table.sockets)).evaluate(pkt)


def apply_firewall(findings: Sequence[Finding], sockets: Sequence[Socket]) -> list[Finding]:
    """Audit findings with the firewall's verdict from outside and its evidence.

    A finding whose port no source gets through (filtered, rejected or closed from
    everywhere evaluated) drops to ``low`` (info stays info): the risk is a firewall
    change, and the deciding rule is the evidence. One that only some source prefixes
    reach drops one rank. A port published by DNAT that is open from outside is a
    ``dnat-published`` finding (medium; a datastore's default port: high), although no
    local socket listens. An unreadable ruleset leaves severities as they are and says so.
    """
    import dataclasses as dc

    from portscope.diagnose.audit import Severity
    from portscope.render.exposure import decided_by

    view = firewall_view(sockets)
    out: list[Finding] = []
    order = list(Severity)
    for f in findings:
        if not f.exposed:
            out.append(f)
            continue
        if not view.read:
            out.append(dc.replace(f, firewall=f"not read ({view.error})"))
            continue
        row = view.row_for(f.socket)
        if row is None:
            out.append(f)
            continue
        label = row.by_source[0].source.label if row.by_source else "outside"
        text = f"{row.decision.verdict.value} from {label}"
        note = scope_note(row)
        if note:
            text = note.removeprefix("firewall: ")
        evidence = decided_by(row.decision)
        severity = f.severity
        title = f.title
        if blocked_everywhere(row):
            if severity.rank > Severity.LOW.rank:
                severity = Severity.LOW
            title += f" -- the firewall blocks it ({row.decision.verdict.value} from {label})"
        elif row.verdict is not Verdict.OPEN and any(
            s.decision.verdict is Verdict.OPEN for s in row.by_source
        ):
            if severity.rank > Severity.LOW.rank:
                severity = order[severity.rank - 1]
            title += f" -- {text}"
        out.append(
            dc.replace(f, severity=severity, title=title, firewall=text, firewall_rule=evidence)
        )
    if view.report is not None:
        out.extend(_dnat_findings(view.report))
    out.sort(key=lambda f: (-f.severity.rank, f.socket.local.port, f.rule))
    return out


def _dnat_findings(report: ExposureReport) -> list[Finding]:
    from portscope.diagnose.audit import DATASTORE_PORTS, DATASTORES, Finding, Severity
    from portscope.models import Endpoint, TcpState
    from portscope.render.exposure import decided_by

    found: list[Finding] = []
    for row in report.rows:
        d = row.decision
        if row.listener is not None or d.destination is None or d.verdict is not Verdict.OPEN:
            continue
        dest = endpoint_text(*d.destination)
        kind = DATASTORE_PORTS.get(d.destination[1]) or DATASTORE_PORTS.get(row.port)
        severity = DATASTORES[kind].severity if kind else Severity.MEDIUM
        if severity.rank < Severity.MEDIUM.rank:
            severity = Severity.MEDIUM
        published = Socket(
            row.proto,
            row.family,
            TcpState.LISTEN,
            Endpoint(row.address, row.port),
            None,
            None,
            None,
            None,
            None,
        )
        found.append(
            Finding(
                rule="dnat-published",
                severity=severity,
                title=f"{row.proto.value} port {row.port} is published by DNAT to {dest} "
                f"({d.listener or 'a listener'}) and open from outside, though no socket "
                "of this host listens on it",
                socket=published,
                service=kind,
                scope="published by DNAT",
                why="a NAT rule forwards it past the input chain (Docker's -p does this, and "
                "bypasses ufw/firewalld input rules); ss shows no listener for it",
                fix="publish it on 127.0.0.1 only (docker run -p 127.0.0.1:PORT:PORT), or "
                "filter it in the forward path (DOCKER-USER chain / a forward-hook rule)",
                process=d.listener,
                exposed=True,
                firewall="open from outside",
                firewall_rule=decided_by(d),
            )
        )
    return found
