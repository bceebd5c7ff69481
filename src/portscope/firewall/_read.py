"""Reading the host: the ruleset (nft, iptables-save) and the facts the evaluator needs.

This is the firewall package's only I/O. Each tool runs in the given network namespace
(``nsenter --net=PATH``, util-linux) when one is given. Reading nftables needs
CAP_NET_ADMIN (nft(8)); without it :class:`FirewallUnreadable` says so and callers fall back.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import json
import os
import shutil
import subprocess
from collections.abc import Sequence
from typing import Any

from portscope.errors import PermissionDenied, PortscopeError
from portscope.firewall._eval import HostFacts, Route
from portscope.firewall._iptables import parse_save
from portscope.firewall._model import Ruleset
from portscope.firewall._nft import parse_ruleset, rule_texts

TIMEOUT_S = 10.0
IPTABLES_TABLES = ("filter", "nat", "raw", "mangle", "security")


class FirewallUnreadable(PortscopeError):
    """The ruleset could not be read (no CAP_NET_ADMIN, no tool, a tool failed).

    Attributes:
        reason: why, in words (``nft needs CAP_NET_ADMIN: run as root`` ...).
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class FirewallPermissionDenied(FirewallUnreadable, PermissionDenied):
    """Reading the ruleset needs CAP_NET_ADMIN."""


def netns_path(netns: str | None) -> str | None:
    """A network namespace as a path: a name under /run/netns (``ip netns``), or a path
    (``/proc/PID/ns/net``, ``/run/docker/netns/ID``); ``None`` for this process's.

    Raises:
        InvalidInput: no such namespace.
    """
    if netns is None:
        return None
    path = netns if "/" in netns else f"/run/netns/{netns}"
    if not netns.strip() or not os.path.exists(path):
        from portscope.errors import InvalidInput

        raise InvalidInput(
            f"network namespace {netns!r} not found ({path}): give a name listed by "
            "'ip netns' or a path such as /proc/PID/ns/net"
        )
    return path


def _run(argv: Sequence[str], netns: str | None) -> subprocess.CompletedProcess[str]:
    """Run a tool (in ``netns``); OSError and timeouts become FirewallUnreadable."""
    cmd = list(argv)
    if netns is not None:
        cmd = ["nsenter", f"--net={netns}", "--", *cmd]
    try:
        return subprocess.run(
            cmd,
            capture_output=True,
            text=True,
            timeout=TIMEOUT_S,
            check=False,
            env={**os.environ, "LC_ALL": "C"},
        )
    except FileNotFoundError as err:
        raise FirewallUnreadable(f"{cmd[0]} is not installed") from err
    except subprocess.TimeoutExpired as err:
        raise FirewallUnreadable(f"{' '.join(argv)} did not finish in {TIMEOUT_S:g} s") from err
    except OSError as err:
        raise FirewallUnreadable(f"{cmd[0]}: {err.strerror}") from err


def _json(text: str, what: str) -> Any:
    """Decode a tool's JSON. ``strict=False``: ``ip -j`` and ``nft -j`` print interface
    names with raw control characters (other people's strings), which strict JSON refuses.

    Raises:
        FirewallUnreadable: not JSON.
    """
    try:
        return json.loads(text, strict=False)
    except ValueError as err:
        raise FirewallUnreadable(f"{what}: output is not JSON ({err})") from err


def _denied(stderr: str) -> bool:
    low = stderr.lower()
    return "operation not permitted" in low or "permission denied" in low


def _check(proc: subprocess.CompletedProcess[str], what: str) -> str:
    if proc.returncode != 0:
        msg = " ".join(proc.stderr.split())[:200]
        if _denied(proc.stderr):
            raise FirewallPermissionDenied(
                f"{what} needs CAP_NET_ADMIN (Operation not permitted): run as root"
            )
        raise FirewallUnreadable(f"{what} failed: {msg or f'exit {proc.returncode}'}")
    return proc.stdout


def _nft_json(netns: str | None) -> str:
    if netns is None:
        try:  # the python3-nftables bindings (libnftables), where installed
            import nftables  # type: ignore[import-not-found, unused-ignore]

            nft = nftables.Nftables()
            nft.set_json_output(True)
            rc, out, err = nft.cmd("list ruleset")
            if rc == 0:
                return str(out)
            if _denied(str(err)):
                raise FirewallPermissionDenied("reading nftables needs CAP_NET_ADMIN: run as root")
        except ImportError:
            pass
    return _check(_run(["nft", "-j", "list", "ruleset"], netns), "nft -j list ruleset")


def _has_xt(data: object) -> set[tuple[str, str]]:
    """(family, table) of tables whose rules use ``xt`` (iptables-nft compat) expressions."""
    out: set[tuple[str, str]] = set()
    if not isinstance(data, dict):
        return out
    for item in data.get("nftables", []):
        rule = item.get("rule") if isinstance(item, dict) else None
        if rule and any(isinstance(e, dict) and "xt" in e for e in rule.get("expr", [])):
            out.add((rule["family"], rule["table"]))
    return out


def _legacy_tables(netns: str | None) -> dict[int, bool]:
    """Which families have legacy xtables tables loaded (``/proc/net/ip*_tables_names``);
    reading them is free, and it avoids ``iptables-legacy-save`` loading modules."""
    out = {4: False, 6: False}
    names = {4: "/proc/net/ip_tables_names", 6: "/proc/net/ip6_tables_names"}
    for fam, path in names.items():
        if netns is None:
            try:
                with open(path) as f:
                    out[fam] = bool(f.read().strip())
            except OSError:
                pass
        else:
            proc = _run(["cat", path], netns)
            out[fam] = proc.returncode == 0 and bool(proc.stdout.strip())
    return out


def read_ruleset(netns: str | None = None, *, prefer: str = "auto") -> Ruleset:
    """Read the host's firewall: nftables, iptables-nft and legacy iptables.

    Args:
        netns: a network namespace (a name under /run/netns or a path); ``None``: this
            process's.
        prefer: ``auto`` (nftables JSON; iptables-nft tables whose rules ``nft`` shows as
            ``xt`` expressions are read with ``iptables-nft-save``), ``iptables`` (every
            iptables-nft table read with ``iptables-nft-save``), or ``nft`` (JSON only).

    Returns:
        The model; ``source`` says which readers contributed, ``notes`` what was skipped.

    Raises:
        FirewallPermissionDenied: no CAP_NET_ADMIN (nft(8) needs it to list rules).
        FirewallUnreadable: no namespace, no tool, or a tool failed.

    Privilege: CAP_NET_ADMIN in the namespace (root); ``nsenter`` needs CAP_SYS_ADMIN.
    """
    if prefer not in ("auto", "nft", "iptables"):
        from portscope.errors import InvalidInput

        raise InvalidInput(f"prefer={prefer!r}: use auto, nft or iptables")
    path = netns_path(netns)
    rs = Ruleset(source="")
    data: object = {"nftables": []}
    if shutil.which("nft"):
        raw = _nft_json(path)
        data = _json(raw, "nft -j list ruleset") if raw.strip() else {"nftables": []}
        texts = rule_texts(_check(_run(["nft", "-a", "list", "ruleset"], path), "nft list ruleset"))
        rs = parse_ruleset(data, texts)
    elif not any(shutil.which(t) for t in ("iptables-nft-save", "iptables-legacy-save")):
        raise FirewallUnreadable("neither nft nor iptables-save is installed")
    xt = _has_xt(data)
    if prefer == "iptables":
        xt |= {
            (c.family, c.table)
            for c in rs.chains.values()
            if c.family in ("ip", "ip6") and c.table in IPTABLES_TABLES
        }
    for fam, fam_name in ((4, "ip"), (6, "ip6")):
        wanted = {t for f, t in xt if f == fam_name}
        tool = "iptables-nft-save" if fam == 4 else "ip6tables-nft-save"
        if wanted and shutil.which(tool):
            text = _check(_run([tool], path), tool)
            sub = parse_save(text, family=fam, source="iptables-nft")
            sub.chains = {k: c for k, c in sub.chains.items() if c.table in wanted}
            rs.merge(sub)
        elif wanted:
            rs.notes.append(f"{tool} is not installed: iptables-nft rules stay unknown")
    legacy = _legacy_tables(path)
    for fam in (4, 6):
        tool = "iptables-legacy-save" if fam == 4 else "ip6tables-legacy-save"
        if legacy[fam] and shutil.which(tool):
            text = _check(_run([tool], path), tool)
            sub = parse_save(text, family=fam, source="iptables-legacy")
            clash = {(c.family, c.table) for c in rs.chains.values()}
            for key, chain in list(sub.chains.items()):
                if (chain.family, chain.table) in clash:
                    del sub.chains[key]
                    chain.table = f"legacy-{chain.table}"
                    sub.chains[(chain.family, chain.table, chain.name)] = chain
                    chain.rules = [dataclasses.replace(r, table=chain.table) for r in chain.rules]
            rs.merge(sub)
        elif legacy[fam]:
            rs.notes.append(f"legacy iptables tables are loaded but {tool} is not installed")
    if not rs.source:
        rs.source = "nftables"
    return rs


def read_host(netns: str | None = None) -> HostFacts:
    """The host's addresses, forwarding sysctls and main routing table (``ip -j``).

    Raises:
        FirewallUnreadable: ``ip`` is missing or failed, or no such namespace.
    """
    path = netns_path(netns)
    addrs: dict[str, tuple[str, ...]] = {}
    out = _check(_run(["ip", "-j", "address", "show"], path), "ip address")
    for link in _json(out or "[]", "ip -j address"):
        name = str(link.get("ifname", ""))
        addrs[name] = tuple(
            str(ipaddress.ip_address(a["local"])) for a in link.get("addr_info", []) if "local" in a
        )
    routes: list[Route] = []
    for fam in (4, 6):
        proc = _run(["ip", "-j", f"-{fam}", "route", "show", "table", "main"], path)
        if proc.returncode != 0:
            continue
        for r in _json(proc.stdout or "[]", "ip -j route"):
            dst = r.get("dst", "")
            if dst == "default":
                dst = "0.0.0.0/0" if fam == 4 else "::/0"
            try:
                net = ipaddress.ip_network(dst, strict=False)
            except ValueError:
                continue
            routes.append(
                Route(
                    fam,
                    int(net.network_address),
                    int(net.broadcast_address),
                    net.prefixlen,
                    r.get("dev"),
                    r.get("type", "unicast"),
                )
            )
    sysctls = {
        "ip_forward": "/proc/sys/net/ipv4/ip_forward",
        "forwarding6": "/proc/sys/net/ipv6/conf/all/forwarding",
        "route_localnet": "/proc/sys/net/ipv4/conf/all/route_localnet",
    }
    values: dict[str, bool] = {}
    if path is None:
        from portscope._proc import sysctl_int

        for key, file in sysctls.items():
            values[key] = bool(sysctl_int(file.removeprefix("/proc/sys/"), 0))
    else:
        script = "; ".join(f"cat {f} 2>/dev/null || echo 0" for f in sysctls.values())
        proc = _run(["sh", "-c", script], path)
        lines = proc.stdout.split()
        for key, text in zip(sysctls, lines, strict=False):
            values[key] = text.strip() not in ("", "0")
    return HostFacts(
        addresses=addrs,
        forwarding={4: values.get("ip_forward", False), 6: values.get("forwarding6", False)},
        route_localnet=values.get("route_localnet", False),
        routes=tuple(routes),
        netns=path,
    )
