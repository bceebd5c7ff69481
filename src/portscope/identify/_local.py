"""Where to connect to reach this host's own listeners (``who PORT --identify``)."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from portscope.models import Proto, Socket, TcpState

__all__ = ["listener_endpoints"]


def listener_endpoints(sockets: Iterable[Socket]) -> list[tuple[str, int]]:
    """(address, port) pairs that reach the TCP listeners among ``sockets`` from here.

    A wildcard listener (``0.0.0.0``, ``::``) is reached on loopback (``127.0.0.1``,
    ``::1``); an address listener on its address. IPv6 link-local listeners (which need
    a scope id) are skipped. Each pair once,
    in the order found.
    """
    out: dict[tuple[str, int], None] = {}
    for sock in sockets:
        if sock.proto is not Proto.TCP or sock.state is not TcpState.LISTEN:
            continue
        address = sock.local.address
        try:
            ip = ipaddress.ip_address(address.split("%", 1)[0])
        except ValueError:
            continue
        if ip.is_unspecified:
            address = "127.0.0.1" if ip.version == 4 else "::1"
        elif ip.version == 6 and ip.is_link_local:
            continue
        out[(address, sock.local.port)] = None
    return list(out)
