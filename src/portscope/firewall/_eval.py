"""The evaluator: what the kernel does with a new TCP SYN or UDP datagram (pure).

The packet goes through the netfilter hooks in the kernel's order (``net/netfilter/core.c``,
``Documentation/networking/nf_conntrack`` and nft(8) "ADDRESS FAMILIES"):

* from another host: ``ingress`` (netdev/inet chains of the arriving device), ``prerouting``
  (raw, conntrack, mangle, then ``dstnat``: DNAT/REDIRECT), the routing decision (a local
  address: ``input``; else, when forwarding is on, ``forward`` then ``postrouting``);
* from this host (``local_origin``): ``output`` (nat output may DNAT), ``postrouting``, then
  back in on ``lo`` through ``input`` (prerouting is skipped for loopback-delivered packets
  only in the sense that the packet is already routed; the kernel runs input hooks on it).

At each hook every base chain of a matching family (``ip``/``ip6``/``inet``) runs in
priority order; ``accept`` ends one base chain only, ``drop`` and ``reject`` end the packet;
``jump`` pushes a return point, ``goto`` does not, ``return`` (or a regular chain's end)
pops, and the base chain's policy applies when nothing is left. A nat chain's DNAT ends the
nat chains of that hook (``nf_nat_inet_fn``: once a binding exists the rest are skipped).

Three values: a match is true, false or unknown (``None``: an expression the model does not
understand, a source port range that only partly overlaps). At an unknown match both worlds
are followed; when every world ends in the same verdict the answer is definite, otherwise it
is ``unknown`` and the rules that made it so are quoted (the approach of Diekmann et al.,
"Semantics-Preserving Simplification of Real-World Firewall Rule Sets", FM 2015). The number
of worlds is bounded (``MAX_WORLDS``); beyond it the answer is ``unknown``.

Assumptions, documented in docs/firewall.md: a packet from another host carries mark 0 (no
``tc`` action marked it); routing is the main table's longest prefix (no policy routing);
the connection is new (no conntrack entry), so ``ct state`` is ``new``.
"""

from __future__ import annotations

import dataclasses
import functools
import ipaddress
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from portscope.firewall._model import (
    PROTOCOLS,
    Action,
    ActionKind,
    Chain,
    Element,
    Match,
    Rule,
    Ruleset,
    Verdict,
)

MAX_WORLDS = 512


@functools.lru_cache(maxsize=4096)
def _address(text: str) -> tuple[int, int]:
    """(version, integer) of an address literal; cached: every rule compares with the same
    few addresses."""
    ip = ipaddress.ip_address(text)
    return ip.version, int(ip)


@functools.lru_cache(maxsize=4096)
def _special(text: str) -> tuple[bool, bool, bool]:
    """(loopback, multicast, link-local) of an address literal."""
    ip = ipaddress.ip_address(text)
    return ip.is_loopback, ip.is_multicast, ip.is_link_local


MAX_DEPTH = 16  # nftables refuses deeper jump stacks (NFT_JUMP_STACK_SIZE)

HOOKS_FAMILIES = {4: ("ip", "inet"), 6: ("ip6", "inet")}


@dataclass(frozen=True, slots=True)
class Route:
    """One route of the main table: ``dst`` (family, low, high), prefix length, device."""

    family: int
    low: int
    high: int
    prefix: int
    device: str | None
    kind: str = "unicast"  # unicast, blackhole, unreachable, prohibit


@dataclass(frozen=True, slots=True)
class HostFacts:
    """What the evaluator needs to know about the host besides its ruleset.

    Attributes:
        addresses: interface name -> its addresses (``ip -j address``).
        forwarding: family (4/6) -> whether the host forwards (``net.ipv4.ip_forward``,
            ``net.ipv6.conf.all.forwarding``).
        route_localnet: ``net.ipv4.conf.all.route_localnet`` (DNAT to 127.0.0.1 from
            another host is dropped as martian without it).
        routes: the main routing table.
        netns: the network namespace these facts are from (a path), or ``None``.
    """

    addresses: Mapping[str, tuple[str, ...]]
    forwarding: Mapping[int, bool] = field(default_factory=dict)
    route_localnet: bool = False
    routes: tuple[Route, ...] = ()
    netns: str | None = None

    def is_local(self, address: str) -> bool:
        """True when ``address`` is this host's (any interface, or a loopback address)."""
        if _special(address)[0]:
            return True
        return any(address in addrs for addrs in self.addresses.values())

    def interface_of(self, address: str) -> str | None:
        """The interface that holds ``address``, or ``None``."""
        for name, addrs in self.addresses.items():
            if address in addrs:
                return name
        return None

    def route(self, address: str) -> Route | None:
        """The longest-prefix route of the main table to ``address``, or ``None``."""
        version, value = _address(address)
        best = None
        for r in self.routes:
            if (r.family == version and r.low <= value <= r.high) and (
                best is None or r.prefix > best.prefix
            ):
                best = r
        return best

    def primary_address(self, interface: str, family: int) -> str | None:
        """The first address of ``family`` on ``interface`` (REDIRECT's new destination)."""
        for a in self.addresses.get(interface, ()):
            if ipaddress.ip_address(a).version == family:
                return a
        return None


@dataclass(frozen=True, slots=True)
class Packet:
    """The first packet of a new connection.

    Attributes:
        family: 4 or 6.
        proto: ``tcp`` (a SYN) or ``udp`` (a datagram).
        saddr: source address.
        daddr: destination address (this host's, or one DNAT'd elsewhere).
        dport: destination port.
        iif: the interface it arrives on (``None`` for a packet this host sends).
        sport: the source port range the client may use (default 32768-65535: the
            ephemeral ranges of Linux, 32768-60999, and of Windows and macOS, 49152-65535,
            RFC 6335 section 6). A match on the source port (or, for the answer, on the
            destination port) is unknown unless the whole range matches or none of it.
        local_origin: the packet is sent by this host (``why connect`` to a local address).
    """

    family: int
    proto: str
    saddr: str
    daddr: str
    dport: int
    iif: str | None
    sport: tuple[int, int] = (32768, 65535)
    local_origin: bool = False


@dataclass(frozen=True, slots=True)
class Step:
    """What one base chain did with the packet.

    Attributes:
        hook: the netfilter hook.
        chain: ``family table chain``.
        action: ``accept``, ``drop``, ``reject``, ``dnat``, ``redirect``, ``policy accept``,
            ``policy drop``.
        rule: the rule that decided, or ``None`` for a policy.
    """

    hook: str
    chain: str
    action: str
    rule: Rule | None


# deliver(address, port, proto, local, iif) -> (open/closed/unknown, who receives it)
Deliver = Callable[[str, int, str, bool, str], tuple[Verdict, str | None]]


@dataclass(frozen=True, slots=True)
class Decision:
    """The model's answer for one packet.

    Attributes:
        verdict: open, closed, filtered, rejected or unknown.
        reason: the answer in words.
        rule: the deciding rule, or ``None`` (a policy, or no rule applied).
        chain: ``family table chain`` of the deciding rule or policy, or ``None``.
        reject: the reject kind (``tcp-reset``, ``admin-prohibited`` ...) when rejected.
        destination: (address, port) after DNAT/REDIRECT, or ``None`` without NAT.
        listener: what receives it (``python3[123] on 0.0.0.0:80``, ``netns ctr``), or
            ``None``.
        path: the base chains the packet went through, in order.
        unknown_rules: the rules whose evaluation the model could not decide (the quoted
            evidence of an ``unknown``); may be non-empty for a definite verdict when every
            possibility agreed.
        forwarded: True when the packet is forwarded (DNAT to another host or namespace).
    """

    verdict: Verdict
    reason: str
    rule: Rule | None = None
    chain: str | None = None
    reject: str | None = None
    destination: tuple[str, int] | None = None
    listener: str | None = None
    path: tuple[Step, ...] = ()
    unknown_rules: tuple[Rule, ...] = ()
    forwarded: bool = False


@dataclass(frozen=True, slots=True)
class _State:
    family: int
    proto: str
    saddr: str
    daddr: str
    dport: int | tuple[int, int]
    sport: int | tuple[int, int]
    iif: str
    oif: str = ""
    icmptype: int | None = None
    ctdirection: str = "original"
    mark: int = 0
    ctmark: int = 0
    ctstate: str = "new"
    dnat: bool = False
    nat_done: bool = False
    path: tuple[Step, ...] = ()
    assumed: tuple[Rule, ...] = ()


@dataclass(frozen=True, slots=True)
class _Leaf:
    verdict: Verdict
    reason: str
    state: _State
    rule: Rule | None = None
    chain: str | None = None
    reject: str | None = None
    listener: str | None = None
    forwarded: bool = False


class _TooMany(Exception):
    pass


def _port_prefilter(rs: Ruleset) -> dict[int, frozenset[int]]:
    """id(rule) -> the destination ports its plain ``dport`` match accepts (at most 4096),
    for rules that have one: a packet to another port cannot match them, whatever the rest
    says (the match is a conjunct), so the walk skips them without evaluating."""
    out: dict[int, frozenset[int]] = {}
    for chain in rs.chains.values():
        for rule in chain.rules:
            for m in rule.matches:
                if m.key != ("dport",) or m.negate or m.values is None or m.mask is not None:
                    continue
                ports: set[int] = set()
                for v in m.values:
                    if not (isinstance(v, tuple) and len(v) == 2 and isinstance(v[0], int)):
                        break
                    lo, hi = v[0], v[1]
                    if not isinstance(hi, int) or hi - lo > 4096 or len(ports) > 4096:
                        break
                    ports.update(range(lo, hi + 1))
                else:
                    out[id(rule)] = frozenset(ports)
                    break
    return out


def _chain_name(c: Chain) -> str:
    return f"{c.family} {c.table} {c.name}"


def _hook_chains(rs: Ruleset, hook: str, family: int, device: str | None) -> list[Chain]:
    fams = HOOKS_FAMILIES[family]
    chains = [
        c
        for c in rs.chains.values()
        if c.hook == hook
        and (c.family in fams or (hook == "ingress" and c.family == "netdev"))
        and (hook != "ingress" or c.device == device)
    ]
    chains.sort(key=lambda c: c.priority)
    return chains


class Evaluator:
    """Evaluate packets against one ruleset on one host (pure; reusable).

    Args:
        ruleset: the model of the host's rules.
        host: the host's addresses, forwarding and routes.
        deliver: who receives a packet that passes the firewall (the socket lookup);
            default: nobody is known (every delivered packet is ``unknown``).
    """

    def __init__(self, ruleset: Ruleset, host: HostFacts, deliver: Deliver | None = None) -> None:
        self.rs = ruleset
        self.host = host
        self.deliver = deliver or (lambda a, p, pr, loc, iif: (Verdict.UNKNOWN, None))
        self._worlds = 0
        self._ports = _port_prefilter(ruleset)

    # -- matches -------------------------------------------------------------------------

    def _field(self, key: str, m: Match, st: _State) -> object:
        """The packet's value for ``key``: int, (family, int), str, an interval, or
        ``False`` when the header does not exist for this packet (the rule cannot match)."""
        if key == "nfproto":
            return st.family
        if key == "l4proto":
            return PROTOCOLS[st.proto]
        if key in ("saddr", "daddr"):
            if m.family is not None and m.family != st.family:
                return False
            addr = st.saddr if key == "saddr" else st.daddr
            return _address(addr)
        if key in ("sport", "dport"):
            if st.proto not in ("tcp", "udp") or m.proto not in (None, "th", st.proto):
                return False
            return st.dport if key == "dport" else st.sport
        if key == "iifname":
            return st.iif
        if key == "oifname":
            return st.oif
        if key == "ctstate":
            return st.ctstate
        if key == "ctstatus":
            return "dnat" if st.dnat else ""
        if key == "ctdirection":
            return st.ctdirection
        if key == "mark":
            return st.mark
        if key == "ctmark":
            return st.ctmark
        if key in ("fibdaddr", "addrtype-dst"):
            local = self.host.is_local(st.daddr)
            multicast = _special(st.daddr)[1]
            word = "multicast" if multicast else "local" if local else "unicast"
            return word.upper() if key == "addrtype-dst" else word
        if key == "fibdaddr-iif":
            return "local" if st.daddr in self.host.addresses.get(st.iif, ()) else "unicast"
        if key == "addrtype-src":
            return "LOCAL" if self.host.is_local(st.saddr) else "UNICAST"
        if key == "pkttype":
            return "multicast" if _special(st.daddr)[1] else "host"
        if key == "icmptype":
            if st.icmptype is None or m.proto not in (None, st.proto):
                return False
            return st.icmptype
        if key == "tcpflags":
            if st.proto != "tcp":
                return False
            return 0x02  # SYN
        return None

    def _compare(self, value: object, element: Element) -> bool | None:
        if isinstance(value, tuple) and len(value) == 2 and isinstance(value[0], int):
            if isinstance(element, tuple) and len(element) == 3:  # address
                fam, lo, hi = element
                return bool(value[0] == fam and lo <= value[1] <= hi)
            if isinstance(element, tuple) and len(element) == 2:  # interval of an interval
                lo, hi = element
                vlo, vhi = value
                if lo <= vlo and vhi <= hi:
                    return True
                if vhi < lo or vlo > hi:
                    return False
                return None
            return False
        if isinstance(value, int):
            if isinstance(element, tuple) and len(element) == 2:
                lo, hi = element
                return isinstance(lo, int) and isinstance(hi, int) and lo <= value <= hi
            return False
        if isinstance(value, str):
            if isinstance(element, str):
                if element.endswith("*"):
                    return value.startswith(element[:-1])
                return value == element
            return False
        return None

    def _values(self, m: Match) -> tuple[Element, ...] | None:
        if m.values is not None:
            return m.values
        return None

    def _match(self, rule: Rule, m: Match, st: _State) -> bool | None:
        if m.key[0] == "unknown":
            return None
        elements = m.values
        if elements is None and m.set_name is not None:
            elements = self.rs.sets.get((rule.family, rule.table, m.set_name))
        if elements is None:
            return None
        result: bool | None = False
        if len(m.key) == 1:  # the common case, kept lean: every rule of a chain comes here
            f = self._field(m.key[0], m, st)
            if f is False or f is None:
                return None if f is None else False
            if m.mask is not None and isinstance(f, int):
                f &= m.mask
            compare = self._compare
            for el in elements:
                r = compare(f, el)
                if r is True:
                    result = True
                    break
                if r is None:
                    result = None
        else:
            fields = [self._field(k, m, st) for k in m.key]
            if any(f is False for f in fields):
                return False
            if any(f is None for f in fields):
                return None
            for el in elements:
                if not isinstance(el, tuple) or len(el) != len(fields):
                    return None
                parts = [self._compare(f, e) for f, e in zip(fields, el, strict=True)]  # type: ignore[arg-type]
                r = (
                    False
                    if any(p is False for p in parts)
                    else None
                    if any(p is None for p in parts)
                    else True
                )
                if r is True:
                    result = True
                    break
                if r is None:
                    result = None
        if result is None:
            return None
        return (not result) if m.negate else result

    def _rule_matches(self, rule: Rule, st: _State) -> bool | None:
        unsure = False
        for m in rule.matches:
            r = self._match(rule, m, st)
            if r is False:
                return False
            if r is None:
                unsure = True
        return None if unsure else True

    # -- chains --------------------------------------------------------------------------

    def _count(self) -> None:
        self._worlds += 1
        if self._worlds > MAX_WORLDS:
            raise _TooMany

    def _walk(
        self,
        base: Chain,
        chain: Chain,
        index: int,
        stack: tuple[tuple[Chain, int], ...],
        st: _State,
    ) -> list[tuple[str, Rule | None, Action | None, _State]]:
        """Run ``chain`` from ``index``; outcomes as (what, rule, action, state), where
        what is ``accept``, ``drop``, ``reject``, ``nat``, ``policy`` or ``unknown``."""
        out: list[tuple[str, Rule | None, Action | None, _State]] = []
        i = index
        while True:
            if i >= len(chain.rules):
                if not stack:
                    out.append(("policy", None, None, st))
                    return out
                chain, i = stack[-1]
                stack = stack[:-1]
                continue
            rule = chain.rules[i]
            ports = self._ports.get(id(rule))
            if ports is not None and isinstance(st.dport, int) and st.dport not in ports:
                i += 1  # its destination-port match fails: the common case, made cheap
                continue
            hit = self._rule_matches(rule, st)
            if hit is False:
                i += 1
                continue
            if hit is None:
                self._count()
                out.extend(self._walk(base, chain, i + 1, stack, st))
                st = dataclasses.replace(st, assumed=(*st.assumed, rule))
            for key, value in rule.sets:
                if value is None:
                    out.append(("unknown", rule, None, st))
                    return out
                if key == "mark":
                    st = dataclasses.replace(st, mark=value)
                elif key == "ctmark":
                    st = dataclasses.replace(st, ctmark=value)
                elif key == "notrack":
                    st = dataclasses.replace(st, ctstate="untracked")
            actions = self._actions(rule, rule.action, st)
            if len(actions) > 1:
                self._count()
            for n, (action, st2) in enumerate(actions):
                if n < len(actions) - 1:
                    out.extend(self._apply(base, chain, i, stack, rule, action, st2))
                else:
                    return out + self._apply(base, chain, i, stack, rule, action, st2)
            return out  # pragma: no cover - _actions returns at least one

    def _actions(self, rule: Rule, action: Action, st: _State) -> list[tuple[Action, _State]]:
        """The action(s) a matching rule takes: a verdict map picks by its key."""
        if action.kind is not ActionKind.VMAP:
            return [(action, st)]
        entries = action.entries
        if entries is None and action.target is not None:
            entries = self.rs.maps.get((rule.family, rule.table, action.target))
        if entries is None:
            return [(Action(ActionKind.UNKNOWN), st)]
        probe = Match(key=action.key, values=tuple(e for e, _ in entries))
        key_match = Match(key=action.key)
        fields = [self._field(k, key_match, st) for k in action.key]
        if any(f is False for f in fields):
            return [(Action(ActionKind.CONTINUE), st)]
        del probe
        unsure: list[tuple[Action, _State]] = []
        for el, act in entries:
            single = Match(key=action.key, values=(el,))
            r = self._match(rule, single, st)
            if r is True:
                return [*unsure, (act, st)] if unsure else [(act, st)]
            if r is None:
                unsure.append((act, dataclasses.replace(st, assumed=(*st.assumed, rule))))
        if unsure:
            assumed = dataclasses.replace(st, assumed=(*st.assumed, rule))
            return [*unsure, (Action(ActionKind.CONTINUE), assumed)]
        return [(Action(ActionKind.CONTINUE), st)]

    def _apply(
        self,
        base: Chain,
        chain: Chain,
        i: int,
        stack: tuple[tuple[Chain, int], ...],
        rule: Rule,
        action: Action,
        st: _State,
    ) -> list[tuple[str, Rule | None, Action | None, _State]]:
        kind = action.kind
        if kind is ActionKind.CONTINUE:
            return self._walk(base, chain, i + 1, stack, st)
        if kind in (ActionKind.ACCEPT, ActionKind.DROP, ActionKind.REJECT):
            return [(kind.value, rule, action, st)]
        if kind in (ActionKind.DNAT, ActionKind.REDIRECT):
            return [("nat", rule, action, st)]
        if kind is ActionKind.RETURN:
            if not stack:
                return [("policy", None, None, st)]
            back, j = stack[-1]
            return self._walk(base, back, j, stack[:-1], st)
        if kind in (ActionKind.JUMP, ActionKind.GOTO):
            target = self.rs.chains.get((rule.family, rule.table, action.target or ""))
            if target is None or len(stack) >= MAX_DEPTH:
                return [("unknown", rule, action, st)]
            if kind is ActionKind.JUMP:
                return self._walk(base, target, 0, (*stack, (chain, i + 1)), st)
            return self._walk(base, target, 0, stack, st)
        return [("unknown", rule, action, st)]

    # -- hooks ---------------------------------------------------------------------------

    def _hook(self, hook: str, states: list[_State], leaves: list[_Leaf]) -> list[_State]:
        """Run every base chain of ``hook``; returns the states that got through."""
        if not states:
            return []
        for c in _hook_chains(self.rs, hook, states[0].family, states[0].iif or None):
            nxt: list[_State] = []
            for st in states:
                if c.type == "nat" and (st.nat_done or st.ctstate == "untracked"):
                    nxt.append(st)
                    continue
                for what, rule, action, st2 in self._walk(c, c, 0, (), st):
                    name = _chain_name(c)
                    if what == "policy":
                        policy = c.policy or "accept"
                        step = Step(hook, name, f"policy {policy}", None)
                        st3 = dataclasses.replace(st2, path=(*st2.path, step))
                        if policy == "drop":
                            leaves.append(
                                _Leaf(
                                    Verdict.FILTERED,
                                    f"dropped by the policy of {name}",
                                    st3,
                                    None,
                                    name,
                                )
                            )
                        else:
                            nxt.append(st3)
                    elif what == "accept":
                        step = Step(hook, name, "accept", rule)
                        nxt.append(dataclasses.replace(st2, path=(*st2.path, step)))
                    elif what == "drop":
                        step = Step(hook, name, "drop", rule)
                        st3 = dataclasses.replace(st2, path=(*st2.path, step))
                        leaves.append(_Leaf(Verdict.FILTERED, "dropped", st3, rule, name))
                    elif what == "reject":
                        assert action is not None
                        step = Step(hook, name, "reject", rule)
                        st3 = dataclasses.replace(st2, path=(*st2.path, step))
                        leaves.append(
                            _Leaf(Verdict.REJECTED, "rejected", st3, rule, name, action.target)
                        )
                    elif what == "nat":
                        assert action is not None and rule is not None
                        natted = self._nat(st2, action, hook, name, rule)
                        if natted is None:
                            leaves.append(
                                _Leaf(
                                    Verdict.UNKNOWN, f"cannot apply {rule.text!r}", st2, rule, name
                                )
                            )
                        else:
                            nxt.append(natted)
                    else:
                        what_text = rule.text if rule else "?"
                        st3 = dataclasses.replace(
                            st2, assumed=(*st2.assumed, rule) if rule else st2.assumed
                        )
                        leaves.append(
                            _Leaf(
                                Verdict.UNKNOWN,
                                f"the model does not understand {what_text!r}",
                                st3,
                                rule,
                                name,
                            )
                        )
            states = nxt
        return states

    def _nat(self, st: _State, action: Action, hook: str, chain: str, rule: Rule) -> _State | None:
        if action.kind is ActionKind.REDIRECT:
            if st.iif and st.iif != "lo":
                address = self.host.primary_address(st.iif, st.family)
            else:
                address = "127.0.0.1" if st.family == 4 else "::1"
            if address is None:
                return None
        else:
            address = action.address or st.daddr
            if ipaddress.ip_address(address).version != st.family:
                return None
        port = action.port if action.port is not None else st.dport
        assert isinstance(port, int)
        step = Step(hook, chain, f"{action.kind.value} to {address}:{port}", rule)
        return dataclasses.replace(
            st, daddr=address, dport=port, dnat=True, nat_done=True, path=(*st.path, step)
        )

    def evaluate(self, packet: Packet) -> Decision:
        """The verdict for ``packet`` (see the module docstring for the walk).

        Raises:
            ValueError: a malformed address in ``packet``.
        """
        self._worlds = 0
        st = _State(
            family=packet.family,
            proto=packet.proto,
            saddr=str(ipaddress.ip_address(packet.saddr)),
            daddr=str(ipaddress.ip_address(packet.daddr)),
            dport=packet.dport,
            sport=packet.sport,
            iif="" if packet.local_origin else (packet.iif or ""),
        )
        leaves: list[_Leaf] = []
        try:
            if packet.local_origin:
                self._local(st, leaves)
            else:
                self._inbound(st, leaves)
            leaves = [self._answered(lf, packet) for lf in leaves]
        except _TooMany:
            return Decision(
                Verdict.UNKNOWN,
                f"more than {MAX_WORLDS} possibilities to follow (rules the model does not "
                "understand, or source-port ranges); not evaluated further",
            )
        return _decide(leaves)

    def _neighbour_discovery(self, st: _State, leaves: list[_Leaf]) -> bool:
        """IPv6 only: the client's neighbour solicitation (ICMPv6 type 135, to this host's
        solicited-node multicast address, RFC 4861 section 7.2.2) must pass prerouting and
        input, or the client never learns the link-layer address and nothing is sent.
        Conntrack leaves ND untracked (``nf_conntrack_proto_icmpv6.c`` noct_valid_new).
        A source that is not on-link is represented by a router's link-local address.

        Returns:
            True when it passes; otherwise a leaf is added and False returned.
        """
        target = ipaddress.IPv6Address(st.daddr)
        solicited = ipaddress.IPv6Address(
            int(ipaddress.IPv6Address("ff02::1:ff00:0")) | (int(target) & 0xFFFFFF)
        )
        route = self.host.route(st.saddr)
        onlink = route is not None and route.device == st.iif and route.prefix > 0
        nd = dataclasses.replace(
            st,
            proto="icmpv6",
            icmptype=135,
            daddr=str(solicited),
            dport=0,
            sport=(0, 0),
            saddr=st.saddr if onlink else "fe80::1",
            ctstate="untracked",
            path=(),
        )
        sub: list[_Leaf] = []
        passed = self._hook(
            "input", self._hook("prerouting", self._hook("ingress", [nd], sub), sub), sub
        )
        if passed and not sub:
            return True
        bad = next((lf for lf in sub if lf.verdict is not Verdict.UNKNOWN), None)
        if bad is not None and not passed and all(lf.verdict is not Verdict.UNKNOWN for lf in sub):
            rule = (
                f"{bad.rule.where()}: {bad.rule.text}" if bad.rule else f"the policy of {bad.chain}"
            )
            leaves.append(
                _Leaf(
                    Verdict.FILTERED,
                    f"IPv6 neighbour discovery is dropped ({rule}): the client cannot resolve "
                    f"{st.daddr}'s link-layer address, so nothing reaches it",
                    st,
                    bad.rule,
                    bad.chain,
                )
            )
            return False
        rules = tuple(lf.rule for lf in sub if lf.rule is not None)
        leaves.append(
            _Leaf(
                Verdict.UNKNOWN,
                "whether IPv6 neighbour discovery passes is not known",
                dataclasses.replace(st, assumed=(*st.assumed, *rules)),
            )
        )
        return False

    def _inbound(self, st: _State, leaves: list[_Leaf]) -> None:
        if (
            st.family == 6
            and st.iif not in ("", "lo")
            and not self._neighbour_discovery(st, leaves)
        ):
            return
        states = self._hook("ingress", [st], leaves)
        states = self._hook("prerouting", states, leaves)
        local_states, fwd_states = [], []
        for s in states:
            ip = ipaddress.ip_address(s.daddr)
            if (
                ip.is_loopback
                and s.iif != "lo"
                and not (s.family == 4 and self.host.route_localnet)
            ):
                leaves.append(
                    _Leaf(
                        Verdict.FILTERED,
                        f"destination {s.daddr} is a loopback address arriving on {s.iif}: "
                        "the kernel drops it as a martian (route_localnet=0)",
                        s,
                    )
                )
            elif self.host.is_local(s.daddr):
                local_states.append(s)
            else:
                fwd_states.append(s)
        for s in self._hook("input", local_states, leaves):
            self._deliver(s, leaves, local=True)
        routed = []
        for s in fwd_states:
            if not self.host.forwarding.get(s.family, False):
                sysctl = "net.ipv4.ip_forward" if s.family == 4 else "net.ipv6.conf.all.forwarding"
                leaves.append(
                    _Leaf(
                        Verdict.FILTERED,
                        f"{s.daddr} is not this host's and forwarding is off ({sysctl}=0): "
                        "the kernel drops it",
                        s,
                    )
                )
                continue
            route = self.host.route(s.daddr)
            if route is None or route.kind != "unicast":
                leaves.append(
                    _Leaf(
                        Verdict.UNKNOWN,
                        f"no route to {s.daddr} in the main table (policy routing is not modelled)",
                        s,
                    )
                )
                continue
            routed.append(dataclasses.replace(s, oif=route.device or ""))
        states = self._hook("forward", routed, leaves)
        states = self._hook("postrouting", states, leaves)
        for s in states:
            self._deliver(s, leaves, local=False)

    def _local(self, st: _State, leaves: list[_Leaf]) -> None:
        st = dataclasses.replace(st, oif="lo")
        states = self._hook("output", [st], leaves)
        states = self._hook("postrouting", states, leaves)
        inbound = []
        for s in states:
            if not self.host.is_local(s.daddr):
                leaves.append(
                    _Leaf(Verdict.UNKNOWN, f"{s.daddr} is not this host's: the packet leaves it", s)
                )
                continue
            inbound.append(dataclasses.replace(s, iif="lo", oif="", nat_done=True))
        # looped back through lo: prerouting and input run again (NAT was decided at output)
        inbound = self._hook("prerouting", inbound, leaves)
        for s in self._hook("input", inbound, leaves):
            self._deliver(s, leaves, local=True)

    def _answered(self, leaf: _Leaf, packet: Packet) -> _Leaf:
        """Whether the answer gets back to the client: the SYN-ACK, the RST or the ICMP error
        goes through the hooks too (output/postrouting from this host; prerouting/forward/
        postrouting from a namespace behind a DNAT). A dropped answer looks like a drop.

        The answer is conntrack's reply direction: ``ct state established`` for a SYN-ACK,
        a stack RST or a UDP reply; ``related`` for an ICMP error and for a firewall's TCP
        reset (``nf_send_reset`` attaches the original conntrack as related,
        net/netfilter/nf_conntrack_core.c ``nf_conntrack_attach``).
        """
        if leaf.verdict not in (Verdict.OPEN, Verdict.CLOSED, Verdict.REJECTED):
            return leaf
        st = leaf.state
        icmp = "icmp" if st.family == 4 else "icmpv6"
        if leaf.verdict is Verdict.REJECTED:
            proto = "tcp" if leaf.reject == "tcp-reset" else icmp
            ctstate, from_host = "related", True
        elif leaf.verdict is Verdict.CLOSED and st.proto == "udp":
            proto, ctstate, from_host = icmp, "related", not leaf.forwarded
        else:
            proto, ctstate, from_host = st.proto, "established", not leaf.forwarded
        client = packet.saddr
        reply = _State(
            family=st.family,
            proto=proto,
            saddr=st.daddr,
            daddr=str(ipaddress.ip_address(client)),
            sport=st.dport if proto in ("tcp", "udp") else 0,
            dport=packet.sport if proto in ("tcp", "udp") else 0,
            iif="",
            ctstate=ctstate,
            dnat=st.dnat,
            nat_done=True,
            ctdirection="reply",
            icmptype=(3 if st.family == 4 else 1) if proto == icmp else None,
        )
        sub: list[_Leaf] = []
        if packet.local_origin:
            states = self._hook("output", [dataclasses.replace(reply, oif="lo")], sub)
            states = self._hook("postrouting", states, sub)
            states = [dataclasses.replace(x, iif="lo", oif="") for x in states]
            states = self._hook("input", self._hook("prerouting", states, sub), sub)
        else:
            route = self.host.route(client)
            back = route.device if route is not None and route.device else (packet.iif or "")
            if from_host:
                states = self._hook("output", [dataclasses.replace(reply, oif=back)], sub)
            else:
                states = self._hook("prerouting", [dataclasses.replace(reply, iif=st.oif)], sub)
                states = [dataclasses.replace(x, oif=back) for x in states]
                states = self._hook("forward", states, sub)
            states = self._hook("postrouting", states, sub)
        if states and not sub:
            return leaf
        what = {"tcp": "TCP answer", "udp": "UDP answer"}.get(proto, "ICMP error")
        if not states and all(lf.verdict is not Verdict.UNKNOWN for lf in sub):
            bad = sub[0]
            by = (
                f"{bad.rule.where()}: {bad.rule.text}" if bad.rule else f"the policy of {bad.chain}"
            )
            return _Leaf(
                Verdict.FILTERED,
                f"{leaf.reason}; but the {what} back to {client} is dropped ({by})",
                dataclasses.replace(st, assumed=(*st.assumed, *bad.state.assumed)),
                bad.rule,
                bad.chain,
                listener=leaf.listener,
                forwarded=leaf.forwarded,
            )
        rules = tuple(r for lf in sub for r in (*lf.state.assumed, *([lf.rule] if lf.rule else [])))
        return _Leaf(
            Verdict.UNKNOWN,
            f"{leaf.reason}; whether the {what} gets back to {client} is not known",
            dataclasses.replace(st, assumed=(*st.assumed, *rules)),
            listener=leaf.listener,
            forwarded=leaf.forwarded,
        )

    def _deliver(self, st: _State, leaves: list[_Leaf], *, local: bool) -> None:
        assert isinstance(st.dport, int)
        verdict, who = self.deliver(st.daddr, st.dport, st.proto, local, st.iif)
        target = f"{st.daddr}:{st.dport}" if st.family == 4 else f"[{st.daddr}]:{st.dport}"
        if verdict is Verdict.OPEN:
            reason = f"accepted; {who or 'a listener'} receives {target}"
        elif verdict is Verdict.CLOSED:
            where = "this host" if local else (who or target)
            reason = f"accepted, but nothing listens on {target} ({where})"
        else:
            reason = (
                f"accepted and {'delivered' if local else 'forwarded'} to {target}; "
                f"{who or 'who receives it is not known'}"
            )
        leaves.append(_Leaf(verdict, reason, st, listener=who, forwarded=not local))


def _deciding(leaf: _Leaf) -> tuple[Rule | None, str | None]:
    if leaf.rule is not None or leaf.chain is not None:
        return leaf.rule, leaf.chain
    for step in reversed(leaf.state.path):
        if step.hook in ("input", "forward") and step.action in ("accept", "policy accept"):
            return step.rule, step.chain
    for step in reversed(leaf.state.path):
        if step.rule is not None:
            return step.rule, step.chain
    return None, None


def _unique(rules: Iterable[Rule]) -> tuple[Rule, ...]:
    seen: dict[int, Rule] = {}
    for r in rules:
        seen.setdefault(id(r), r)
    return tuple(seen.values())


def _decide(leaves: list[_Leaf]) -> Decision:
    if not leaves:
        return Decision(Verdict.UNKNOWN, "no outcome (internal)")
    verdicts = {(lf.verdict, lf.reject) for lf in leaves}
    assumed = _unique(r for lf in leaves for r in lf.state.assumed)
    if len(verdicts) == 1 and leaves[0].verdict is not Verdict.UNKNOWN:
        leaf = min(leaves, key=lambda lf: len(lf.state.assumed))
        return _leaf_decision(leaf, assumed)
    unknown = [lf for lf in leaves if lf.verdict is Verdict.UNKNOWN]
    if len(verdicts) == 1:
        leaf = unknown[0]
        rules = _unique([*assumed, *([leaf.rule] if leaf.rule else [])])
        d = _leaf_decision(leaf, rules)
        return d
    quoted = "; ".join(f"{r.where()}: {r.text}" for r in assumed) or "?"
    possible = ", ".join(
        sorted({lf.verdict.value + (f" ({lf.reject})" if lf.reject else "") for lf in leaves})
    )
    rules = _unique([*assumed, *(lf.rule for lf in unknown if lf.rule)])
    first = leaves[0]
    return Decision(
        Verdict.UNKNOWN,
        f"could be {possible}: depends on rule(s) the model cannot decide: {quoted}",
        rule=rules[0] if rules else None,
        chain=rules[0].where() if rules else None,
        destination=_destination(first),
        path=first.state.path,
        unknown_rules=rules,
    )


def _destination(leaf: _Leaf) -> tuple[str, int] | None:
    port = leaf.state.dport
    return (leaf.state.daddr, port) if leaf.state.dnat and isinstance(port, int) else None


def _leaf_decision(leaf: _Leaf, assumed: tuple[Rule, ...]) -> Decision:
    rule, chain = _deciding(leaf)
    reason = leaf.reason
    if leaf.verdict is Verdict.FILTERED and leaf.rule is not None:
        reason = f"dropped by {leaf.rule.where()}: {leaf.rule.text}"
    elif leaf.verdict is Verdict.REJECTED and leaf.rule is not None:
        reason = f"rejected ({leaf.reject}) by {leaf.rule.where()}: {leaf.rule.text}"
    elif leaf.verdict in (Verdict.OPEN, Verdict.CLOSED) and chain is not None:
        by = f"{rule.where()}: {rule.text}" if rule is not None else f"the policy of {chain}"
        reason = f"{reason} (let in by {by})"
    elif leaf.verdict in (Verdict.OPEN, Verdict.CLOSED) and not leaf.state.path:
        reason = f"{reason} (no firewall chain on its path)"
    return Decision(
        leaf.verdict,
        reason,
        rule=rule,
        chain=chain,
        reject=leaf.reject,
        destination=_destination(leaf),
        listener=leaf.listener,
        path=leaf.state.path,
        unknown_rules=assumed,
        forwarded=leaf.forwarded,
    )
