"""Helpers shared by the diagnose modules: port arguments, addresses, /proc facts.

Nothing here prints; every reader of ``/proc`` runs only when called.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Iterable
from pathlib import Path

from portscope.errors import InvalidPort, InvalidTarget
from portscope.models import Proto, Socket, SocketTable, TcpState

# linux/capability.h
CAP_NET_BIND_SERVICE = 10
CAP_KILL = 5

WILDCARDS = frozenset({"0.0.0.0", "::"})
_PROTOS = {"tcp": Proto.TCP, "udp": Proto.UDP}


def parse_port(text: str) -> int:
    """Parse a port number 1-65535 (port 0 means "any port" and names no socket).

    Raises:
        InvalidPort: not a number in 1-65535.
    """
    value = text.strip()
    if not value.isdigit():
        raise InvalidPort(f"{text!r} is not a port: give a number 1-65535")
    port = int(value)
    if not 1 <= port <= 65535:
        raise InvalidPort(f"{port} is not a port: ports are 1-65535")
    return port


def parse_port_proto(text: str) -> tuple[int, Proto | None]:
    """Parse ``PORT``, ``PORT/tcp`` or ``PORT/udp``.

    Returns:
        (port, proto); proto is ``None`` when no ``/tcp``/``/udp`` was given.

    Raises:
        InvalidPort: a port outside 1-65535 or a transport other than tcp/udp.
    """
    port_text, sep, proto_text = text.partition("/")
    proto: Proto | None = None
    if sep:
        try:
            proto = _PROTOS[proto_text.strip().lower()]
        except KeyError:
            raise InvalidPort(
                f"{text!r}: unknown transport {proto_text!r}; use PORT, PORT/tcp or PORT/udp"
            ) from None
    return parse_port(port_text), proto


def check_port(port: int, *, allow_zero: bool = False) -> int:
    """Return ``port`` when it is 1-65535 (0-65535 with ``allow_zero``).

    Raises:
        InvalidPort: otherwise.
    """
    low = 0 if allow_zero else 1
    if isinstance(port, bool) or not isinstance(port, int) or not low <= port <= 65535:
        raise InvalidPort(f"{port!r} is not a port: ports are {low}-65535")
    return port


def parse_address(text: str) -> str:
    """Normalise an IPv4 or IPv6 literal (``[::1]`` brackets allowed) to inet_ntop form.

    Raises:
        InvalidTarget: not an IP address literal.
    """
    value = text.strip()
    if value.startswith("[") and value.endswith("]"):
        value = value[1:-1]
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        raise InvalidTarget(
            f"{text!r} is not an IP address: give an IPv4 or IPv6 address, e.g. 127.0.0.1 or ::1"
        ) from None


def family_of(address: str) -> int:
    """4 or 6 for an address literal (a scope ``%iface`` is allowed)."""
    return 6 if ":" in address else 4


def _ip(address: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return None


def mapped_v4(address: str) -> str | None:
    """The IPv4 address of an IPv4-mapped IPv6 address (``::ffff:a.b.c.d``), else ``None``."""
    ip = _ip(address)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return str(ip.ipv4_mapped)
    return None


def is_wildcard(address: str) -> bool:
    """True for ``0.0.0.0`` and ``::``: bound to every address of the host."""
    return address in WILDCARDS


def is_loopback(address: str) -> bool:
    """True for 127.0.0.0/8, ``::1`` and IPv4-mapped loopback."""
    ip = _ip(address)
    if ip is None:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped.is_loopback
    return ip.is_loopback


def bind_scope(sock: Socket) -> str:
    """Who can reach a bound socket: ``all`` interfaces, ``loopback`` only, or ``address``.

    A socket bound to the ``lo`` device (SO_BINDTODEVICE) is loopback-only whatever its
    address.
    """
    if sock.interface == "lo" or is_loopback(sock.local.address):
        return "loopback"
    if is_wildcard(sock.local.address):
        return "all"
    return "address"


def is_exposed(sock: Socket) -> bool:
    """True when hosts other than this one can reach the socket's address."""
    return bind_scope(sock) != "loopback"


def is_listener(sock: Socket) -> bool:
    """TCP LISTEN sockets and unconnected UDP sockets (UDP "listeners")."""
    if sock.proto is Proto.TCP:
        return sock.state is TcpState.LISTEN
    return sock.state is TcpState.UNCONN or sock.remote is None


def owners_text(sock: Socket) -> str:
    """``name(pid)`` of each owner, comma-separated, or ``-``."""
    if not sock.owners:
        return "-"
    return ",".join(f"{o.name}({o.pid})" for o in sock.owners)


def read_sockets(
    protos: Iterable[Proto] | None = None,
    *,
    owners: bool = True,
    listening: bool = False,
    port: int | None = None,
) -> SocketTable:
    """This machine's socket table from the sockets package (the one reader).

    Args:
        protos: transports to dump (default: all).
        owners: map sockets to processes.
        listening: only TCP LISTEN and UDP UNCONN sockets.
        port: only sockets with this local port (filtered before sockets are built, so
            a host with 200,000 connections costs little).
    """
    from portscope.sockets import SocketFilter, list_sockets

    states = [TcpState.LISTEN, TcpState.UNCONN] if listening else None
    where = SocketFilter(sports=frozenset({port})) if port is not None else None
    return list_sockets(
        protos=None if protos is None else list(protos),
        states=states,
        owners=owners,
        where=where,
    )


def cap_effective(status_path: Path = Path("/proc/self/status")) -> int | None:
    """The effective capability mask of this process (``CapEff`` in ``/proc/self/status``).

    Returns:
        The mask as an integer, or ``None`` when it cannot be read (non-Linux).
    """
    try:
        for line in status_path.read_text().splitlines():
            if line.startswith("CapEff:"):
                return int(line.split()[1], 16)
    except (OSError, ValueError, IndexError):
        return None
    return None


def has_capability(bit: int) -> bool:
    """True when this process holds capability ``bit`` (``linux/capability.h``) or is root
    on a system without capabilities."""
    mask = cap_effective()
    if mask is None:
        return os.geteuid() == 0
    return bool(mask >> bit & 1)


def sysctl_int(path: str, default: int) -> int:
    """An integer sysctl from ``/proc/sys`` (``net/ipv6/bindv6only``), or ``default``."""
    try:
        return int(Path("/proc/sys", path).read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return default


def _boot_time() -> float | None:
    try:
        for line in Path("/proc/stat").read_text().splitlines():
            if line.startswith("btime "):
                return float(line.split()[1])
    except (OSError, ValueError):
        return None
    return None


def proc_start_time(pid: int) -> float | None:
    """Start time of process ``pid`` in seconds since the epoch, from ``/proc/PID/stat``.

    Field 22 (``starttime``, clock ticks after boot, proc(5)) plus ``btime`` from
    ``/proc/stat``. The same process always yields the same value, so it tells a PID
    that was reused from the process seen earlier.

    Returns:
        The time, or ``None`` when the process is gone or unreadable.
    """
    try:
        raw = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return None
    # comm (field 2) may contain spaces and parentheses: split after the last ')'.
    fields = raw[raw.rfind(b")") + 2 :].split()
    boot = _boot_time()
    try:
        ticks = int(fields[19])  # field 22 overall; 3 is the first after comm
    except (IndexError, ValueError):
        return None
    if boot is None:
        return None
    return round(boot + ticks / os.sysconf("SC_CLK_TCK"), 2)


def parse_host_port(text: str) -> tuple[str, int]:
    """Parse ``HOST:PORT``, ``[IPV6]:PORT`` (also ``IPV6.PORT`` is not accepted).

    Raises:
        InvalidTarget: no port, or an IPv6 address without brackets.
        InvalidPort: a port outside 1-65535.
    """
    value = text.strip()
    if value.startswith("["):
        host, sep, rest = value[1:].partition("]")
        if not sep or not rest.startswith(":") or not host:
            raise InvalidTarget(f"{text!r}: give HOST:PORT, or [IPV6]:PORT for an IPv6 address")
        return host, parse_port(rest[1:])
    host, sep, port_text = value.rpartition(":")
    if not sep or not host:
        raise InvalidTarget(f"{text!r} has no port: give HOST:PORT, e.g. localhost:8080")
    if ":" in host:
        raise InvalidTarget(
            f"{text!r}: put an IPv6 address in brackets, e.g. [::1]:{port_text or 'PORT'}"
        )
    return host, parse_port(port_text)


def covers(listener_address: str, listener_v6only: bool | None, address: str) -> bool:
    """True when a socket bound to ``listener_address`` receives traffic sent to ``address``.

    A wildcard covers every address of its family; ``::`` also covers IPv4 unless it is
    IPV6_V6ONLY (ipv6(7); the default follows ``net.ipv6.bindv6only``).
    """
    if listener_address == address:
        return True
    target_v4 = family_of(address) == 4 or mapped_v4(address) is not None
    if listener_address == "0.0.0.0":
        return target_v4
    if listener_address == "::":
        if family_of(address) == 6 and mapped_v4(address) is None:
            return True
        v6only = listener_v6only
        if v6only is None:
            v6only = bool(sysctl_int("net/ipv6/bindv6only", 0))
        return not v6only
    mapped = mapped_v4(listener_address)
    return mapped is not None and mapped == (mapped_v4(address) or address)
