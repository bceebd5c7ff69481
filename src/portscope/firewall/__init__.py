"""The host firewall and NAT as a model: would a new connection reach address:port?

Read the ruleset with :func:`read_ruleset` (``nft -j list ruleset``, libnftables-json(5);
``iptables-save`` for iptables-nft and legacy tables) and the host with :func:`read_host`;
then :class:`Evaluator` answers for a :class:`Packet` (a new TCP SYN or UDP datagram) with
a :class:`Decision`: ``open``, ``closed``, ``filtered``, ``rejected`` or ``unknown``, and the
deciding rule. Evaluation is pure; reading is the only I/O and needs CAP_NET_ADMIN.

Example::

    from portscope.firewall import Evaluator, Packet, read_host, read_ruleset

    ev = Evaluator(read_ruleset(), read_host())
    d = ev.evaluate(Packet(4, "tcp", "203.0.113.9", "198.18.0.2", 6379, iif="eth0"))
    print(d.verdict, d.reason)

See docs/firewall.md for what is modelled and the ground-truth counts.
"""

from __future__ import annotations

from portscope.firewall._eval import (
    Decision,
    Deliver,
    Evaluator,
    HostFacts,
    Packet,
    Route,
    Step,
)
from portscope.firewall._iptables import parse_save
from portscope.firewall._model import (
    REJECT_KINDS,
    Action,
    ActionKind,
    Chain,
    Match,
    Rule,
    Ruleset,
    Verdict,
)
from portscope.firewall._nft import parse_ruleset, rule_texts
from portscope.firewall._read import (
    FirewallPermissionDenied,
    FirewallUnreadable,
    netns_path,
    read_host,
    read_ruleset,
)

__all__ = [
    "REJECT_KINDS",
    "Action",
    "ActionKind",
    "Chain",
    "Decision",
    "Deliver",
    "Evaluator",
    "FirewallPermissionDenied",
    "FirewallUnreadable",
    "HostFacts",
    "Match",
    "Packet",
    "Route",
    "Rule",
    "Ruleset",
    "Step",
    "Verdict",
    "netns_path",
    "parse_ruleset",
    "parse_save",
    "read_host",
    "read_ruleset",
    "rule_texts",
]
