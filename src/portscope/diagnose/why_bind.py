"""Why a bind fails, explained with evidence from this machine.

``diagnose_bind`` predicts from the socket table and kernel settings (pure); ``why_bind``
then confirms by really binding a socket that it closes at once (never listening, so
nothing can connect to it).
"""

from __future__ import annotations

import enum
import errno as errno_codes
import os
import socket
from dataclasses import dataclass

from portscope._proc import CAP_NET_BIND_SERVICE, has_capability, sysctl_int
from portscope.diagnose._common import (
    check_port,
    family_of,
    holder_text,
    is_wildcard,
    mapped_v4,
    parse_address,
    read_sockets,
)
from portscope.errors import InvalidInput
from portscope.models import Proto, Socket, SocketTable, TcpState
from portscope.registry._ranges import KernelPorts, kernel_ports


class BindCause(enum.StrEnum):
    """A reason a bind fails, or a fact that matters for it."""

    IN_USE = "in-use"  # another socket is bound to the same address and port
    WILDCARD_HOLDS = "wildcard-holds"  # a socket on 0.0.0.0 / :: covers the address asked
    SPECIFIC_HOLDS = "specific-holds"  # binding the wildcard collides with one address's socket
    DUAL_STACK = "dual-stack"  # [::] without IPV6_V6ONLY also takes the IPv4 port
    REUSEPORT = "reuseport"  # SO_REUSEPORT group: allowed only for the same user
    TIME_WAIT = "time-wait"  # closed connections still in TIME-WAIT on the port
    PRIVILEGED = "privileged"  # below ip_unprivileged_port_start without the capability
    ADDR_NOT_AVAILABLE = "addr-not-available"  # the address is not on this host
    RESERVED = "reserved"  # in ip_local_reserved_ports (only matters for automatic ports)
    EPHEMERAL = "ephemeral"  # in the ephemeral range: outgoing connections may take it
    UNEXPLAINED = "unexplained"  # the trial failed for a reason not predicted


@dataclass(frozen=True, slots=True)
class BindReason:
    """One cause or fact, with its evidence.

    Attributes:
        cause: what it is.
        blocking: True when it makes the bind fail; False for facts worth knowing.
        explanation: plain words, naming the sockets and processes involved.
        fix: what to do, or ``None``.
        sockets: the sockets that are the evidence.
    """

    cause: BindCause
    blocking: bool
    explanation: str
    fix: str | None = None
    sockets: tuple[Socket, ...] = ()


@dataclass(frozen=True, slots=True)
class BindDiagnosis:
    """Would ``bind(address, port)`` succeed, and why (not).

    Attributes:
        port: the port.
        proto: TCP or UDP.
        address: the address tried (``0.0.0.0`` when none was given).
        family: 4 or 6.
        reuseaddr: whether SO_REUSEADDR was assumed and set for the trial.
        reuseport: whether SO_REUSEPORT was assumed and set for the trial.
        predicted_ok: the prediction from the socket table and kernel settings.
        ok: the trial's result, or ``None`` when no trial was made.
        errno: the trial's errno (``EADDRINUSE`` ...), or ``None``.
        error: the errno's name and text, or ``None``.
        reasons: every cause that applies, blocking ones first.
    """

    port: int
    proto: Proto
    address: str
    family: int
    reuseaddr: bool
    reuseport: bool
    predicted_ok: bool
    ok: bool | None
    errno: int | None
    error: str | None
    reasons: tuple[BindReason, ...]

    @property
    def confirmed(self) -> bool:
        """True when the trial agrees with the prediction (or there was no trial)."""
        return self.ok is None or self.ok == self.predicted_ok


def errno_text(code: int) -> str:
    """``EADDRINUSE (Address already in use)`` for an errno number.

    Args:
        code: an errno value (``errno.h``).

    Returns:
        The symbolic name and the C library's text.
    """
    return f"{errno_codes.errorcode.get(code, str(code))} ({os.strerror(code)})"


def _trial_socket(family: int, proto: Proto) -> socket.socket:
    kind = socket.SOCK_STREAM if proto is Proto.TCP else socket.SOCK_DGRAM
    return socket.socket(socket.AF_INET6 if family == 6 else socket.AF_INET, kind)


def try_bind(
    address: str, port: int, proto: Proto, *, reuseaddr: bool = False, reuseport: bool = False
) -> int | None:
    """Bind a fresh socket to (address, port) and close it at once.

    The socket never listens or sends, so the trial is invisible to the network and
    leaves no TIME-WAIT behind.

    Args:
        address: the address, inet_ntop form.
        port: 0-65535 (0: any port, which tests the address alone).
        proto: TCP or UDP.
        reuseaddr: set SO_REUSEADDR first (socket(7)).
        reuseport: set SO_REUSEPORT first (socket(7)).

    Returns:
        ``None`` when the bind succeeded, else its errno.
    """
    sock = _trial_socket(family_of(address), proto)
    try:
        if reuseaddr:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuseport:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((address, port))
    except OSError as err:
        return err.errno
    finally:
        sock.close()
    return None


def _overlap(address: str, v6only_default: bool, sock: Socket) -> BindCause | None:
    """How a bind to ``address`` collides with the address of ``sock``, if it does.

    Linux compares bind addresses in ``inet_bind_conflict`` / ``inet_rcv_saddr_equal``
    (net/ipv4/inet_connection_sock.c): equal addresses collide, a wildcard collides with
    every address of its family, and ``::`` without IPV6_V6ONLY with IPv4 ones too.
    """
    other = sock.local.address
    fam = family_of(address)
    if sock.family == fam:
        if other == address:
            return BindCause.IN_USE
        if is_wildcard(other):
            return BindCause.WILDCARD_HOLDS
        if is_wildcard(address):
            return BindCause.SPECIFIC_HOLDS
        return None
    if fam == 4:  # our IPv4 address against an IPv6 socket
        other_v6only = sock.v6only if sock.v6only is not None else v6only_default
        if other == "::" and not other_v6only:
            return BindCause.DUAL_STACK
        if mapped_v4(other) == address:
            return BindCause.IN_USE
        return None
    # our IPv6 address against an IPv4 socket
    if address == "::" and not v6only_default:
        return BindCause.DUAL_STACK
    if mapped_v4(address) == other:
        return BindCause.IN_USE
    return None


def _describe_overlap(cause: BindCause, address: str, sock: Socket) -> str:
    where = f"{sock.proto.value} {sock.local} ({sock.state.value}) held by {holder_text(sock)}"
    if cause is BindCause.IN_USE:
        return f"{where}: the same address and port"
    if cause is BindCause.WILDCARD_HOLDS:
        return (
            f"{where}: a wildcard bind takes port {sock.local.port} on every address, "
            f"{address} included"
        )
    if cause is BindCause.SPECIFIC_HOLDS:
        return f"{where}: binding the wildcard {address} would also take that address"
    if family_of(address) == 4:
        return (
            f"{where}: an IPv6 wildcard socket without IPV6_V6ONLY is dual-stack and "
            f"takes the IPv4 port too"
        )
    return (
        f"{where}: binding [::] dual-stack (IPV6_V6ONLY off, net.ipv6.bindv6only=0) "
        f"would take the IPv4 port as well"
    )


def _overlap_fix(cause: BindCause, sock: Socket) -> str:
    port = sock.local.port
    if cause is BindCause.DUAL_STACK:
        return (
            "set IPV6_V6ONLY on the IPv6 socket (or bind the two families to distinct "
            f"ports), or stop the holder: portscope who {port}"
        )
    if cause in (BindCause.WILDCARD_HOLDS, BindCause.SPECIFIC_HOLDS):
        return (
            f"use another port, bind both to distinct specific addresses, or stop the "
            f"holder: portscope who {port} --kill"
        )
    return f"use another port (portscope free), or stop the holder: portscope who {port} --kill"


def diagnose_bind(
    table: SocketTable,
    port: int,
    *,
    address: str = "0.0.0.0",
    proto: Proto = Proto.TCP,
    reuseaddr: bool = False,
    reuseport: bool = False,
    kernel: KernelPorts | None = None,
    privileged_ok: bool | None = None,
    address_ok: bool | None = True,
    uid: int | None = None,
) -> tuple[bool, list[BindReason]]:
    """Predict a bind from a socket table and kernel settings (pure; no trial).

    Args:
        table: the socket table (owners looked up for names in the explanation).
        port: 0-65535.
        address: the address to bind, in inet_ntop form.
        proto: TCP or UDP.
        reuseaddr: SO_REUSEADDR set on the new socket.
        reuseport: SO_REUSEPORT set on the new socket.
        kernel: the port sysctls (default: read now).
        privileged_ok: whether this process may bind below the unprivileged start
            (default: CAP_NET_BIND_SERVICE in CapEff of ``/proc/self/status``).
        address_ok: False when the address is not on this host.
        uid: the effective uid binding (default: this process's).

    Returns:
        (predicted success, reasons, blocking first).
    """
    kernel = kernel or kernel_ports()
    uid = os.geteuid() if uid is None else uid
    reasons: list[BindReason] = []
    if port != 0 and port < kernel.unprivileged_start:
        allowed = has_capability(CAP_NET_BIND_SERVICE) if privileged_ok is None else privileged_ok
        if not allowed:
            reasons.append(
                BindReason(
                    BindCause.PRIVILEGED,
                    True,
                    f"port {port} is below net.ipv4.ip_unprivileged_port_start="
                    f"{kernel.unprivileged_start} and this process lacks CAP_NET_BIND_SERVICE",
                    "run with the capability (setcap cap_net_bind_service=+ep BINARY, "
                    "systemd AmbientCapabilities=CAP_NET_BIND_SERVICE), use a port >= "
                    f"{kernel.unprivileged_start}, or lower the sysctl",
                )
            )
    if address_ok is False:
        reasons.append(
            BindReason(
                BindCause.ADDR_NOT_AVAILABLE,
                True,
                f"{address} is not an address of this host (EADDRNOTAVAIL)",
                "bind an address this host has (ip -br addr), 0.0.0.0, or set "
                "net.ipv4.ip_nonlocal_bind=1 / IP_FREEBIND for an address that comes later",
            )
        )
    v6only_default = bool(sysctl_int("net/ipv6/bindv6only", 0))
    groups: dict[tuple[BindCause, bool], list[Socket]] = {}
    texts: dict[tuple[BindCause, bool], list[str]] = {}
    fixes: dict[tuple[BindCause, bool], str] = {}
    mine = [s for s in table.sockets if s.proto is proto and s.local.port == port and port != 0]
    listening = any(s.state is TcpState.LISTEN for s in mine)
    for sock in mine:
        overlap = _overlap(address, v6only_default, sock)
        if overlap is None:
            continue
        if proto is Proto.TCP and sock.state is TcpState.TIME_WAIT:
            key = (BindCause.TIME_WAIT, not reuseaddr)
            texts.setdefault(key, [])
            if not reuseaddr:
                fixes[key] = (
                    "set SO_REUSEADDR before bind() (every server should), or wait for TIME-WAIT "
                    "to end (60 s on Linux, TCP_TIMEWAIT_LEN)"
                )
        elif proto is Proto.TCP and sock.state is TcpState.LISTEN:
            if reuseport and sock.uid == uid:
                key = (BindCause.REUSEPORT, False)
                texts.setdefault(key, []).append(
                    f"{_describe_overlap(overlap, address, sock)}; it runs as uid {uid} like "
                    "this process, so the bind works only if it set SO_REUSEPORT too"
                )
                fixes[key] = "both sockets must set SO_REUSEPORT before bind()"
            else:
                key = (overlap, True)
                texts.setdefault(key, []).append(_describe_overlap(overlap, address, sock))
                fixes[key] = _overlap_fix(overlap, sock)
                if reuseport:
                    rkey = (BindCause.REUSEPORT, False)
                    texts.setdefault(rkey, []).append(
                        f"SO_REUSEPORT cannot join {sock.local}: it belongs to uid "
                        f"{sock.uid}, this process is uid {uid} (same-uid rule, socket(7))"
                    )
        elif proto is Proto.TCP and listening:
            continue  # connections accepted on a listener found above: the listener explains
        else:
            # Bound, connected or unconnected UDP sockets: shared only when both set
            # SO_REUSEADDR (or SO_REUSEPORT, same uid), socket(7).
            shared = reuseaddr or (reuseport and sock.uid == uid)
            key = (overlap, not shared)
            text = _describe_overlap(overlap, address, sock)
            if shared:
                text += "; allowed only if that socket set the same option"
            texts.setdefault(key, []).append(text)
            fixes[key] = _overlap_fix(overlap, sock)
        groups.setdefault(key, []).append(sock)
    for (cause, blocking), socks in groups.items():
        if cause is BindCause.TIME_WAIT:
            n = len(socks)
            if blocking:
                text = (
                    f"{n} connection(s) on port {port} are in TIME-WAIT; without SO_REUSEADDR "
                    "Linux refuses the bind until they expire"
                )
            else:
                text = (
                    f"{n} connection(s) on port {port} are in TIME-WAIT; SO_REUSEADDR lets "
                    "a new socket bind despite them if the socket they came from (the "
                    "listener that accepted them) had SO_REUSEADDR too: Linux needs both"
                )
        else:
            lines = texts[(cause, blocking)]
            text = "; ".join(lines[:3]) + (f"; and {len(lines) - 3} more" if len(lines) > 3 else "")
        reasons.append(
            BindReason(cause, blocking, text, fixes.get((cause, blocking)), tuple(socks))
        )
    for key, lines in texts.items():
        if key not in groups and lines:
            reasons.append(BindReason(key[0], key[1], "; ".join(lines), fixes.get(key)))
    if port in kernel.reserved:
        reasons.append(
            BindReason(
                BindCause.RESERVED,
                False,
                f"port {port} is in net.ipv4.ip_local_reserved_ports: the kernel never hands "
                "it out as an ephemeral port; an explicit bind to it is allowed",
            )
        )
    elif kernel.is_ephemeral(port):
        lo, hi = kernel.ephemeral
        reasons.append(
            BindReason(
                BindCause.EPHEMERAL,
                False,
                f"port {port} is in the ephemeral range {lo}-{hi}: outgoing connections may "
                "take it at any moment",
                f"pick a port outside {lo}-{hi} (portscope free), or add it to "
                "net.ipv4.ip_local_reserved_ports",
            )
        )
    reasons.sort(key=lambda r: not r.blocking)
    return not any(r.blocking for r in reasons), reasons


def why_bind(
    port: int,
    *,
    addr: str | None = None,
    proto: Proto = Proto.TCP,
    reuseaddr: bool = False,
    reuseport: bool = False,
    trial: bool = True,
) -> BindDiagnosis:
    """Predict and explain whether ``bind(addr, port)`` would succeed, then confirm.

    The prediction applies the kernel's rules to this machine's socket table (address
    overlap incl. wildcard and IPv6 dual-stack, SO_REUSEADDR / SO_REUSEPORT, TIME-WAIT,
    ``ip_unprivileged_port_start`` vs CAP_NET_BIND_SERVICE, addresses not on this host,
    ``ip_local_reserved_ports``; socket(7), ip(7), ipv6(7), Documentation/networking/
    ip-sysctl.rst). The trial binds a socket with the same options and closes it at once.

    Args:
        port: 1-65535.
        addr: IPv4/IPv6 address to bind; ``None`` means ``0.0.0.0`` (all IPv4 addresses).
        proto: TCP or UDP.
        reuseaddr: assume the program sets SO_REUSEADDR (most servers do). Default: a
            plain bind(), which TIME-WAIT sockets on the port make fail.
        reuseport: assume the program sets SO_REUSEPORT.
        trial: really try the bind (default True).

    Returns:
        The prediction, the trial's errno and every reason that applies.

    Raises:
        InvalidPort: ``port`` outside 1-65535.
        InvalidTarget: ``addr`` is not an IP address.
    """
    check_port(port)
    if proto not in (Proto.TCP, Proto.UDP):
        raise InvalidInput(f"transport {proto.value!r} cannot be bound here: use tcp or udp")
    address = "0.0.0.0" if addr is None else parse_address(addr)
    # Port 0 asks the kernel for any port: it fails only when the address does.
    address_errno = try_bind(address, 0, proto)
    address_ok = address_errno != errno_codes.EADDRNOTAVAIL
    predicted_ok, reasons = diagnose_bind(
        read_sockets([proto], owners=True, port=port),
        port,
        address=address,
        proto=proto,
        reuseaddr=reuseaddr,
        reuseport=reuseport,
        address_ok=address_ok,
    )
    ok: bool | None = None
    code: int | None = None
    if trial:
        code = try_bind(address, port, proto, reuseaddr=reuseaddr, reuseport=reuseport)
        ok = code is None
        shared = [
            i
            for i, r in enumerate(reasons)
            if not r.blocking and r.sockets and r.cause is not BindCause.EPHEMERAL
        ]
        if not ok and predicted_ok and code == errno_codes.EADDRINUSE and shared:
            # The table cannot show another socket's SO_REUSEADDR / SO_REUSEPORT; the
            # trial just did: the other side lacks the option.
            for i in shared:
                r = reasons[i]
                reasons[i] = BindReason(
                    r.cause,
                    True,
                    f"{r.explanation}. The trial failed (EADDRINUSE): the other socket did "
                    "not set the option, and the kernel needs both to",
                    r.fix
                    or "set the option in both programs, or wait for the other socket to close",
                    r.sockets,
                )
            reasons.sort(key=lambda r: not r.blocking)
        elif not ok and predicted_ok and code is not None:
            reasons.insert(
                0,
                BindReason(
                    BindCause.UNEXPLAINED,
                    True,
                    f"the trial bind failed with {errno_text(code)} although the socket "
                    "table shows no conflict (a socket in another network namespace is not "
                    "a conflict; a security module such as SELinux can refuse binds)",
                    "check the audit log (journalctl -k) and the holder: ss -lanp "
                    f"'sport = :{port}'",
                ),
            )
    return BindDiagnosis(
        port=port,
        proto=proto,
        address=address,
        family=family_of(address),
        reuseaddr=reuseaddr,
        reuseport=reuseport,
        predicted_ok=predicted_ok,
        ok=ok,
        errno=code,
        error=errno_text(code) if code is not None else None,
        reasons=tuple(reasons),
    )
