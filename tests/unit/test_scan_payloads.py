"""UDP payload bytes and the errno/ICMP vocabulary."""

from __future__ import annotations

import errno
import struct

from portscope.models import PortState
from portscope.scanner._errors import ICMP4_UNREACH, ICMP6_UNREACH, classify
from portscope.scanner._udp import PAYLOADS, dns_query, ntp_request, snmp_get_request


def test_dns_query_is_a_root_ns_question() -> None:
    q = dns_query()
    txid, flags, qd, an, ns, ar = struct.unpack("!6H", q[:12])
    assert (flags, qd, an, ns, ar) == (0x0100, 1, 0, 0, 0)  # RD set, one question
    assert txid == 0x7073
    assert q[12:] == b"\x00" + b"\x00\x02" + b"\x00\x01"  # root, type NS, class IN
    named = dns_query("version.bind", 16)
    assert named[12:] == b"\x07version\x04bind\x00\x00\x10\x00\x01"
    assert PAYLOADS[53] == q


def test_ntp_request_is_a_v4_client_packet() -> None:
    p = ntp_request()
    assert len(p) == 48
    assert p[0] >> 6 == 3 and (p[0] >> 3) & 7 == 4 and p[0] & 7 == 3  # LI=3, VN=4, client
    assert p[1:] == bytes(47)
    assert PAYLOADS[123] == p


def test_snmp_get_request_bytes() -> None:
    expected = bytes.fromhex(
        "3027"  # SEQUENCE, 39 bytes
        "020100"  # version 0 (SNMPv1)
        "04067075626c6963"  # community "public"
        "a01a"  # GetRequest-PDU, 26 bytes
        "02027073"  # request-id 0x7073
        "020100"  # error-status 0
        "020100"  # error-index 0
        "300e"  # varbind list
        "300c"  # varbind
        "06082b06010201010100"  # 1.3.6.1.2.1.1.1.0 (sysDescr.0)
        "0500"  # NULL
    )
    assert snmp_get_request() == expected
    assert PAYLOADS[161] == expected


def test_errno_vocabulary() -> None:
    assert classify(0) == (PortState.OPEN, "syn-ack")
    assert classify(errno.ECONNREFUSED) == (PortState.CLOSED, "conn-refused")
    assert classify(errno.EHOSTUNREACH) == (PortState.UNREACHABLE, "host-unreach")
    assert classify(errno.ENETUNREACH) == (PortState.UNREACHABLE, "net-unreach")
    assert classify(errno.ETIMEDOUT) == (PortState.FILTERED, "no-response")
    assert classify(errno.EPERM) == (PortState.UNREACHABLE, "local-firewall")
    assert classify(errno.EBADMSG) == (PortState.UNREACHABLE, "ebadmsg")
    assert ICMP4_UNREACH[13] == "admin-prohibited" and ICMP4_UNREACH[3] == "port-unreach"
    assert ICMP6_UNREACH[1] == "admin-prohibited" and ICMP6_UNREACH[4] == "port-unreach"
