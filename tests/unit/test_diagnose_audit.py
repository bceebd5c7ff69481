"""audit_sockets: each rule over hand-made listeners."""

from __future__ import annotations

import pytest

from portscope.diagnose import Finding, Severity, audit_sockets
from portscope.errors import InvalidInput
from portscope.models import Proto, TcpState

from .test_diagnose_helpers import owner, sock


def no_name(port: int, proto: str) -> str | None:
    return {22: "ssh", 6379: "redis", 22222: "easyengine"}.get(port)


def run(*socks, **kw) -> list[Finding]:  # type: ignore[no-untyped-def]
    kw.setdefault("service_name", no_name)
    return audit_sockets(socks, **kw)


def rules(findings: list[Finding]) -> set[tuple[str, Severity]]:
    return {(f.rule, f.severity) for f in findings}


def test_exposed_redis_is_high_loopback_redis_is_nothing() -> None:
    exposed = sock("0.0.0.0", 6379, owners=(owner(5, "redis-server", "redis"),))
    found = run(exposed)
    assert rules(found) == {("datastore-exposed", Severity.HIGH), ("exposed", Severity.INFO)}
    top = found[0]
    assert (
        top.rule == "datastore-exposed"
        and top.socket == exposed
        and top.scope == "all interfaces (IPv4)"
    )
    assert "requirepass" in top.fix and "authentication" in top.why
    assert run(sock("127.0.0.1", 6379), sock("::1", 6379)) == []


def test_redis_like_on_a_test_port_by_hint_or_process_name() -> None:
    plain = sock("0.0.0.0", 23456)
    assert rules(run(plain)) == {("exposed", Severity.INFO)}
    hinted = run(plain, service_hints={23456: "redis"})
    assert ("datastore-exposed", Severity.HIGH) in rules(hinted)
    by_name = run(sock("0.0.0.0", 23456, owners=(owner(9, "redis-server"),)))
    assert ("datastore-exposed", Severity.HIGH) in rules(by_name)
    with pytest.raises(InvalidInput, match="unknown service kind"):
        run(plain, service_hints={23456: "notathing"})


def test_docker_api_is_critical_and_sorted_first() -> None:
    found = run(sock("0.0.0.0", 22), sock("0.0.0.0", 2375))
    assert found[0].severity is Severity.CRITICAL and found[0].socket.local.port == 2375


def test_non_loopback_specific_address_is_exposed() -> None:
    found = run(sock("192.0.2.2", 5432))
    assert ("datastore-exposed", Severity.MEDIUM) in rules(found)
    assert found[0].scope == "192.0.2.2 only"


def test_bound_to_lo_device_is_loopback() -> None:
    assert run(sock("0.0.0.0", 6379, interface="lo")) == []


def test_plaintext_protocols() -> None:
    found = run(sock("0.0.0.0", 23), sock("::", 110))
    plain = [f for f in found if f.rule == "plaintext"]
    assert {f.socket.local.port for f in plain} == {23, 110}
    assert all(f.severity is Severity.HIGH for f in plain)
    # TFTP is a UDP protocol: a TCP listener on 69 is not flagged as plaintext
    assert not [f for f in run(sock("0.0.0.0", 69)) if f.rule == "plaintext"]
    udp = run(sock("0.0.0.0", 69, TcpState.UNCONN, proto=Proto.UDP))
    assert [f for f in udp if f.rule == "plaintext"]


def test_root_on_exposed_address() -> None:
    root = (owner(1, "sshd", "root"),)
    assert ("root-exposed", Severity.LOW) in rules(run(sock("0.0.0.0", 22, owners=root)))
    assert ("root-exposed", Severity.MEDIUM) in rules(run(sock("0.0.0.0", 8080, owners=root)))
    assert not run(sock("127.0.0.1", 8080, owners=root))
    # without owners, the socket's uid tells
    assert ("root-exposed", Severity.MEDIUM) in rules(run(sock("0.0.0.0", 8080, uid=0)))


def test_unknown_system_port() -> None:
    found = run(sock("0.0.0.0", 999))
    assert ("unknown-system-port", Severity.MEDIUM) in rules(found)
    assert rules(run(sock("127.0.0.1", 999))) == {("unknown-system-port", Severity.LOW)}
    assert "unknown-system-port" not in {f.rule for f in run(sock("0.0.0.0", 22))}


def test_only_listeners_and_one_finding_per_address() -> None:
    conn = sock("0.0.0.0", 6379, TcpState.ESTABLISHED, remote=("192.0.2.9", 40000))
    assert run(conn) == []
    group = [sock("0.0.0.0", 6379), sock("0.0.0.0", 6379)]  # SO_REUSEPORT group
    assert len([f for f in run(*group) if f.rule == "datastore-exposed"]) == 1


def test_rule_selection() -> None:
    found = run(sock("0.0.0.0", 6379), rules=["datastore-exposed"])
    assert {f.rule for f in found} == {"datastore-exposed"}
    with pytest.raises(InvalidInput, match="unknown rule"):
        run(sock("0.0.0.0", 6379), rules=["nope"])


def test_registry_name_is_not_an_identity() -> None:
    # issue 8: "easyengine runs as root" for a python3 on 22222 (a registry guess shown
    # as what runs there). The title names the process; the registry only as such.
    py = sock("0.0.0.0", 22222, owners=(owner(4242, "python3", "root"),))
    found = {f.rule: f for f in run(py)}
    root = found["root-exposed"]
    assert root.title.startswith("python3[4242] runs as root on tcp 0.0.0.0:22222")
    assert "port registered to easyengine" in root.title
    assert "easyengine runs" not in root.title
    assert (root.process, root.registered) == ("python3[4242]", "easyengine")
    assert found["exposed"].title.startswith("python3[4242] listens on tcp 0.0.0.0:22222")
    # no visible process: the uid says whose it is
    hidden = {f.rule: f for f in run(sock("0.0.0.0", 22222, uid=0))}["root-exposed"]
    assert hidden.title.startswith("an unseen process of uid 0") and hidden.process is None


def test_datastore_guessed_from_its_port_says_so() -> None:
    guessed = run(sock("0.0.0.0", 6379, owners=(owner(7, "python3"),)))[0]
    assert guessed.rule == "datastore-exposed"
    assert guessed.title == (
        "python3[7] on tcp 0.0.0.0:6379 (all interfaces (IPv4)), the default Redis port, "
        "is reachable"
    )


def test_scope_words_are_the_listening_views() -> None:
    from portscope.sockets import bind_scope

    socks = [
        sock("0.0.0.0", 8080),
        sock("::", 8081, v6only=False),
        sock("::", 8082, v6only=True),
        sock("192.0.2.2", 8083),
    ]
    for f in run(*socks):
        assert f.scope == bind_scope(f.socket)
    assert {f.scope for f in run(*socks)} == {
        "all interfaces (IPv4)",
        "all interfaces (IPv4+IPv6)",
        "all interfaces (IPv6 only)",
        "192.0.2.2 only",
    }
