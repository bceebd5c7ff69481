"""why_bind's prediction over hand-made socket tables (the kernel's rules, no I/O)."""

from __future__ import annotations

from portscope.diagnose import BindCause, diagnose_bind
from portscope.models import Proto, SocketTable, TcpState
from portscope.registry._ranges import KernelPorts

from .test_diagnose_helpers import owner, sock

KERNEL = KernelPorts((32768, 60999), frozenset({40000}), 1024, True)


def predict(*socks, **kw):  # type: ignore[no-untyped-def]
    kw.setdefault("kernel", KERNEL)
    kw.setdefault("uid", 1000)
    return diagnose_bind(SocketTable(tuple(socks), "test"), kw.pop("port", 8080), **kw)


def causes(reasons) -> list[tuple[BindCause, bool]]:  # type: ignore[no-untyped-def]
    return [(r.cause, r.blocking) for r in reasons]


def test_free_port_predicts_success() -> None:
    ok, reasons = predict(sock("0.0.0.0", 9090))
    assert ok and reasons == []


def test_wildcard_listener_blocks_specific_address() -> None:
    nginx = sock("0.0.0.0", 8080, owners=(owner(812, "nginx", "www-data"),))
    ok, reasons = predict(nginx, address="127.0.0.1")
    assert not ok
    assert causes(reasons) == [(BindCause.WILDCARD_HOLDS, True)]
    assert "nginx[812]" in reasons[0].explanation and reasons[0].sockets == (nginx,)
    assert "portscope who 8080" in (reasons[0].fix or "")


def test_specific_listener_blocks_wildcard_but_not_other_address() -> None:
    lo = sock("127.0.0.1", 8080)
    ok, reasons = predict(lo, address="0.0.0.0")
    assert not ok and causes(reasons) == [(BindCause.SPECIFIC_HOLDS, True)]
    ok, reasons = predict(lo, address="127.0.0.2")
    assert ok and reasons == []


def test_same_address_even_with_reuseaddr() -> None:
    ok, reasons = predict(sock("127.0.0.1", 8080), address="127.0.0.1", reuseaddr=True)
    assert not ok and causes(reasons) == [(BindCause.IN_USE, True)]


def test_dual_stack_v6_wildcard_takes_ipv4() -> None:
    v6 = sock("::", 8080, v6only=False)
    ok, reasons = predict(v6, address="0.0.0.0")
    assert not ok and causes(reasons) == [(BindCause.DUAL_STACK, True)]
    assert "IPV6_V6ONLY" in reasons[0].explanation
    ok, _ = predict(sock("::", 8080, v6only=True), address="0.0.0.0")
    assert ok


def test_binding_v6_wildcard_collides_with_ipv4_listener() -> None:
    ok, reasons = predict(sock("127.0.0.1", 8080), address="::")
    assert not ok and causes(reasons) == [(BindCause.DUAL_STACK, True)]


def test_time_wait_blocks_without_reuseaddr_only() -> None:
    tw = sock("127.0.0.1", 8080, TcpState.TIME_WAIT, remote=("127.0.0.1", 50000), uid=None)
    ok, reasons = predict(tw, tw, address="127.0.0.1")
    assert not ok and causes(reasons) == [(BindCause.TIME_WAIT, True)]
    assert reasons[0].explanation.startswith("2 connection(s)")
    assert "SO_REUSEADDR" in (reasons[0].fix or "")
    ok, reasons = predict(tw, address="127.0.0.1", reuseaddr=True)
    assert ok and causes(reasons) == [(BindCause.TIME_WAIT, False)]


def test_accepted_connections_are_explained_by_their_listener() -> None:
    listener = sock("0.0.0.0", 8080)
    conn = sock("127.0.0.1", 8080, TcpState.ESTABLISHED, remote=("127.0.0.1", 40001))
    ok, reasons = predict(listener, conn, address="0.0.0.0")
    assert not ok and len(reasons) == 1 and reasons[0].sockets == (listener,)


def test_reuseport_same_uid_is_possible_other_uid_is_not() -> None:
    mine = sock("0.0.0.0", 8080, uid=1000)
    ok, reasons = predict(mine, reuseport=True)
    assert ok and causes(reasons) == [(BindCause.REUSEPORT, False)]
    theirs = sock("0.0.0.0", 8080, uid=33)
    ok, reasons = predict(theirs, reuseport=True)
    assert not ok
    assert (BindCause.REUSEPORT, False) in causes(reasons)
    assert "uid 33" in next(r for r in reasons if r.cause is BindCause.REUSEPORT).explanation


def test_udp_shares_only_with_reuseaddr() -> None:
    dns = sock("0.0.0.0", 5353, TcpState.UNCONN, proto=Proto.UDP)
    ok, _ = predict(dns, port=5353, proto=Proto.UDP)
    assert not ok
    ok, reasons = predict(dns, port=5353, proto=Proto.UDP, reuseaddr=True)
    assert ok and "same option" in reasons[0].explanation
    # a TCP listener does not matter for a UDP bind
    ok, _ = predict(sock("0.0.0.0", 5353), port=5353, proto=Proto.UDP)
    assert ok


def test_privileged_port_without_capability() -> None:
    ok, reasons = predict(port=80, privileged_ok=False)
    assert not ok and causes(reasons) == [(BindCause.PRIVILEGED, True)]
    assert "ip_unprivileged_port_start=1024" in reasons[0].explanation
    ok, reasons = predict(port=80, privileged_ok=True)
    assert ok and reasons == []


def test_address_not_on_host() -> None:
    ok, reasons = predict(address="192.0.2.77", address_ok=False)
    assert not ok and causes(reasons) == [(BindCause.ADDR_NOT_AVAILABLE, True)]


def test_reserved_and_ephemeral_are_facts_not_blockers() -> None:
    ok, reasons = predict(port=40000)
    assert ok and causes(reasons) == [(BindCause.RESERVED, False)]
    ok, reasons = predict(port=40001)
    assert ok and causes(reasons) == [(BindCause.EPHEMERAL, False)]
