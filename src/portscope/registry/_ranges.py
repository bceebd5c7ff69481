"""Port ranges: RFC 6335 classes, and this machine's kernel port settings.

``port_range`` is pure; ``kernel_ports`` reads ``/proc/sys/net/ipv4`` on each call.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from portscope import _ports
from portscope.models import PortRange
from portscope.registry import _answer
from portscope.registry._answer import parse_port_list as parse_port_list


def check_port(port: int) -> int:
    """Return ``port`` if it is a port number (0-65535; ``_ports.check_port``).

    Raises:
        InvalidPort: not an int, or outside 0-65535.
    """
    return _ports.check_port(port, allow_zero=True)


def port_range(port: int) -> PortRange:
    """The RFC 6335 (section 6) range of a port: System 0-1023, User 1024-49151,
    Dynamic/Private 49152-65535.

    Raises:
        InvalidPort: outside 0-65535.
    """
    check_port(port)
    return PortRange(_answer.range_of(port))


@dataclass(frozen=True, slots=True)
class KernelPorts:
    """This machine's port settings (Linux ``ip-sysctl`` documentation).

    Attributes:
        ephemeral: ``net.ipv4.ip_local_port_range`` (first, last), inclusive; the kernel
            picks source ports of outgoing connections and ``bind(port 0)`` from it.
        reserved: ``net.ipv4.ip_local_reserved_ports``: never picked as ephemeral ports.
        unprivileged_start: ``net.ipv4.ip_unprivileged_port_start``: ports below it need
            CAP_NET_BIND_SERVICE to bind.
        from_kernel: False when the values are Linux defaults because /proc was unreadable.
    """

    ephemeral: tuple[int, int]
    reserved: frozenset[int]
    unprivileged_start: int
    from_kernel: bool

    def is_ephemeral(self, port: int) -> bool:
        """True when the kernel may pick ``port`` as an ephemeral port here."""
        lo, hi = self.ephemeral
        return lo <= port <= hi and port not in self.reserved

    @property
    def ephemeral_count(self) -> int:
        """How many ports the kernel can pick from (the range less the reserved ports)."""
        lo, hi = self.ephemeral
        return hi - lo + 1 - sum(1 for p in self.reserved if lo <= p <= hi)


def kernel_ports(proc: str | os.PathLike[str] = "/proc") -> KernelPorts:
    """Read this machine's ephemeral range, reserved ports and unprivileged port start
    (``net.ipv4.ip_local_port_range``, ``ip_local_reserved_ports``,
    ``ip_unprivileged_port_start``; ip-sysctl.rst).

    Args:
        proc: the procfs root (a seam for tests).

    Returns:
        The settings; Linux defaults with ``from_kernel=False`` when unreadable.
    """
    return KernelPorts(*_answer.read_kernel(proc))


@dataclass(frozen=True, slots=True)
class PortFacts:
    """What a port is on this machine, beside what it means (RFC 6335, ``ip-sysctl``).

    Attributes:
        port: the port.
        range: its RFC 6335 range (system, user, dynamic).
        privileged: binding it needs CAP_NET_BIND_SERVICE here (1 up to
            ``net.ipv4.ip_unprivileged_port_start``; never port 0, which asks the kernel
            for any free port).
        ephemeral: the kernel may pick it as an ephemeral (source) port here.
        reserved: listed in ``net.ipv4.ip_local_reserved_ports``.
        kernel: the settings these answers come from.
    """

    port: int
    range: PortRange
    privileged: bool
    ephemeral: bool
    reserved: bool
    kernel: KernelPorts


def port_facts(port: int, kernel: KernelPorts | None = None) -> PortFacts:
    """Classify ``port`` by RFC 6335 and by this machine's kernel settings.

    Args:
        port: 0-65535.
        kernel: settings to use; read from ``/proc/sys/net/ipv4`` when ``None``.

    Returns:
        The facts.

    Raises:
        InvalidPort: outside 0-65535.
    """
    k = kernel if kernel is not None else kernel_ports()
    check_port(port)
    settings = (k.ephemeral, k.reserved, k.unprivileged_start, k.from_kernel)
    _, range_name, privileged, ephemeral, reserved = _answer.facts_of(port, settings)
    return PortFacts(
        port=port,
        range=PortRange(range_name),
        privileged=privileged,
        ephemeral=ephemeral,
        reserved=reserved,
        kernel=k,
    )
