"""The firewall model: one intermediate form for nftables and iptables rulesets.

Both readers (``_nft`` for ``nft -j list ruleset``, ``_iptables`` for ``iptables-save``)
produce a :class:`Ruleset` of :class:`Chain` objects holding :class:`Rule` objects. A rule is
a conjunction of :class:`Match` objects and one :class:`Action` (plus side effects such as a
mark being set). Whatever a reader does not understand becomes a match or action of kind
``unknown`` carrying the rule's text: the evaluator (``_eval``) then answers ``unknown`` when
that rule could decide, instead of guessing.

Values are normalised so that both readers compare the same way: addresses as
``(family, low, high)`` integer intervals, ports and protocol numbers as ``(low, high)``,
interface names as glob strings (``eth*``), conntrack states as names.
"""

from __future__ import annotations

import enum
import functools
import ipaddress
from dataclasses import dataclass, field

# One element of a value set: an integer interval (ports, protocol numbers, marks), an
# address interval with its family, a string (interface name glob, ct state, fib type),
# or a tuple of those for a concatenation (``ip saddr . tcp dport``).
Interval = tuple[int, int]
AddrInterval = tuple[int, int, int]  # (family 4|6, low, high)
Scalar = Interval | AddrInterval | str
Element = Scalar | tuple[Scalar, ...]


class Verdict(enum.StrEnum):
    """What a new connection attempt meets, in nmap's words where they exist.

    ``open``: delivered to a listener; ``closed``: delivered, nothing listens (TCP RST /
    ICMP port unreachable from the stack); ``filtered``: dropped without an answer;
    ``rejected``: a firewall rule answered (TCP reset or an ICMP error); ``unknown``: the
    model cannot tell (a rule it does not understand could decide), with the rule quoted.
    """

    OPEN = "open"
    CLOSED = "closed"
    FILTERED = "filtered"
    REJECTED = "rejected"
    UNKNOWN = "unknown"


class ActionKind(enum.StrEnum):
    """What a rule does when it matches."""

    CONTINUE = "continue"  # counter, log, comment: on to the next rule
    ACCEPT = "accept"
    DROP = "drop"
    REJECT = "reject"
    JUMP = "jump"
    GOTO = "goto"
    RETURN = "return"
    DNAT = "dnat"
    REDIRECT = "redirect"
    VMAP = "vmap"  # a verdict map: the key picks the action
    UNKNOWN = "unknown"  # a statement the model does not understand (queue, xt target ...)


# Reject answers, named after nftables' icmpx/icmp/icmpv6 codes and iptables'
# --reject-with values (normalised).
REJECT_KINDS = (
    "tcp-reset",
    "port-unreachable",
    "admin-prohibited",
    "host-unreachable",
    "net-unreachable",
    "host-prohibited",
    "net-prohibited",
    "prot-unreachable",
    "addr-unreachable",
    "no-route",
    "policy-fail",
    "reject-route",
)


@dataclass(frozen=True, slots=True)
class Action:
    """A rule's verdict or statement.

    Attributes:
        kind: what it does.
        target: the chain of a jump/goto; the reject kind (``REJECT_KINDS``) of a reject.
        address: the new destination address of a DNAT (``None``: keep the address).
        port: the new destination port of a DNAT or REDIRECT (``None``: keep the port).
        key: a verdict map's key (``Match.key`` names; several for a concatenation).
        entries: a verdict map's (element, action) pairs, or ``None`` for a named map
            looked up in ``Ruleset.maps`` by ``target``.
    """

    kind: ActionKind
    target: str | None = None
    address: str | None = None
    port: int | None = None
    key: tuple[str, ...] = ()
    entries: tuple[tuple[Element, Action], ...] | None = None


@dataclass(frozen=True, slots=True)
class Match:
    """One condition of a rule.

    Attributes:
        key: the packet field: ``nfproto`` (4/6), ``l4proto`` (protocol number),
            ``saddr``/``daddr`` (address; ``family`` says which header), ``sport``/``dport``
            (``proto`` says which header: ``tcp``, ``udp``, ``th`` for either),
            ``iifname``/``oifname``, ``ctstate``, ``ctstatus``, ``ctdirection``, ``mark``,
            ``ctmark``, ``fibdaddr`` (the route type of the destination: ``local`` ...),
            ``addrtype-dst``/``addrtype-src`` (iptables ``-m addrtype``), ``pkttype``,
            ``tcpflags`` (``mask`` applies), ``unknown``; a concatenation lists several keys.
        negate: true for ``!=`` / ``!``.
        values: the elements to compare with (any of them matches), or ``None`` for a
            named set (``set_name``).
        set_name: a named set of the rule's table (``@allowed``).
        family: the address header for ``saddr``/``daddr`` (4 or 6), else ``None``.
        proto: the transport header of ``sport``/``dport``: ``tcp``, ``udp``, ``th``.
        mask: a bit mask applied before comparing (``tcp flags & (syn|ack) == syn``).
        text: what the reader saw, for ``unknown`` matches.
    """

    key: tuple[str, ...]
    negate: bool = False
    values: tuple[Element, ...] | None = None
    set_name: str | None = None
    family: int | None = None
    proto: str | None = None
    mask: int | None = None
    text: str | None = None


@dataclass(frozen=True, slots=True)
class Rule:
    """One rule of a chain.

    Attributes:
        family: nftables family of its table (``ip``, ``ip6``, ``inet``, ``netdev`` ...).
        table: the table name.
        chain: the chain name.
        handle: the rule's handle (nftables) or its 1-based position (iptables-save).
        matches: all must hold for the action to apply.
        action: what it does.
        sets: side effects before the action, as (key, value): ``mark``, ``ctmark``.
        text: the rule as the tool prints it (``tcp dport 22 accept`` / ``-A INPUT ...``).
        unknown: why the model cannot evaluate part of it, or ``None``.
    """

    family: str
    table: str
    chain: str
    handle: int | None
    matches: tuple[Match, ...]
    action: Action
    text: str
    sets: tuple[tuple[str, int | None], ...] = ()
    unknown: str | None = None

    def where(self) -> str:
        """``inet filter input handle 7``: where the rule is."""
        handle = f" handle {self.handle}" if self.handle is not None else ""
        return f"{self.family} {self.table} {self.chain}{handle}"


@dataclass(slots=True)
class Chain:
    """A chain: a base chain when ``hook`` is set.

    Attributes:
        family, table, name: where it is.
        hook: ``prerouting``, ``input``, ``forward``, ``output``, ``postrouting``,
            ``ingress`` for a base chain; ``None`` for a regular chain.
        type: ``filter``, ``nat``, ``route``.
        priority: the base chain's priority (lower runs first).
        policy: ``accept`` or ``drop`` for a base chain.
        device: the device of a netdev ingress chain.
        rules: in order.
    """

    family: str
    table: str
    name: str
    hook: str | None = None
    type: str = "filter"
    priority: int = 0
    policy: str | None = None
    device: str | None = None
    rules: list[Rule] = field(default_factory=list)


@dataclass(slots=True)
class Ruleset:
    """A whole ruleset, as read from the host.

    Attributes:
        source: where it came from (``nftables``, ``iptables-legacy``, ``iptables-nft``,
            several joined with ``+``).
        chains: (family, table, name) -> chain.
        sets: (family, table, name) -> elements of a named set.
        maps: (family, table, name) -> (element, action) pairs of a named verdict map.
        notes: what the reader could not read, or read by another way.
    """

    source: str
    chains: dict[tuple[str, str, str], Chain] = field(default_factory=dict)
    sets: dict[tuple[str, str, str], tuple[Element, ...]] = field(default_factory=dict)
    maps: dict[tuple[str, str, str], tuple[tuple[Element, Action], ...]] = field(
        default_factory=dict
    )
    notes: list[str] = field(default_factory=list)

    def rule_count(self) -> int:
        """The number of rules in every chain."""
        return sum(len(c.rules) for c in self.chains.values())

    def merge(self, other: Ruleset) -> None:
        """Add ``other``'s chains, sets and maps (a table in both is taken from ``other``)."""
        tables = {(c.family, c.table) for c in other.chains.values()}
        self.chains = {k: c for k, c in self.chains.items() if (c.family, c.table) not in tables}
        self.chains.update(other.chains)
        self.sets.update(other.sets)
        self.maps.update(other.maps)
        self.notes.extend(other.notes)
        self.source = f"{self.source}+{other.source}" if self.source else other.source


@functools.lru_cache(maxsize=8192)
def address_interval(text: str) -> AddrInterval:
    """``198.18.0.0/24`` or ``2001:db8::1`` as (family, low, high).

    Raises:
        ValueError: not an address or prefix.
    """
    net = ipaddress.ip_network(text, strict=False)
    return (net.version, int(net.network_address), int(net.broadcast_address))


def address_range(low: str, high: str) -> AddrInterval:
    """An address range ``low-high`` as (family, low, high).

    Raises:
        ValueError: not addresses of one family.
    """
    a, b = ipaddress.ip_address(low), ipaddress.ip_address(high)
    if a.version != b.version:
        raise ValueError(f"{low}-{high}: mixed families")
    return (a.version, int(a), int(b))


PROTOCOLS = {
    "tcp": 6,
    "udp": 17,
    "icmp": 1,
    "icmpv6": 58,
    "ipv6-icmp": 58,
    "sctp": 132,
    "udplite": 136,
    "dccp": 33,
    "gre": 47,
    "esp": 50,
    "ah": 51,
}
