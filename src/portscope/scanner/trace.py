"""``trace``: where on the path to HOST:PORT the probes stop (a TCP traceroute, like
``tcptraceroute`` / ``traceroute -T``), and what that means in words.

A probe of the real transport to the real port (a SYN by default; a UDP datagram or an ICMP
echo on request) is sent with TTL (hop limit) 1, 2, ... ``max_hops`` at once; each router
on the path answers the probe whose TTL runs out there with ICMP time exceeded (RFC 792,
RFC 4443 3.3), the target answers with a SYN-ACK, a RST, a UDP reply or ICMP port
unreachable, and a firewall that rejects answers with an ICMP unreachable. The probe of each
TTL is recognized by its source port and sequence number (the keyed hash of ``_packets``;
the ICMP error quotes them), so every hop is known however the answers interleave. A TTL
left unanswered is tried again (``tries``). The verdict names the last hop that answered:
"the SYN is dropped after hop 3, 198.18.2.1: a firewall there or beyond".

Needs CAP_NET_RAW (root): raw sockets send the probes and read the ICMP errors.
"""

from __future__ import annotations

import enum
import os
import select
import socket
import struct
import time
from dataclasses import dataclass

from portscope.errors import InvalidInput
from portscope.scanner import _packets as pk
from portscope.scanner._errors import ICMP4_UNREACH, ICMP6_UNREACH
from portscope.scanner._payloads import payloads
from portscope.scanner._raw import hop_limit, open_raw, source_address

__all__ = ["Hop", "TraceResult", "TraceVerdict", "trace"]

_IP_TTL = getattr(socket, "IP_TTL", 2)
_IPV6_UNICAST_HOPS = getattr(socket, "IPV6_UNICAST_HOPS", 16)


class TraceVerdict(enum.StrEnum):
    """Where the probes of a trace ended."""

    REACHED = "reached"  # the target answered (open or closed)
    REJECTED = "rejected"  # an ICMP unreachable came back (a firewall or a router)
    DROPPED = "dropped"  # answers stop after some hop: dropped there or beyond
    SILENT = "silent"  # not even the first hop answered


@dataclass(frozen=True, slots=True)
class Hop:
    """One TTL of a trace.

    Attributes:
        ttl: the TTL (IPv4) or hop limit (IPv6) the probe left with.
        address: who answered (a router, the target), or ``None`` when nobody did.
        rtt_s: seconds from the probe to the answer, or ``None``.
        answer: ``time-exceeded`` (a router), ``syn-ack``, ``reset``, ``udp-response``,
            ``echo-reply``, ``port-unreach`` (the target), an ICMP unreachable reason
            (``admin-prohibited`` ...), or ``None`` (no answer).
    """

    ttl: int
    address: str | None
    rtt_s: float | None
    answer: str | None


@dataclass(frozen=True, slots=True)
class TraceResult:
    """What a trace found.

    Attributes:
        host: the target as given.
        address: the address traced.
        port: the destination port (0 for ICMP echo).
        proto: ``tcp``, ``udp`` or ``icmp``.
        hops: one per TTL up to the target's hop (or the last TTL sent), in order.
        verdict: where the probes ended (``TraceVerdict``).
        stop_hop: the hop the verdict is about: the target's, the rejecting one, or the
            last hop that answered (``None`` when none did).
        stop_address: that hop's address, or ``None``.
        summary: the verdict in words.
    """

    host: str
    address: str
    port: int
    proto: str
    hops: tuple[Hop, ...]
    verdict: TraceVerdict
    stop_hop: int | None
    stop_address: str | None
    summary: str


_PROBE_NAME = {"tcp": "SYN", "udp": "UDP datagram", "icmp": "ICMP echo"}


def trace(
    host: str,
    port: int,
    *,
    proto: str = "tcp",
    max_hops: int = 30,
    timeout_s: float = 1.0,
    tries: int = 2,
    family: int | None = None,
) -> TraceResult:
    """Trace the path to ``host``:``port`` with TTL-limited probes of ``proto``.

    Args:
        host: a host name or address (the first address of ``family`` is traced).
        port: the destination port, 1-65535 (ignored for ``icmp``).
        proto: ``tcp`` (SYNs, default), ``udp`` (the port's payload) or ``icmp`` (echo).
        max_hops: the largest TTL sent, 1-64. Default 30.
        timeout_s: seconds to wait for the answers of one round. Default 1.0.
        tries: rounds; unanswered TTLs are sent again in the next. Default 2.
        family: 4 or 6 to pick the address family, or ``None``.

    Returns:
        The hops and the verdict.

    Raises:
        InvalidInput: a bad port, proto, max_hops, timeout or tries (before anything is
            sent); InvalidTarget: the host does not resolve.
        PermissionDenied: no CAP_NET_RAW.
    """
    if proto not in _PROBE_NAME:
        raise InvalidInput(f"trace protocol {proto!r}: expected tcp, udp or icmp")
    if proto != "icmp" and not 1 <= port <= 65535:
        raise InvalidInput(f"port {port!r}: expected 1-65535")
    if not 1 <= max_hops <= 64:
        raise InvalidInput(f"max hops {max_hops!r}: expected 1-64")
    if not 0 < timeout_s <= 60:
        raise InvalidInput(f"timeout {timeout_s!r}: expected seconds above 0, at most 60")
    if not 1 <= tries <= 5:
        raise InvalidInput(f"tries {tries!r}: expected 1-5")
    from portscope.scanner.probe import resolve

    target = resolve(host, family)[0]
    return _Tracer(target.address, target.family, port, proto, max_hops).run(host, timeout_s, tries)


class _Tracer:
    def __init__(self, address: str, family: int, port: int, proto: str, max_hops: int) -> None:
        self.address, self.family, self.port, self.proto = address, family, port, proto
        self.max_hops = max_hops
        af = socket.AF_INET6 if family == 6 else socket.AF_INET
        self.af = af
        self.dst = socket.inet_pton(af, address)
        self.src = source_address(address, family)
        self.key = pk.FlowKey()
        self.ident = os.getpid() & 0xFFFF
        self.sent: dict[int, float] = {}
        self.hops: dict[int, Hop] = {}
        self.udp_ports: dict[int, int] = {}  # source port -> TTL (UDP: a socket per TTL)

    # ------------------------------------------------------------ probes

    def _send(self, sock: socket.socket, ttl: int) -> None:
        level, opt = (
            (socket.IPPROTO_IPV6, _IPV6_UNICAST_HOPS)
            if self.family == 6
            else (socket.IPPROTO_IP, _IP_TTL)
        )
        sock.setsockopt(level, opt, ttl)
        if self.proto == "tcp":
            sport, seq = self.key.fields(self.dst, self.port, ttl)
            data = pk.tcp_probe(self.src, self.dst, sport, self.port, seq)
            sock.sendto(data, (self.address, 0))
        elif self.proto == "udp":
            sock.sendto(payloads(self.port)[0], (self.address, self.port))
            self.udp_ports[sock.getsockname()[1]] = ttl
        else:
            kind = 128 if self.family == 6 else 8
            body = struct.pack("!BBHHH", kind, 0, 0, self.ident, ttl) + b"portscope-trace"
            if self.family == 4:
                body = body[:2] + pk.checksum(body).to_bytes(2, "big") + body[4:]
            sock.sendto(body, (self.address, 0))  # the kernel sums ICMPv6 (RFC 3542 3.1)
        self.sent[ttl] = time.monotonic()

    def run(self, host: str, timeout_s: float, tries: int) -> TraceResult:
        icmp_proto = socket.IPPROTO_ICMPV6 if self.family == 6 else socket.IPPROTO_ICMP
        errors = open_raw(self.family, icmp_proto)
        sockets = [errors]
        udp_socks: dict[int, socket.socket] = {}
        try:
            if self.proto == "tcp":
                sender = open_raw(self.family, socket.IPPROTO_TCP)
                sockets.append(sender)
            elif self.proto == "icmp":
                sender = errors
            else:
                sender = socket.socket(self.af, socket.SOCK_DGRAM)
                sockets.append(sender)
            for _ in range(tries):
                todo = [t for t in range(1, self.max_hops + 1) if t not in self.hops]
                reached = self._reached()
                todo = [t for t in todo if reached is None or t < reached]
                if not todo:
                    break
                for ttl in todo:
                    if self.proto == "udp":
                        # one socket per TTL: its source port tells the hops apart
                        sock = udp_socks.get(ttl)
                        if sock is None:
                            sock = udp_socks[ttl] = socket.socket(self.af, socket.SOCK_DGRAM)
                            sock.setblocking(False)
                            sockets.append(sock)
                        self._send(sock, ttl)
                    else:
                        self._send(sender, ttl)
                self._collect(sockets, errors, udp_socks, timeout_s)
        finally:
            for sock in sockets:
                sock.close()
        return self._result(host)

    # ------------------------------------------------------------ answers

    def _collect(
        self,
        sockets: list[socket.socket],
        errors: socket.socket,
        udp_socks: dict[int, socket.socket],
        timeout_s: float,
    ) -> None:
        end = time.monotonic() + timeout_s
        by_fd = {s.fileno(): s for s in sockets}
        udp_ttl = {s.fileno(): t for t, s in udp_socks.items()}
        with select.epoll() as ep:
            for fd in by_fd:
                ep.register(fd, select.EPOLLIN)
            while (left := end - time.monotonic()) > 0:
                for fd, _ in ep.poll(left):
                    sock = by_fd[fd]
                    for _ in range(256):
                        try:
                            data, anc, _flags, addr = sock.recvmsg(2048, 64)
                        except (BlockingIOError, InterruptedError):
                            break
                        except OSError:
                            break
                        now = time.monotonic()
                        if sock is errors:
                            self._icmp(data, anc, addr, now)
                        elif fd in udp_ttl:
                            self._hop(udp_ttl[fd], addr[0], now, "udp-response")
                        else:
                            self._tcp(data, anc, addr, now)
                reached = self._reached()
                if all(t in self.hops for t in range(1, (reached or self.max_hops + 1))):
                    return

    def _hop(self, ttl: int, address: str, now: float, answer: str) -> None:
        if ttl in self.hops or ttl not in self.sent:
            return
        self.hops[ttl] = Hop(ttl, address.split("%", 1)[0], now - self.sent[ttl], answer)

    def _tcp(
        self, data: bytes, anc: list[tuple[int, int, bytes]], addr: object, now: float
    ) -> None:
        if self.family == 6:
            assert isinstance(addr, tuple)
            src = socket.inet_pton(self.af, str(addr[0]).split("%", 1)[0])
            reply = pk.parse_tcp6(data, src, hop_limit(anc))
        else:
            reply = pk.parse_tcp4(data)
        if reply is None or reply.src != self.dst or reply.sport != self.port:
            return
        ttl = self.key.which_try(self.dst, self.port, reply.dport, (reply.ack - 1) & 0xFFFFFFFF)
        if ttl is None:
            return
        answer = "syn-ack" if reply.flags & pk.SYN else "reset" if reply.flags & pk.RST else None
        if answer:
            self._hop(ttl, self.address, now, answer)

    def _icmp(
        self, data: bytes, anc: list[tuple[int, int, bytes]], addr: object, now: float
    ) -> None:
        assert isinstance(addr, tuple)
        sender = str(addr[0]).split("%", 1)[0]
        if self.family == 6:
            msg = data
        else:
            if len(data) < 20:
                return
            msg = data[(data[0] & 0x0F) * 4 :]
        if len(msg) < 8:
            return
        itype, code = msg[0], msg[1]
        if self.proto == "icmp" and itype == (129 if self.family == 6 else 0):
            ident, seq = struct.unpack_from("!HH", msg, 4)
            if ident == self.ident and sender == self.address:
                self._hop(seq, sender, now, "echo-reply")
            return
        sender_b = socket.inet_pton(self.af, sender)
        err = (
            pk.parse_icmp6(msg, sender_b, hop_limit(anc))
            if self.family == 6
            else pk.parse_icmp4(data)
        )
        if err is None or err.dst != self.dst:
            return
        ttl = self._ttl_of(err, msg)
        if ttl is None:
            return
        exceeded = 3 if self.family == 6 else 11
        unreach = 1 if self.family == 6 else 3
        if itype == exceeded:
            self._hop(ttl, sender, now, "time-exceeded")
        elif itype == unreach:
            names = ICMP6_UNREACH if self.family == 6 else ICMP4_UNREACH
            self._hop(ttl, sender, now, names.get(code, f"icmp-{itype}-{code}"))

    def _ttl_of(self, err: pk.IcmpError, msg: bytes) -> int | None:
        """The TTL of the probe an ICMP error quotes (by its keyed fields)."""
        if (
            self.proto == "tcp"
            and err.proto == 6
            and err.dport == self.port
            and err.seq is not None
        ):
            return self.key.which_try(self.dst, self.port, err.sport, err.seq)
        if self.proto == "udp" and err.proto == 17 and err.dport == self.port:
            return self.udp_ports.get(err.sport)
        if self.proto == "icmp" and err.proto in (1, 58):
            inner = msg[8 + (40 if self.family == 6 else (msg[8] & 0x0F) * 4) :]
            if len(inner) >= 8:
                ident, seq = struct.unpack_from("!HH", inner, 4)
                return seq if ident == self.ident else None
        return None

    def _reached(self) -> int | None:
        final = ("syn-ack", "reset", "udp-response", "echo-reply", "port-unreach")
        found = [t for t, h in self.hops.items() if h.answer in final]
        return min(found) if found else None

    def _result(self, host: str) -> TraceResult:
        reached = self._reached()
        rejected = min(
            (
                t
                for t, h in self.hops.items()
                if h.answer not in (None, "time-exceeded", "syn-ack", "reset", "udp-response",
                                    "echo-reply", "port-unreach")
            ),
            default=None,
        )  # fmt: skip
        last = reached or rejected or self.max_hops
        hops = tuple(self.hops.get(t, Hop(t, None, None, None)) for t in range(1, last + 1))
        probe = _PROBE_NAME[self.proto]
        where = f"{self.address} port {self.port}" if self.proto != "icmp" else self.address
        if reached is not None:
            h = self.hops[reached]
            state = {
                "syn-ack": "open (syn-ack)",
                "reset": "closed (reset)",
                "udp-response": "open (a UDP reply)",
                "port-unreach": "closed (ICMP port unreachable)",
                "echo-reply": "up (echo reply)",
            }[h.answer or ""]
            return TraceResult(
                host, self.address, self.port, self.proto, hops, TraceVerdict.REACHED,
                reached, h.address,
                f"the {probe} reaches {where} at hop {reached}: {state}; nothing on the path "
                "drops it",
            )  # fmt: skip
        if rejected is not None:
            h = self.hops[rejected]
            # a router rejects what it would forward: the hop where it answered as a router
            at = min(
                (t for t, x in self.hops.items()
                 if x.address == h.address and x.answer == "time-exceeded"),
                default=rejected,
            )  # fmt: skip
            return TraceResult(
                host, self.address, self.port, self.proto, hops, TraceVerdict.REJECTED,
                at, h.address,
                f"the {probe} is rejected at hop {at}, {h.address}: {h.answer} "
                "(a firewall there refuses it)",
            )  # fmt: skip
        answered = [t for t, h in self.hops.items() if h.answer == "time-exceeded"]
        if not answered:
            return TraceResult(
                host, self.address, self.port, self.proto, hops[:3], TraceVerdict.SILENT,
                None, None,
                f"no hop answered: the {probe} is dropped before the first router answers, "
                "or the routers send no ICMP time exceeded",
            )  # fmt: skip
        after = max(answered)
        h = self.hops[after]
        return TraceResult(
            host, self.address, self.port, self.proto, hops[: after + 1], TraceVerdict.DROPPED,
            after, h.address,
            f"the {probe} is dropped after hop {after}, {h.address}: a firewall there or "
            "beyond",
        )  # fmt: skip
