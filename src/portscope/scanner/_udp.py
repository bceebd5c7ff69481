"""UDP probes: protocol payloads that make common services answer, and the probe itself.

A UDP port answers only when the datagram means something to the service, so well-known
ports get a minimal valid request (DNS, NTP, SNMP ...); other ports get an empty datagram.
On a connected UDP socket the kernel reports an ICMP port unreachable as ``ECONNREFUSED``
(udp(7)), which is how ``closed`` is told apart from silence (``open|filtered``).
"""

from __future__ import annotations

import asyncio
import socket
import struct
import time

from portscope.models import PortState, ProbeResult, Proto
from portscope.scanner._errors import classify, enable_icmp_details, icmp_reason

__all__ = ["PAYLOADS", "dns_query", "ntp_request", "probe_udp", "snmp_get_request"]

_DNS_ID = 0x7073  # "ps"


def dns_query(name: str = "", qtype: int = 2, *, txid: int = _DNS_ID) -> bytes:
    """A DNS query with recursion desired (RFC 1035 4.1).

    Args:
        name: the query name; ``""`` is the root.
        qtype: the query type; default 2 (NS), which every name server can answer for
            the root from its hints or refuse (either way it answers).
        txid: the 16-bit transaction id.
    """
    header = struct.pack("!HHHHHH", txid, 0x0100, 1, 0, 0, 0)  # RD=1, QDCOUNT=1
    labels = b"".join(bytes([len(part)]) + part.encode("ascii") for part in name.split(".") if part)
    return header + labels + b"\x00" + struct.pack("!HH", qtype, 1)  # class IN


def ntp_request() -> bytes:
    """An NTPv4 client request: 48 bytes, LI=3 (unsynchronized), VN=4, Mode=3 (RFC 5905 7.3)."""
    return bytes([(3 << 6) | (4 << 3) | 3]) + bytes(47)


def _ber(tag: int, content: bytes) -> bytes:
    # ASN.1 BER definite length (X.690 8.1.3): short form below 128, else long form
    n = len(content)
    if n < 0x80:
        length = bytes([n])
    else:
        raw = n.to_bytes((n.bit_length() + 7) // 8, "big")
        length = bytes([0x80 | len(raw)]) + raw
    return bytes([tag]) + length + content


def _ber_int(value: int) -> bytes:
    return _ber(0x02, value.to_bytes(max(1, (value.bit_length() + 8) // 8), "big", signed=True))


def _ber_oid(oid: str) -> bytes:
    parts = [int(p) for p in oid.split(".")]
    out = bytearray([parts[0] * 40 + parts[1]])
    for part in parts[2:]:
        chunk = [part & 0x7F]
        part >>= 7
        while part:
            chunk.append(0x80 | (part & 0x7F))
            part >>= 7
        out += bytes(reversed(chunk))
    return _ber(0x06, bytes(out))


def snmp_get_request(community: str = "public", oid: str = "1.3.6.1.2.1.1.1.0") -> bytes:
    """An SNMPv1 GetRequest for ``oid`` (default sysDescr.0), RFC 1157 4.1.2."""
    varbind = _ber(0x30, _ber_oid(oid) + b"\x05\x00")  # value NULL
    pdu = _ber(0xA0, _ber_int(0x7073) + _ber_int(0) + _ber_int(0) + _ber(0x30, varbind))
    return _ber(0x30, _ber_int(0) + _ber(0x04, community.encode()) + pdu)  # version 0 = v1


PAYLOADS: dict[int, bytes] = {
    53: dns_query(),  # DNS
    123: ntp_request(),  # NTP
    161: snmp_get_request(),  # SNMP
    5353: dns_query(),  # mDNS answers unicast queries to its port (RFC 6762 5.5)
    5355: dns_query(),  # LLMNR uses the DNS message format (RFC 4795)
}
"""UDP port -> the datagram sent to it; other ports get an empty datagram."""


async def probe_udp(
    host: str,
    address: str,
    family: int,
    port: int,
    *,
    timeout_s: float = 1.0,
    retries: int = 2,
) -> ProbeResult:
    """Probe one UDP port.

    Sends the port's payload (``PAYLOADS``) up to ``retries + 1`` times, waiting
    ``timeout_s`` after each. Any datagram back is ``open`` (reason ``udp-response``); an ICMP
    port unreachable is ``closed`` (``port-unreach``); another ICMP unreachable is
    ``unreachable`` with its code; silence is ``open|filtered`` (``no-response``).

    Args:
        host: the target as given (kept in the result).
        address: the address to probe.
        family: 4 or 6.
        port: the UDP port.
        timeout_s: seconds to wait for an answer after each datagram.
        retries: datagrams sent again after silence.

    Returns:
        The result; ``banner`` holds the first answer's bytes (at most 512).
    """
    loop = asyncio.get_running_loop()
    fam = socket.AF_INET6 if family == 6 else socket.AF_INET
    payload = PAYLOADS.get(port, b"")
    sock = socket.socket(fam, socket.SOCK_DGRAM)
    sock.setblocking(False)
    enable_icmp_details(sock, family)
    sent = time.monotonic()
    try:
        sock.connect((address, port, 0, 0) if fam == socket.AF_INET6 else (address, port))
        for _ in range(retries + 1):
            sent = time.monotonic()
            try:
                sock.send(payload)
                async with asyncio.timeout(timeout_s):
                    data = await loop.sock_recv(sock, 512)
            except TimeoutError:
                continue
            except OSError as err:
                code = err.errno or 0
                state, reason = classify(code)
                if state is PortState.CLOSED:
                    return ProbeResult(
                        host,
                        address,
                        port,
                        Proto.UDP,
                        PortState.CLOSED,
                        "port-unreach",
                        code,
                        time.monotonic() - sent,
                    )
                reason = icmp_reason(sock) or reason
                return ProbeResult(host, address, port, Proto.UDP, state, reason, code)
            rtt = time.monotonic() - sent
            return ProbeResult(
                host,
                address,
                port,
                Proto.UDP,
                PortState.OPEN,
                "udp-response",
                None,
                rtt,
                data or None,
            )
        return ProbeResult(host, address, port, Proto.UDP, PortState.OPEN_FILTERED, "no-response")
    finally:
        sock.close()
