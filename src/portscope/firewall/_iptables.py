"""The iptables reader: ``iptables-save`` / ``ip6tables-save`` text into the model.

Works for both back ends: legacy xtables (``iptables-legacy-save``) and iptables-nft
(``iptables-nft-save``), whose rules ``nft -j`` shows only as opaque ``xt`` expressions.
Built-in chains become base chains at the xtables priorities
(``include/uapi/linux/netfilter_ipv4.h``: raw -300, mangle -150, nat PREROUTING/OUTPUT -100,
filter 0, security 50, nat INPUT/POSTROUTING 100); user chains are regular chains. Matches
and targets outside the list in iptables-extensions(8) that are modelled here become
``unknown`` with the rule quoted.
"""

from __future__ import annotations

import shlex

from portscope.firewall._model import (
    PROTOCOLS,
    Action,
    ActionKind,
    Chain,
    Element,
    Match,
    Rule,
    Ruleset,
    address_interval,
    address_range,
)

_HOOKS = {
    "PREROUTING": "prerouting",
    "INPUT": "input",
    "FORWARD": "forward",
    "OUTPUT": "output",
    "POSTROUTING": "postrouting",
}
_PRIORITY = {"raw": -300, "mangle": -150, "filter": 0, "security": 50}
_NAT_PRIORITY = {"PREROUTING": -100, "OUTPUT": -100, "INPUT": 100, "POSTROUTING": 100}
_REJECT = {
    "tcp-reset": "tcp-reset",
    "icmp-port-unreachable": "port-unreachable",
    "port-unreach": "port-unreachable",
    "icmp6-port-unreachable": "port-unreachable",
    "icmp-net-unreachable": "net-unreachable",
    "net-unreach": "net-unreachable",
    "icmp-host-unreachable": "host-unreachable",
    "host-unreach": "host-unreachable",
    "icmp-proto-unreachable": "prot-unreachable",
    "proto-unreach": "prot-unreachable",
    "icmp-net-prohibited": "net-prohibited",
    "net-prohib": "net-prohibited",
    "icmp-host-prohibited": "host-prohibited",
    "host-prohib": "host-prohibited",
    "icmp-admin-prohibited": "admin-prohibited",
    "admin-prohib": "admin-prohibited",
    "icmp6-adm-prohibited": "admin-prohibited",
    "adm-prohibited": "admin-prohibited",
    "icmp6-no-route": "no-route",
    "no-route": "no-route",
    "icmp6-addr-unreachable": "addr-unreachable",
    "addr-unreach": "addr-unreachable",
    "icmp6-policy-fail": "policy-fail",
    "policy-fail": "policy-fail",
    "icmp6-reject-route": "reject-route",
    "reject-route": "reject-route",
}
_NO_VALUE = {"--syn"}


class _Unknown(Exception):
    pass


def _ports(text: str) -> tuple[Element, ...]:
    out: list[Element] = []
    for part in text.split(","):
        lo, _, hi = part.partition(":")
        if not lo.isdigit() or (hi and not hi.isdigit()):
            raise _Unknown
        out.append((int(lo), int(hi or lo)))
    return tuple(out)


def _addresses(text: str) -> tuple[Element, ...]:
    out: list[Element] = []
    for part in text.split(","):
        try:
            out.append(address_interval(part))
        except ValueError:
            raise _Unknown from None  # a host name or a non-CIDR mask
    return tuple(out)


def _iface(text: str) -> str:
    return text[:-1] + "*" if text.endswith("+") else text


def _proto_value(text: str) -> tuple[Element, ...]:
    if text.isdigit():
        return ((int(text), int(text)),)
    if text.lower() in PROTOCOLS:
        n = PROTOCOLS[text.lower()]
        return ((n, n),)
    raise _Unknown


def _mark(text: str) -> tuple[int, int | None]:
    value, _, mask = text.partition("/")
    return int(value, 0), (int(mask, 0) if mask else None)


def _parse_rule(
    family: str, table: str, chain: str, index: int, line: str, fam: int
) -> tuple[Rule, bool]:
    """One ``-A CHAIN ...`` line; returns (rule, understood)."""
    if '"' in line or "'" in line or "\\" in line:
        try:
            words = shlex.split(line)  # quoted comments and names; slow, so only then
        except ValueError:
            words = line.split()
    else:
        words = line.split()
    matches: list[Match] = []
    sets: list[tuple[str, int | None]] = []
    action = Action(ActionKind.CONTINUE)
    proto: str | None = None
    module: str | None = None
    unknown = False
    negate = False
    i = 2  # skip "-A CHAIN"

    def value() -> str:
        nonlocal i
        if i + 1 >= len(words):
            raise _Unknown
        i += 1
        return words[i]

    def add(m: Match) -> None:
        nonlocal negate
        matches.append(m)
        negate = False

    while i < len(words):
        w = words[i]
        try:
            if w == "!":
                negate = True
            elif w in ("-s", "--source", "-d", "--destination"):
                key = "saddr" if w in ("-s", "--source") else "daddr"
                add(Match((key,), negate, _addresses(value()), family=fam))
            elif w in ("-p", "--protocol"):
                p = value().lower()
                proto = p if p in ("tcp", "udp") else proto
                p = {"ipv6-icmp": "icmpv6", "icmp6": "icmpv6"}.get(p, p)
                if p not in ("all", "0"):
                    add(Match(("l4proto",), negate, _proto_value(p)))
            elif w in ("-i", "--in-interface", "-o", "--out-interface"):
                key = "iifname" if w in ("-i", "--in-interface") else "oifname"
                add(Match((key,), negate, (_iface(value()),)))
            elif w in ("-m", "--match"):
                module = value()
                if module not in (
                    "tcp",
                    "udp",
                    "multiport",
                    "conntrack",
                    "state",
                    "addrtype",
                    "comment",
                    "mark",
                    "connmark",
                    "iprange",
                    "pkttype",
                    "icmp",
                    "icmp6",
                ):
                    raise _Unknown
            elif w in ("--dport", "--destination-port", "--sport", "--source-port"):
                key = "dport" if w.startswith(("--dport", "--destination")) else "sport"
                add(Match((key,), negate, _ports(value()), proto=module or proto))
            elif w in ("--dports", "--destination-ports", "--sports", "--source-ports"):
                key = "dport" if w.startswith(("--dports", "--destination")) else "sport"
                add(Match((key,), negate, _ports(value()), proto=proto))
            elif w == "--ports":
                raise _Unknown  # either port: not one key
            elif w in ("--ctstate", "--state"):
                states = tuple(s.lower() for s in value().split(","))
                add(Match(("ctstate",), negate, states))
            elif w == "--ctstatus":
                add(Match(("ctstatus",), negate, tuple(s.lower() for s in value().split(","))))
            elif w == "--ctdir":
                add(Match(("ctdirection",), negate, (value().lower(),)))
            elif w in ("--dst-type", "--src-type"):
                key = "addrtype-dst" if w == "--dst-type" else "addrtype-src"
                types = tuple(value().split(","))
                if i + 1 < len(words) and words[i + 1].startswith("--limit-iface"):
                    raise _Unknown
                add(Match((key,), negate, types))
            elif w == "--comment":
                value()
            elif w == "--mark":
                v, mask = _mark(value())
                key = "ctmark" if module == "connmark" else "mark"
                add(Match((key,), negate, ((v, v),), mask=mask))
            elif w in ("--src-range", "--dst-range"):
                lo, _, hi = value().partition("-")
                key = "saddr" if w == "--src-range" else "daddr"
                add(Match((key,), negate, (address_range(lo, hi),), family=fam))
            elif w in ("--icmp-type", "--icmpv6-type"):
                from portscope.firewall._nft import ICMP_TYPES

                name = value().split("/")[0]
                if "/" in words[i]:
                    raise _Unknown  # a code too: not modelled
                n = int(name) if name.isdigit() else ICMP_TYPES.get(name)
                if n is None:
                    raise _Unknown
                proto_name = "icmp" if w == "--icmp-type" else "icmpv6"
                add(Match(("icmptype",), negate, ((n, n),), proto=proto_name))
            elif w == "--pkt-type":
                add(Match(("pkttype",), negate, (value(),)))
            elif w == "--syn":
                add(Match(("tcpflags",), negate, ((0x02, 0x02),), proto="tcp", mask=0x17))
            elif w == "--tcp-flags":
                mask_names, comp_names = value(), value()
                mask = _tcp_flags(mask_names)
                comp = _tcp_flags(comp_names)
                add(Match(("tcpflags",), negate, ((comp, comp),), proto="tcp", mask=mask))
            elif w in ("-j", "--jump", "-g", "--goto"):
                target = value()
                action, sets = _target(target, words, i, fam)
                if w in ("-g", "--goto"):
                    action = Action(ActionKind.GOTO, target=target)
                break
            else:
                raise _Unknown
        except (_Unknown, ValueError):
            unknown = True
            matches.append(Match(("unknown",), text=w))
            # skip this option's arguments: up to the next option
            while i + 1 < len(words) and not words[i + 1].startswith("-") and words[i + 1] != "!":
                i += 1
            negate = False
        i += 1
    if action.kind is ActionKind.UNKNOWN:
        unknown = True
    rule = Rule(
        family,
        table,
        chain,
        index,
        tuple(matches),
        action,
        line,
        tuple(sets),
        line if unknown else None,
    )
    return rule, not unknown


def _tcp_flags(text: str) -> int:
    names = {"FIN": 1, "SYN": 2, "RST": 4, "PSH": 8, "ACK": 16, "URG": 32, "ALL": 63, "NONE": 0}
    total = 0
    for n in text.split(","):
        if n not in names:
            raise _Unknown
        total |= names[n]
    return total


def _target(
    target: str, words: list[str], i: int, fam: int
) -> tuple[Action, list[tuple[str, int | None]]]:
    opts: dict[str, str] = {}
    j = i + 1
    while j < len(words):
        if words[j].startswith("--"):
            if words[j] in _NO_VALUE or j + 1 >= len(words):
                opts[words[j]] = ""
                j += 1
            else:
                opts[words[j]] = words[j + 1]
                j += 2
        else:
            j += 1
    if target in ("ACCEPT", "DROP", "RETURN"):
        return Action(ActionKind(target.lower())), []
    if target == "REJECT":
        kind = _REJECT.get(opts.get("--reject-with", "icmp-port-unreachable"))
        if kind is None:
            return Action(ActionKind.UNKNOWN), []
        return Action(ActionKind.REJECT, target=kind), []
    if target == "DNAT":
        dest = opts.get("--to-destination", "")
        addr, port = _destination(dest, fam)
        if addr is None:
            return Action(ActionKind.UNKNOWN), []
        return Action(ActionKind.DNAT, address=addr or None, port=port), []
    if target == "REDIRECT":
        ports = opts.get("--to-ports")
        if ports is not None and not ports.isdigit():
            return Action(ActionKind.UNKNOWN), []
        return Action(ActionKind.REDIRECT, port=int(ports) if ports else None), []
    if target in ("MASQUERADE", "SNAT"):
        return Action(ActionKind.ACCEPT), []
    if target in ("LOG", "NFLOG", "TRACE"):
        return Action(ActionKind.CONTINUE), []
    if target in ("MARK", "CONNMARK"):
        key = "mark" if target == "MARK" else "ctmark"
        spec = opts.get("--set-mark") or opts.get("--set-xmark")
        if spec is None:
            return Action(ActionKind.UNKNOWN), []
        value, mask = _mark(spec)
        if mask not in (None, 0xFFFFFFFF):
            return Action(ActionKind.CONTINUE), [(key, None)]
        return Action(ActionKind.CONTINUE), [(key, value)]
    if target == "NOTRACK" or (target == "CT" and "--notrack" in opts):
        return Action(ActionKind.CONTINUE), [("notrack", 0)]
    # a user chain, or an extension target not modelled (QUEUE, NFQUEUE, TPROXY ...): the
    # caller makes it unknown when no chain of that name exists in the table
    return Action(ActionKind.JUMP, target=target), []


def _destination(dest: str, fam: int) -> tuple[str | None, int | None]:
    """``addr[:port]`` / ``[v6]:port`` / ``:port`` of ``--to-destination`` (address ``""``
    keeps the address); ``(None, None)`` for what is not modelled (ranges)."""
    if not dest:
        return None, None
    if dest.startswith("["):
        addr, _, rest = dest[1:].partition("]")
        port_text = rest[1:] if rest.startswith(":") else ""
    elif fam == 6 and dest.count(":") > 1:
        addr, port_text = dest, ""
    else:
        addr, _, port_text = dest.partition(":")
    if "-" in addr or "-" in port_text:
        return None, None  # ranges: the kernel picks; not modelled
    if port_text and not port_text.isdigit():
        return None, None
    return addr, int(port_text) if port_text else None


def parse_save(text: str, *, family: int, source: str = "iptables") -> Ruleset:
    """The model of ``iptables-save`` (``family=4``) or ``ip6tables-save`` (6) output.

    Args:
        text: the saved ruleset.
        family: 4 or 6.
        source: what to call it (``iptables-legacy``, ``iptables-nft``).

    Returns:
        The ruleset, in nftables terms: family ``ip``/``ip6``, the table and chain names.
    """
    fam_name = "ip" if family == 4 else "ip6"
    rs = Ruleset(source=source)
    table: str | None = None
    counts: dict[str, int] = {}
    unknown = 0
    pending: list[tuple[str, str]] = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("*"):
            table = line[1:]
            continue
        if line == "COMMIT" or table is None:
            continue
        if line.startswith(":"):
            parts = line[1:].split()
            name = parts[0]
            policy = parts[1] if len(parts) > 1 else "-"
            chain = Chain(fam_name, table, name)
            if name in _HOOKS and policy != "-":
                chain.hook = _HOOKS[name]
                chain.type = "nat" if table == "nat" else "filter"
                chain.priority = (
                    _NAT_PRIORITY.get(name, 0) if table == "nat" else _PRIORITY.get(table, 0)
                )
                chain.policy = policy.lower()
            rs.chains[(fam_name, table, name)] = chain
            continue
        if line.startswith("-A "):
            pending.append((table, line))
    for table_name, line in pending:
        name = line.split()[1]
        chain = rs.chains.setdefault(
            (fam_name, table_name, name), Chain(fam_name, table_name, name)
        )
        counts[name] = counts.get(name, 0) + 1
        rule, ok = _parse_rule(fam_name, table_name, name, len(chain.rules) + 1, line, family)
        if rule.action.kind is ActionKind.JUMP and (
            (fam_name, table_name, rule.action.target) not in rs.chains
        ):
            rule = Rule(
                rule.family,
                rule.table,
                rule.chain,
                rule.handle,
                rule.matches,
                Action(ActionKind.UNKNOWN),
                rule.text,
                rule.sets,
                rule.text,
            )
            ok = False
        unknown += not ok
        chain.rules.append(rule)
    if unknown:
        rs.notes.append(
            f"{unknown} {source} rule(s) use matches or targets the model does not evaluate; "
            "a verdict they could decide is 'unknown'"
        )
    return rs
