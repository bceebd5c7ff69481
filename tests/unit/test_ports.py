"""The one port parser (``portscope._ports``): numbers, ranges, transports, registry names."""

from __future__ import annotations

import pytest

from portscope import _ports
from portscope.errors import InvalidInput, InvalidPort
from portscope.models import Proto


@pytest.mark.parametrize(
    ("text", "port"),
    [("1", 1), ("80", 80), (" 443 ", 443), ("65535", 65535), ("00080", 80), (8080, 8080)],
)
def test_numbers(text: str | int, port: int) -> None:
    assert _ports.parse_port(text) == port


@pytest.mark.parametrize(
    "text",
    [
        "0",
        "65536",
        "99999",
        "9" * 5000,  # int() refuses over 4,300 digits: must be our one-line error
        "²",  # str.isdigit() is True for superscripts
        "٣",  # Arabic-Indic digit three
        "\xff",
        "",
        " ",
        "-1",
        "8o",
        "a b",
        "x" * 100,
    ],
)
def test_bad_ports_are_invalid_port(text: str) -> None:
    with pytest.raises(InvalidPort) as info:
        _ports.parse_port(text)
    message = str(info.value)
    assert "accepted" in message
    assert len(message) < 160  # the value is cut, the line stays one line
    assert "\n" not in message


def test_port_zero_only_when_allowed() -> None:
    assert _ports.parse_port("0", allow_zero=True) == 0
    assert _ports.check_port(0, allow_zero=True) == 0
    with pytest.raises(InvalidPort, match="1-65535"):
        _ports.check_port(0)
    with pytest.raises(InvalidPort):
        _ports.check_port(True)  # a bool is not a port


def test_names_come_from_portscopes_registry() -> None:
    # not all of these are in /etc/services, which getservbyname read
    assert _ports.parse_port("redis") == 6379
    assert _ports.parse_port("HTTP-ALT") == 8080
    assert _ports.parse_port("https") == 443
    assert _ports.port_by_name("domain", "udp") == 53
    assert _ports.port_by_name("no-such-service-here") is None
    assert _ports.port_by_name("") is None
    with pytest.raises(InvalidPort, match="unknown port"):
        _ports.parse_port("no-such-service-here")
    with pytest.raises(InvalidPort, match="a number 1-65535"):
        _ports.parse_port("redis", names=False)


def test_ranges() -> None:
    assert _ports.parse_port_range("8000-8100") == (8000, 8100)
    assert _ports.parse_port_range("22") == (22, 22)
    assert _ports.parse_port_range("http-alt") == (8080, 8080)  # a name with a dash
    assert _ports.parse_port_range("-1024", open_ends=True) == (1, 1024)
    assert _ports.parse_port_range("1024-", open_ends=True) == (1024, 65535)
    assert _ports.parse_port_range("0-10", allow_zero=True) == (0, 10)
    with pytest.raises(InvalidPort, match="reversed"):
        _ports.parse_port_range("90-80")
    with pytest.raises(InvalidPort, match="missing an end"):
        _ports.parse_port_range("80-")
    with pytest.raises(InvalidPort):
        _ports.parse_port_range("80-²")


def test_port_and_transport_in_either_order() -> None:
    assert _ports.parse_port_proto("53/udp") == (53, Proto.UDP)
    assert _ports.parse_port_proto("UDP/53") == (53, Proto.UDP)
    assert _ports.parse_port_proto("domain/udp") == (53, Proto.UDP)
    assert _ports.parse_port_proto("443") == (443, None)
    with pytest.raises(InvalidPort, match="unknown transport"):
        _ports.parse_port_proto("53/icmp")
    with pytest.raises(InvalidPort, match="PORT/TRANSPORT"):
        _ports.parse_port_proto("53/")


def test_errors_are_invalid_input() -> None:
    # the CLI turns InvalidInput into one line and exit 2
    assert issubclass(InvalidPort, InvalidInput)
