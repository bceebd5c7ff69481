"""The words: what every state, reason, error, verdict, finding and term means.

Written for portscope, short and exact, in the teaching guides' plain style. Each entry
names its source. A kernel value is never written as a number here: ``{name}`` refers
to a ``Tunable`` (a sysctl or a kernel constant) and is filled in with this machine's
value when the entry is shown, so the text is true on the host it is read on (a test
reads every sysctl itself and compares).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final


@dataclass(frozen=True, slots=True)
class Tunable:
    """A kernel setting an explanation quotes.

    Attributes:
        name: the placeholder in texts (``tcp_fin_timeout``).
        path: its file under ``/proc/sys``, or ``None`` for a compile-time constant.
        default: the kernel's default (or the constant's value), as text.
        unit: ``s``, ``ports``, ``connections``, ``tries`` ..., or ``""``.
        source: where the kernel defines it.
    """

    name: str
    path: str | None
    default: str
    unit: str
    source: str


_SYSCTL = "Documentation/networking/ip-sysctl.rst"

TUNABLES: Final = {
    t.name: t
    for t in (
        Tunable("tcp_timewait_len", None, "60", "s", "TCP_TIMEWAIT_LEN, include/net/tcp.h"),
        Tunable("tcp_fin_timeout", "net/ipv4/tcp_fin_timeout", "60", "s", _SYSCTL),
        Tunable("tcp_syn_retries", "net/ipv4/tcp_syn_retries", "6", "tries", _SYSCTL),
        Tunable("tcp_synack_retries", "net/ipv4/tcp_synack_retries", "5", "tries", _SYSCTL),
        Tunable("tcp_retries2", "net/ipv4/tcp_retries2", "15", "tries", _SYSCTL),
        Tunable("tcp_orphan_retries", "net/ipv4/tcp_orphan_retries", "0", "tries", _SYSCTL),
        Tunable("tcp_keepalive_time", "net/ipv4/tcp_keepalive_time", "7200", "s", _SYSCTL),
        Tunable("tcp_tw_reuse", "net/ipv4/tcp_tw_reuse", "2", "", _SYSCTL),
        Tunable("tcp_max_tw_buckets", "net/ipv4/tcp_max_tw_buckets", "", "sockets", _SYSCTL),
        Tunable("tcp_syncookies", "net/ipv4/tcp_syncookies", "1", "", _SYSCTL),
        Tunable("somaxconn", "net/core/somaxconn", "4096", "connections", _SYSCTL),
        Tunable("tcp_max_syn_backlog", "net/ipv4/tcp_max_syn_backlog", "", "connections", _SYSCTL),
        Tunable("ip_local_port_range", "net/ipv4/ip_local_port_range", "32768 60999", "", _SYSCTL),
        Tunable(
            "ip_unprivileged_port_start", "net/ipv4/ip_unprivileged_port_start", "1024", "", _SYSCTL
        ),
        Tunable("bindv6only", "net/ipv6/bindv6only", "0", "", _SYSCTL),
        Tunable("file_max", "fs/file-max", "", "files", "Documentation/admin-guide/sysctl/fs.rst"),
    )
}


@dataclass(frozen=True, slots=True)
class Words:
    """One explanation.

    Attributes:
        title: one line: the thing and what it is.
        text: the explanation, paragraphs separated by blank lines; ``{tunable}``
            placeholders name ``TUNABLES``.
        short: one or two sentences for the ``--explain`` blocks.
        source: the RFC, man page or kernel source it rests on.
        see: portscope commands that answer the question on this host.
    """

    title: str
    text: str
    short: str
    source: str
    see: tuple[str, ...] = ()


_RFC_STATES = "RFC 9293 3.3.2 (state machine); include/net/tcp_states.h"

# TCP states as RFC 9293 and the kernel name them; UNCONN as ss prints a UDP socket.
STATES: Final = {
    "LISTEN": Words(
        "LISTEN: a server socket waiting for connections",
        "A listener is the door of a room (the port) that a program opened with listen(): "
        "the kernel completes the three-way handshake for it and puts each new connection in "
        "the accept queue until the program calls accept(). For a listener, Recv-Q is the "
        "number of connections waiting in that queue and Send-Q is its backlog, the most it "
        "holds (the program's listen() argument, capped by net.core.somaxconn = {somaxconn}). "
        "When Recv-Q reaches Send-Q the queue is full and new connections are dropped or "
        "answered late, which clients see as timeouts.\n\n"
        "It lasts until the program closes it. Which addresses it accepts on is its bind "
        "scope: 0.0.0.0 or :: means every interface, 127.0.0.1 or ::1 only this machine.",
        "A server socket waiting for connections; Recv-Q is the accept queue, Send-Q its backlog.",
        f"{_RFC_STATES}; listen(2)",
        ("portscope", "portscope who PORT"),
    ),
    "SYN-SENT": Words(
        "SYN-SENT: a client that sent SYN and waits for the answer",
        "connect() sent the first packet of the three-way handshake (SYN) and nothing has "
        "come back yet. Linux re-sends the SYN up to net.ipv4.tcp_syn_retries = "
        "{tcp_syn_retries} times with doubling waits (1, 2, 4 ... s; about 127 s for the "
        "default 6) before connect() fails with ETIMEDOUT.\n\n"
        "Many SYN-SENT sockets to one destination mean that destination does not answer: a "
        "firewall drops the SYNs, the host is down, or the route is broken.",
        "This host sent SYN and waits for the peer's answer; many of them mean the "
        "destination does not answer (a drop, or the host is down).",
        f"{_RFC_STATES}; tcp(7) tcp_syn_retries",
        ("portscope why connect HOST:PORT",),
    ),
    "SYN-RECV": Words(
        "SYN-RECV: a server side half-open connection",
        "A SYN arrived at a listener, the kernel answered SYN-ACK and waits for the client's "
        "final ACK. Linux keeps these as small request sockets (shown as SYN-RECV; the "
        "kernel's own name is NEW-SYN-RECV) and re-sends the SYN-ACK up to "
        "net.ipv4.tcp_synack_retries = {tcp_synack_retries} times (about 63 s for the "
        "default 5).\n\n"
        "A pile of them means clients that do not complete the handshake: a SYN flood, or a "
        "path that loses the client's ACK. With net.ipv4.tcp_syncookies = {tcp_syncookies} "
        "(1: cookies when the SYN queue overflows) the kernel can still accept real "
        "clients under a flood.",
        "A half-open connection on the server side: SYN-ACK sent, waiting for the client's ACK.",
        f"{_RFC_STATES}; tcp(7) tcp_synack_retries, tcp_syncookies",
    ),
    "NEW-SYN-RECV": Words(
        "NEW-SYN-RECV: the kernel's request socket of a half-open connection",
        "The kernel's name (since Linux 4.4) for the light-weight socket it keeps between a "
        "client's SYN and its final ACK; ss and portscope show it as SYN-RECV. See "
        "SYN-RECV: it is re-sent up to net.ipv4.tcp_synack_retries = {tcp_synack_retries} "
        "times.",
        "The kernel's request socket between a SYN and the handshake's last ACK (SYN-RECV).",
        "include/net/tcp_states.h (TCP_NEW_SYN_RECV); net/ipv4/inet_connection_sock.c",
    ),
    "ESTABLISHED": Words(
        "ESTABLISHED: an open connection",
        "The handshake is done and data can flow both ways. The connection is told apart by "
        "its 5-tuple: transport, local address and port, remote address and port. One end "
        "is a server's port (the room everyone knocks on), the other usually an ephemeral "
        "port the client's kernel picked.\n\n"
        "It lasts as long as both programs keep it. An idle connection sends nothing unless "
        "the program set SO_KEEPALIVE (first probe after net.ipv4.tcp_keepalive_time = "
        "{tcp_keepalive_time} s); unacknowledged data is re-sent up to "
        "net.ipv4.tcp_retries2 = {tcp_retries2} times (about 15 minutes for the default 15) "
        "before the kernel gives up with ETIMEDOUT. Recv-Q is data received but not yet read "
        "by the program, Send-Q data sent but not yet acknowledged.",
        "An open connection: data flows both ways; Recv-Q is unread data, Send-Q "
        "unacknowledged data.",
        f"{_RFC_STATES}; tcp(7) tcp_keepalive_time, tcp_retries2",
        ("portscope ls --state established -p",),
    ),
    "FIN-WAIT-1": Words(
        "FIN-WAIT-1: this end closed and waits for the FIN to be acknowledged",
        "The program here called close() (or shutdown()) and the kernel sent FIN, which the "
        "peer has not acknowledged yet. It usually lasts one round trip.\n\n"
        "Many FIN-WAIT-1 sockets mean peers that stopped answering, or whose receive window "
        "is zero, while this side still has data queued. Orphaned ones (no process left) "
        "are re-tried net.ipv4.tcp_orphan_retries = {tcp_orphan_retries} times (0 means the "
        "kernel's own default of 8) and then dropped.",
        "This end closed; its FIN is not acknowledged yet (usually one round trip).",
        f"{_RFC_STATES}; tcp(7) tcp_orphan_retries",
    ),
    "FIN-WAIT-2": Words(
        "FIN-WAIT-2: this end closed; waiting for the peer to close too",
        "Our FIN was acknowledged; the peer has not sent its own FIN. If the program here "
        "only shut down its sending side (shutdown(SHUT_WR)), this can last as long as the "
        "peer keeps its side open. If the program has closed the socket completely, the "
        "kernel owns it (no process) and drops it after net.ipv4.tcp_fin_timeout = "
        "{tcp_fin_timeout} s.\n\n"
        "tcp_fin_timeout is often taken for the length of TIME-WAIT: it is not; it only "
        "limits orphaned FIN-WAIT-2 sockets.",
        "This end closed and the peer acknowledged; the peer has not closed yet. An orphan "
        "expires after tcp_fin_timeout.",
        f"{_RFC_STATES}; tcp(7) tcp_fin_timeout",
    ),
    "CLOSE-WAIT": Words(
        "CLOSE-WAIT: the peer closed; the program here has not",
        "The other end sent FIN (it is done sending) and the kernel acknowledged it. Now the "
        "kernel waits for the program that owns this socket to call close(). There is no "
        "timeout: the socket stays in CLOSE-WAIT until the program closes it or exits.\n\n"
        "A pile of CLOSE-WAIT sockets is nearly always a bug in that program: it does not "
        "close connections the peer has finished with (a leak in a connection pool, a "
        "missing close() on an error path, a thread stuck before it reads the end of the "
        "stream). The owning process is the one to look at; restarting it clears them.",
        "The peer closed and the program here has not called close(); a pile of them is a "
        "leak in that program (there is no timeout).",
        f"{_RFC_STATES}; RFC 9293 3.6",
        ("portscope ls --state close-wait -p",),
    ),
    "CLOSING": Words(
        "CLOSING: both ends closed at the same time",
        "Both sides sent FIN before receiving the other's (a simultaneous close) and this "
        "end waits for its FIN to be acknowledged; then it goes to TIME-WAIT. Rare and "
        "short.",
        "Both ends closed at once; waiting for the last ACK before TIME-WAIT.",
        f"{_RFC_STATES}; RFC 9293 3.6",
    ),
    "LAST-ACK": Words(
        "LAST-ACK: this end closed last and waits for the final ACK",
        "The peer closed first (this socket was in CLOSE-WAIT), then the program here closed "
        "and the kernel sent FIN; it waits for the peer to acknowledge it, re-sending the "
        "FIN like data (up to net.ipv4.tcp_retries2 = {tcp_retries2} times). Usually one "
        "round trip; many of them mean peers that vanished after closing.",
        "The peer closed, then this end; waiting for the peer's ACK of our FIN.",
        f"{_RFC_STATES}; RFC 9293 3.6",
    ),
    "TIME-WAIT": Words(
        "TIME-WAIT: a closed connection kept so that late packets cannot harm a new one",
        "The end that closed first waits after the close, so that a delayed packet of this "
        "connection cannot be taken for part of a new connection with the same 5-tuple, "
        "and so that it can re-send the last ACK if the peer did not get it. RFC 9293 asks "
        "for twice the maximum segment lifetime; Linux uses a fixed "
        "{tcp_timewait_len} s (TCP_TIMEWAIT_LEN), whatever the sysctls say: "
        "net.ipv4.tcp_fin_timeout does not change it. No process owns a TIME-WAIT socket: "
        "the kernel does, with a small record that holds no buffers.\n\n"
        "Many TIME-WAIT sockets mean many short connections closed by this side (a client "
        "without keep-alive, or a server that closes first). They matter only when they use "
        "up the ephemeral ports toward one destination (each holds one of the "
        "{ip_local_port_range} range for that destination); net.ipv4.tcp_tw_reuse = "
        "{tcp_tw_reuse} (1: on, 2: loopback only) lets new outgoing connections reuse "
        "them, and at most net.ipv4.tcp_max_tw_buckets = {tcp_max_tw_buckets} exist at "
        "once. Connection reuse (keep-alive, pools) is the real cure.",
        "A closed connection the kernel keeps for a fixed 60 s on Linux so late packets "
        "cannot reach a new connection; no process owns it.",
        f"{_RFC_STATES}; RFC 9293 3.6.1; include/net/tcp.h TCP_TIMEWAIT_LEN",
        ("portscope ls --state time-wait", "portscope ephemeral"),
    ),
    "CLOSE": Words(
        "CLOSE: a TCP socket that is not connected",
        "The socket exists but has no connection: it was just created, or bound but neither "
        "listening nor connecting, or its connection was reset. A bound TCP socket in this "
        "state still holds its port for bind().",
        "A TCP socket with no connection (new, bound only, or reset).",
        _RFC_STATES,
    ),
    "BOUND-INACTIVE": Words(
        "BOUND-INACTIVE: a TCP socket bound to a port but not listening or connected",
        "bind() was called and then nothing else; the port is held (another bind() to it "
        "fails with EADDRINUSE) though nothing listens. The kernel (6.6 and later) reports "
        "it as its own state so such holders can be found.",
        "A TCP socket bound to a port that neither listens nor connects; it still holds the port.",
        "include/net/tcp_states.h (TCP_BOUND_INACTIVE)",
        ("portscope why bind PORT",),
    ),
    "UNCONN": Words(
        "UNCONN: a UDP socket without a fixed peer",
        "UDP has no connections: an unconnected socket receives datagrams from anyone to "
        "its address and port and can send to anyone. This is how UDP servers (DNS, NTP, "
        "DHCP) wait for requests, so UNCONN is UDP's 'listening'. Its bind scope says who "
        "can reach it, as for a TCP listener. Recv-Q is bytes received but not yet read.",
        "A UDP socket that receives from anyone: UDP's way to listen.",
        "udp(7); ss(8)",
        ("portscope -u",),
    ),
}

# Scan states as nmap names them (nmap book, "Port Scanning Basics"), plus unreachable.
PORT_STATES: Final = {
    "open": Words(
        "open: a program accepts connections or datagrams on this port",
        "The port answered as a server does: a TCP SYN-ACK (the connect succeeded) or a UDP "
        "reply. Behind the door there is someone who answers.",
        "A program accepts connections (or answered a UDP datagram) there.",
        "nmap(1) PORT SCANNING BASICS",
    ),
    "closed": Words(
        "closed: the host is reachable and nothing listens on the port",
        "The host answered that no program takes this port: a TCP RST (connect fails with "
        "ECONNREFUSED) or, for UDP, an ICMP port-unreachable. The host is up and no firewall "
        "dropped the probe. A firewall can also answer this way on purpose (reject with "
        "tcp-reset), so 'closed' is what the network said, not proof of an empty room.",
        "The host answered that nothing listens there (RST, or ICMP port-unreachable for UDP).",
        "nmap(1) PORT SCANNING BASICS; RFC 9293 3.10.7.1",
    ),
    "filtered": Words(
        "filtered: something in the way keeps the probe from telling",
        "No answer came after the retries, or an ICMP 'administratively prohibited' came "
        "back: a firewall drops or rejects the probe, so whether a program listens is "
        "unknown. Silence can also mean the host is down or the answer was lost.",
        "No answer (or an ICMP prohibited): a firewall is in the way; open or closed is unknown.",
        "nmap(1) PORT SCANNING BASICS",
        ("portscope why connect HOST:PORT",),
    ),
    "unfiltered": Words(
        "unfiltered: reachable, but open or closed is unknown",
        "Only an ACK scan gives it: the port answered an unsolicited ACK with RST, so no "
        "stateful firewall dropped it, but an ACK cannot tell an open port from a closed "
        "one.",
        "An ACK scan reached the port (RST came back); open or closed is unknown.",
        "nmap(1) PORT SCANNING BASICS (ACK scan)",
    ),
    "open|filtered": Words(
        "open|filtered: silence that cannot be told apart",
        "Usual for UDP: an open port whose program ignores a probe it does not understand "
        "says nothing, and neither does a firewall that drops the probe. Only a reply (open) "
        "or an ICMP port-unreachable (closed) decides. Linux sends at most a burst of "
        "port-unreachables and then about one per second per source, so a fast scan can "
        "also see silence from closed ports.",
        "No answer to a UDP probe: an open port that ignored it, or a drop.",
        "nmap(1) PORT SCANNING BASICS; RFC 768; icmp(7) icmp_ratelimit",
    ),
    "closed|filtered": Words(
        "closed|filtered: closed or filtered, no telling which",
        "nmap uses it for its IP ID idle scan, which cannot tell a closed port from a "
        "filtered one. portscope prints it only for imported nmap results.",
        "Closed or filtered (nmap's idle scan cannot tell).",
        "nmap(1) PORT SCANNING BASICS",
    ),
    "undecided": Words(
        "undecided: the scan ended before this port was decided",
        "A scan stopped by --max-wait reports the ports it had not decided yet as "
        "undecided, never as closed: silence before the target's ICMP budget allowed an "
        "answer proves nothing. Scan again with more time, or from more source addresses "
        "(--source-addresses), to decide them.",
        "Not decided when --max-wait ended the scan (not closed).",
        "docs/scan.md (UDP scan, --max-wait)",
    ),
    "unreachable": Words(
        "unreachable: the host or network could not be reached at all",
        "The answer is about routing, not the port: no route here, or a router said host or "
        "network unreachable (ICMP), or the neighbour did not answer ARP/NDP. Every port of "
        "that host will say the same.",
        "The host or network could not be reached (routing), not an answer about the port.",
        "RFC 792; RFC 4443; ip-route(8)",
        ("portscope why connect HOST:PORT",),
    ),
}


def _icmp(code: str, what: str, source: str = "RFC 792; RFC 1812 5.2.7.1") -> Words:
    return Words(
        f"{code}: ICMP destination unreachable, {what}",
        f"A router or the host answered the probe with ICMP destination unreachable "
        f"({what}). The probe did not reach a program.",
        f"ICMP destination unreachable: {what}.",
        source,
    )


# Reasons in nmap's vocabulary, and portscope's where nmap has none.
REASONS: Final = {
    "syn-ack": Words(
        "syn-ack: the port answered SYN with SYN-ACK",
        "The second step of the three-way handshake came back: a program listens.",
        "SYN-ACK came back: a program listens.",
        "RFC 9293 3.5",
    ),
    "conn-refused": Words(
        "conn-refused: connect() failed with ECONNREFUSED",
        "The host answered the SYN with RST: reachable, nothing listening on that address "
        "and port (or a firewall rejecting with tcp-reset).",
        "RST to our SYN: nothing listens there.",
        "connect(2) ECONNREFUSED; RFC 9293 3.10.7.1",
    ),
    "reset": Words(
        "reset: the host answered with RST",
        "A TCP reset: the host says no connection exists or will exist for this 5-tuple.",
        "A TCP RST came back.",
        "RFC 9293 3.5.2",
    ),
    "no-response": Words(
        "no-response: nothing came back after every retry",
        "Silence: a firewall dropped the probe or the answer, the host is down, or the "
        "packets were lost on every try.",
        "Nothing came back after every retry.",
        "nmap(1) --reason",
    ),
    "icmp-rate-limit": Words(
        "icmp-rate-limit: undecided, the target's ICMP budget could not be proven",
        "Every try of this UDP port was silent, but the datagrams sent right after its last "
        "try got no port unreachable either: the target had no ICMP budget left (Linux "
        "rate-limits port unreachables per source and overall; other traffic may spend "
        "it), so the silence proves nothing. Scan again, more slowly or from more source "
        "addresses (--source-addresses).",
        "Silent, but the target's ICMP budget was spent: not decided (not open|filtered).",
        "docs/scan.md (UDP scan); Linux net/ipv4/icmp.c",
    ),
    "udp-response": Words(
        "udp-response: the port answered the UDP datagram",
        "A datagram came back from the probed port: a program is there and understood the probe.",
        "A UDP reply came back.",
        "nmap(1) --reason; RFC 768",
    ),
    "time-exceeded": Words(
        "time-exceeded: a router on the way said the probe's TTL ran out",
        "ICMP time exceeded (type 11): the probe's time-to-live reached zero at that hop. "
        "portscope trace sends probes with TTL 1, 2, 3 ... on purpose, so each router on "
        "the path names itself this way.",
        "A router on the path answered: the probe's TTL ran out there.",
        "RFC 792; RFC 4443 3.3; traceroute(8)",
        ("portscope trace HOST:PORT",),
    ),
    "echo-reply": Words(
        "echo-reply: the host answered an ICMP echo (ping)",
        "The target itself answered the ICMP echo request (trace -I): it is reachable at "
        "that hop count.",
        "The host answered a ping.",
        "RFC 792; RFC 4443 4.2",
    ),
    "local-error": Words(
        "local-error: sending the probe failed on this host",
        "The kernel refused to send the probe (no route here, a local firewall, a full "
        "buffer); the errno is shown.",
        "This host could not send the probe (errno shown).",
        "sendmsg(2)",
    ),
    "self-connect": Words(
        "self-connect: the connect reached its own socket",
        "A connect to a local port in the ephemeral range can, rarely, pick that same port "
        "as its source and connect to itself (TCP simultaneous open). portscope counts it "
        "as closed: no program listens there.",
        "The probe connected to itself (a local ephemeral port); nothing listens.",
        "RFC 9293 3.5 (simultaneous open)",
    ),
    "host-down": Words(
        "host-down: EHOSTDOWN",
        "The kernel reports the host as down (no neighbour answer on a local link).",
        "The host is down on the local link.",
        "errno(3) EHOSTDOWN",
    ),
    "net-down": Words(
        "net-down: ENETDOWN",
        "The local interface toward that network is down.",
        "The local interface is down.",
        "errno(3) ENETDOWN",
    ),
    "local-firewall": Words(
        "local-firewall: EPERM from this host's own firewall",
        "This host's own netfilter rules refused the outgoing packet (an output rule that "
        "rejects), so it never left.",
        "This host's firewall refused the outgoing probe.",
        "connect(2) EPERM; nft(8)",
    ),
    "local-policy": Words(
        "local-policy: EACCES from a local policy",
        "A local policy refused the connection (a security module, or a broadcast address "
        "without SO_BROADCAST).",
        "A local policy refused the probe.",
        "connect(2) EACCES",
    ),
    "no-local-address": Words(
        "no-local-address: EADDRNOTAVAIL",
        "No source address or ephemeral port was available for this destination.",
        "No local address or ephemeral port was available.",
        "connect(2) EADDRNOTAVAIL",
        ("portscope ephemeral",),
    ),
    "proto-error": Words(
        "proto-error: EPROTO",
        "A protocol error was reported for the connection.",
        "A protocol error.",
        "errno(3) EPROTO",
    ),
    "net-unreach": _icmp("net-unreach", "network unreachable (code 0)"),
    "host-unreach": _icmp("host-unreach", "host unreachable (code 1)"),
    "proto-unreach": _icmp("proto-unreach", "protocol unreachable (code 2)"),
    "port-unreach": Words(
        "port-unreach: ICMP port unreachable",
        "The host answered the UDP datagram with ICMP port unreachable: reachable, and no "
        "socket is bound to that port: closed. Linux limits these answers per source.",
        "ICMP port unreachable: nothing is bound to that UDP port (closed).",
        "RFC 792; RFC 4443 3.1; RFC 1122 3.2.2.1",
    ),
    "needfrag": _icmp("needfrag", "fragmentation needed and DF set (code 4)"),
    "srcroute-failed": _icmp("srcroute-failed", "source route failed (code 5)"),
    "net-unknown": _icmp("net-unknown", "destination network unknown (code 6)", "RFC 1122"),
    "host-unknown": _icmp("host-unknown", "destination host unknown (code 7)", "RFC 1122"),
    "host-isolated": _icmp("host-isolated", "source host isolated (code 8)", "RFC 1122"),
    "net-prohibited": _icmp("net-prohibited", "network administratively prohibited (code 9)"),
    "host-prohibited": _icmp("host-prohibited", "host administratively prohibited (code 10)"),
    "net-tos-unreach": _icmp("net-tos-unreach", "network unreachable for TOS (code 11)"),
    "host-tos-unreach": _icmp("host-tos-unreach", "host unreachable for TOS (code 12)"),
    "admin-prohibited": Words(
        "admin-prohibited: a firewall rejected the probe",
        "ICMP 'communication administratively prohibited' (ICMP code 13; ICMPv6 code 1): a "
        "firewall rule rejects this traffic and says so, instead of dropping it silently. "
        "The port counts as filtered.",
        "A firewall rejected the probe with ICMP administratively prohibited (filtered).",
        "RFC 1812 5.2.7.1; RFC 4443 3.1",
        ("portscope why connect HOST:PORT",),
    ),
    "host-precedence-violation": _icmp(
        "host-precedence-violation", "host precedence violation (code 14)"
    ),
    "precedence-cutoff": _icmp("precedence-cutoff", "precedence cutoff in effect (code 15)"),
    "no-route": _icmp("no-route", "no route to destination (ICMPv6 code 0)", "RFC 4443 3.1"),
    "beyond-scope": _icmp(
        "beyond-scope", "beyond scope of source address (ICMPv6 code 2)", "RFC 4443 3.1"
    ),
    "addr-unreach": _icmp("addr-unreach", "address unreachable (ICMPv6 code 3)", "RFC 4443 3.1"),
    "source-policy-failed": _icmp(
        "source-policy-failed", "source address failed policy (ICMPv6 code 5)", "RFC 4443 3.1"
    ),
    "reject-route": _icmp(
        "reject-route", "reject route to destination (ICMPv6 code 6)", "RFC 4443 3.1"
    ),
}

# Errors a bind or connect ends with: errno name -> words (causes most likely first).
ERRORS: Final = {
    "EADDRINUSE": Words(
        "EADDRINUSE (Address already in use): another socket holds that address and port",
        "bind() found the port taken. Most likely first: another process listens on it "
        "(often an older copy of the same program); a socket on the wildcard address "
        "(0.0.0.0 or ::) covers the address asked for, or the other way round; a [::] "
        "socket without IPV6_V6ONLY also holds the IPv4 port; connections in TIME-WAIT "
        "remain on the port and the program does not set SO_REUSEADDR; a socket bound "
        "but not listening holds it.",
        "The port is taken on that address (a holder, a wildcard overlap, or TIME-WAIT).",
        "bind(2); ip(7) SO_REUSEADDR; socket(7)",
        ("portscope why bind PORT", "portscope who PORT"),
    ),
    "ECONNREFUSED": Words(
        "ECONNREFUSED (Connection refused): the host answered that nothing listens",
        "The SYN reached the host and it answered with RST. Most likely first: the server "
        "is not running; it listens on another address (127.0.0.1 only, or IPv4 only while "
        "you connect over IPv6) or another port; a firewall rejects with tcp-reset. For UDP "
        "the same error comes from an ICMP port unreachable.",
        "The host answered RST: nothing listens on that address and port.",
        "connect(2); RFC 9293 3.10.7.1",
        ("portscope why connect HOST:PORT", "portscope who PORT"),
    ),
    "ETIMEDOUT": Words(
        "ETIMEDOUT (Connection timed out): nothing answered",
        "connect() re-sent its SYN net.ipv4.tcp_syn_retries = {tcp_syn_retries} times and "
        "nothing came back. Most likely first: a firewall drops the SYN (or the SYN-ACK); "
        "the host is down or the address is wrong; a route is missing on the way back; the "
        "server's accept queue is full and it drops new SYNs. On an open connection the "
        "same error means unacknowledged data after net.ipv4.tcp_retries2 = "
        "{tcp_retries2} re-sends: the peer vanished.",
        "Nothing answered the SYN: a drop, a dead host, or a full accept queue.",
        "connect(2); tcp(7) tcp_syn_retries, tcp_retries2",
        ("portscope why connect HOST:PORT",),
    ),
    "ECONNRESET": Words(
        "ECONNRESET (Connection reset by peer): the other end aborted the connection",
        "An RST arrived on an open connection. Most likely first: the peer program closed "
        "while data it had not read was waiting (or set SO_LINGER to 0); it crashed or was "
        "restarted; a NAT, load balancer or firewall forgot an idle connection and reset "
        "it; the peer got data for a connection it no longer knows.",
        "The peer (or a middlebox) aborted the connection with RST.",
        "RFC 9293 3.5.2; tcp(7)",
        ("portscope ls --state established -p",),
    ),
    "EHOSTUNREACH": Words(
        "EHOSTUNREACH (No route to host): the host cannot be reached",
        "Most likely first: on the local network, the host did not answer ARP/NDP (it is "
        "down or the address is wrong); a router answered ICMP host unreachable; a firewall "
        "rejects with icmp host-prohibited or admin-prohibited (a reject, not a route "
        "problem).",
        "The host could not be reached: no ARP/NDP answer, an ICMP host unreachable, or a "
        "firewall reject.",
        "connect(2); RFC 792; RFC 4443",
        ("portscope why connect HOST:PORT",),
    ),
    "ENETUNREACH": Words(
        "ENETUNREACH (Network is unreachable): no route to that network",
        "This host has no route to the destination (no default route, or none for that "
        "address family: often IPv6 on an IPv4-only host), or a router answered ICMP "
        "network unreachable.",
        "No route to that network from here.",
        "connect(2); ip-route(8)",
        ("portscope why connect HOST:PORT",),
    ),
    "EACCES": Words(
        "EACCES (Permission denied) on bind: the port is privileged",
        "Ports below net.ipv4.ip_unprivileged_port_start = {ip_unprivileged_port_start} "
        "need CAP_NET_BIND_SERVICE (root has it). Give the program the capability (systemd "
        "AmbientCapabilities=CAP_NET_BIND_SERVICE, or setcap), bind a higher port, or let "
        "a proxy hold the low one. On connect() it comes from a local policy or a "
        "broadcast address without SO_BROADCAST.",
        "Binding a port below ip_unprivileged_port_start needs CAP_NET_BIND_SERVICE.",
        "bind(2); capabilities(7); ip(7)",
        ("portscope why bind PORT",),
    ),
    "EADDRNOTAVAIL": Words(
        "EADDRNOTAVAIL (Cannot assign requested address)",
        "On bind(): the address is not one of this host's (a typo, an address not yet "
        "configured, an IPv6 address still in duplicate address detection); "
        "net.ipv4.ip_nonlocal_bind allows it anyway. On connect(): every ephemeral port "
        "toward that destination is in use (the range is {ip_local_port_range}; TIME-WAIT "
        "sockets count).",
        "bind: the address is not on this host; connect: no free ephemeral port to that "
        "destination.",
        "bind(2); connect(2); ip(7) ip_local_port_range",
        ("portscope why bind PORT --addr ADDR", "portscope ephemeral"),
    ),
    "EMFILE": Words(
        "EMFILE (Too many open files): the process's file limit",
        "Every socket is a file descriptor; the process reached its RLIMIT_NOFILE (ulimit "
        "-n). Most likely first: it leaks sockets (look for CLOSE-WAIT piles), or the limit "
        "is too low for its load (systemd LimitNOFILE=). ENFILE is the same for the whole "
        "system (fs.file-max = {file_max}).",
        "The process reached its open-file limit (every socket is a file).",
        "socket(2); getrlimit(2) RLIMIT_NOFILE",
        ("portscope ls --state close-wait -p",),
    ),
    "ENFILE": Words(
        "ENFILE (Too many open files in system): the system's file limit",
        "The whole system reached fs.file-max = {file_max} open files.",
        "The system-wide open-file limit was reached.",
        "socket(2); proc(5) /proc/sys/fs/file-max",
    ),
    "EPERM": Words(
        "EPERM (Operation not permitted) on connect or send: this host's firewall",
        "An output rule of this host's own firewall rejected the packet, or the operation "
        "needs a capability the process lacks.",
        "This host's firewall (or a missing capability) refused it.",
        "connect(2); nft(8)",
    ),
    "EHOSTDOWN": Words(
        "EHOSTDOWN (Host is down)",
        "The neighbour on the local link did not answer; the host is down or absent.",
        "The host is down.",
        "errno(3)",
    ),
    "ENETDOWN": Words(
        "ENETDOWN (Network is down)",
        "The local interface toward the destination is down.",
        "The local interface is down.",
        "errno(3)",
    ),
    "EPROTO": Words(
        "EPROTO (Protocol error)",
        "The kernel reported a protocol error for the connection.",
        "A protocol error.",
        "errno(3)",
    ),
}

# Terms of the trade.
TERMS: Final = {
    "port": Words(
        "port: the room number on a host",
        "An IP address finds the building (the host); a port, a 16-bit number 0-65535, "
        "finds the room (the program). Each transport has its own ports: TCP 53 and UDP 53 "
        "are different rooms. IANA's ranges (RFC 6335): system 0-1023, user 1024-49151, "
        "dynamic 49152-65535; binding below net.ipv4.ip_unprivileged_port_start = "
        "{ip_unprivileged_port_start} needs privilege here.",
        "A 16-bit number that finds a program on a host, per transport.",
        "RFC 6335; RFC 9293; RFC 768",
        ("portscope lookup PORT",),
    ),
    "socket": Words(
        "socket: one end of a conversation (address, port, transport)",
        "A socket is what a program opens to talk over the network: a transport (TCP or "
        "UDP), a local address and a local port, and, once connected, a remote address and "
        "port. A listening socket waits for connections; each accepted connection is a new "
        "socket with the same local port.",
        "A program's end of network traffic: transport, address, port (and its peer's).",
        "socket(7); socket(2)",
        ("portscope ls",),
    ),
    "connection": Words(
        "connection: two sockets joined, told apart by the 5-tuple",
        "A TCP connection joins a client's socket and a server's socket. Many connections "
        "can share the server's port: the 5-tuple (transport, both addresses, both ports) "
        "keeps them apart.",
        "Two sockets joined; the 5-tuple tells connections apart.",
        "RFC 9293 3.1",
    ),
    "5-tuple": Words(
        "5-tuple: transport, source address, source port, destination address, port",
        "The five values that name one connection. Two connections to the same server port "
        "differ at least in the client's address or port; that is how one web server "
        "holds thousands of connections on port 443.",
        "The five values that name one connection.",
        "RFC 9293 3.1",
    ),
    "ephemeral": Words(
        "ephemeral port: the client's port, picked by the kernel",
        "When a program connects without binding a port, the kernel picks its local port "
        "from net.ipv4.ip_local_port_range = {ip_local_port_range} (IANA's dynamic range is "
        "49152-65535; Linux uses its own). A port is taken per destination, so one client "
        "can hold about that many connections to each server address and port.",
        "The local port the kernel picks for a connecting socket, from ip_local_port_range.",
        "RFC 6335 6; ip(7) ip_local_port_range",
        ("portscope ephemeral",),
    ),
    "backlog": Words(
        "backlog: how many connections may wait for accept()",
        "The argument of listen(): the length of the accept queue of completed connections "
        "the program has not accepted yet, capped by net.core.somaxconn = {somaxconn}. For a "
        "listener, ss and portscope show it as Send-Q.",
        "The accept queue's size (listen()'s argument, capped by somaxconn).",
        "listen(2); tcp(7)",
    ),
    "accept queue": Words(
        "accept queue: connections done with the handshake, not yet accept()ed",
        "The kernel completes handshakes by itself and queues the connections until the "
        "program calls accept(). Recv-Q of a listener is the queue's length; when it reaches "
        "the backlog, new SYNs are dropped (clients see timeouts, not refusals) and the "
        "host's ListenOverflows counter grows.",
        "Completed connections waiting for the program's accept(); Recv-Q of a listener.",
        "listen(2); tcp(7)",
    ),
    "recv-q": Words(
        "Recv-Q: what waits to be read",
        "For a connection: bytes received that the program has not read yet (a growing "
        "Recv-Q means the program is slow to read). For a listener: connections waiting "
        "in the accept queue.",
        "Unread bytes; for a listener, the accept queue's length.",
        "ss(8); netstat(8)",
    ),
    "send-q": Words(
        "Send-Q: what the peer has not acknowledged",
        "For a connection: bytes sent but not acknowledged yet (a growing Send-Q means the "
        "peer or the path is slow). For a listener: its backlog.",
        "Unacknowledged bytes; for a listener, its backlog.",
        "ss(8); netstat(8)",
    ),
    "so_reuseaddr": Words(
        "SO_REUSEADDR: bind a port that TIME-WAIT connections still use",
        "Set before bind(), it lets a server restart on its port while old connections sit "
        "in TIME-WAIT. It does not let two listeners share a port on Linux.",
        "Lets a server bind its port while old connections are in TIME-WAIT.",
        "socket(7) SO_REUSEADDR",
    ),
    "so_reuseport": Words(
        "SO_REUSEPORT: several sockets share one port",
        "When every socket sets it before bind() (and they belong to the same user), "
        "several sockets can listen on the same address and port; the kernel spreads new "
        "connections over them.",
        "Several sockets of one user share a port; the kernel balances between them.",
        "socket(7) SO_REUSEPORT",
    ),
    "dual-stack": Words(
        "dual-stack: one IPv6 socket that also takes IPv4",
        "A socket bound to :: with IPV6_V6ONLY off accepts IPv4 connections too (shown as "
        "::ffff:a.b.c.d); it then also holds the IPv4 port. The default comes from "
        "net.ipv6.bindv6only = {bindv6only} (0: dual-stack).",
        "An IPv6 socket on :: without IPV6_V6ONLY also serves IPv4.",
        "ipv6(7) IPV6_V6ONLY",
    ),
    "wildcard": Words(
        "wildcard address: 0.0.0.0 or ::, every address of the host",
        "A listener bound to the wildcard accepts connections to any of the host's "
        "addresses, on every interface: reachable from other machines unless a firewall "
        "says no.",
        "0.0.0.0 or ::: every address and interface of this host.",
        "ip(7) INADDR_ANY; ipv6(7)",
    ),
    "loopback": Words(
        "loopback: 127.0.0.0/8 and ::1, this machine only",
        "Traffic to loopback never leaves the host: a listener on 127.0.0.1 or ::1 cannot "
        "be reached from another machine (except through something on this host that "
        "forwards to it).",
        "127.0.0.0/8 and ::1: reachable from this machine only.",
        "RFC 1122 3.2.1.3; RFC 4291 2.5.3",
    ),
    "scope": Words(
        "bind scope: who can reach a listener, from its address",
        "portscope says it in words: all interfaces (0.0.0.0, ::), loopback only "
        "(127.0.0.1, ::1), or one address only. A firewall may narrow it further.",
        "Who can reach a listener, judged from the address it is bound to.",
        "ip(7); ipv6(7)",
    ),
    "netns": Words(
        "network namespace (netns): a separate network stack",
        "Each network namespace has its own interfaces, routes, firewall and socket table; "
        "containers use one each. A port in one namespace does not collide with the same "
        "port in another.",
        "A separate network stack with its own sockets (containers have one each).",
        "network_namespaces(7); ip-netns(8)",
    ),
    "rejected": Words(
        "rejected (exposure): a firewall rule answers no",
        "The packet reaches a reject rule: the sender gets an answer at once (a TCP reset, "
        "or an ICMP port-unreachable, admin-prohibited or host-prohibited), unlike a drop, "
        "which leaves it waiting until its timeout.",
        "A reject rule answers at once (RST or ICMP), unlike a silent drop.",
        "nft(8) REJECT STATEMENT",
        ("portscope exposure",),
    ),
    "dnat": Words(
        "DNAT: destination NAT, the port forwarding of routers and containers",
        "A prerouting rule rewrites the destination of new connections (to a container's "
        "address and port); the connection is then forwarded, not delivered to a local "
        "socket, so the host's input rules do not see it.",
        "Prerouting rewrites the destination: the connection goes on to another address.",
        "nft(8) NAT STATEMENTS",
    ),
    "verdict": Words(
        "verdict: what a firewall rule decides for a packet",
        "accept, drop (silence: the sender times out) or reject (an answer: RST or ICMP).",
        "What a firewall decides: accept, drop or reject.",
        "nft(8) VERDICT STATEMENT",
    ),
    "handshake": Words(
        "three-way handshake: SYN, SYN-ACK, ACK",
        "The client sends SYN, the server answers SYN-ACK, the client sends ACK: the "
        "connection is then ESTABLISHED on both ends.",
        "SYN, SYN-ACK, ACK: how a TCP connection opens.",
        "RFC 9293 3.5",
    ),
    "confirmed": Words(
        "confirmed (-sV): the protocol itself answered",
        "portscope sent the protocol's own request and the answer was that protocol's, "
        "parsed without error: the service is what it says, whatever the port's registry "
        "name.",
        "The service answered its own protocol correctly.",
        "docs/identify.md",
    ),
    "likely": Words(
        "likely (-sV): a partial match",
        "Something in the answer fits the protocol (a banner's shape, some fields) but not "
        "all of it was checked.",
        "The answer partly matched the protocol.",
        "docs/identify.md",
    ),
    "guess": Words(
        "guess (-sV): the registry's name only",
        "Nothing identified the service; the name is what the port is registered to, shown "
        "with a question mark, never as identified.",
        "Only the registry's name for the port: not identified.",
        "docs/identify.md",
    ),
    "system": Words(
        "system ports (well-known): 0-1023",
        "Assigned by IANA with review (RFC 6335); on Linux, binding below "
        "net.ipv4.ip_unprivileged_port_start = {ip_unprivileged_port_start} needs "
        "CAP_NET_BIND_SERVICE.",
        "Ports 0-1023, assigned by IANA; binding them needs privilege here.",
        "RFC 6335 6",
    ),
    "user": Words(
        "user ports (registered): 1024-49151",
        "Registered with IANA for services but bindable by any user.",
        "Ports 1024-49151, registered with IANA; any user may bind them.",
        "RFC 6335 6",
    ),
    "dynamic": Words(
        "dynamic ports (private, ephemeral): 49152-65535",
        "Never assigned by IANA; meant for ephemeral use. Linux picks ephemeral ports from "
        "its own range here: {ip_local_port_range}.",
        "Ports 49152-65535, never assigned; meant for ephemeral use.",
        "RFC 6335 6",
    ),
}

#: Other spellings -> a key of one of the tables above (lower case).
ALIASES: Final = {
    "five-tuple": "5-tuple",
    "5tuple": "5-tuple",
    "ephemeral port": "ephemeral",
    "ephemeral ports": "ephemeral",
    "acceptq": "accept queue",
    "accept-queue": "accept queue",
    "recvq": "recv-q",
    "sendq": "send-q",
    "so-reuseaddr": "so_reuseaddr",
    "reuseaddr": "so_reuseaddr",
    "so-reuseport": "so_reuseport",
    "reuseport": "so_reuseport",
    "dualstack": "dual-stack",
    "ipv6_v6only": "dual-stack",
    "v6only": "dual-stack",
    "0.0.0.0": "wildcard",
    "::": "wildcard",
    "namespace": "netns",
    "network namespace": "netns",
    "well-known": "system",
    "registered": "user",
    "private": "dynamic",
    "sockets": "socket",
    "ports": "port",
    "three-way handshake": "handshake",
    "syn": "handshake",
    "estab": "ESTABLISHED",
    "timewait": "TIME-WAIT",
    "time_wait": "TIME-WAIT",
    "closewait": "CLOSE-WAIT",
    "close_wait": "CLOSE-WAIT",
    "syn-received": "SYN-RECV",
    "listening": "LISTEN",
}

# `why connect` and `why bind` verdicts.
VERDICTS: Final = {
    "open": Words(
        "open (why connect): the connection succeeds",
        "A real connection attempt completed the handshake: something listens and nothing "
        "in the way blocks it.",
        "The connection succeeds.",
        "connect(2)",
    ),
    "refused": Words(
        "refused (why connect): nothing listens on that address and port",
        "The host answered RST (ECONNREFUSED): the server is not running there, or listens "
        "on another address or port.",
        "RST: nothing listens on that address and port.",
        "connect(2) ECONNREFUSED",
    ),
    "listens-elsewhere": Words(
        "listens-elsewhere (why connect): this host listens on that port, on another address",
        "A listener holds the port but on a different address (127.0.0.1 while you connect "
        "to the LAN address, or IPv4 only while you connect over IPv6): bind it to the "
        "wildcard or to the address you connect to.",
        "The port listens here, but on another address.",
        "bind(2); ip(7)",
    ),
    "firewall-reject": Words(
        "firewall-reject (why connect): a firewall answered no",
        "An ICMP prohibited came back, or a RST although a listener exists: a firewall rule "
        "rejects the connection.",
        "A firewall rejected the connection.",
        "RFC 1812 5.2.7.1; nft(8) reject",
    ),
    "accept-queue-full": Words(
        "accept-queue-full (why connect): the listener's accept queue is full",
        "The local listener's Recv-Q has reached its backlog: the program is not calling "
        "accept() fast enough, so the kernel drops new SYNs and clients time out. It is not "
        "a firewall.",
        "The listener's accept queue is full: the program does not accept() fast enough.",
        "listen(2); tcp(7)",
    ),
    "open|filtered": Words(
        "open|filtered (why connect): a UDP datagram got no answer",
        "Nothing came back to the UDP probe: a program may have taken it without answering, "
        "or a firewall dropped it. Only a reply or an ICMP port unreachable would decide.",
        "UDP silence: a program that did not answer, or a drop.",
        "RFC 768; nmap(1) PORT SCANNING BASICS",
    ),
    "filtered": Words(
        "filtered (why connect): no answer at all",
        "The SYN got no answer after the retries: a firewall drops it, or the host is down.",
        "No answer: a drop, or the host is down.",
        "connect(2) ETIMEDOUT",
    ),
    "unreachable": Words(
        "unreachable (why connect): routing failed",
        "No route, or an ICMP host/network unreachable: the packets cannot get there.",
        "The destination cannot be reached (routing).",
        "ip-route(8); RFC 792",
    ),
    "not-resolved": Words(
        "not-resolved (why connect): the name has no address",
        "The host name did not resolve to an address (no DNS record, or no resolver).",
        "The name has no address.",
        "getaddrinfo(3)",
    ),
    "in-use": Words(
        "in-use (why bind): another socket holds that address and port",
        "A socket is bound to the same address and port: EADDRINUSE.",
        "Another socket holds that address and port.",
        "bind(2)",
    ),
    "wildcard-holds": Words(
        "wildcard-holds (why bind): a socket on 0.0.0.0 or :: covers the address",
        "A socket on the wildcard address holds the port for every address, including the "
        "one asked for.",
        "A wildcard socket covers the address asked for.",
        "bind(2); ip(7)",
    ),
    "specific-holds": Words(
        "specific-holds (why bind): the wildcard collides with one address's socket",
        "Binding 0.0.0.0 or :: needs the port free on every address; a socket on one "
        "address has it.",
        "A socket on one address blocks the wildcard bind.",
        "bind(2); ip(7)",
    ),
    "dual-stack": Words(
        "dual-stack (why bind): [::] without IPV6_V6ONLY also takes the IPv4 port",
        "A dual-stack socket on :: holds the IPv4 port as well (net.ipv6.bindv6only = "
        "{bindv6only}).",
        "A dual-stack [::] socket also holds the IPv4 port.",
        "ipv6(7) IPV6_V6ONLY",
    ),
    "reuseport": Words(
        "reuseport (why bind): an SO_REUSEPORT group",
        "Sockets with SO_REUSEPORT share the port only if every one set it and they belong "
        "to the same user.",
        "An SO_REUSEPORT group: only the same user with the option may join.",
        "socket(7) SO_REUSEPORT",
    ),
    "time-wait": Words(
        "time-wait (why bind): closed connections still on the port",
        "Connections in TIME-WAIT hold the port for {tcp_timewait_len} s; SO_REUSEADDR "
        "lets a server bind anyway.",
        "TIME-WAIT connections remain on the port; SO_REUSEADDR binds anyway.",
        "socket(7) SO_REUSEADDR",
    ),
    "privileged": Words(
        "privileged (why bind): the port needs CAP_NET_BIND_SERVICE",
        "Ports below net.ipv4.ip_unprivileged_port_start = {ip_unprivileged_port_start} "
        "need the capability.",
        "Below ip_unprivileged_port_start: needs CAP_NET_BIND_SERVICE.",
        "capabilities(7); ip(7)",
    ),
    "addr-not-available": Words(
        "addr-not-available (why bind): the address is not on this host",
        "bind() to an address this host does not have fails with EADDRNOTAVAIL.",
        "The address is not on this host.",
        "bind(2) EADDRNOTAVAIL",
    ),
    "reserved": Words(
        "reserved (why bind): in ip_local_reserved_ports",
        "The kernel never picks this port as an ephemeral port; an explicit bind still works.",
        "Reserved from ephemeral use; an explicit bind works.",
        "ip(7) ip_local_reserved_ports",
    ),
    "ephemeral": Words(
        "ephemeral (why bind): in the ephemeral range",
        "Outgoing connections may take this port (range {ip_local_port_range}) before your "
        "server starts; choose a port outside it or reserve it.",
        "Outgoing connections may take it: it is in the ephemeral range.",
        "ip(7) ip_local_port_range",
    ),
    "unexplained": Words(
        "unexplained (why bind): the trial bind failed for a reason not predicted",
        "portscope tried the bind and it failed in a way none of its rules foresaw; the "
        "errno is shown.",
        "The trial bind failed for an unforeseen reason (errno shown).",
        "bind(2)",
    ),
}

# audit rules.
FINDINGS: Final = {
    "exposed": Words(
        "exposed (audit): other hosts can reach this listener",
        "It listens on a non-loopback address. Fine for a public service; for anything only "
        "local programs use, bind it to 127.0.0.1 or ::1.",
        "Other hosts can reach it (a non-loopback bind).",
        "ip(7)",
    ),
    "plaintext": Words(
        "plaintext (audit): a protocol that sends passwords unencrypted",
        "Telnet, FTP, POP3, IMAP, LDAP, SNMPv1/2c and the like send credentials in clear: "
        "anyone on the path reads them. Use the TLS/SSH counterpart.",
        "A cleartext-credential protocol is reachable.",
        "RFC 4251 (SSH); RFC 8314 (TLS for mail)",
    ),
    "datastore-exposed": Words(
        "datastore-exposed (audit): a database or cache reachable from other hosts",
        "Datastores (Redis, MongoDB, Elasticsearch, memcached ...) often run without "
        "authentication by default; reachable ones are a common cause of data leaks.",
        "A datastore is reachable from other hosts.",
        "vendor security guides",
    ),
    "root-exposed": Words(
        "root-exposed (audit): a network-facing process running as root",
        "A flaw in it gives an attacker the whole machine; run it as an unprivileged user "
        "with CAP_NET_BIND_SERVICE where it needs a low port.",
        "A reachable process runs as root.",
        "capabilities(7)",
    ),
    "no-auth": Words(
        "no-auth (audit --identify): a service answered without authentication",
        "portscope spoke the service's own protocol (a Redis PING, a memcached version "
        "request ...) and it answered without asking for credentials: anyone who can reach "
        "it can read or change its data. Severity is high when other hosts can reach it, "
        "low on loopback.",
        "The service answered its protocol without asking for credentials.",
        "docs/identify.md; the service's security guide",
    ),
    "service-mismatch": Words(
        "service-mismatch (audit --identify): the port speaks another protocol",
        "The registry names a service on this port, but what answers speaks something else "
        "(6379 answering HTTP is not Redis): findings based on the port's name are dropped "
        "and the real service is judged instead.",
        "What answers is not the service the port is registered to.",
        "docs/identify.md",
    ),
    "accept-queue-full": Words(
        "accept-queue-full (audit): a listener whose accept queue is full",
        "Its Recv-Q has reached its backlog: the program is not calling accept() as fast "
        "as connections arrive, so the kernel drops new SYNs and clients time out (or wait "
        "for a retransmission). Raise the backlog (listen() and net.core.somaxconn = "
        "{somaxconn}) only after the program keeps up.",
        "The program is not accepting connections as fast as they arrive; new ones drop.",
        "listen(2); tcp(7)",
    ),
    "dnat-published": Words(
        "dnat-published (audit): a port forwarded by NAT, open from outside",
        "A DNAT rule (a container's published port, Docker's -p) forwards this port to "
        "another address, and the firewall lets new connections through: reachable from "
        "outside although no socket on this host listens on it, so ss does not show it. "
        "Docker's rules sit before ufw's and bypass them.",
        "A NAT-forwarded port is open from outside with no local listener.",
        "nft(8) NAT STATEMENTS; iptables-extensions(8) DNAT",
        ("portscope exposure",),
    ),
    "unknown-system-port": Words(
        "unknown-system-port (audit): a system port no registry knows",
        "Ports 0-1023 are assigned to known services (RFC 6335); something unknown there "
        "deserves a look.",
        "A system port registered to no known service.",
        "RFC 6335 6",
    ),
}
