"""free_ports: ports it returns are really bindable; held ports are really held."""

from __future__ import annotations

import errno
import io
import json
import socket

import pytest

from portscope.cli import Env, main
from portscope.diagnose import free_ports
from portscope.errors import PortscopeError
from portscope.models import Proto
from portscope.registry import service_name
from portscope.registry._ranges import kernel_ports


def test_free_ports_are_bindable_and_avoid_ephemeral_and_registered() -> None:
    kernel = kernel_ports()
    ports = [p.port for p in free_ports(5)]
    assert len(set(ports)) == 5
    servers = []
    try:
        for port in ports:
            assert not kernel.is_ephemeral(port)
            assert service_name(port, "tcp") is None
            assert port >= kernel.unprivileged_start
            servers.append(socket.create_server(("0.0.0.0", port)))  # no SO_REUSEADDR needed
            six = socket.socket(socket.AF_INET6)
            six.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            six.bind(("::", port))
            servers.append(six)
    finally:
        for s in servers:
            s.close()


def test_udp_and_range() -> None:
    found = free_ports(3, range="20000-20999", proto=Proto.UDP, avoid_registered=False)
    for p in found:
        assert 20000 <= p.port <= 20999 and p.proto is Proto.UDP
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.bind(("0.0.0.0", p.port))


def test_held_ports_cannot_be_taken_until_closed() -> None:
    with free_ports(2, address="127.0.0.1", hold=True) as held:
        assert len(held) == 2
        port = held.ports[0]
        assert held.socket_for(port).getsockname() == ("127.0.0.1", port)
        with socket.socket() as other, pytest.raises(OSError) as err:
            other.bind(("127.0.0.1", port))
        assert err.value.errno == errno.EADDRINUSE
        mine = held.release(port)
    with mine:
        mine.listen()  # the caller uses the very socket: no race
        assert mine.getsockname()[1] == port
    with socket.socket() as again:
        again.bind(("127.0.0.1", held_port := port))
    assert held_port == port


def test_not_enough_ports_is_an_error() -> None:
    with free_ports(1, address="127.0.0.1", hold=True, avoid_registered=False) as held:
        port = held.ports[0]
        with pytest.raises(PortscopeError, match="only 0 of 1"):
            free_ports(1, range=(port, port), address="127.0.0.1", avoid_registered=False)


def test_cli_free() -> None:
    out, err = io.StringIO(), io.StringIO()
    status = main(["free", "-n", "3", "--json"], Env(stdout=out, stderr=err))
    assert status == 0
    data = json.loads(out.getvalue())["ports"]
    assert len(data) == 3 and {d["proto"] for d in data} == {"tcp"}
    out = io.StringIO()
    assert main(["free", "--range", "30000-30100", "--udp"], Env(stdout=out, stderr=err)) == 0
    assert 30000 <= int(out.getvalue()) <= 30100
    for bad in (["-n", "0"], ["--range", "9-1"], ["--addr", "nope"]):
        err = io.StringIO()
        assert main(["free", *bad], Env(stdout=io.StringIO(), stderr=err)) == 2
        assert err.getvalue().count("\n") == 1


def run_cli(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    status = main(list(argv), Env(stdout=out, stderr=err))
    return status, out.getvalue(), err.getvalue()


def test_json_is_an_object_with_a_schema_and_count_spellings() -> None:
    # issue 8: `free --json` was a bare array while every other command returns an object.
    for flag in ("-c", "--count", "-n"):
        status, out, err = run_cli("free", flag, "2", "--json")
        assert status == 0 and err == ""
        data = json.loads(out)
        assert data["schema"] == "portscope.free/1" and data["proto"] == "tcp"
        assert (data["requested"], data["found"], data["note"]) == (2, 2, None)
        assert [p["proto"] for p in data["ports"]] == ["tcp", "tcp"]
    status, out, _ = run_cli("free", "-u", "-4", "--json")
    assert status == 0 and json.loads(out)["ports"][0]["address"] == "0.0.0.0"
    if socket.has_ipv6:
        status, out, _ = run_cli("free", "-6", "--json")
        assert status == 0 and json.loads(out)["ports"][0]["address"] == "::"


def test_fewer_than_asked_prints_what_there_is_and_exits_1() -> None:
    # issue 8: `free -n 20` with 9 available printed nothing.
    with free_ports(1, address="127.0.0.1", hold=True, avoid_registered=False) as held:
        lo = held.ports[0]
    span = f"{lo}-{min(lo + 8, 65535)}"
    opts = ("--range", span, "--addr", "127.0.0.1", "--allow-ephemeral", "--allow-registered")
    status, out, err = run_cli("free", "-n", "20", *opts)
    ports = [int(line) for line in out.split()]
    assert status == 1 and 1 <= len(ports) <= 9
    assert all(lo <= p <= lo + 8 for p in ports)
    assert err.count("\n") == 1 and f"only {len(ports)} of 20 free tcp port(s) in {span}" in err
    status, out, _ = run_cli("free", "-n", "20", *opts, "--json")
    data = json.loads(out)
    assert status == 1 and data["found"] == len(data["ports"]) < 20 and data["note"]
    found = free_ports(
        20, range=span, address="127.0.0.1", avoid_ephemeral=False, avoid_registered=False,
        partial=True,
    )  # fmt: skip
    assert 1 <= len(found) <= 9


def test_an_address_not_on_this_host_is_named_as_such() -> None:
    # issue 8: a non-local --addr said "widen --range". 192.0.2.77 (TEST-NET-1) is bound
    # to nothing here; binding only asks the kernel, no packet is sent.
    from portscope.errors import InvalidTarget

    with pytest.raises(InvalidTarget, match="not local to this host"):
        free_ports(1, address="192.0.2.77")
    status, out, err = run_cli("free", "--addr", "192.0.2.77")
    assert status == 2 and out == "" and "192.0.2.77 is not local to this host" in err
    assert "widen" not in err
