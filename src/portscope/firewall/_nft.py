"""The nftables reader: ``nft -j list ruleset`` (libnftables-json(5)) into the model.

Each rule's ``expr`` list becomes matches (``{"match": {"op", "left", "right"}}``) and one
action (the verdict or NAT statement); side effects (``meta mark set``, ``ct mark set``,
``notrack``) are kept in order; counters, logs, comments and dynamic set updates do not
change a verdict and are skipped. An expression or statement not listed here becomes an
``unknown`` match or action quoting the rule, so the evaluator never guesses.

The rule text quoted to people comes from ``nft -a list ruleset`` (the same handles), parsed
by :func:`rule_texts`; when it is missing the JSON of the rule is quoted.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from portscope.firewall._model import (
    PROTOCOLS,
    REJECT_KINDS,
    Action,
    ActionKind,
    Chain,
    Element,
    Match,
    Rule,
    Ruleset,
    Scalar,
    address_interval,
    address_range,
)

TCP_FLAGS = {
    "fin": 0x01,
    "syn": 0x02,
    "rst": 0x04,
    "psh": 0x08,
    "ack": 0x10,
    "urg": 0x20,
    "ecn": 0x40,
    "cwr": 0x80,
}
# nft(8) icmp/icmpv6 type names (and iptables' spellings) -> type numbers
ICMP_TYPES = {
    "echo-reply": 0,
    "destination-unreachable": 3,
    "echo-request": 8,
    "time-exceeded": 11,
    "packet-too-big": 2,
    "parameter-problem": 4,
    "mld-listener-query": 130,
    "mld-listener-report": 131,
    "mld-listener-done": 132,
    "mld-listener-reduction": 132,
    "nd-router-solicit": 133,
    "nd-router-advert": 134,
    "nd-neighbor-solicit": 135,
    "nd-neighbor-advert": 136,
    "nd-redirect": 137,
    "mld2-listener-report": 143,
    "router-solicitation": 133,
    "router-advertisement": 134,
    "neighbour-solicitation": 135,
    "neighbor-solicitation": 135,
    "neighbour-advertisement": 136,
    "neighbor-advertisement": 136,
    "redirect": 137,
}
# nft(8) "CHAIN PRIORITY": names of the standard priorities.
PRIORITIES = {
    "raw": -300,
    "mangle": -150,
    "dstnat": -100,
    "filter": 0,
    "security": 50,
    "srcnat": 100,
}
_ADDR_FIELDS = {
    ("ip", "saddr"): ("saddr", 4),
    ("ip", "daddr"): ("daddr", 4),
    ("ip6", "saddr"): ("saddr", 6),
    ("ip6", "daddr"): ("daddr", 6),
}
_L4 = ("tcp", "udp", "th", "udplite", "sctp", "dccp")
_META = {
    "iifname": "iifname",
    "iif": "iifname",
    "oifname": "oifname",
    "oif": "oifname",
    "l4proto": "l4proto",
    "nfproto": "nfproto",
    "mark": "mark",
    "pkttype": "pkttype",
    "protocol": "nfproto",
}
_CT = {"state": "ctstate", "status": "ctstatus", "direction": "ctdirection", "mark": "ctmark"}
_NOOP = {"counter", "log", "limit-noop", "set", "map", "meter", "quota-noop", "ct count-noop"}
_HANDLE_RE = re.compile(r"\s#\s*handle\s+(\d+)\s*$")


class _Unknown(Exception):
    """An expression the model does not understand."""


def _key(left: Any) -> tuple[tuple[str, ...], int | None, str | None, int | None]:
    """(keys, family, proto, mask) of a match's left side.

    Raises:
        _Unknown: an expression not modelled.
    """
    if isinstance(left, dict) and "&" in left:
        inner, mask = left["&"]
        keys, fam, proto, _ = _key(inner)
        return keys, fam, proto, _flags(mask)
    if isinstance(left, dict) and "concat" in left:
        parts: list[str] = []
        fam = proto = None
        for part in left["concat"]:
            k, f, p, m = _key(part)
            if m is not None or len(k) != 1:
                raise _Unknown
            parts.append(k[0])
            fam = fam or f
            proto = proto or p
        return tuple(parts), fam, proto, None
    if not isinstance(left, dict) or len(left) != 1:
        raise _Unknown
    ((kind, body),) = left.items()
    if kind == "payload":
        proto_name, fld = body.get("protocol"), body.get("field")
        if (proto_name, fld) in _ADDR_FIELDS:
            key, fam = _ADDR_FIELDS[(proto_name, fld)]
            return (key,), fam, None, None
        if (proto_name, fld) in (("ip", "protocol"), ("ip6", "nexthdr")):
            return ("l4proto",), 4 if proto_name == "ip" else 6, None, None
        if proto_name in _L4 and fld in ("sport", "dport"):
            return (fld,), None, proto_name, None
        if proto_name == "tcp" and fld == "flags":
            return ("tcpflags",), None, "tcp", None
        if proto_name in ("icmp", "icmpv6") and fld == "type":
            return ("icmptype",), None, proto_name, None
        raise _Unknown
    if kind == "meta" and body.get("key") in _META:
        return (_META[body["key"]],), None, None, None
    if kind == "ct" and body.get("key") in _CT and "dir" not in body:
        return (_CT[body["key"]],), None, None, None
    if kind == "fib" and body.get("result") == "type":
        flags = sorted(body.get("flags", []))
        if flags == ["daddr"]:
            return ("fibdaddr",), None, None, None
        if flags == ["daddr", "iif"]:
            return ("fibdaddr-iif",), None, None, None
    raise _Unknown


def _flags(value: Any) -> int:
    if isinstance(value, int):
        return value
    names = value if isinstance(value, list) else [value]
    total = 0
    for n in names:
        if isinstance(n, int):
            total |= n
        elif n in TCP_FLAGS:
            total |= TCP_FLAGS[n]
        else:
            raise _Unknown
    return total


def _scalar(key: str, value: Any) -> Scalar:
    """One value of one key in the model's form.

    Raises:
        _Unknown: a value not modelled for that key.
    """
    if isinstance(value, dict) and "elem" in value:
        return _scalar(key, value["elem"].get("val"))
    if key in ("saddr", "daddr"):
        if isinstance(value, str):
            return address_interval(value)
        if isinstance(value, dict) and "prefix" in value:
            p = value["prefix"]
            return address_interval(f"{p['addr']}/{p['len']}")
        if isinstance(value, dict) and "range" in value:
            lo, hi = value["range"]
            return address_range(lo, hi)
        raise _Unknown
    if key in ("sport", "dport", "mark", "ctmark", "l4proto", "nfproto", "tcpflags", "icmptype"):
        if isinstance(value, dict) and "range" in value:
            lo, hi = value["range"]
            return (_number(key, lo), _number(key, hi))
        n = _number(key, value)
        return (n, n)
    if key in ("iifname", "oifname"):
        if not isinstance(value, str):
            raise _Unknown
        if value.endswith("\\*"):
            return value[:-2] + "*"  # an escaped star is a literal star, rare; keep as is
        return value
    if key in ("ctstate", "ctstatus", "ctdirection", "fibdaddr", "fibdaddr-iif", "pkttype"):
        if isinstance(value, str):
            return value
        raise _Unknown
    raise _Unknown


def _number(key: str, value: Any) -> int:
    if isinstance(value, bool):
        raise _Unknown
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        if key == "l4proto" and value in PROTOCOLS:
            return PROTOCOLS[value]
        if key == "nfproto" and value in ("ipv4", "ip"):
            return 4
        if key == "nfproto" and value in ("ipv6", "ip6"):
            return 6
        if key == "tcpflags":
            return _flags(value)
        if key == "icmptype" and value in ICMP_TYPES:
            return ICMP_TYPES[value]
        if value.isdigit():
            return int(value)
        if value.startswith("0x"):
            return int(value, 16)
    raise _Unknown


def _element(keys: tuple[str, ...], value: Any) -> Element:
    if isinstance(value, dict) and "elem" in value:
        value = value["elem"].get("val")
    if len(keys) > 1:
        if not (isinstance(value, dict) and "concat" in value):
            raise _Unknown
        parts = value["concat"]
        if len(parts) != len(keys):
            raise _Unknown
        return tuple(_scalar(k, v) for k, v in zip(keys, parts, strict=True))
    return _scalar(keys[0], value)


def _elements(keys: tuple[str, ...], right: Any) -> tuple[tuple[Element, ...] | None, str | None]:
    """(elements, set name) of a match's right side."""
    if isinstance(right, str) and right.startswith("@"):
        return None, right[1:]
    if isinstance(right, dict) and "set" in right:
        return tuple(_element(keys, v) for v in right["set"]), None
    if isinstance(right, list):  # flags: ct state { established, related } as a list
        return tuple(_element(keys, v) for v in right), None
    return (_element(keys, right),), None


def _compare(keys: tuple[str, ...], op: str, right: Any) -> tuple[Element, ...]:
    """``<``, ``>``, ``<=``, ``>=`` on a number as intervals."""
    if len(keys) != 1 or keys[0] not in ("sport", "dport", "mark", "ctmark"):
        raise _Unknown
    n = _number(keys[0], right)
    top = 0xFFFF if keys[0] in ("sport", "dport") else 0xFFFFFFFF
    bounds = {"<": (0, n - 1), "<=": (0, n), ">": (n + 1, top), ">=": (n, top)}
    return (bounds[op],)


def _match(body: Mapping[str, Any]) -> Match:
    op = body.get("op", "==")
    keys, fam, proto, mask = _key(body["left"])
    right = body["right"]
    if op in ("<", ">", "<=", ">="):
        return Match(keys, values=_compare(keys, op, right), family=fam, proto=proto, mask=mask)
    if op not in ("==", "!=", "in"):
        raise _Unknown
    if keys == ("ctstate",) or keys == ("ctstatus",):
        # bit flags: "ct state established,related" matches any of them
        names = right if isinstance(right, list) else [right]
        if isinstance(right, dict) and "set" in right:
            names = right["set"]
        if not all(isinstance(n, str) for n in names):
            raise _Unknown
        return Match(keys, negate=op == "!=", values=tuple(names))
    if mask is not None and keys == ("tcpflags",):
        flag_values: tuple[Element, ...]
        if isinstance(right, dict) and "set" in right:
            flag_values = tuple((_flags(v), _flags(v)) for v in right["set"])
        else:
            f = _flags(right)
            flag_values = ((f, f),)
        return Match(keys, negate=op == "!=", values=flag_values, proto="tcp", mask=mask)
    if mask is not None:
        raise _Unknown
    values, set_name = _elements(keys, right)
    return Match(keys, negate=op == "!=", values=values, set_name=set_name, family=fam, proto=proto)


def _verdict(stmt: Mapping[str, Any]) -> Action | None:
    """A verdict statement as an action, or ``None`` when ``stmt`` is not one."""
    ((kind, body),) = stmt.items()
    if kind in ("accept", "drop", "return", "continue"):
        return Action(ActionKind(kind))
    if kind in ("jump", "goto"):
        return Action(ActionKind(kind), target=body["target"])
    return None


def _reject(body: Any, family: str) -> Action:
    if not body:
        return Action(ActionKind.REJECT, target="port-unreachable")
    typ = body.get("type", "icmpx")
    if typ == "tcp reset":
        return Action(ActionKind.REJECT, target="tcp-reset")
    code = str(body.get("expr", "port-unreachable"))
    # icmpx no-route is ICMP net-unreachable over IPv4, ICMPv6 no-route over IPv6 (nft(8))
    code = {
        "adm-prohibited": "admin-prohibited",
        "addr-unreachable": "addr-unreachable",
        "net-unreachable": "no-route" if typ == "icmpv6" else "net-unreachable",
    }.get(code, code)
    if code not in REJECT_KINDS:
        raise _Unknown
    return Action(ActionKind.REJECT, target=code)


def _statement(stmt: Mapping[str, Any], family: str) -> tuple[str, Any]:
    """Classify a statement: ("action", Action) | ("set", (key, value)) | ("noop", None).

    Raises:
        _Unknown: a statement not modelled.
    """
    verdict = _verdict(stmt)
    if verdict is not None:
        return "action", verdict
    ((kind, body),) = stmt.items()
    if kind in ("counter", "log", "set", "map", "meter", "comment"):
        return "noop", None
    if kind == "reject":
        return "action", _reject(body, family)
    if kind == "dnat":
        if not isinstance(body, dict) or set(body) - {"addr", "port", "family", "flags"}:
            raise _Unknown
        addr = body.get("addr")
        port = body.get("port")
        if addr is not None and not isinstance(addr, str):
            raise _Unknown
        if port is not None and not isinstance(port, int):
            raise _Unknown
        return "action", Action(ActionKind.DNAT, address=addr, port=port)
    if kind == "redirect":
        port = body.get("port") if isinstance(body, dict) else None
        if port is not None and not isinstance(port, int):
            raise _Unknown
        return "action", Action(ActionKind.REDIRECT, port=port)
    if kind in ("snat", "masquerade"):
        return "action", Action(ActionKind.ACCEPT)  # source NAT: terminal, lets it through
    if kind == "mangle":
        key = body.get("key", {})
        value = body.get("value")
        if not isinstance(value, int):
            raise _Unknown
        if key == {"meta": {"key": "mark"}}:
            return "set", ("mark", value)
        if key == {"ct": {"key": "mark"}}:
            return "set", ("ctmark", value)
        raise _Unknown
    if kind == "notrack":
        return "set", ("notrack", 0)
    if kind == "vmap":
        keys, _, _, mask = _key(body["key"])
        if mask is not None:
            raise _Unknown
        data = body["data"]
        if isinstance(data, str) and data.startswith("@"):
            return "action", Action(ActionKind.VMAP, target=data[1:], key=keys)
        entries = tuple(_map_entry(keys, e) for e in data["set"])
        return "action", Action(ActionKind.VMAP, key=keys, entries=entries)
    raise _Unknown


def _map_entry(keys: tuple[str, ...], entry: Any) -> tuple[Element, Action]:
    k, v = entry
    action = _verdict(v) if isinstance(v, dict) and len(v) == 1 else None
    if action is None:
        raise _Unknown
    return _element(keys, k), action


def _rule(obj: Mapping[str, Any], text: str | None) -> Rule:
    family, table, chain = obj["family"], obj["table"], obj["chain"]
    handle = obj.get("handle")
    shown = text or json.dumps(obj.get("expr", []), separators=(",", ":"))
    matches: list[Match] = []
    sets: list[tuple[str, int | None]] = []
    action: Action | None = None
    unknown: str | None = None
    for stmt in obj.get("expr", []):
        if not isinstance(stmt, dict) or len(stmt) != 1:
            unknown = shown
            matches.append(Match(("unknown",), text=json.dumps(stmt)))
            continue
        ((kind, body),) = stmt.items()
        if action is not None and action.kind is not ActionKind.CONTINUE:
            break  # nothing after a verdict runs
        try:
            if kind == "match":
                matches.append(_match(body))
                continue
            if kind in ("limit", "quota", "numgen", "ct count", "secmark", "synproxy"):
                raise _Unknown
            what, value = _statement(stmt, family)
        except (_Unknown, KeyError, TypeError, ValueError):
            unknown = shown
            if kind in ("match", "limit", "quota", "ct count", "numgen"):
                # a condition the model cannot decide: both worlds are followed
                matches.append(Match(("unknown",), text=json.dumps({kind: body})))
                continue
            what, value = "action", Action(ActionKind.UNKNOWN)
        if what == "set":
            sets.append(value)
        elif what == "action":
            action = value
    return Rule(
        family,
        table,
        chain,
        handle,
        tuple(matches),
        action or Action(ActionKind.CONTINUE),
        shown,
        tuple(sets),
        unknown,
    )


def rule_texts(text: str) -> dict[tuple[str, str, str, int], str]:
    """(family, table, chain, handle) -> rule text, from ``nft -a list ruleset``."""
    out: dict[tuple[str, str, str, int], str] = {}
    family = table = chain = None
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("table "):
            parts = line.split()
            if len(parts) >= 3:
                family, table = parts[1], parts[2]
            chain = None
            continue
        if line.startswith("chain ") and "{" in line:
            chain = line.split()[1]
            continue
        if (
            "{" in line
            and not _HANDLE_RE.search(line.split("{")[0] + " ")
            and (line.rstrip().endswith("{") or line.split("#")[0].rstrip().endswith("{"))
        ):
            chain = None  # a set, map, flowtable or object block
            continue
        m = _HANDLE_RE.search(line)
        if m and family and table and chain:
            out[(family, table, chain, int(m.group(1)))] = line[: m.start()].strip()
    return out


def parse_ruleset(
    data: Any, texts: Mapping[tuple[str, str, str, int], str] | None = None
) -> Ruleset:
    """The model of a ``nft -j list ruleset`` document.

    Args:
        data: the decoded JSON (``{"nftables": [...]}``).
        texts: rule texts by (family, table, chain, handle) (``rule_texts``).

    Returns:
        The ruleset; ``notes`` say what was not understood.

    Raises:
        ValueError: not a libnftables JSON document.
    """
    if not isinstance(data, dict) or not isinstance(data.get("nftables"), list):
        raise ValueError("not an nftables JSON document (no 'nftables' list)")
    texts = texts or {}
    rs = Ruleset(source="nftables")
    for item in data["nftables"]:
        if not isinstance(item, dict) or len(item) != 1:
            continue
        ((kind, obj),) = item.items()
        if kind == "chain":
            prio = obj.get("prio", 0)
            if isinstance(prio, str):
                prio = PRIORITIES.get(prio, 0)
            elif isinstance(prio, dict):
                prio = 0
            dev = obj.get("dev")
            rs.chains[(obj["family"], obj["table"], obj["name"])] = Chain(
                obj["family"],
                obj["table"],
                obj["name"],
                obj.get("hook"),
                obj.get("type", "filter"),
                int(prio),
                obj.get("policy"),
                dev if isinstance(dev, str) else None,
            )
        elif kind in ("set", "map"):
            key = (obj["family"], obj["table"], obj["name"])
            _add_set(rs, kind, key, obj)
    for item in data["nftables"]:
        if isinstance(item, dict) and "rule" in item:
            obj = item["rule"]
            ckey = (obj["family"], obj["table"], obj["chain"])
            chain = rs.chains.get(ckey)
            if chain is None:
                continue
            text = texts.get((*ckey, obj.get("handle", -1)))
            chain.rules.append(_rule(obj, text))
    unknown = [r for c in rs.chains.values() for r in c.rules if r.unknown]
    if unknown:
        rs.notes.append(
            f"{len(unknown)} rule(s) use expressions the model does not evaluate; a verdict "
            "they could decide is 'unknown'"
        )
    return rs


def _set_keys(obj: Mapping[str, Any]) -> tuple[str, ...] | None:
    typ = obj.get("type")
    types = typ if isinstance(typ, list) else [typ]
    names = {
        "ipv4_addr": "saddr",
        "ipv6_addr": "saddr",
        "inet_service": "dport",
        "inet_proto": "l4proto",
        "ifname": "iifname",
        "mark": "mark",
        "ct_state": "ctstate",
    }
    keys = [names.get(str(t)) for t in types]
    if any(k is None for k in keys):
        return None
    return tuple(k for k in keys if k is not None)


def _add_set(rs: Ruleset, kind: str, key: tuple[str, str, str], obj: Mapping[str, Any]) -> None:
    keys = _set_keys(obj)
    elems = obj.get("elem", [])
    if keys is None:
        rs.notes.append(f"{kind} {key[1]} {key[2]}: type {obj.get('type')} is not modelled")
        return
    try:
        if kind == "map":
            if obj.get("map") != "verdict":
                return
            rs.maps[key] = tuple(_map_entry(keys, e) for e in elems)
        else:
            rs.sets[key] = tuple(_element(keys, e) for e in elems)
    except (_Unknown, KeyError, TypeError, ValueError):
        rs.notes.append(f"{kind} {key[1]} {key[2]}: elements not understood")
