"""Targets and port specifications: every accepted form, every refused one, lazy iteration."""

from __future__ import annotations

import re
import shutil
import socket
import subprocess
import tracemalloc
from pathlib import Path

import pytest

from portscope.errors import InvalidPortSpec, InvalidTarget, NetworkSafetyError
from portscope.models import Proto
from portscope.scanner.targets import (
    MAX_ADDRESSES,
    check_size,
    parse_ports,
    parse_targets,
    read_target_file,
)


def addresses(*specs: str, **kw: object) -> list[str]:
    return [t.address for t in parse_targets(specs, **kw)]  # type: ignore[arg-type]


@pytest.fixture
def no_dns(monkeypatch: pytest.MonkeyPatch) -> None:
    """Names never reach a real resolver: unknown names fail as NXDOMAIN would."""
    known = {
        "lab-host": [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("198.18.0.2", 0))],
        "dual": [
            (socket.AF_INET6, socket.SOCK_STREAM, 6, "", ("2001:db8::2", 0, 0, 0)),
            (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("198.18.0.2", 0)),
        ],
    }

    def fake(host: str, port: object, family: int = 0, *a: object, **k: object) -> list:  # type: ignore[type-arg]
        if host not in known:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return [i for i in known[host] if family in (0, i[0])]

    monkeypatch.setattr(socket, "getaddrinfo", fake)


# ---------------------------------------------------------------- targets


def test_single_addresses_both_families() -> None:
    assert addresses("127.0.0.1") == ["127.0.0.1"]
    assert addresses("::1") == ["::1"]
    assert addresses("2001:DB8::0:1") == ["2001:db8::1"]


def test_cidr_is_every_address_of_the_block_as_nmap() -> None:
    # nmap -sL -n 127.0.0.0/30 lists .0, .1, .2 and .3; a /31 both; portscope scanned .1-.2
    assert addresses("127.0.0.0/30") == ["127.0.0.0", "127.0.0.1", "127.0.0.2", "127.0.0.3"]
    assert addresses("198.18.1.0/28") == [f"198.18.1.{i}" for i in range(16)]
    assert addresses("198.18.0.4/31") == ["198.18.0.4", "198.18.0.5"]
    assert addresses("198.18.0.7/32") == ["198.18.0.7"]
    assert addresses("2001:db8::/126") == [
        "2001:db8::",
        "2001:db8::1",
        "2001:db8::2",
        "2001:db8::3",
    ]


@pytest.mark.skipif(shutil.which("nmap") is None, reason="nmap is not installed")
@pytest.mark.parametrize(
    "block", ["127.0.0.0/30", "127.0.0.0/31", "127.0.0.8/29", "2001:db8::/126"]
)
def test_cidr_lists_what_nmap_lists(block: str) -> None:
    # nmap -sL (list scan) -n (no DNS) sends no packet: it only prints its target list
    argv = ["nmap", "-sL", "-n", *(["-6"] if ":" in block else []), block]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=True).stdout
    listed = re.findall(r"^Nmap scan report for (\S+)$", out, re.MULTILINE)
    assert addresses(block) == listed


def test_ranges_short_full_and_octet() -> None:
    assert addresses("198.18.0.1-3") == ["198.18.0.1", "198.18.0.2", "198.18.0.3"]
    assert addresses("198.18.0.254-198.18.1.1") == [
        "198.18.0.254",
        "198.18.0.255",
        "198.18.1.0",
        "198.18.1.1",
    ]
    assert addresses("198.18.0-1.1,5") == ["198.18.0.1", "198.18.0.5", "198.18.1.1", "198.18.1.5"]
    assert addresses("2001:db8::1-2001:db8::3") == ["2001:db8::1", "2001:db8::2", "2001:db8::3"]


def test_names_resolve_to_every_address_and_family_filter(no_dns: None) -> None:
    targets = list(parse_targets(["dual"]))
    assert [(t.host, t.address, t.family) for t in targets] == [
        ("dual", "2001:db8::2", 6),
        ("dual", "198.18.0.2", 4),
    ]
    assert addresses("dual", family=4) == ["198.18.0.2"]
    with pytest.raises(InvalidTarget, match=r"'lab-host'.*IPv6"):
        parse_targets(["lab-host"], family=6)


def test_excludes_cut_blocks_and_count_follows() -> None:
    ts = parse_targets(["198.18.0.0/24"], exclude=["198.18.0.5-250", "198.18.0.1"])
    got = [t.address for t in ts]
    assert got == ["198.18.0.0", "198.18.0.2", "198.18.0.3", "198.18.0.4", "198.18.0.251",
                   "198.18.0.252", "198.18.0.253", "198.18.0.254", "198.18.0.255"]  # fmt: skip
    assert len(ts) == len(got) == 9


def test_big_blocks_iterate_lazily() -> None:
    # Parsing only (nothing is sent). A materialized /8 would take gigabytes; lazily it
    # takes next to nothing.
    tracemalloc.start()
    try:
        ts = parse_targets(["10.0.0.0/8"])
        assert len(ts) == 2**24
        it = iter(ts)
        assert next(it).address == "10.0.0.0"
        assert next(it).address == "10.0.0.1"
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 1_000_000, peak


@pytest.mark.parametrize(
    ("spec", "needle"),
    [
        ("300.1.1.1", "'300.1.1.1'"),
        ("::g", "'::g'"),
        ("1.2.3", "'1.2.3'"),
        ("198.18.0.0/33", "'198.18.0.0/33'"),
        ("198.18.0.5-2", "'198.18.0.5-2'"),
        ("198.18.0.5-198.18.0.1", "'198.18.0.5-198.18.0.1'"),
        ("bad name!", "'bad name!'"),
        ("", "empty target"),
        ("0.0.0.0", "unspecified"),
    ],
)
def test_bad_targets_name_the_value(spec: str, needle: str) -> None:
    with pytest.raises(InvalidTarget) as info:
        parse_targets([spec])
    assert needle in str(info.value)
    assert "\n" not in str(info.value)


def test_unresolvable_name(no_dns: None) -> None:
    with pytest.raises(InvalidTarget, match=r"cannot resolve host name 'no-such-host\.invalid'"):
        parse_targets(["no-such-host.invalid"])


@pytest.mark.parametrize(
    "spec",
    [
        "224.0.0.1",
        "239.255.255.250",
        "255.255.255.255",
        "ff02::1",
        "224.0.0.0/24",
        "223.255.255.250-224.0.0.2",
        "192.0.0.0/2",
        "ff00::/8",
    ],
)
def test_multicast_and_broadcast_refused(spec: str) -> None:
    with pytest.raises(NetworkSafetyError, match="multicast or broadcast"):
        parse_targets([spec])


def test_size_bounds_need_yes() -> None:
    ports = parse_ports("1-1000")
    big = parse_targets(["10.0.0.0/15"])
    with pytest.raises(NetworkSafetyError, match=f"over the limit of {MAX_ADDRESSES:,}"):
        check_size(big, ports)
    slash16 = parse_targets(["10.0.0.0/16"])
    with pytest.raises(NetworkSafetyError, match="probes"):
        check_size(slash16, ports)  # 65,534 x 1,000 > 10M
    check_size(slash16, ports, yes=True)
    check_size(parse_targets(["198.18.1.0/28"]), parse_ports("-"))


def test_target_file(tmp_path: Path) -> None:
    f = tmp_path / "targets.txt"
    f.write_text("# lab\n198.18.0.2  198.18.0.3\n\n198.18.1.0/30 # block\n")
    assert read_target_file(f) == ["198.18.0.2", "198.18.0.3", "198.18.1.0/30"]
    empty = tmp_path / "empty.txt"
    empty.write_text("# nothing here\n\n")
    with pytest.raises(InvalidTarget, match=r"empty\.txt' holds no targets"):
        read_target_file(empty)
    with pytest.raises(InvalidTarget, match="cannot read target file"):
        read_target_file(tmp_path / "missing.txt")


# ---------------------------------------------------------------- ports


def test_port_specs() -> None:
    s = parse_ports("22,80,1000-2000")
    assert s.tcp == ((22, 22), (80, 80), (1000, 2000)) and s.udp == ()
    assert s.count == 1003
    assert parse_ports("-").tcp == ((1, 65535),)
    assert parse_ports("-1024").tcp == ((1, 1024),)
    assert parse_ports("60000-").tcp == ((60000, 65535),)
    assert parse_ports("80,79,81,1-3").tcp == ((1, 3), (79, 81))
    mixed = parse_ports("T:80,443,U:53,161")
    assert mixed.tcp == ((80, 80), (443, 443)) and mixed.udp == ((53, 53), (161, 161))
    assert list(mixed) == [(Proto.TCP, 80), (Proto.TCP, 443), (Proto.UDP, 53), (Proto.UDP, 161)]
    assert parse_ports("53", default_proto=Proto.UDP).udp == ((53, 53),)
    assert parse_ports("ssh,http").tcp == ((22, 22), (80, 80))


@pytest.mark.parametrize(
    ("spec", "needle"),
    [
        ("0-70000", "port '0' is out of range"),
        ("1-70000", "port '70000' is out of range"),
        ("80-20", "reversed port range '80-20'"),
        ("0", "port '0' is out of range"),
        ("22,,80", "empty item"),
        ("Q:80", "'Q:'"),
        ("no-such-service-name", "unknown port 'no-such-service-name'"),
        ("", "empty port specification"),
        ("12a", "unknown port '12a'"),
        ("\u00b2", "unknown port '\u00b2'"),  # str.isdigit() says yes; int() says no
        ("80,\u0663", "unknown port"),  # ARABIC-INDIC DIGIT THREE: ASCII digits only
        ("9" * 5000, "is out of range"),  # int() refuses over 4,300 digits
    ],
)
def test_bad_port_specs(spec: str, needle: str) -> None:
    with pytest.raises(InvalidPortSpec) as info:
        parse_ports(spec)
    assert needle in str(info.value)
    assert len(str(info.value)) < 300 and "\n" not in str(info.value)


def test_port_names_resolve_through_the_registry() -> None:
    from portscope._ports import port_by_name

    assert parse_ports("http-alt").tcp == ((port_by_name("http-alt", "tcp"),) * 2,)
    assert parse_ports("U:domain").udp == ((53, 53),)


def test_top_ports_from_registry() -> None:
    from portscope.scanner.targets import top_ports

    spec = top_ports(100)
    assert spec.count == 100
    assert (80, 80) in spec.tcp or any(a <= 80 <= b for a, b in spec.tcp)
    with pytest.raises(InvalidPortSpec, match="--top-ports 0"):
        top_ports(0)


@pytest.mark.parametrize(
    "spec", ["fe80::1%", "fe80::1%lo", "fe80::1", "fe80::/64", "::1%lo", "127.0.0.1%lo"]
)
def test_link_local_and_zone_indexes_are_refused_not_scanned_into_einval(spec: str) -> None:
    # 'scan fe80::1%' used to exit 0 with every port "filtered (einval)"
    with pytest.raises(InvalidTarget, match=r"link-local|zone"):
        parse_targets([spec])


@pytest.mark.parametrize(
    "name", ["a..b", "-a.example", "a-.example", "\x1b[2Khost", "ho st", "x" * 64 + ".test"]
)
def test_malformed_host_names_never_reach_the_resolver(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import socket

    def no_dns(*args: object, **kwargs: object) -> None:
        raise AssertionError(f"resolver asked about {args[0]!r}")

    monkeypatch.setattr(socket, "getaddrinfo", no_dns)
    with pytest.raises(InvalidTarget, match="invalid host name"):
        parse_targets([name])
    from portscope.diagnose._common import check_host

    with pytest.raises(InvalidTarget):
        check_host(name)
