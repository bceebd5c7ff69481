"""Raw TCP probes as bytes: templates, checksums, the keyed hash, and reply decoding.

A pure codec (no sockets): the SYN prober (``_syn``) and ``trace`` build probes here and
decode what comes back. Layouts (RFC 9293 3.1, RFC 791 3.1, RFC 8200 3, RFC 792, RFC 4443)::

    TCP header (24 bytes sent: 20 + the MSS option, as nmap sends)
     0      2      4          8          12     13     14      16     18     20
    | sport | dport | seq      | ack      | off  | flags | window | csum | urg | MSS 1460 |

    IPv4 header (read on replies): byte 0 version/IHL, 8 TTL, 9 protocol, 12-16 source,
    16-20 destination. ICMP error (RFC 792): type, code, checksum, 4 unused bytes, then the
    offending datagram's IP header and at least its first 8 bytes (sport, dport, seq).
    ICMPv6 error (RFC 4443): the same with the IPv6 header (40 bytes) quoted.

Stateless matching, as ZMap and masscan do: the source port and the sequence number of a
probe are a keyed hash of the destination (address, port), with a random 16-byte key per
scan: the address's BLAKE2b (RFC 7693, keyed; computed once per address) XOR a secret
64-bit word of the port (a 65,536-word table drawn from the key with SHAKE256), so a reply
from a host that never saw the probe cannot match, and a probe costs one table read. A
reply is recognized from its own fields, without per-probe state: a SYN-ACK acknowledges
``seq + 1``, a RST to a SYN acknowledges ``seq + 1`` (a RST to an ACK probe carries ``seq`` =
the probe's ack), an ICMP error quotes the probe's header with ``seq`` itself. Each retry
uses the next source port of the probe's sequence (``SOURCE_PORT_BASE`` + (h + try) mod
``SOURCE_PORTS``), so a reply also says which try it answers.
"""

from __future__ import annotations

import array
import hashlib
import os
import struct
import sys
from dataclasses import dataclass

__all__ = [
    "ACK",
    "RST",
    "SOURCE_PORTS",
    "SOURCE_PORT_BASE",
    "SYN",
    "FlowKey",
    "IcmpError",
    "ProbeTemplate",
    "TcpReply",
    "checksum",
    "parse_icmp4",
    "parse_icmp6",
    "parse_tcp4",
    "parse_tcp6",
    "tcp_probe",
]

FIN, SYN, RST, PSH, ACK = 0x01, 0x02, 0x04, 0x08, 0x10
SOURCE_PORT_BASE = 61440
"""Probes leave from ports 61440-65535: above Linux's default ephemeral range (32768-60999),
so a reply seldom meets a local socket."""
SOURCE_PORTS = 4096
WINDOW = 1024  # as nmap's SYN probes
_MSS_OPTION = b"\x02\x04\x05\xb4"  # kind 2, length 4, MSS 1460 (RFC 9293 3.2)
_TCP = struct.Struct("!HHIIBBHHH")
_TCP_HEAD = struct.Struct("!HHII")


def checksum(data: bytes, start: int = 0) -> int:
    """The Internet checksum (RFC 1071) of ``data``, with ``start`` added to the sum."""
    if len(data) % 2:
        data += b"\x00"
    total: int = start + sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def _pseudo_sum(src: bytes, dst: bytes, length: int) -> int:
    """The sum of the TCP pseudo-header (RFC 9293 3.1; RFC 8200 8.1 for IPv6), unfolded."""
    words = src + dst
    total: int = sum(struct.unpack(f"!{len(words) // 2}H", words))
    return total + 6 + length  # protocol 6 (TCP), then the TCP length


class FlowKey:
    """The per-scan key of the stateless hash, and the probe fields it gives.

    Args:
        key: 16 secret bytes; random by default (``os.urandom``), so another scan or
            another host cannot forge a reply that matches.
    """

    __slots__ = ("_dests", "_key", "ports")

    def __init__(self, key: bytes | None = None) -> None:
        self._key = key if key is not None else os.urandom(16)
        # one secret 64-bit word per port, from the key (SHAKE256, FIPS 202): the hash of
        # (address, port) is the address's keyed BLAKE2b XOR its port's word, so a probe
        # costs one table read instead of one BLAKE2b call (the address's part is cached)
        words = hashlib.shake_256(b"portscope-ports\0" + self._key).digest(8 * 65536)
        self.ports: array.array[int] = array.array("Q", words)
        if sys.byteorder != "little":  # the same words on every machine
            self.ports.byteswap()
        self._dests: dict[bytes, int] = {}

    def dest(self, dst: bytes) -> int:
        """The address's part of the hash: its keyed BLAKE2b (RFC 7693), 64 bits, cached."""
        found = self._dests.get(dst)
        if found is None:
            digest = hashlib.blake2b(dst, digest_size=8, key=self._key).digest()
            found = int.from_bytes(digest, "big")
            if len(self._dests) >= 1 << 16:
                self._dests.clear()
            self._dests[dst] = found
        return found

    def _hash(self, dst: bytes, dport: int) -> int:
        return self.dest(dst) ^ self.ports[dport]

    def fields(self, dst: bytes, dport: int, tries: int = 0) -> tuple[int, int]:
        """The (source port, sequence number) of try ``tries`` to (``dst``, ``dport``).

        Args:
            dst: the destination address, packed (4 or 16 bytes).
            dport: the destination port.
            tries: the try number (0 for the first).
        """
        h = self._hash(dst, dport)
        sport = SOURCE_PORT_BASE + ((h >> 32) + tries) % SOURCE_PORTS
        return sport, (h + sport) & 0xFFFF_FFFF

    def which_try(self, dst: bytes, dport: int, sport: int, seq: int) -> int | None:
        """The try number a reply from (``dst``, ``dport``) to ``sport`` answers, or ``None``
        when ``seq`` (the probe's sequence number the reply gives back) does not match."""
        if not SOURCE_PORT_BASE <= sport < SOURCE_PORT_BASE + SOURCE_PORTS:
            return None
        h = self._hash(dst, dport)
        if (h + sport) & 0xFFFF_FFFF != seq:
            return None
        return (sport - SOURCE_PORT_BASE - (h >> 32)) % SOURCE_PORTS


def tcp_probe(
    src: bytes, dst: bytes, sport: int, dport: int, seq: int, flags: int = SYN, ack: int = 0
) -> bytes:
    """A TCP probe header (24 bytes, with the MSS option), checksum filled in.

    Args:
        src: the source address the kernel will send from, packed (for the checksum).
        dst: the destination address, packed (4 or 16 bytes).
        sport: the source port.
        dport: the destination port.
        seq: the sequence number.
        flags: TCP flags (``SYN`` for a SYN scan, ``ACK`` for an ACK scan).
        ack: the acknowledgment number (an ACK probe carries one).
    """
    header = _TCP.pack(sport, dport, seq, ack, 6 << 4, flags, WINDOW, 0, 0) + _MSS_OPTION
    csum = checksum(header, _pseudo_sum(src, dst, len(header)))
    return header[:16] + csum.to_bytes(2, "big") + header[18:]


class ProbeTemplate:
    """The probes from one source to one destination: the checksum's constant part is
    summed once, each probe adds its own fields (RFC 1624 incremental arithmetic).

    Args:
        src: the source address, packed.
        dst: the destination address, packed.
        flags: TCP flags of the probes.
        key: kept as ``key`` for the caller (the SYN prober keeps ``FlowKey.dest(dst)``).
    """

    __slots__ = ("_base", "_flags", "key")

    def __init__(self, src: bytes, dst: bytes, flags: int = SYN, key: int = 0) -> None:
        self.key = key  # the caller's per-destination value (the SYN prober: FlowKey.dest)
        constant = _TCP.pack(0, 0, 0, 0, 6 << 4, flags, WINDOW, 0, 0) + _MSS_OPTION
        self._base = _pseudo_sum(src, dst, len(constant)) + sum(
            struct.unpack(f"!{len(constant) // 2}H", constant)
        )
        self._flags = flags

    def probe(self, sport: int, dport: int, seq: int, ack: int = 0) -> bytes:
        """The 24-byte header of one probe, equal to ``tcp_probe`` with the same fields."""
        total = (
            self._base + sport + dport + (seq >> 16) + (seq & 0xFFFF) + (ack >> 16) + (ack & 0xFFFF)
        )
        while total >> 16:
            total = (total & 0xFFFF) + (total >> 16)
        return (
            _TCP.pack(sport, dport, seq, ack, 6 << 4, self._flags, WINDOW, ~total & 0xFFFF, 0)
            + _MSS_OPTION
        )


@dataclass(frozen=True, slots=True)
class TcpReply:
    """A TCP segment that may answer a probe.

    Attributes:
        src: the sender's address, packed.
        sport: the sender's port (the probed port).
        dport: the port it was sent to (the probe's source port).
        seq: its sequence number.
        ack: its acknowledgment number.
        flags: its TCP flags.
        ttl: the IPv4 TTL or IPv6 hop limit it arrived with, or ``None``.
    """

    src: bytes
    sport: int
    dport: int
    seq: int
    ack: int
    flags: int
    ttl: int | None


@dataclass(frozen=True, slots=True)
class IcmpError:
    """An ICMP error about a probe, decoded from the header it quotes.

    Attributes:
        sender: the address that sent the ICMP message (a router or the target), packed.
        icmp_type: the ICMP type (v4: 3 unreachable, 11 time exceeded; v6: 1, 3).
        code: the ICMP code.
        dst: the probe's destination address, packed.
        proto: the probe's protocol (6 TCP, 17 UDP).
        sport: the probe's source port.
        dport: the probe's destination port.
        seq: the probe's sequence number (TCP), or ``None``.
        ttl: the TTL or hop limit the ICMP message arrived with, or ``None``.
    """

    sender: bytes
    icmp_type: int
    code: int
    dst: bytes
    proto: int
    sport: int
    dport: int
    seq: int | None
    ttl: int | None


def parse_tcp4(packet: bytes) -> TcpReply | None:
    """Decode an IPv4 packet carrying TCP (as a raw ``IPPROTO_TCP`` socket reads it)."""
    if len(packet) < 20 or packet[0] >> 4 != 4 or packet[9] != 6:
        return None
    ihl = (packet[0] & 0x0F) * 4
    if len(packet) < ihl + 14:
        return None
    sport, dport, seq, ack = _TCP_HEAD.unpack_from(packet, ihl)
    return TcpReply(packet[12:16], sport, dport, seq, ack, packet[ihl + 13], packet[8])


def parse_tcp6(segment: bytes, src: bytes, hop_limit: int | None) -> TcpReply | None:
    """Decode a TCP segment read from a raw ``AF_INET6``/``IPPROTO_TCP`` socket (the kernel
    strips the IPv6 header: ``src`` comes from ``recvmsg``, the hop limit from
    ``IPV6_HOPLIMIT``)."""
    if len(segment) < 14:
        return None
    sport, dport, seq, ack = _TCP_HEAD.unpack_from(segment, 0)
    return TcpReply(src, sport, dport, seq, ack, segment[13], hop_limit)


def _quoted(sender: bytes, itype: int, code: int, ttl: int | None, ip: bytes) -> IcmpError | None:
    """Decode the quoted IP header + 8 bytes of an ICMP error (v4 or v6 inside)."""
    if len(ip) >= 20 and ip[0] >> 4 == 4:
        ihl = (ip[0] & 0x0F) * 4
        proto, dst, rest = ip[9], ip[16:20], ip[ihl:]
    elif len(ip) >= 40 and ip[0] >> 4 == 6:
        proto, dst, rest = ip[6], ip[24:40], ip[40:]
    else:
        return None
    if len(rest) < 4:
        return None
    sport, dport = struct.unpack_from("!HH", rest)
    seq = int.from_bytes(rest[4:8], "big") if proto == 6 and len(rest) >= 8 else None
    return IcmpError(sender, itype, code, dst, proto, sport, dport, seq, ttl)


def parse_icmp4(packet: bytes) -> IcmpError | None:
    """Decode an ICMP error (types 3, 4, 11, 12) in an IPv4 packet read from a raw
    ``IPPROTO_ICMP`` socket; ``None`` for other messages."""
    if len(packet) < 20 or packet[0] >> 4 != 4 or packet[9] != 1:
        return None
    ihl = (packet[0] & 0x0F) * 4
    if len(packet) < ihl + 8 or packet[ihl] not in (3, 4, 11, 12):
        return None
    return _quoted(packet[12:16], packet[ihl], packet[ihl + 1], packet[8], packet[ihl + 8 :])


def parse_icmp6(message: bytes, sender: bytes, hop_limit: int | None) -> IcmpError | None:
    """Decode an ICMPv6 error (types 1-4) read from a raw ``IPPROTO_ICMPV6`` socket."""
    if len(message) < 8 or not 1 <= message[0] <= 4:
        return None
    return _quoted(sender, message[0], message[1], hop_limit, message[8:])
