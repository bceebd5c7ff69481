"""What a failed connect or an ICMP error means: errno and ICMP codes to reason words.

The reason words are nmap's ``--reason`` vocabulary where nmap has one (``conn-refused``,
``no-response``, ``host-unreach``, ``admin-prohibited`` ...).
"""

from __future__ import annotations

import _socket
import errno as _errno
import socket
import struct

from portscope.models import PortState

# ICMP destination unreachable (type 3) codes: RFC 792, RFC 1122 3.2.2.1, RFC 1812 5.2.7.1
ICMP4_UNREACH: dict[int, str] = {
    0: "net-unreach",
    1: "host-unreach",
    2: "proto-unreach",
    3: "port-unreach",
    4: "needfrag",
    5: "srcroute-failed",
    6: "net-unknown",
    7: "host-unknown",
    8: "host-isolated",
    9: "net-prohibited",
    10: "host-prohibited",
    11: "net-tos-unreach",
    12: "host-tos-unreach",
    13: "admin-prohibited",
    14: "host-precedence-violation",
    15: "precedence-cutoff",
}
# ICMPv6 destination unreachable (type 1) codes: RFC 4443 3.1
ICMP6_UNREACH: dict[int, str] = {
    0: "no-route",
    1: "admin-prohibited",
    2: "beyond-scope",
    3: "addr-unreach",
    4: "port-unreach",
    5: "source-policy-failed",
    6: "reject-route",
}

_BY_ERRNO: dict[int, tuple[PortState, str]] = {
    0: (PortState.OPEN, "syn-ack"),
    _errno.ECONNREFUSED: (PortState.CLOSED, "conn-refused"),
    _errno.ECONNRESET: (PortState.CLOSED, "reset"),
    _errno.ETIMEDOUT: (PortState.FILTERED, "no-response"),
    _errno.EHOSTUNREACH: (PortState.UNREACHABLE, "host-unreach"),
    _errno.ENETUNREACH: (PortState.UNREACHABLE, "net-unreach"),
    _errno.EHOSTDOWN: (PortState.UNREACHABLE, "host-down"),
    _errno.ENETDOWN: (PortState.UNREACHABLE, "net-down"),
    _errno.EPERM: (PortState.UNREACHABLE, "local-firewall"),
    _errno.EACCES: (PortState.UNREACHABLE, "local-policy"),
    _errno.EADDRNOTAVAIL: (PortState.UNREACHABLE, "no-local-address"),
    _errno.EPROTO: (PortState.UNREACHABLE, "proto-error"),
}

# struct sock_extended_err, linux/errqueue.h
_EXTENDED_ERR = struct.Struct("=IBBBBII")
SO_EE_ORIGIN_ICMP = 2
SO_EE_ORIGIN_ICMP6 = 3
IP_RECVERR = getattr(socket, "IP_RECVERR", 11)
IPV6_RECVERR = getattr(socket, "IPV6_RECVERR", 25)
MSG_ERRQUEUE = getattr(socket, "MSG_ERRQUEUE", 0x2000)


def classify(err: int) -> tuple[PortState, str]:
    """The state and reason word of a connect that ended with ``err`` (0 = connected).

    Unknown errnos become ``unreachable`` with the errno's name as the reason.
    """
    found = _BY_ERRNO.get(err)
    if found is not None:
        return found
    name = _errno.errorcode.get(err, f"errno-{err}").lower()
    return PortState.UNREACHABLE, name


def enable_icmp_details(sock: _socket.socket, family: int) -> None:
    """Ask the kernel to queue ICMP errors on ``sock`` (``IP_RECVERR``, ip(7), ipv6(7))."""
    try:
        if family == 6:
            sock.setsockopt(socket.IPPROTO_IPV6, IPV6_RECVERR, 1)
        else:
            sock.setsockopt(socket.IPPROTO_IP, IP_RECVERR, 1)
    except OSError:
        pass


def icmp_reason(sock: _socket.socket) -> str | None:
    """The ICMP reason queued on ``sock``'s error queue, or ``None`` when there is none.

    Reads one ``sock_extended_err`` (``linux/errqueue.h``) with ``MSG_ERRQUEUE``; the socket
    must have had ``enable_icmp_details`` before the error arrived.
    """
    try:
        _, ancdata, _, _ = sock.recvmsg(1, 512, MSG_ERRQUEUE | socket.MSG_DONTWAIT)
    except OSError:
        return None
    for _level, _type, data in ancdata:
        if len(data) < _EXTENDED_ERR.size:
            continue
        _ee_errno, origin, icmp_type, code, _, _, _ = _EXTENDED_ERR.unpack_from(data)
        if origin == SO_EE_ORIGIN_ICMP and icmp_type == 3:
            return ICMP4_UNREACH.get(code, f"icmp-3-{code}")
        if origin == SO_EE_ORIGIN_ICMP6 and icmp_type == 1:
            return ICMP6_UNREACH.get(code, f"icmp6-1-{code}")
        if origin in (SO_EE_ORIGIN_ICMP, SO_EE_ORIGIN_ICMP6):
            return f"icmp-{icmp_type}-{code}"
    return None
