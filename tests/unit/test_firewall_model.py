"""The firewall readers and evaluator on captured rulesets (no kernel needed).

Fixtures in tests/fixtures/firewall were captured from a namespace loaded with the ground
truth's rulesets (``nft -j list ruleset``, ``nft -a list ruleset``, ``iptables-nft-save``);
tests/system/test_firewall_truth.py checks the same evaluator against the kernel.
"""

from __future__ import annotations

import io
import ipaddress
import json
from pathlib import Path

import pytest

from portscope.cli import Env, main
from portscope.diagnose.exposure import (
    Listeners,
    exposure_from,
    scope_note,
    source_classes,
)
from portscope.firewall import (
    ActionKind,
    Decision,
    Evaluator,
    HostFacts,
    Packet,
    Route,
    Ruleset,
    Verdict,
    parse_ruleset,
    parse_save,
    rule_texts,
)
from portscope.models import Endpoint, Proto, Socket, TcpState
from portscope.render.exposure import exposure_json, render_exposure

FIX = Path(__file__).resolve().parents[1] / "fixtures" / "firewall"


def _nft(name: str) -> Ruleset:
    data = json.loads((FIX / f"{name}.json").read_text())
    return parse_ruleset(data, rule_texts((FIX / f"{name}.nft").read_text()))


def _route(prefix: str, dev: str) -> Route:
    net = ipaddress.ip_network(prefix)
    lo, hi = int(net.network_address), int(net.broadcast_address)
    return Route(net.version, lo, hi, net.prefixlen, dev)


HOST = HostFacts(
    addresses={
        "lo": ("127.0.0.1", "::1"),
        "t0": ("198.19.210.1", "2001:db8:210::1"),
        "t1": ("198.19.212.1",),
        "t2": ("198.19.250.1",),
    },
    forwarding={4: True, 6: True},
    routes=(
        _route("198.19.210.0/24", "t0"),
        _route("198.19.211.0/24", "t0"),
        _route("198.19.212.0/24", "t1"),
        _route("198.19.250.0/24", "t2"),
        _route("2001:db8:210::/64", "t0"),
    ),
)
LISTENING = {80, 1001, 1003, 2001, 2004, 2005, 3001}


def _deliver(address: str, port: int, proto: str, local: bool, iif: str) -> tuple[Verdict, str]:
    return (Verdict.OPEN if port in LISTENING else Verdict.CLOSED), "srv"


def _eval(rs: Ruleset, src: str, port: int, *, proto: str = "tcp", iif: str = "t0") -> Decision:
    fam = 6 if ":" in src else 4
    dst = {("t0", 4): "198.19.210.1", ("t0", 6): "2001:db8:210::1", ("t1", 4): "198.19.212.1"}
    pkt = Packet(fam, proto, src, dst[(iif, fam)], port, iif=iif)
    return Evaluator(rs, HOST, _deliver).evaluate(pkt)


def test_nft_reader_keeps_rules_texts_and_handles() -> None:
    rs = _nft("deny")
    chain = rs.chains[("inet", "fw", "input")]
    assert chain.hook == "input" and chain.policy == "drop" and chain.priority == 0
    texts = [r.text for r in chain.rules]
    assert "tcp dport 1005 reject with tcp reset" in texts
    assert all(r.handle is not None for r in chain.rules)
    assert rs.sets[("inet", "fw", "admins")]
    assert rs.maps[("inet", "fw", "svc")]
    limit = next(r for r in chain.rules if "limit" in r.text)
    assert limit.unknown is not None
    assert [r for r in chain.rules if r.unknown] == [limit]


@pytest.mark.parametrize(
    ("src", "port", "iif", "verdict", "reject"),
    [
        ("198.19.210.2", 1001, "t0", Verdict.OPEN, None),
        ("198.19.210.2", 1002, "t0", Verdict.CLOSED, None),
        ("198.19.210.2", 1003, "t0", Verdict.FILTERED, None),  # policy drop
        ("198.19.211.5", 1003, "t0", Verdict.OPEN, None),  # named set
        ("198.19.212.2", 1004, "t1", Verdict.CLOSED, None),  # iifname
        ("198.19.210.2", 1004, "t0", Verdict.FILTERED, None),
        ("198.19.210.2", 1005, "t0", Verdict.REJECTED, "tcp-reset"),
        ("198.19.210.2", 1006, "t0", Verdict.REJECTED, "admin-prohibited"),
        ("198.19.210.2", 1009, "t0", Verdict.REJECTED, "no-route"),
        ("198.19.211.5", 1010, "t0", Verdict.REJECTED, "net-prohibited"),
        ("198.19.210.2", 1011, "t0", Verdict.UNKNOWN, None),  # limit: both worlds differ
        ("198.19.210.2", 1012, "t0", Verdict.FILTERED, None),  # mark is 0
        ("198.19.210.77", 1013, "t0", Verdict.FILTERED, None),  # saddr !=
        ("198.19.210.2", 2001, "t0", Verdict.OPEN, None),  # named verdict map
        ("198.19.210.2", 2002, "t0", Verdict.FILTERED, None),
        ("198.19.210.2", 2003, "t0", Verdict.REJECTED, "admin-prohibited"),  # map -> jump
        ("198.19.210.2", 2005, "t0", Verdict.OPEN, None),  # anonymous vmap -> jump sub
        ("198.19.211.5", 2005, "t0", Verdict.FILTERED, None),  # sub returns, policy drop
        ("2001:db8:210::2", 1001, "t0", Verdict.OPEN, None),  # ND allowed
        ("2001:db8:210::2", 1009, "t0", Verdict.REJECTED, "no-route"),
    ],
)
def test_nft_default_deny(
    src: str, port: int, iif: str, verdict: Verdict, reject: str | None
) -> None:
    d = _eval(_nft("deny"), src, port, iif=iif)
    assert d.verdict is verdict, d.reason
    assert d.reject == reject


def test_unknown_quotes_the_rule() -> None:
    d = _eval(_nft("deny"), "198.19.210.2", 1011)
    assert d.verdict is Verdict.UNKNOWN
    assert "limit rate over 1000/second" in d.reason
    assert any("limit" in r.text for r in d.unknown_rules)


def test_layers_priorities_goto_and_raw() -> None:
    rs = _nft("layers")
    # accepted at priority -10, dropped at priority 10: accept ends one base chain only
    assert _eval(rs, "198.19.210.2", 1003).verdict is Verdict.FILTERED
    # goto g: g's end returns to the base chain's caller, i.e. its policy (accept)
    assert _eval(rs, "198.19.211.5", 1007).verdict is Verdict.CLOSED
    assert _eval(rs, "198.19.210.2", 1007).verdict is Verdict.FILTERED
    # notrack in raw prerouting, then "ct state untracked reject"
    d = _eval(rs, "198.19.210.2", 1012)
    assert d.verdict is Verdict.REJECTED and d.reject == "tcp-reset"
    # a SYN matches "tcp flags & (syn|ack) == syn"
    assert _eval(rs, "198.19.210.2", 1014).verdict is Verdict.FILTERED


def test_dnat_forward_and_reply_path() -> None:
    rs = _nft("nat")
    d = _eval(rs, "198.19.210.2", 8080)
    assert d.verdict is Verdict.OPEN and d.destination == ("198.19.250.2", 80)
    assert d.forwarded
    # forward drops it for the admin prefix
    assert _eval(rs, "198.19.211.5", 8080).verdict is Verdict.FILTERED
    # REDIRECT to a local port, and DNAT to 127.0.0.1 from outside (martian)
    assert _eval(rs, "198.19.210.2", 8082).destination == ("198.19.210.1", 1001)
    d = _eval(rs, "198.19.210.2", 8086)
    assert d.verdict is Verdict.FILTERED and "martian" in d.reason


def test_iptables_docker_reader_and_evaluation() -> None:
    rs = parse_save((FIX / "docker.iptables-save").read_text(), family=4, source="iptables-nft")
    pre = rs.chains[("ip", "nat", "PREROUTING")]
    assert pre.hook == "prerouting" and pre.priority == -100
    dnat = [r for r in rs.chains[("ip", "nat", "DOCKER")].rules if r.action.kind is ActionKind.DNAT]
    assert {(r.action.address, r.action.port) for r in dnat} >= {("198.19.250.2", 80)}
    assert not [r for c in rs.chains.values() for r in c.rules if r.unknown]
    d = _eval(rs, "198.19.210.2", 8080)
    assert d.verdict is Verdict.OPEN and d.destination == ("198.19.250.2", 80)
    assert _eval(rs, "198.19.211.5", 8080).verdict is Verdict.FILTERED
    assert _eval(rs, "198.19.210.2", 1003).verdict is Verdict.FILTERED
    # the JSON of an iptables-nft table shows xt expressions: those rules are unknown there
    xt = parse_ruleset(json.loads((FIX / "docker.json").read_text()))
    assert any(r.unknown for c in xt.chains.values() for r in c.rules)


def test_iptables_v6_without_neighbour_discovery_is_filtered() -> None:
    rs = parse_save((FIX / "deny.ip6tables-save").read_text(), family=6)
    d = _eval(rs, "2001:db8:210::2", 1001)
    assert d.verdict is Verdict.FILTERED and "neighbour discovery" in d.reason


def test_iptables_v4_matches() -> None:
    rs = parse_save((FIX / "deny.iptables-save").read_text(), family=4)
    assert _eval(rs, "198.19.210.2", 1003).verdict is Verdict.OPEN  # multiport
    assert _eval(rs, "198.19.211.5", 2001).verdict is Verdict.OPEN  # ADMIN chain
    d = _eval(rs, "198.19.210.2", 1009)
    assert d.verdict is Verdict.REJECTED and d.reject == "host-prohibited"
    assert _eval(rs, "198.19.210.2", 1011).verdict is Verdict.UNKNOWN  # recent
    assert _eval(rs, "198.19.210.2", 1013).verdict is Verdict.CLOSED  # MARK then mark


def test_source_port_ranges_are_three_valued() -> None:
    text = (
        "*filter\n:INPUT DROP [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n"
        "-A INPUT -p tcp -m tcp --sport 40000:50000 -j ACCEPT\n"
        "-A INPUT -p tcp -m tcp --sport 1:1023 -j ACCEPT\nCOMMIT\n"
    )
    rs = parse_save(text, family=4)
    ev = Evaluator(rs, HOST, _deliver)
    pkt = Packet(4, "tcp", "198.19.210.2", "198.19.210.1", 1001, iif="t0")
    assert ev.evaluate(pkt).verdict is Verdict.UNKNOWN  # part of 32768-65535
    narrow = Packet(4, "tcp", "198.19.210.2", "198.19.210.1", 1001, iif="t0", sport=(41000, 42000))
    assert ev.evaluate(narrow).verdict is Verdict.OPEN


def test_exposure_rows_sources_and_render() -> None:
    rs = _nft("deny")
    socks = [
        Socket(Proto.TCP, 6, TcpState.LISTEN, Endpoint("::", p), None, 0, 128, 0, 1, None, False)
        for p in (1001, 1003)
    ]
    classes = source_classes(rs, HOST, 4)
    assert classes[0].label == "outside"
    assert {c.label for c in classes} >= {"198.19.211.0/24", "198.19.210.77/32"}
    rows = exposure_from(socks, rs, HOST, deliver=Listeners(socks))
    row = next(r for r in rows if r.port == 1003 and r.family == 4)
    assert row.verdict is Verdict.FILTERED
    assert scope_note(row) == (
        "firewall: filtered from outside, open from 198.19.210.77/32, 198.19.211.0/24"
    )
    from portscope.diagnose.exposure import ExposureReport

    report = ExposureReport(tuple(rows), True, None, "nftables", rs.rule_count(),
                            tuple(classes), ("t0", "t1", "t2"))  # fmt: skip
    doc = exposure_json(report)
    assert doc["schema"] == "portscope.exposure/1"
    assert {p["port"] for p in doc["ports"]} == {1001, 1003}
    items = render_exposure(report)
    assert any("ruleset nftables" in str(i) for i in items)


def test_cli_rejects_bad_source_and_namespace() -> None:
    for args in (["exposure", "--from", "banana"], ["exposure", "--netns", "ps10-none-such"]):
        out, err = io.StringIO(), io.StringIO()
        assert main(args, Env(stdout=out, stderr=err)) == 2
        assert err.getvalue().startswith("portscope: error:")
        assert err.getvalue().count("\n") == 1
