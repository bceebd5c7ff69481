"""UDP probe payloads: the smallest valid request of each protocol, from its specification.

A UDP service answers only a datagram that means something to it, so a scan sends each
well-known port a request its service must answer (written here from the RFCs and protocol
documents named below; nmap's ``nmap-payloads`` is under a licence we cannot copy). Ports
where services differ get several payloads, sent one per try (``payloads(port)[try %
len]``), so a closed port costs one ICMP error per try, not one per payload. Other ports get
an empty datagram. None of these requests changes state at the server or asks for a large
answer (no ``ANY`` queries, no memcached ``stats``).
"""

from __future__ import annotations

import struct

__all__ = [
    "PAYLOADS",
    "PAYLOAD_SETS",
    "dns_query",
    "dtls_client_hello",
    "ike_sa_init",
    "mdns_query",
    "memcached_version",
    "netbios_nbstat",
    "ntp_request",
    "payloads",
    "quic_version_probe",
    "rpc_null_call",
    "snmp_get_request",
    "ssdp_msearch",
]

_TXID = 0x7073  # "ps": transaction and request ids, so replies are recognizable in a capture


def dns_query(name: str = "", qtype: int = 2, *, txid: int = _TXID, qclass: int = 1) -> bytes:
    """A DNS query with recursion desired (RFC 1035 4.1).

    Args:
        name: the query name; ``""`` is the root.
        qtype: the query type; default 2 (NS), which every name server can answer for
            the root from its hints or refuse (either way it answers).
        txid: the 16-bit transaction id.
        qclass: the class (1 IN, 3 CH for ``version.bind``).
    """
    header = struct.pack("!HHHHHH", txid, 0x0100, 1, 0, 0, 0)  # RD=1, QDCOUNT=1
    labels = b"".join(bytes([len(part)]) + part.encode("ascii") for part in name.split(".") if part)
    return header + labels + b"\x00" + struct.pack("!HH", qtype, qclass)


def mdns_query() -> bytes:
    """A one-shot (legacy unicast) mDNS query for the DNS-SD service list (RFC 6762 6.7,
    RFC 6763 9: PTR ``_services._dns-sd._udp.local``); a responder answers by unicast."""
    return dns_query("_services._dns-sd._udp.local", 12, txid=_TXID)


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


def snmp_get_request(
    community: str = "public", oid: str = "1.3.6.1.2.1.1.1.0", *, version: int = 0
) -> bytes:
    """An SNMP GetRequest for ``oid`` (default sysDescr.0).

    Args:
        community: the community string.
        oid: the object to get.
        version: 0 for SNMPv1 (RFC 1157 4.1.2), 1 for SNMPv2c (RFC 1901, RFC 3416).
    """
    varbind = _ber(0x30, _ber_oid(oid) + b"\x05\x00")  # value NULL
    pdu = _ber(0xA0, _ber_int(_TXID) + _ber_int(0) + _ber_int(0) + _ber(0x30, varbind))
    return _ber(0x30, _ber_int(version) + _ber(0x04, community.encode()) + pdu)


def ssdp_msearch() -> bytes:
    """A unicast SSDP M-SEARCH for every device and service (UPnP Device Architecture 2.0,
    1.3.2); a UPnP device answers with ``HTTP/1.1 200 OK``."""
    return (
        b"M-SEARCH * HTTP/1.1\r\n"
        b"HOST: 239.255.255.250:1900\r\n"
        b'MAN: "ssdp:discover"\r\n'
        b"MX: 1\r\n"
        b"ST: ssdp:all\r\n\r\n"
    )


def netbios_nbstat() -> bytes:
    """A NetBIOS node status request for ``*`` (RFC 1002 4.2.17-4.2.18): the name table."""
    # first-level encoding (RFC 1001 14.1): each half-byte + 'A'; '*' then 15 NULs
    raw = b"*" + bytes(15)
    encoded = bytes(b for c in raw for b in (0x41 + (c >> 4), 0x41 + (c & 0x0F)))
    header = struct.pack("!HHHHHH", _TXID, 0x0000, 1, 0, 0, 0)
    return header + b"\x20" + encoded + b"\x00" + struct.pack("!HH", 0x21, 1)  # NBSTAT, IN


def rpc_null_call(program: int = 100000, version: int = 2) -> bytes:
    """An ONC RPC call of procedure 0 (NULL) of ``program`` (default the portmapper,
    RFC 5531 9 and 12, RFC 1833): every RPC server answers it, with AUTH_NONE."""
    return struct.pack("!IIIIII", _TXID, 0, 2, program, version, 0) + bytes(16)  # cred, verf


def ike_sa_init() -> bytes:
    """An IKEv2 ``IKE_SA_INIT`` request (RFC 7296 1.2, 3): SA (AES-CBC-128, HMAC-SHA1,
    HMAC-SHA1-96, MODP group 14), KE and Nonce. A responder answers it (with its own
    SA_INIT, or a notification such as ``INVALID_KE_PAYLOAD`` or ``NO_PROPOSAL_CHOSEN``)."""

    def transform(kind: int, ident: int, attrs: bytes = b"", last: bool = False) -> bytes:
        return struct.pack("!BBHBBH", 0 if last else 3, 0, 8 + len(attrs), kind, 0, ident) + attrs

    transforms = (
        transform(1, 12, struct.pack("!HH", 0x800E, 128))  # ENCR_AES_CBC, key length 128
        + transform(2, 2)  # PRF_HMAC_SHA1
        + transform(3, 2)  # AUTH_HMAC_SHA1_96
        + transform(4, 14, last=True)  # DH group 14 (2048-bit MODP)
    )
    proposal = struct.pack("!BBHBBBB", 0, 0, 8 + len(transforms), 1, 1, 0, 4) + transforms
    sa = struct.pack("!BBH", 34, 0, 4 + len(proposal)) + proposal  # next: KE (34)
    key_data = bytes(range(256))  # 256 bytes: a group 14 public value's length
    ke = struct.pack("!BBHHH", 40, 0, 8 + len(key_data), 14, 0) + key_data  # next: Nonce
    nonce = struct.pack("!BBH", 0, 0, 4 + 32) + bytes(range(32))
    body = sa + ke + nonce
    header = (
        b"portscop"  # initiator SPI (8 bytes)
        + bytes(8)  # responder SPI: 0
        + struct.pack("!BBBBII", 33, 0x20, 34, 0x08, 0, 28 + len(body))  # SA, v2.0, init
    )
    return header + body


def dtls_client_hello() -> bytes:
    """A DTLS 1.2 ClientHello (RFC 6347 4.2.1, RFC 5246 7.4.1.2) without a cookie: a DTLS
    server answers with a HelloVerifyRequest (or an alert)."""
    suites = struct.pack("!6H", 0xC02B, 0xC02F, 0xC00A, 0xC014, 0x009C, 0x002F)
    groups = struct.pack("!HH3H", 0x000A, 8, 6, 0x0017, 0x0018)  # supported_groups
    points = bytes.fromhex("000b00020100")  # ec_point_formats: uncompressed
    sigalgs = struct.pack("!HHH4H", 0x000D, 10, 8, 0x0403, 0x0503, 0x0401, 0x0201)
    extensions = groups + points + sigalgs
    hello = (
        b"\xfe\xfd"  # client_version DTLS 1.2
        + bytes(range(32))  # random
        + b"\x00"  # session id: empty
        + b"\x00"  # cookie: empty
        + struct.pack("!H", len(suites))
        + suites
        + b"\x01\x00"  # compression: null
        + struct.pack("!H", len(extensions))
        + extensions
    )
    n = len(hello).to_bytes(3, "big")
    handshake = b"\x01" + n + b"\x00\x00" + b"\x00\x00\x00" + n + hello  # ClientHello, seq 0
    return b"\x16\xfe\xfd" + bytes(8) + struct.pack("!H", len(handshake)) + handshake


def quic_version_probe() -> bytes:
    """A QUIC long-header packet of a reserved version (0x?a?a?a?a, RFC 9000 15), padded
    to 1,200 bytes: a QUIC server answers with a Version Negotiation packet (RFC 9000 6.1,
    RFC 8999 6), which finds QUIC without the Initial's AEAD keys."""
    dcid, scid = b"portscop", b"ps"
    head = bytes([0xC0]) + b"\x1a\x2a\x3a\x4a" + bytes([len(dcid)]) + dcid
    head += bytes([len(scid)]) + scid
    return head + bytes(1200 - len(head))


def memcached_version() -> bytes:
    """memcached's ``version`` command with the UDP frame header (request id, sequence 0,
    1 datagram, reserved; memcached ``protocol.txt`` "UDP protocol")."""
    return struct.pack("!HHHH", _TXID, 0, 1, 0) + b"version\r\n"


_LINE = b"portscope\r\n"  # echo (RFC 862) returns it; chargen (RFC 864) answers any datagram

PAYLOAD_SETS: dict[int, tuple[bytes, ...]] = {
    7: (_LINE,),  # echo
    19: (_LINE,),  # chargen
    53: (dns_query(), dns_query("version.bind", 16, qclass=3)),  # DNS; BIND's CH TXT
    111: (rpc_null_call(), rpc_null_call(version=3)),  # portmapper v2, rpcbind v3
    123: (ntp_request(),),  # NTP
    137: (netbios_nbstat(),),  # NetBIOS name service
    161: (snmp_get_request(), snmp_get_request(version=1)),  # SNMP v1, v2c
    443: (quic_version_probe(),),  # QUIC (HTTP/3)
    500: (ike_sa_init(),),  # IKE
    1900: (ssdp_msearch(),),  # SSDP
    2049: (rpc_null_call(100003, 3),),  # NFS v3
    4433: (dtls_client_hello(), quic_version_probe()),  # DTLS / QUIC test servers
    4500: (bytes(4) + ike_sa_init(),),  # IKE over NAT-T: the non-ESP marker (RFC 3948 2.2)
    5353: (mdns_query(), dns_query()),  # mDNS answers unicast queries to its port
    5355: (dns_query(),),  # LLMNR uses the DNS message format (RFC 4795)
    5684: (dtls_client_hello(),),  # CoAP over DTLS (RFC 7252 9)
    11211: (memcached_version(),),  # memcached
}
"""UDP port -> the payloads sent to it, one per try in turn."""

PAYLOADS: dict[int, bytes] = {port: sets[0] for port, sets in PAYLOAD_SETS.items()}
"""UDP port -> the first payload sent to it; other ports get an empty datagram."""


def payloads(port: int) -> tuple[bytes, ...]:
    """The payloads of ``port`` (an empty datagram for a port without one)."""
    return PAYLOAD_SETS.get(port, (b"",))
