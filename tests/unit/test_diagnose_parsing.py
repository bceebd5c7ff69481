"""Parsers of the diagnose commands: ports, host:port, ranges, cgroups, routes."""

from __future__ import annotations

import pytest

from portscope.diagnose import Severity
from portscope.diagnose._cgroup import parse_cgroup
from portscope.diagnose._common import (
    covers,
    parse_address,
    parse_host_port,
    parse_port,
    parse_port_proto,
)
from portscope.diagnose._route import parse_route_get
from portscope.diagnose.free import parse_range
from portscope.errors import InvalidInput, InvalidPort, InvalidPortSpec, InvalidTarget
from portscope.models import Proto


def test_port_proto() -> None:
    assert parse_port_proto("8080") == (8080, None)
    assert parse_port_proto("53/udp") == (53, Proto.UDP)
    assert parse_port_proto("443/TCP") == (443, Proto.TCP)


@pytest.mark.parametrize(
    ("text", "named"),
    [("0", "0"), ("99999", "99999"), ("abc", "abc"), ("80/sctp", "sctp"), ("-1", "-1"),
     ("", "''"), ("80/", "80/")],
)  # fmt: skip
def test_bad_ports_name_the_value(text: str, named: str) -> None:
    with pytest.raises(InvalidPort) as err:
        parse_port_proto(text)
    assert named in str(err.value)


def test_service_names_resolve_through_the_registry() -> None:
    # issue 8: `who redis` failed while `ls --port redis` worked (one parser now).
    assert parse_port_proto("redis") == (6379, None)
    assert parse_port_proto("http-alt") == (8080, None)
    assert parse_port_proto("domain/udp") == (53, Proto.UDP)
    assert parse_port("http-alt") == 8080
    assert parse_host_port("localhost:http-alt") == ("localhost", 8080)
    assert parse_host_port("[::1]:redis") == ("::1", 6379)
    assert parse_range("http-alt") == (8080, 8080)


def test_host_port() -> None:
    assert parse_host_port("localhost:8080") == ("localhost", 8080)
    assert parse_host_port("[::1]:22") == ("::1", 22)
    assert parse_host_port("127.0.0.2:6379") == ("127.0.0.2", 6379)


@pytest.mark.parametrize("text", ["host", "::1:22", "[::1]", ":80", "[::1]22"])
def test_bad_host_port(text: str) -> None:
    with pytest.raises(InvalidTarget):
        parse_host_port(text)


def test_host_port_bad_port() -> None:
    with pytest.raises(InvalidPort):
        parse_host_port("host:70000")


def test_address() -> None:
    assert parse_address("[::1]") == "::1"
    assert parse_address("0:0::1") == "::1"
    with pytest.raises(InvalidTarget, match="not an IP address"):
        parse_address("example.com")
    assert parse_port(" 22 ") == 22


def test_range() -> None:
    assert parse_range("20000-20010") == (20000, 20010)
    assert parse_range("8080") == (8080, 8080)
    for bad in ("10-5", "0-10", "a-b", "1-70000", ""):
        with pytest.raises(InvalidPortSpec):
            parse_range(bad)


def test_severity_order_and_parse() -> None:
    assert [s.rank for s in Severity] == [0, 1, 2, 3, 4]
    assert Severity.parse("HIGH") is Severity.HIGH
    with pytest.raises(InvalidInput, match="info, low, medium, high, critical"):
        Severity.parse("urgent")


def test_covers_wildcards_and_dual_stack() -> None:
    assert covers("0.0.0.0", None, "127.0.0.2")
    assert not covers("127.0.0.1", None, "127.0.0.2")
    assert covers("::", False, "192.0.2.2")
    assert not covers("::", True, "192.0.2.2")
    assert covers("::", True, "::1")
    assert not covers("0.0.0.0", None, "::1")
    assert covers("::ffff:127.0.0.1", None, "127.0.0.1")


def test_cgroup_systemd_service() -> None:
    info = parse_cgroup("0::/system.slice/nginx.service\n")
    assert (info.unit, info.container) == ("nginx.service", None)


def test_cgroup_user_unit_innermost() -> None:
    text = "0::/user.slice/user-1000.slice/user@1000.service/app.slice/myapp.service\n"
    assert parse_cgroup(text).unit == "myapp.service"


def test_cgroup_docker_v2_and_v1() -> None:
    cid = "4f1c2a9b8e7d" + "0" * 52
    v2 = parse_cgroup(f"0::/system.slice/docker-{cid}.scope\n")
    assert v2.container == "docker:4f1c2a9b8e7d" and v2.unit is None
    v1 = parse_cgroup(f"12:memory:/docker/{cid}\n1:name=systemd:/docker/{cid}\n0::/\n")
    assert v1.container == "docker:4f1c2a9b8e7d"


def test_cgroup_kubernetes_and_root() -> None:
    cid = "ab" * 32
    k8s = parse_cgroup(f"0::/kubepods.slice/kubepods-pod1.slice/cri-containerd-{cid}.scope\n")
    assert k8s.container == f"containerd:{cid[:12]}"
    root = parse_cgroup("9:name=systemd:/\n0::/\n")
    assert (root.unit, root.container) == (None, None)


def test_route_get() -> None:
    r = parse_route_get("192.0.2.9 via 192.0.2.1 dev eth0 src 192.0.2.2 uid 0 \\    cache")
    assert (r.kind, r.gateway, r.interface, r.source) == (
        "unicast",
        "192.0.2.1",
        "eth0",
        "192.0.2.2",
    )
    local = parse_route_get("local 127.0.0.2 dev lo src 127.0.0.1 uid 0 \\    cache <local>")
    assert (local.kind, local.interface) == ("local", "lo")
    assert parse_route_get("RTNETLINK answers: Network is unreachable").kind == "error"
    assert parse_route_get("unreachable 198.18.0.1 uid 0").kind == "unreachable"
