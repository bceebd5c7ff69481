"""What a port, a socket or a state is on this host now: the evidence beside the words."""

from __future__ import annotations

from typing import TYPE_CHECKING

from portscope.errors import InvalidInput, PortscopeError
from portscope.explain import _words as w
from portscope.explain._explain import (
    Explanation,
    count_by,
    owner_names,
    read_setting,
)
from portscope.models import Proto, TcpState

if TYPE_CHECKING:
    from portscope.models import Socket, SocketTable

_LISTENING = (TcpState.LISTEN, TcpState.UNCONN)
_RANGE_WORDS = {
    "system": "the system range (0-1023, assigned by IANA with review, RFC 6335)",
    "user": "the user range (1024-49151, registered with IANA, RFC 6335)",
    "dynamic": "the dynamic range (49152-65535, never assigned; meant for ephemeral use)",
}


def _endpoint(sock: Socket, remote: bool = False) -> str:
    end = sock.remote if remote else sock.local
    return str(end) if end is not None else "*"


def explain_port(text: str, *, live: bool) -> Explanation:
    """A port: its range and what that means here, the registry, who holds it now."""
    from portscope._ports import parse_port_proto
    from portscope.registry import lookup, port_facts

    port, proto = parse_port_proto(text, allow_zero=True, names=False)
    facts = port_facts(port)
    k = facts.kernel
    lo, hi = k.ephemeral
    subject = f"{port}/{proto.value}" if proto else str(port)
    paragraphs = [
        f"Port {port} is in {_RANGE_WORDS[facts.range.value]}. "
        + (
            "Port 0 is not a port to bind: bind() to 0 asks the kernel for any free port."
            if port == 0
            else (
                f"Binding it needs CAP_NET_BIND_SERVICE here (ports below "
                f"net.ipv4.ip_unprivileged_port_start = {k.unprivileged_start})."
                if facts.privileged
                else f"Any user may bind it here (net.ipv4.ip_unprivileged_port_start = "
                f"{k.unprivileged_start})."
            )
        )
        + (
            f" It is in this kernel's ephemeral range ({lo}-{hi}): the kernel may give it "
            "to an outgoing connection as its source port, so a server that starts later "
            "can find it taken."
            if facts.ephemeral
            else f" It is outside this kernel's ephemeral range ({lo}-{hi}): the kernel "
            "never picks it as a client's source port."
        )
        + (
            " It is in net.ipv4.ip_local_reserved_ports: kept out of ephemeral use."
            if facts.reserved
            else ""
        )
    ]
    services = lookup(port, proto) if port else []
    named = []
    for service in services[:4]:
        line = f"{service.name} ({service.proto.value}, {service.source})"
        if service.description:
            line += f": {service.description}"
        named.append(line)
    if named:
        paragraphs.append(
            "The registry says it is for: "
            + "; ".join(named)
            + ". That is what the port is assigned to, not proof of what runs there."
        )
        notes = [s.notes for s in services[:4] if s.notes]
        if notes:
            paragraphs.append("Note: " + notes[0])
    else:
        paragraphs.append("No registry (IANA, /etc/services, nmap) names a service on it.")
    facts_out: list[tuple[str, str]] = []
    notes_out: tuple[str, ...] = ()
    see = [f"portscope lookup {port}"]
    if live and port:
        from portscope.diagnose import who
        from portscope.sockets import bind_scope

        found = who(port, proto)
        notes_out = found.notes
        listeners = []
        for holder in found.holders:
            for sock in holder.sockets:
                label = f"{holder.name}[{holder.pid}]"
                role = "listens" if sock.state in _LISTENING else sock.state.value
                where = bind_scope(sock) if sock.state in _LISTENING else _endpoint(sock)
                facts_out.append((f"{sock.proto.value} {role}", f"{label}, {where}"))
                if sock.state in _LISTENING:
                    listeners.append(bind_scope(sock))
        if found.unowned:
            facts_out.append(
                ("no process", f"{len(found.unowned)} socket(s): TIME-WAIT or not visible")
            )
        if listeners:
            reach = (
                "other machines can reach it, unless a firewall drops it"
                if any(not s.startswith("loopback") for s in listeners)
                else "only programs on this machine can reach it (loopback)"
            )
            paragraphs.append(f"Something listens on it now: {reach}.")
            see.append(f"portscope who {port}")
        elif not found.holders:
            paragraphs.append(
                f"Nothing holds it now: a program could bind it (portscope why bind {port} tries)."
            )
            see.append(f"portscope why bind {port}")
    settings = (
        read_setting(w.TUNABLES["ip_unprivileged_port_start"]),
        read_setting(w.TUNABLES["ip_local_port_range"]),
    )
    return Explanation(
        kind="port",
        subject=subject,
        title=f"port {subject}: {facts.range.value} range"
        + (f", registered to {services[0].name}" if services else ""),
        text="\n\n".join(paragraphs),
        source="RFC 6335; ip(7) ip_local_port_range, ip_unprivileged_port_start",
        facts=tuple(facts_out),
        settings=settings,
        see=tuple(see),
        notes=notes_out,
    )


def _split(endpoint: str) -> tuple[str, int]:
    from portscope._ports import parse_port

    host, _, port = endpoint.rpartition(":")
    host = host.strip("[]")
    return host, parse_port(port, allow_zero=True, names=False)


def explain_socket(first: str, second: str | None, *, live: bool) -> Explanation:
    """A socket (``ADDRESS:PORT``) or a connection (two endpoints): which end is which,
    the ephemeral port, the state and what each side waits for, queues, owners."""
    import ipaddress

    a_host, a_port = _split(first)
    b = _split(second) if second else None
    for host in (a_host, *(b[:1] if b else ())):
        try:
            ipaddress.ip_address(host)
        except ValueError:
            raise InvalidInput(
                f"{host!r} is not an IP address: explain takes ADDRESS:PORT as ss prints it "
                "(127.0.0.1:8080, [::1]:22)"
            ) from None
    subject = first if second is None else f"{first} - {second}"
    if not live:
        return _socket_words(subject, [])
    from portscope.sockets import list_sockets

    try:
        table = list_sockets(owners=True)
    except PortscopeError as err:
        raise InvalidInput(f"cannot read the socket table: {err}") from err
    matches = [s for s in table.sockets if _matches(s, (a_host, a_port), b)]
    return _socket_words(subject, matches, table)


def _same(address: str, want: str) -> bool:
    import ipaddress

    try:
        x, y = ipaddress.ip_address(address.split("%")[0]), ipaddress.ip_address(want)
    except ValueError:
        return False
    if isinstance(x, ipaddress.IPv6Address) and x.ipv4_mapped is not None:
        x = x.ipv4_mapped
    if isinstance(y, ipaddress.IPv6Address) and y.ipv4_mapped is not None:
        y = y.ipv4_mapped
    return x == y


def _is(end: object, want: tuple[str, int]) -> bool:
    address, port = getattr(end, "address", None), getattr(end, "port", None)
    return address is not None and port == want[1] and _same(address, want[0])


def _matches(sock: Socket, a: tuple[str, int], b: tuple[str, int] | None) -> bool:
    if b is None:
        if _is(sock.local, a) or _is(sock.remote, a):
            return True
        # a listener on the wildcard takes connections to every local address
        return (
            sock.state in _LISTENING
            and sock.local.port == a[1]
            and sock.local.address in ("0.0.0.0", "::")
            and (sock.family == 6 or ":" not in a[0])
        )
    return (_is(sock.local, a) and _is(sock.remote, b)) or (
        _is(sock.local, b) and _is(sock.remote, a)
    )


def _socket_words(
    subject: str, found: list[Socket], table: SocketTable | None = None
) -> Explanation:
    from portscope.registry import kernel_ports

    lo, hi = kernel_ports().ephemeral
    paragraphs: list[str] = []
    facts: list[tuple[str, str]] = []
    listening_ports = (
        {(s.proto, s.local.port) for s in table.sockets if s.state in _LISTENING}
        if table
        else set()
    )
    if table is None:
        paragraphs.append(
            "A socket is one end: transport, address and port. Two sockets joined make a "
            "connection, told apart by its 5-tuple."
        )
    elif not found:
        paragraphs.append(
            "No socket on this host has that address and port now (in this network "
            "namespace). It may have closed, or belong to another host."
        )
    for sock in found[:_MAX_SHOWN]:
        paragraphs.append(_one_socket(sock, listening_ports, (lo, hi)))
        owners = owner_names(sock)
        facts.append(
            (
                f"{sock.proto.value} {sock.state.value}",
                f"{_endpoint(sock)} -> {_endpoint(sock, remote=True)}"
                + (f", {', '.join(owners)}" if owners else ", no visible process")
                + _queues(sock),
            )
        )
    if len(found) > _MAX_SHOWN:
        facts.append(("more", f"{len(found) - _MAX_SHOWN} other socket(s) match"))
    notes = table.notes if table else ()
    return Explanation(
        kind="socket",
        subject=subject,
        title=f"{subject}: "
        + (f"{len(found)} socket(s) on this host" if table else "a socket or connection"),
        text="\n\n".join(paragraphs),
        source="RFC 9293 3.1 (5-tuple); RFC 6335 6 (ephemeral); ss(8) (Recv-Q, Send-Q)",
        facts=tuple(facts),
        settings=(read_setting(w.TUNABLES["ip_local_port_range"]),),
        see=("portscope ls -a -p",),
        notes=notes,
    )


_MAX_SHOWN = 4


def _queues(sock: Socket) -> str:
    if sock.recv_q is None and sock.send_q is None:
        return ""
    return f", Recv-Q {sock.recv_q if sock.recv_q is not None else '?'}, Send-Q " + (
        str(sock.send_q) if sock.send_q is not None else "?"
    )


def _one_socket(sock: Socket, listening: set[tuple[Proto, int]], ephemeral: tuple[int, int]) -> str:
    lo, hi = ephemeral
    state = sock.state
    local, remote = _endpoint(sock), _endpoint(sock, remote=True)
    if state in _LISTENING:
        from portscope.sockets import bind_scope

        if state is TcpState.LISTEN:
            return (
                f"{local} is a listener ({bind_scope(sock)}): a server waiting for "
                "connections. Its Recv-Q is the accept queue, its Send-Q the backlog."
            )
        return (
            f"{local} is an unconnected UDP socket ({bind_scope(sock)}): it receives "
            "datagrams from anyone."
        )
    server_side = (sock.proto, sock.local.port) in listening
    if server_side:
        role = (
            f"This host is the server: {sock.local.port} is a listening port here, and "
            f"{remote} is the client"
        )
    else:
        role = f"This host is the client: it connected from {local} to {remote}"
    chosen = ""
    if not server_side:
        if lo <= sock.local.port <= hi:
            chosen = (
                f". Local port {sock.local.port} is in the ephemeral range ({lo}-{hi}): "
                "the kernel picked it for this connection"
            )
        else:
            chosen = (
                f". Local port {sock.local.port} is outside the ephemeral range ({lo}-{hi}): "
                "the program chose it with bind()"
            )
    words = w.STATES.get(state.value)
    meaning = f" State {state.value}: {words.short}" if words else ""
    return f"{role}{chosen}.{meaning}"


def state_facts(state: str) -> tuple[tuple[tuple[str, str], ...], tuple[str, ...]]:
    """How many sockets are in ``state`` here now, and who made them: owners for most
    states; for TIME-WAIT (no owner), the listener for server-side ones and the
    processes now connected to the same destination for client-side ones."""
    from portscope.sockets import list_sockets

    wanted = TcpState(state)
    protos = ["udp"] if wanted is TcpState.UNCONN else ["tcp"]
    kernel_state = TcpState.SYN_RECV if wanted is TcpState.NEW_SYN_RECV else wanted
    try:
        if wanted is TcpState.TIME_WAIT:
            table = list_sockets(protos=["tcp"], owners=True)
            in_state = [s for s in table.sockets if s.state is TcpState.TIME_WAIT]
        else:
            table = list_sockets(protos=protos, states=[kernel_state], owners=True)
            in_state = list(table.sockets)
    except PortscopeError as err:
        return (("socket table", f"not readable: {err}"),), ()
    facts: list[tuple[str, str]] = [(f"in {state}", f"{len(in_state)} socket(s)")]
    if not in_state:
        return tuple(facts), table.notes
    if wanted is TcpState.TIME_WAIT:
        facts += _time_wait_makers(in_state, table)
    else:
        makers = count_by(", ".join(owner_names(s)) or "no visible process" for s in in_state)
        facts += [(name, f"{n} socket(s)") for name, n in makers]
        by_peer = count_by(_endpoint(s, remote=True) for s in in_state if s.remote)
        if by_peer and wanted is not TcpState.LISTEN:
            facts.append(("most to", ", ".join(f"{p} ({n})" for p, n in by_peer[:3])))
    return tuple(facts), table.notes


def _time_wait_makers(in_state: list[Socket], table: SocketTable) -> list[tuple[str, str]]:
    listeners: dict[int, list[str]] = {}
    peers: dict[tuple[str, int], list[str]] = {}
    for sock in table.sockets:
        if sock.state is TcpState.LISTEN:
            listeners.setdefault(sock.local.port, []).extend(owner_names(sock))
        elif sock.state is TcpState.ESTABLISHED and sock.remote is not None:
            key = (sock.remote.address, sock.remote.port)
            peers.setdefault(key, []).extend(owner_names(sock))
    made: list[str] = []
    for sock in in_state:
        if sock.local.port in listeners:
            names = sorted(set(listeners[sock.local.port])) or ["a listener"]
            made.append(f"server side of :{sock.local.port} ({', '.join(names)} listens)")
        elif sock.remote is not None:
            names = sorted(set(peers.get((sock.remote.address, sock.remote.port), ())))
            guess = f"; now connected there: {', '.join(names)}" if names else ""
            made.append(f"client side, to {_endpoint(sock, remote=True)}{guess}")
        else:
            made.append("unknown")
    return [(name, f"{n} socket(s)") for name, n in count_by(made)]
