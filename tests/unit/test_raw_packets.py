"""The raw-probe codec (_packets), the UDP payloads (_payloads) and the ICMP budget model."""

from __future__ import annotations

import socket
import struct

from portscope.scanner import _packets as pk
from portscope.scanner._payloads import (
    PAYLOAD_SETS,
    dtls_client_hello,
    ike_sa_init,
    mdns_query,
    memcached_version,
    netbios_nbstat,
    payloads,
    quic_version_probe,
    rpc_null_call,
    snmp_get_request,
    ssdp_msearch,
)
from portscope.scanner._udp import _Bucket

SRC = socket.inet_aton("198.18.0.1")
DST = socket.inet_aton("198.18.0.2")
KEY = bytes(range(16))


def _sum16(data: bytes) -> int:
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return total


def test_checksum_of_rfc1071_example() -> None:
    # RFC 1071 section 3: the words 0001 f203 f4f5 f6f7 sum to ddf2 (checksum 220d)
    assert pk.checksum(bytes.fromhex("0001f203f4f5f6f7")) == 0x220D


def test_tcp_probe_checksum_verifies_over_the_pseudo_header() -> None:
    header = pk.tcp_probe(SRC, DST, 61500, 22, 0x01020304)
    assert len(header) == 24 and header[12] >> 4 == 6  # data offset: 6 words (MSS option)
    sport, dport, seq, ack, _off, flags, window = struct.unpack_from("!HHIIBBH", header)
    assert (sport, dport, seq, ack, flags, window) == (61500, 22, 0x01020304, 0, pk.SYN, 1024)
    assert header[20:] == b"\x02\x04\x05\xb4"
    pseudo = SRC + DST + struct.pack("!BBH", 0, 6, len(header))
    assert _sum16(pseudo + header) == 0xFFFF  # a valid checksum sums to all ones
    v6 = pk.tcp_probe(bytes(15) + b"\x01", bytes(15) + b"\x02", 61500, 443, 7, pk.ACK, 7)
    pseudo6 = bytes(15) + b"\x01" + bytes(15) + b"\x02" + struct.pack("!IxxxB", len(v6), 6)
    assert _sum16(pseudo6 + v6) == 0xFFFF


def test_flow_key_fields_identify_the_try_and_reject_others() -> None:
    key = pk.FlowKey(KEY)
    seen = set()
    for tries in range(4):
        sport, seq = key.fields(DST, 22, tries)
        assert pk.SOURCE_PORT_BASE <= sport < pk.SOURCE_PORT_BASE + pk.SOURCE_PORTS
        assert key.which_try(DST, 22, sport, seq) == tries
        seen.add(sport)
    assert len(seen) == 4  # each try leaves from its own source port
    sport, seq = key.fields(DST, 22)
    assert key.which_try(DST, 22, sport, seq ^ 1) is None  # a forged ack
    assert key.which_try(DST, 23, sport, seq) is None  # another port
    assert pk.FlowKey(bytes(16)).which_try(DST, 22, sport, seq) is None  # another scan's key
    assert key.which_try(DST, 22, 1234, seq) is None  # not one of our source ports


def _ipv4(src: bytes, dst: bytes, proto: int, payload: bytes, ttl: int = 57) -> bytes:
    return (
        struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(payload), 0, 0, ttl, proto, 0, src, dst)
        + payload
    )


def test_syn_ack_and_icmp_error_decode() -> None:
    key = pk.FlowKey(KEY)
    sport, seq = key.fields(DST, 443)
    synack = struct.pack("!HHIIBBHHH", 443, sport, 99, seq + 1, 0x50, pk.SYN | pk.ACK, 0, 0, 0)
    reply = pk.parse_tcp4(_ipv4(DST, SRC, 6, synack))
    assert reply is not None and reply.ttl == 57 and reply.flags == pk.SYN | pk.ACK
    assert key.which_try(reply.src, reply.sport, reply.dport, reply.ack - 1) == 0
    probe = pk.tcp_probe(SRC, DST, sport, 443, seq)
    quoted = _ipv4(SRC, DST, 6, probe[:8], ttl=1)
    icmp = struct.pack("!BBHI", 3, 13, 0, 0) + quoted  # admin-prohibited
    router = socket.inet_aton("198.18.65.2")
    err = pk.parse_icmp4(_ipv4(router, SRC, 1, icmp, ttl=63))
    assert err is not None
    assert (err.sender, err.icmp_type, err.code, err.dst, err.dport, err.ttl) == (
        router, 3, 13, DST, 443, 63
    )  # fmt: skip
    assert key.which_try(err.dst, err.dport, err.sport, err.seq or 0) == 0
    assert pk.parse_icmp4(_ipv4(router, SRC, 1, struct.pack("!BBHI", 8, 0, 0, 0))) is None  # echo
    quoted6 = b"\x60" + bytes(5) + b"\x11" + bytes(33) + struct.pack("!HH", 5000, 53)  # UDP
    err6 = pk.parse_icmp6(struct.pack("!BBHI", 1, 4, 0, 0) + quoted6, bytes(16), 64)
    assert err6 is not None and (err6.proto, err6.sport, err6.dport) == (17, 5000, 53)


def test_payloads_follow_their_specifications() -> None:
    assert payloads(9) == (b"",) and payloads(53)[0][2:4] == b"\x01\x00"
    # SNMP: v1 then v2c (version INTEGER 0, then 1)
    assert [p[2:5] for p in payloads(161)] == [b"\x02\x01\x00", b"\x02\x01\x01"]
    assert snmp_get_request(version=1)[:2] == b"\x30\x27"
    # mDNS: PTR (12) for _services._dns-sd._udp.local, class IN
    assert mdns_query().endswith(b"\x05local\x00\x00\x0c\x00\x01")
    # NetBIOS: a 32-byte encoded name, NBSTAT (0x21) IN; 50 bytes (RFC 1002 4.2.18)
    nb = netbios_nbstat()
    assert len(nb) == 50 and nb[12] == 32 and nb[13:15] == b"CK" and nb[-4:] == b"\x00\x21\x00\x01"
    # RPC: xid, CALL (0), RPC version 2, portmapper 100000 v2, NULL, AUTH_NONE x2
    assert struct.unpack("!6I", rpc_null_call()[:24]) == (0x7073, 0, 2, 100000, 2, 0)
    assert len(rpc_null_call()) == 40
    # IKEv2: header length field = datagram length; SA first, version 2.0, IKE_SA_INIT
    ike = ike_sa_init()
    assert struct.unpack_from("!I", ike, 24)[0] == len(ike)
    assert (ike[16], ike[17], ike[18], ike[19]) == (33, 0x20, 34, 0x08)
    assert payloads(4500)[0] == bytes(4) + ike  # NAT-T non-ESP marker
    # DTLS 1.2: handshake record, its length, ClientHello (1) with equal length fields
    dtls = dtls_client_hello()
    assert dtls[:3] == b"\x16\xfe\xfd" and struct.unpack_from("!H", dtls, 11)[0] == len(dtls) - 13
    assert dtls[13] == 1 and dtls[14:17] == dtls[22:25]
    quic = quic_version_probe()
    assert len(quic) == 1200 and quic[0] & 0x80 and quic[1:5] == b"\x1a\x2a\x3a\x4a"
    assert memcached_version() == b"\x70\x73\x00\x00\x00\x01\x00\x00version\r\n"
    assert ssdp_msearch().startswith(b"M-SEARCH * HTTP/1.1\r\n") and ssdp_msearch().endswith(
        b"\r\n\r\n"
    )
    assert all(isinstance(p, bytes) for ps in PAYLOAD_SETS.values() for p in ps)


def test_icmp_budget_model_paces_and_learns_a_faster_rate() -> None:
    pacer = _Bucket(100.0, 1.0, 6.0)  # one source's model of the target (more: test_udp_pacing)
    assert pacer.available(100.0) == 0.0  # assume empty: an earlier scan may have drained it
    assert pacer.available(101.0) == 1.0  # Linux: one per second ...
    assert pacer.available(120.0) == 6.0  # ... up to a burst of 6
    for _ in range(6):
        pacer.icmp(120.0)
    assert pacer.available(120.0) == 0.0 and pacer.rate == 1.0
    unlimited = _Bucket(0.0, 1.0, 6.0)
    for i in range(200):  # 200 errors in 0.2 s: no 1/s limit there
        unlimited.icmp(i / 1000)
    assert unlimited.rate > 100
