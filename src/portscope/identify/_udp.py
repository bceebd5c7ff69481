"""Identification of UDP answers the scanner already received (no packet is sent here).

The UDP prober sends a protocol payload to well-known ports (``scanner._payloads.PAYLOADS``:
DNS, NTP, SNMP) and keeps the answer in ``ProbeResult.banner``; this module reads it.
"""

from __future__ import annotations

import struct

from portscope.identify._match import Match, match_dns
from portscope.identify._types import Confidence, Evidence, Identity
from portscope.identify._x509 import _children, _tlv

__all__ = ["identify_udp_answer", "match_ntp", "match_snmp"]


def match_ntp(data: bytes) -> Match | None:
    """An NTP server packet (RFC 5905 7.3): 48+ bytes, mode 4 (server), version 1-4;
    stratum, and the reference id (a 4-letter source for stratum 1)."""
    if len(data) < 48:
        return None
    mode, version = data[0] & 0x7, (data[0] >> 3) & 0x7
    if mode != 4 or not 1 <= version <= 4:
        return None
    stratum = data[1]
    facts = {"ntp_version": str(version), "stratum": str(stratum)}
    if stratum == 1:
        facts["reference"] = data[12:16].rstrip(b"\0").decode("ascii", "replace")
    elif stratum == 0 and data[12:16].isalpha():
        facts["kiss_code"] = data[12:16].decode("ascii")  # RFC 5905 7.4
    return Match("ntp", Confidence.CONFIRMED, data[:4], None, None, facts)


def match_snmp(data: bytes) -> Match | None:
    """An SNMP GetResponse (RFC 1157 4.1.4, RFC 3416): SEQUENCE { version, community,
    [2] PDU { request-id, error-status, error-index, varbinds } }; the first varbind's
    OCTET STRING is sysDescr.0, the system's own description."""
    try:
        tag, start, end = _tlv(data, 0)
        if tag != 0x30:
            return None
        parts = _children(data, start, end)
        if len(parts) < 3 or parts[0][0] != 0x02 or parts[2][0] != 0xA2:
            return None
        version = int.from_bytes(data[parts[0][1] : parts[0][2]], "big")
        pdu = _children(data, parts[2][1], parts[2][2])
        facts = {"snmp_version": {0: "1", 1: "2c", 3: "3"}.get(version, str(version))}
        descr = None
        binds = _children(data, pdu[3][1], pdu[3][2])
        if binds:
            bind = _children(data, binds[0][1], binds[0][2])
            if len(bind) == 2 and bind[1][0] == 0x04:
                descr = data[bind[1][1] : bind[1][2]].decode("utf-8", "replace")
                facts["sysDescr"] = descr
    except (ValueError, IndexError):
        return None
    return Match("snmp", Confidence.CONFIRMED, data[:64], None, None, facts)


def _dns_udp(data: bytes) -> Match | None:
    # a datagram carries the message without TCP's 2-byte length (RFC 1035 4.2.1)
    if len(data) < 12:
        return None
    (txid,) = struct.unpack_from(">H", data)
    return match_dns(struct.pack(">H", len(data)) + data, txid) if txid == 0x7073 else None


def identify_udp_answer(address: str, port: int, answer: bytes) -> Identity | None:
    """What a UDP answer shows (DNS, NTP, SNMP), or ``None`` when it is not recognized."""
    for name, matcher in (("dns", _dns_udp), ("ntp", match_ntp), ("snmp", match_snmp)):
        found = matcher(answer)
        if found is not None:
            evidence = (Evidence(f"udp-{name}", found.matched),)
            return Identity(
                address, port, found.service, found.confidence, found.product, found.version,
                dict(found.facts), None, evidence, (f"udp-{name}",), 0.0, "udp",
            )  # fmt: skip
    return None
