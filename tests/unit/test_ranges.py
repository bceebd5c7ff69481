"""RFC 6335 ranges and the kernel's port settings."""

from __future__ import annotations

from pathlib import Path

import pytest

from portscope import InvalidPort, PortRange, kernel_ports, port_range


@pytest.mark.parametrize(
    ("port", "expected"),
    [
        (0, PortRange.SYSTEM),
        (1023, PortRange.SYSTEM),
        (1024, PortRange.USER),
        (49151, PortRange.USER),
        (49152, PortRange.DYNAMIC),
        (65535, PortRange.DYNAMIC),
    ],
)
def test_rfc6335_boundaries(port: int, expected: PortRange) -> None:
    assert port_range(port) is expected


@pytest.mark.parametrize("port", [-1, 65536, 70000])
def test_out_of_range(port: int) -> None:
    with pytest.raises(InvalidPort, match=str(port)):
        port_range(port)


def test_kernel_ports_matches_proc() -> None:
    text = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
    kp = kernel_ports()
    assert kp.from_kernel
    assert kp.ephemeral == (int(text[0]), int(text[1]))
    assert kp.is_ephemeral(kp.ephemeral[0])
    assert not kp.is_ephemeral(kp.ephemeral[0] - 1)


def test_kernel_ports_reads_reserved(tmp_path: Path) -> None:
    sysctl = tmp_path / "sys" / "net" / "ipv4"
    sysctl.mkdir(parents=True)
    (sysctl / "ip_local_port_range").write_text("40000\t40010\n")
    (sysctl / "ip_local_reserved_ports").write_text("40001,40005-40007\n")
    (sysctl / "ip_unprivileged_port_start").write_text("80\n")
    kp = kernel_ports(tmp_path)
    assert kp.ephemeral == (40000, 40010)
    assert kp.reserved == frozenset({40001, 40005, 40006, 40007})
    assert kp.unprivileged_start == 80
    assert kp.ephemeral_count == 11 - 4
    assert not kp.is_ephemeral(40006)


def test_kernel_ports_defaults_when_unreadable(tmp_path: Path) -> None:
    kp = kernel_ports(tmp_path / "missing")
    assert not kp.from_kernel
    assert kp.ephemeral == (32768, 60999)
