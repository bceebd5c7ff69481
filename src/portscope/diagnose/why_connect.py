"""Why a connect works or fails: resolution, route, probe and this machine's listeners.

``explain_connect`` turns the evidence into a verdict (pure); ``why_connect`` gathers it.
"""

from __future__ import annotations

import enum
import socket
from collections.abc import Sequence
from dataclasses import dataclass

from portscope.diagnose._common import (
    check_host,
    check_port,
    covers,
    endpoint_text,
    family_of,
    holder_text,
    is_listener,
    is_loopback,
    owners_text,
    read_sockets,
)
from portscope.diagnose._route import route_to, source_address
from portscope.diagnose.why_bind import errno_text
from portscope.errors import InvalidInput
from portscope.models import PortState, ProbeResult, Proto, Socket, SocketTable, TcpState


class ConnectVerdict(enum.StrEnum):
    """The diagnosis of a connect attempt."""

    OPEN = "open"  # it connects
    REFUSED = "refused"  # RST: nothing listens on that address and port
    LISTENS_ELSEWHERE = "listens-elsewhere"  # this host listens on that port, other address
    FIREWALL_REJECT = "firewall-reject"  # rejected: ICMP prohibited, or refused despite a listener
    ACCEPT_QUEUE_FULL = "accept-queue-full"  # the local listener's accept queue is full
    OPEN_FILTERED = "open|filtered"  # UDP silence: a socket took it without answering, or a drop
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
    target = endpoint_text(address, port)
    state = result.state
    covering = [s for s in listeners if covers(s.local.address, s.v6only, address)] if local else []
    full = [s for s in covering if queue_full(s)]
    if state is not PortState.OPEN and proto is Proto.TCP and full:
        return _queue_full(host, port, target, result, full[0])
    if state in (PortState.OPEN_FILTERED, PortState.FILTERED) and proto is Proto.UDP:
        return _udp_silence(host, port, address, target, result, local, covering)
    if state is PortState.OPEN:
        return (
            ConnectVerdict.OPEN,
            f"{target} accepts connections ({result.reason})",
            [f"portscope probe {host} {port} --banner"],
        )
    if state is PortState.CLOSED:
        if local:
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


def queue_full(sock: Socket) -> bool:
    """True when a TCP listener's accept queue is full: Recv-Q (connections waiting for
    ``accept()``) above Send-Q (the backlog), as ``ss -lnt`` shows them; the kernel's own
    test (``sk_acceptq_is_full``, include/net/sock.h). Linux then drops new SYNs (or
    resets them with ``net.ipv4.tcp_abort_on_overflow=1``)."""
    return (
        sock.proto is Proto.TCP
        and sock.state is TcpState.LISTEN
        and sock.send_q is not None
        and sock.recv_q is not None
        and sock.recv_q > sock.send_q
    )


def _queue_full(
    host: str, port: int, target: str, result: ProbeResult, sock: Socket
) -> tuple[ConnectVerdict, str, list[str]]:
    return (
        ConnectVerdict.ACCEPT_QUEUE_FULL,
        f"{target} got no answer ({result.reason}) because the accept queue of this host's "
        f"listener {sock.local}, held by {holder_text(sock)}, is full: {sock.recv_q} connection(s) "
        f"wait for accept() with a backlog of {sock.send_q}, so the kernel drops new SYNs. "
        "The application is not calling accept() fast enough (busy, blocked or hung); no "
        "firewall is involved",
        [
            f"ss -lnt 'sport = :{port}'",
            f"portscope who {port}",
            "nstat -az TcpExtListenOverflows TcpExtListenDrops",
        ],
    )


def _udp_silence(
    host: str,
    port: int,
    address: str,
    target: str,
    result: ProbeResult,
    local: bool,
    covering: Sequence[Socket],
) -> tuple[ConnectVerdict, str, list[str]]:
    if covering:
        sock = covering[0]
        return (
            ConnectVerdict.OPEN_FILTERED,
            f"no UDP reply from {target} ({result.reason}): open|filtered. This host's UDP "
            f"socket {sock.local}, held by {holder_text(sock)}, receives datagrams to it and did "
            "not answer the probe: UDP has no handshake, and a service answers only payloads "
            "it understands (or it is not reading its socket)",
            [f"portscope who {port}/udp", f"ss -uanp 'sport = :{port}'"],
        )
    if local:
        return (
            ConnectVerdict.OPEN_FILTERED,
            f"no UDP reply from {target} ({result.reason}): open|filtered. No UDP socket "
            f"on this host receives port {port}, yet no ICMP port-unreachable came back: a "
            "local firewall rule drops it, or ICMP replies are rate-limited",
            ["nft list ruleset", f"portscope who {port}/udp"],
        )
    return (
        ConnectVerdict.OPEN_FILTERED,
        f"no UDP reply from {target} ({result.reason}): open|filtered. UDP has no handshake: "
        "a service that ignored the probe's payload and a firewall that dropped it look the "
        "same; a closed port usually answers with ICMP port-unreachable",
        [f"portscope probe {host} {port} -u", f"tracepath {address}"],
    )


MAX_ADDRESSES = 4
_FIREWALL_SUSPECT = (
    ConnectVerdict.FILTERED,
    ConnectVerdict.FIREWALL_REJECT,
    ConnectVerdict.OPEN_FILTERED,
    ConnectVerdict.REFUSED,
)


def _local_firewall(
    address: str,
    port: int,
    proto: Proto,
    source: str | None,
    steps: list[ConnectStep],
    current: tuple[ConnectVerdict, str, list[str]],
) -> tuple[ConnectVerdict, str, list[str]]:
    """For a local address: the host firewall's rule that drops or rejects the connection
    (``diagnose.exposure.local_connect``), as a step and in the explanation."""
    from portscope.diagnose.exposure import local_connect
    from portscope.firewall import Verdict
    from portscope.render.exposure import decided_by

    decision = local_connect(address, port, proto.value, source)
    if decision is None:
        steps.append(ConnectStep("firewall", True, "the firewall could not be read (not root?)"))
        return current
    ok = decision.verdict not in (Verdict.FILTERED, Verdict.REJECTED)
    steps.append(ConnectStep("firewall", ok, f"{decision.verdict.value}: {decision.reason}"))
    if ok:
        return current
    rule = decided_by(decision)
    if decision.verdict is Verdict.REJECTED:
        return (
            ConnectVerdict.FIREWALL_REJECT,
            f"this host's firewall rejects {endpoint_text(address, port)} "
            f"({decision.reject}): {rule}",
            ["nft -a list ruleset", f"portscope exposure --from {source or address}"],
        )
    return (
        ConnectVerdict.FILTERED,
        f"this host's firewall drops {endpoint_text(address, port)}: {rule}",
        ["nft -a list ruleset", f"portscope exposure --from {source or address}"],
    )


def _probe_line(r: ProbeResult) -> str:
    rtt = f", {r.rtt_s * 1000:.1f} ms" if r.rtt_s is not None else ""
    return f"{r.address}: {r.state.value} ({r.reason}{rtt})"


def why_connect(
    host: str,
    port: int,
    *,
    proto: Proto = Proto.TCP,
    timeout_s: float = 3.0,
    family: int | None = None,
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
        family: 4 or 6 to keep only that family's addresses (``-4``/``-6``); default both.

    Returns:
        The diagnosis with its steps and the next commands to run.

    Raises:
        InvalidPort: ``port`` outside 1-65535.
        InvalidTarget: an empty host, or a malformed address literal (``300.1.1.1``),
            refused before any resolution with ``probe``'s message.
        InvalidInput: ``family`` other than 4, 6 or ``None``.
        NetworkSafetyError: the probe refuses the target (broadcast, multicast).
    """
    check_port(port)
    host = check_host(host)
    if family not in (None, 4, 6):
        raise InvalidInput(f"family {family!r} is not accepted: give 4, 6 or None")
    steps: list[ConnectStep] = []
    addresses, gai_error = _resolve(host, port, proto)
    if family is not None and addresses:
        kept = [a for a in addresses if family_of(a) == family]
        if not kept:
            gai_error = f"no IPv{family} address (it has {', '.join(addresses)})"
        addresses = kept
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
    if local and verdict in _FIREWALL_SUSPECT:
        verdict, explanation, commands = _local_firewall(
            address, port, proto, source, steps, (verdict, explanation, commands)
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
