"""Helpers shared by the diagnose modules: port arguments, addresses, owners.

Ports go through ``portscope._ports`` and ``/proc`` facts through ``portscope._proc`` (the
one parser, the one reader). Nothing here prints or reads anything at import.
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Iterable

from portscope import _ports
from portscope._proc import sysctl_int
from portscope.errors import InvalidTarget
from portscope.models import Proto, Socket, SocketTable, TcpState

WILDCARDS = frozenset({"0.0.0.0", "::"})


def parse_port(text: str | int) -> int:
    """A port 1-65535 or a service name (``redis``), through ``portscope._ports``.

    Raises:
        InvalidPort: not a number in 1-65535 nor a name portscope's registry knows.
    """
    return _ports.parse_port(text)


def parse_port_proto(text: str) -> tuple[int, Proto | None]:
    """``PORT``, ``PORT/tcp``, ``PORT/udp`` or a service name (``redis``, ``dns/udp``).

    Returns:
        (port, proto); proto is ``None`` when no transport was given.

    Raises:
        InvalidPort: a bad port or name, or a transport other than tcp/udp.
    """
    return _ports.parse_port_proto(text)


def check_port(port: int, *, allow_zero: bool = False) -> int:
    """Return ``port`` when it is 1-65535 (0-65535 with ``allow_zero``).

    Raises:
        InvalidPort: otherwise.
    """
    return _ports.check_port(port, allow_zero=allow_zero)


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


_NUMERIC = re.compile(r"[0-9.]+")


def check_host(host: str) -> str:
    """A host as given (brackets removed), after rejecting malformed address literals.

    What looks like an address (only digits and dots, or any ``:``) must be one:
    ``300.1.1.1``, ``1.2.3`` and ``::1::2`` are refused before any resolution, with the
    message ``probe`` gives (``portscope.scanner.targets``), instead of going to DNS; so
    are link-local addresses (``fe80::1%eth0``) and names no resolver should be asked
    about (control characters, spaces, empty labels: ``check_host_name``).

    Raises:
        InvalidTarget: an empty host, a malformed address literal or host name.
    """
    value = host.strip()
    if value.startswith("[") and value.endswith("]"):
        value = value[1:-1]
    if not value:
        raise InvalidTarget("empty host: give a host name or address")
    from portscope.scanner.targets import check_host_name, parse_targets

    if ":" in value or _NUMERIC.fullmatch(value):
        try:
            ipaddress.ip_address(value.split("%", 1)[0])
        except ValueError:
            parse_targets([value])  # raises probe's own message for the malformed literal
            raise InvalidTarget(
                f"invalid address {value!r}; expected IPv4 like 198.18.0.1 or IPv6 like 2001:db8::1"
            ) from None
        parse_targets([value])  # the same refusals as probe (link-local, zone indexes)
    else:
        check_host_name(value)  # a malformed name never reaches the resolver
    return value


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


def reach(sock: Socket) -> str:
    """Who can reach a bound socket, as a key: ``all``, ``loopback`` or ``address``.

    For decisions (audit's "exposed"); text shown to people uses the sockets package's
    words (``portscope.sockets.bind_scope``: "all interfaces (IPv4)", "loopback only" ...).
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
    return reach(sock) != "loopback"


def scope_text(sock: Socket) -> str:
    """The bind scope in the listening view's words (``portscope.sockets.bind_scope``)."""
    from portscope.sockets import bind_scope

    return bind_scope(sock)


def is_listener(sock: Socket) -> bool:
    """TCP LISTEN sockets and unconnected UDP sockets (UDP "listeners")."""
    if sock.proto is Proto.TCP:
        return sock.state is TcpState.LISTEN
    return sock.state is TcpState.UNCONN or sock.remote is None


def owner_text(name: str, pid: int) -> str:
    """One process as the socket tables show it: ``name[pid]``."""
    return f"{name}[{pid}]"


def owners_text(sock: Socket) -> str:
    """``name[pid]`` of each owner (as the socket tables show them), comma-separated,
    or ``-``."""
    if not sock.owners:
        return "-"
    return ",".join(dict.fromkeys(owner_text(o.name, o.pid) for o in sock.owners))


def holder_text(sock: Socket) -> str:
    """Who holds a socket, in words: ``name[pid]`` of its owners, else what its uid says
    (``an unseen process of uid 0``, with a hint to run as root when not root)."""
    if sock.owners:
        return owners_text(sock)
    hint = "" if os.geteuid() == 0 else " (run as root to see it)"
    if sock.uid is not None:
        return f"an unseen process of uid {sock.uid}{hint}"
    return "the kernel or an unseen process"


def endpoint_text(address: str, port: int) -> str:
    """``127.0.0.1:80`` or ``[::1]:80`` (brackets for IPv6, RFC 3986 section 3.2.2)."""
    return f"[{address}]:{port}" if ":" in address else f"{address}:{port}"


def read_sockets(
    protos: Iterable[Proto] | None = None,
    *,
    owners: bool = True,
    listening: bool = False,
    port: int | None = None,
    families: Iterable[int] | None = None,
    netns: str | int | None = None,
) -> SocketTable:
    """This machine's socket table from the sockets package (the one reader).

    Args:
        protos: transports to dump (default: all).
        families: 4 and/or 6 (default both).
        owners: map sockets to processes.
        listening: only TCP LISTEN and UDP UNCONN sockets.
        port: only sockets with this local port (filtered before sockets are built, so
            a host with 200,000 connections costs little).
        netns: the network namespaces (``list_sockets``); ``None``: this one.
    """
    from portscope.sockets import SocketFilter, list_sockets

    states = [TcpState.LISTEN, TcpState.UNCONN] if listening else None
    where = SocketFilter(sports=frozenset({port})) if port is not None else None
    return list_sockets(
        protos=None if protos is None else list(protos),
        families=None if families is None else list(families),
        states=states,
        owners=owners,
        where=where,
        netns=netns,
    )


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
