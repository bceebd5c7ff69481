"""Why a bind or a connect fails, explained with evidence from this machine.

``why_bind`` predicts from the socket table and kernel settings, then confirms by really
binding a socket that it closes at once (never listening, so nothing can connect to it).
``why_connect`` walks resolution, route, probe and, for this machine, its listeners.
"""

from __future__ import annotations

import enum
import errno as errno_codes
import os
import socket
from collections.abc import Sequence
from dataclasses import dataclass

from portscope.diagnose._common import (
    CAP_NET_BIND_SERVICE,
    check_port,
    covers,
    family_of,
    has_capability,
    is_listener,
    is_loopback,
    is_wildcard,
    mapped_v4,
    owners_text,
    parse_address,
    read_sockets,
    sysctl_int,
)
from portscope.errors import InvalidInput, InvalidTarget
from portscope.models import PortState, ProbeResult, Proto, Socket, SocketTable, TcpState
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


def _who(sock: Socket) -> str:
    owners = owners_text(sock)
    if owners != "-":
        return f"{owners}"
    if sock.uid is not None:
        return f"a process of uid {sock.uid} (run as root to see it)"
    return "the kernel or an unseen process"


def _describe_overlap(cause: BindCause, address: str, sock: Socket) -> str:
    where = f"{sock.proto.value} {sock.local} ({sock.state.value}) held by {_who(sock)}"
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


# --- why connect -------------------------------------------------------------------------


class ConnectVerdict(enum.StrEnum):
    """The diagnosis of a connect attempt."""

    OPEN = "open"  # it connects
    REFUSED = "refused"  # RST: nothing listens on that address and port
    LISTENS_ELSEWHERE = "listens-elsewhere"  # this host listens on that port, other address
    FIREWALL_REJECT = "firewall-reject"  # rejected: ICMP prohibited, or refused despite a listener
    FILTERED = "filtered"  # no answer: a firewall drops it or the host is down
    UNREACHABLE = "unreachable"  # ICMP unreachable or no route: routing
    NOT_RESOLVED = "not-resolved"  # the name has no address


@dataclass(frozen=True, slots=True)
class ConnectStep:
    """One step of the walk, with its evidence.

    Attributes:
        name: ``resolve``, ``route``, ``probe`` or ``listeners``.
        ok: whether the step went as a working connection needs.
        summary: one line.
        evidence: raw facts (addresses, ``ip route get`` output, errno ...).
    """

    name: str
    ok: bool
    summary: str
    evidence: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class ConnectDiagnosis:
    """Why ``connect(host, port)`` works or fails.

    Attributes:
        host: the host as given.
        port: the port.
        proto: the transport probed.
        addresses: what the name resolved to.
        address: the address probed (the first resolved), or ``None``.
        source: the source address the kernel would use, or ``None``.
        interface: the outgoing interface, or ``None``.
        gateway: the next hop when not on-link, or ``None``.
        local: True when the address belongs to this machine.
        probe: the probe result of ``address``, or ``None`` when no probe was made.
        verdict: the diagnosis.
        explanation: the diagnosis in plain words.
        next_commands: commands to run next.
        steps: the walk, in order.
        listeners: for this machine, the sockets listening on the port (any address).
        probes: one result per resolved address probed (at most 4), resolver order.
    """

    host: str
    port: int
    proto: Proto
    addresses: tuple[str, ...]
    address: str | None
    source: str | None
    interface: str | None
    gateway: str | None
    local: bool
    probe: ProbeResult | None
    verdict: ConnectVerdict
    explanation: str
    next_commands: tuple[str, ...]
    steps: tuple[ConnectStep, ...]
    listeners: tuple[Socket, ...] = ()
    probes: tuple[ProbeResult, ...] = ()


@dataclass(frozen=True, slots=True)
class RouteInfo:
    """What the kernel would do with a packet to one address (``ip route get``).

    Attributes:
        kind: ``unicast``, ``local`` (an address of this host), ``unreachable``,
            ``prohibit``, ``blackhole``, or ``error`` when no route exists.
        interface: outgoing device, or ``None``.
        gateway: next hop (``via``), or ``None``.
        source: preferred source (``src``), or ``None``.
        raw: the command's output, or the error.
    """

    kind: str
    interface: str | None
    gateway: str | None
    source: str | None
    raw: str


def parse_route_get(output: str) -> RouteInfo:
    """Parse one line of ``ip route get ADDR`` output (iproute2, ip-route(8)).

    Args:
        output: the command's stdout, or its error text.

    Returns:
        The route; ``kind`` is ``error`` for an error message.
    """
    # iproute2 continues the line with "\" and a "cache" section: keep the route part.
    text = " ".join(output.split("\\", 1)[0].split())
    words = text.split()
    if not words:
        return RouteInfo("error", None, None, None, output.strip())
    kinds = ("local", "unreachable", "prohibit", "blackhole", "broadcast", "multicast")
    kind = words[0] if words[0] in kinds else "unicast"

    def after(key: str) -> str | None:
        if key in words:
            i = words.index(key)
            if i + 1 < len(words):
                return words[i + 1]
        return None

    if (
        "RTNETLINK" in text
        or "Error" in text
        or ("unreachable" in text.lower() and kind == "unicast")
    ):
        kind = "error"
    return RouteInfo(kind, after("dev"), after("via"), after("src"), text)


def route_to(address: str) -> RouteInfo | None:
    """Ask the kernel for the route to ``address`` with ``ip route get`` (sends nothing).

    Args:
        address: an IPv4 or IPv6 address.

    Returns:
        The route, or ``None`` when ``ip`` is not installed.
    """
    import shutil
    import subprocess

    ip = shutil.which("ip")
    if ip is None:
        return None
    cmd = [ip, "-6" if family_of(address) == 6 else "-4", "-o", "route", "get", address]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=2.0, check=False)
    except (OSError, subprocess.TimeoutExpired) as err:
        return RouteInfo("error", None, None, None, str(err))
    return parse_route_get(done.stdout if done.returncode == 0 else done.stderr or "error")


def source_address(address: str, port: int) -> tuple[str | None, int | None]:
    """The source address the kernel picks for ``address`` (a connected UDP socket's
    ``getsockname()``; connecting a UDP socket sends no packet, udp(7)).

    Args:
        address: the destination address.
        port: the destination port.

    Returns:
        (source address, None), or (None, errno) when there is no route.
    """
    fam = socket.AF_INET6 if family_of(address) == 6 else socket.AF_INET
    with socket.socket(fam, socket.SOCK_DGRAM) as sock:
        try:
            sock.connect((address, port))
        except OSError as err:
            return None, err.errno
        return str(sock.getsockname()[0]), None


def _resolve(host: str, port: int, proto: Proto) -> tuple[list[str], str | None]:
    kind = socket.SOCK_STREAM if proto is Proto.TCP else socket.SOCK_DGRAM
    try:
        infos = socket.getaddrinfo(host, port, type=kind)
    except (socket.gaierror, UnicodeError) as err:
        return [], str(err)
    return list(dict.fromkeys(str(info[4][0]) for info in infos)), None


def _listeners(table: SocketTable, port: int, proto: Proto) -> list[Socket]:
    return [
        s
        for s in table.sockets
        if s.proto is proto and s.local.port == port and is_listener(s) and s.remote is None
    ]


def explain_connect(
    host: str,
    port: int,
    proto: Proto,
    address: str,
    result: ProbeResult,
    *,
    local: bool,
    listeners: Sequence[Socket],
) -> tuple[ConnectVerdict, str, list[str]]:
    """The verdict, its explanation and next commands, from a probe result (pure).

    Args:
        host: the host as given.
        port: the port.
        proto: the transport.
        address: the address probed.
        result: its probe result.
        local: True when ``address`` belongs to this machine.
        listeners: this machine's listeners on ``port`` (only used when ``local``).

    Returns:
        (verdict, explanation, next commands).
    """
    target = f"[{address}]:{port}" if family_of(address) == 6 else f"{address}:{port}"
    state = result.state
    if state is PortState.OPEN:
        return (
            ConnectVerdict.OPEN,
            f"{target} accepts connections ({result.reason})",
            [f"portscope probe {host} {port} --banner"],
        )
    if state is PortState.CLOSED:
        if local:
            covering = [s for s in listeners if covers(s.local.address, s.v6only, address)]
            if covering:
                return (
                    ConnectVerdict.FIREWALL_REJECT,
                    f"{target} was refused although {covering[0].local} listens and covers "
                    "it: a firewall rule rejects it (REJECT with tcp-reset), or the listener "
                    "lives in another network namespace",
                    ["nft list ruleset", f"portscope who {port}"],
                )
            if listeners:
                where = ", ".join(str(s.local) for s in listeners)
                scope = (
                    "loopback only"
                    if all(is_loopback(s.local.address) for s in listeners)
                    else "other addresses only"
                )
                return (
                    ConnectVerdict.LISTENS_ELSEWHERE,
                    f"nothing listens on {target}, but this host listens on port {port} "
                    f"at {where} ({scope}); configure the service to listen on {address} "
                    "or on all addresses (0.0.0.0 / [::]), or connect to where it listens",
                    [f"portscope who {port}", f"portscope why connect {listeners[0].local}"],
                )
            return (
                ConnectVerdict.REFUSED,
                f"nothing listens on port {port} on this host: the service is not running "
                "or uses another port",
                [f"portscope who {port}", "portscope listen"],
            )
        return (
            ConnectVerdict.REFUSED,
            f"{host} answered with a reset: nothing listens on {target} (the service is "
            "down or on another port/address), or a firewall there rejects it",
            [f"ssh {host} portscope who {port}", f"portscope scan {host}"],
        )
    if state is PortState.UNREACHABLE and (
        "prohibited" in result.reason or result.reason in ("local-firewall", "local-policy")
    ):
        here = result.reason.startswith("local-")
        return (
            ConnectVerdict.FIREWALL_REJECT,
            (
                f"this host's own firewall refuses to send to {target} ({result.reason}: "
                "connect() failed with EPERM/EACCES before any packet left)"
                if here
                else f"a firewall rejects {target}: the host or a router on the path answered "
                f"ICMP 'administratively prohibited' ({result.reason}, RFC 1812 5.2.7.1)"
            ),
            ["nft list ruleset" if here else f"tracepath {address}", f"ip route get {address}"],
        )
    if state is PortState.UNREACHABLE:
        return (
            ConnectVerdict.UNREACHABLE,
            f"{target} is unreachable ({result.reason}): no route to it, or a router "
            "answered that the host or network cannot be reached",
            [f"ip route get {address}", "ip route", f"tracepath {address}"],
        )
    return (
        ConnectVerdict.FILTERED,
        f"no answer from {target} ({result.reason}): a firewall drops the packets, or the "
        "host is down",
        [
            "nft list ruleset" if local else f"ping -c 3 {address}",
            f"tracepath {address}",
            f"portscope probe {host} {port}",
        ],
    )


MAX_ADDRESSES = 4


def _probe_line(r: ProbeResult) -> str:
    rtt = f", {r.rtt_s * 1000:.1f} ms" if r.rtt_s is not None else ""
    return f"{r.address}: {r.state.value} ({r.reason}{rtt})"


def why_connect(
    host: str,
    port: int,
    *,
    proto: Proto = Proto.TCP,
    timeout_s: float = 3.0,
) -> ConnectDiagnosis:
    """Walk a connection attempt to ``host``:``port`` and say why it works or fails.

    Steps: resolution (getaddrinfo), the route and source address the kernel would use
    (a connected UDP socket's getsockname(), which sends nothing, and ``ip route get``),
    a probe of each resolved address (at most 4, ``portscope.probe``), and for an address
    of this machine, its listeners on that port (so "refused" can say "it listens on
    127.0.0.1 only").

    Args:
        host: a name or an IPv4/IPv6 address.
        port: 1-65535.
        proto: TCP (UDP probes say little: open|filtered).
        timeout_s: seconds to wait for each address's answer (addresses are probed one
            after the other, as a client tries them).

    Returns:
        The diagnosis with its steps and the next commands to run.

    Raises:
        InvalidPort: ``port`` outside 1-65535.
        InvalidTarget: an empty host.
        NetworkSafetyError: the probe refuses the target (broadcast, multicast).
    """
    check_port(port)
    if not host or not host.strip():
        raise InvalidTarget("empty host: give a host name or address")
    host = host.strip().removeprefix("[").removesuffix("]")
    steps: list[ConnectStep] = []
    addresses, gai_error = _resolve(host, port, proto)
    if not addresses:
        steps.append(ConnectStep("resolve", False, f"{host} does not resolve", (gai_error or "",)))
        return ConnectDiagnosis(
            host, port, proto, (), None, None, None, None, False, None,
            ConnectVerdict.NOT_RESOLVED,
            f"the name {host} has no address ({gai_error})",
            (f"getent ahosts {host}", f"resolvectl query {host}"),
            tuple(steps),
        )  # fmt: skip
    from portscope.scanner.probe import probe

    # Clients try the addresses in resolver order (IPv6 first for "localhost"): probe each,
    # then explain the first open one, or the first one when none is.
    probed = [
        probe(a, [port], proto=proto, timeout_s=timeout_s)[0] for a in addresses[:MAX_ADDRESSES]
    ]
    result = next((r for r in probed if r.state is PortState.OPEN), probed[0])
    address = result.address
    steps.append(
        ConnectStep(
            "resolve",
            True,
            f"{host} -> {', '.join(addresses)}" if address != host else f"{host} is an address",
            tuple(addresses),
        )
    )
    source, route_errno = source_address(address, port)
    route = route_to(address)
    evidence = []
    if route is not None:
        evidence.append(f"ip route get {address}: {route.raw}")
    if source is not None:
        evidence.append(f"source address (connected UDP socket): {source}")
    if route_errno is not None:
        evidence.append(f"connect(UDP) failed: {errno_text(route_errno)}")
    local = is_loopback(address) or (route is not None and route.kind == "local")
    if source is not None and source == address:
        local = True
    route_ok = route_errno is None and (route is None or route.kind in ("unicast", "local"))
    iface = route.interface if route else None
    summary = (
        f"local address, delivered on {iface or 'lo'}"
        if local
        else f"via {route.gateway or 'on-link'} dev {iface}, source {source}"
        if route_ok and route is not None
        else f"source {source}"
        if route_ok
        else "no usable route"
    )
    steps.append(ConnectStep("route", route_ok, summary, tuple(evidence)))

    rtt = f", {result.rtt_s * 1000:.1f} ms" if result.rtt_s is not None else ""
    steps.append(
        ConnectStep(
            "probe",
            result.state is PortState.OPEN,
            f"{result.state.value} ({result.reason}{rtt})",
            tuple(_probe_line(r) for r in probed)
            if len(probed) > 1
            else ((f"errno {errno_text(result.errno)}",) if result.errno else ()),
        )
    )
    listeners: list[Socket] = []
    if local:
        listeners = _listeners(
            read_sockets([proto], owners=True, listening=True, port=port), port, proto
        )
        steps.append(
            ConnectStep(
                "listeners",
                any(covers(s.local.address, s.v6only, address) for s in listeners),
                f"{len(listeners)} listener(s) on port {port} on this host"
                + (": " + ", ".join(str(s.local) for s in listeners) if listeners else ""),
                tuple(f"{s.proto.value} {s.local} {owners_text(s)}" for s in listeners),
            )
        )
    verdict, explanation, commands = explain_connect(
        host, port, proto, address, result, local=local, listeners=listeners
    )
    others = [r for r in probed if r.state is not PortState.OPEN]
    if verdict is ConnectVerdict.OPEN and others:
        explanation += (
            f"; but {', '.join(f'{r.address} is {r.state.value}' for r in others)}: clients "
            f"that try {'that address' if len(others) == 1 else 'those'} first fail or wait "
            "(make the service listen on both families, e.g. [::] dual-stack)"
        )
    return ConnectDiagnosis(
        host=host,
        port=port,
        proto=proto,
        addresses=tuple(addresses),
        address=address,
        source=source,
        interface=iface,
        gateway=route.gateway if route else None,
        local=local,
        probe=result,
        verdict=verdict,
        explanation=explanation,
        next_commands=tuple(commands),
        steps=tuple(steps),
        listeners=tuple(listeners),
        probes=tuple(probed),
    )
