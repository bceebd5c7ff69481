"""The few X.509 certificate fields a TLS probe reports, decoded from DER.

Python 3.11's ``ssl`` gives an unverified peer certificate only as DER bytes
(``getpeercert(binary_form=True)``; the decoded dict is empty under ``CERT_NONE``), so this
module reads the DER itself: subject, issuer, validity and subjectAltName, nothing else.
Layout from RFC 5280 section 4.1 (ASN.1 DER, ITU-T X.690)::

    Certificate  ::= SEQUENCE { tbsCertificate, signatureAlgorithm, signature }
    tbsCertificate ::= SEQUENCE { [0] version OPTIONAL, serialNumber, signature,
                                  issuer Name, validity SEQUENCE { notBefore, notAfter },
                                  subject Name, subjectPublicKeyInfo, ...,
                                  [3] extensions OPTIONAL }
    Name ::= SEQUENCE OF SET OF SEQUENCE { type OID, value ANY (a string) }

A malformed certificate raises ``ValueError``; the caller reports the bytes it could not read.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from datetime import UTC, datetime

__all__ = ["CertFields", "decode_certificate"]

# RFC 4519 / RFC 5280 short names for the attribute types seen in server certificates.
_ATTR_NAMES = {
    "2.5.4.3": "CN",
    "2.5.4.6": "C",
    "2.5.4.7": "L",
    "2.5.4.8": "ST",
    "2.5.4.10": "O",
    "2.5.4.11": "OU",
    "2.5.4.5": "serialNumber",
    "1.2.840.113549.1.9.1": "emailAddress",
    "0.9.2342.19200300.100.1.25": "DC",
}
_SAN_OID = "2.5.29.17"


@dataclass(frozen=True, slots=True)
class CertFields:
    """What a TLS probe shows of a certificate.

    Attributes:
        subject: the subject as ``CN=example.test,O=Example`` (RFC 4514 attribute
            syntax, in the certificate's order, as ``openssl x509 -subject`` prints it),
            or ``None`` when empty.
        issuer: the issuer, the same way.
        sans: subjectAltName entries as ``DNS:name``, ``IP:address``, ``email:...``, ``URI:...``.
        not_before: start of validity, UTC.
        not_after: end of validity, UTC.
    """

    subject: str | None
    issuer: str | None
    sans: tuple[str, ...]
    not_before: datetime | None
    not_after: datetime | None


def _tlv(data: bytes, pos: int) -> tuple[int, int, int]:
    """(tag, start of value, end of value) of the DER element at ``pos``."""
    if pos + 2 > len(data):
        raise ValueError("truncated DER")
    tag = data[pos]
    length = data[pos + 1]
    pos += 2
    if length & 0x80:
        n = length & 0x7F
        if not 0 < n <= 4 or pos + n > len(data):
            raise ValueError("bad DER length")
        length = int.from_bytes(data[pos : pos + n], "big")
        pos += n
    end = pos + length
    if end > len(data):
        raise ValueError("truncated DER")
    return tag, pos, end


def _children(data: bytes, start: int, end: int) -> list[tuple[int, int, int]]:
    out = []
    pos = start
    while pos < end:
        tag, vstart, vend = _tlv(data, pos)
        out.append((tag, vstart, vend))
        pos = vend
    return out


def _oid(raw: bytes) -> str:
    if not raw:
        raise ValueError("empty OID")
    parts = [min(raw[0] // 40, 2), raw[0] - 40 * min(raw[0] // 40, 2)]
    value = 0
    for b in raw[1:]:
        value = (value << 7) | (b & 0x7F)
        if not b & 0x80:
            parts.append(value)
            value = 0
    return ".".join(map(str, parts))


def _string(tag: int, raw: bytes) -> str:
    if tag == 0x1E:  # BMPString: UTF-16BE
        return raw.decode("utf-16-be", "replace")
    if tag == 0x0C:  # UTF8String
        return raw.decode("utf-8", "replace")
    return raw.decode("latin-1")  # Printable, IA5, Teletex, T61: treated as 8-bit text


def _name(data: bytes, start: int, end: int) -> str | None:
    parts = []
    for _, s, e in _children(data, start, end):  # RDN: SET
        for _, s2, e2 in _children(data, s, e):  # AttributeTypeAndValue: SEQUENCE
            items = _children(data, s2, e2)
            if len(items) != 2:
                raise ValueError("bad attribute")
            oid = _oid(data[items[0][1] : items[0][2]])
            tag, vs, ve = items[1]
            value = _string(tag, data[vs:ve]).replace("\\", "\\\\").replace(",", "\\,")
            parts.append(f"{_ATTR_NAMES.get(oid, oid)}={value}")
    return ",".join(parts) or None


def _time(tag: int, raw: bytes) -> datetime:
    text = raw.decode("ascii")
    if tag == 0x17:  # UTCTime YYMMDDHHMMSSZ; RFC 5280 4.1.2.5.1: YY < 50 is 20YY
        year = int(text[:2])
        text = f"{2000 + year if year < 50 else 1900 + year}{text[2:]}"
    return datetime.strptime(text.rstrip("Z"), "%Y%m%d%H%M%S").replace(tzinfo=UTC)


def _sans(data: bytes) -> tuple[str, ...]:
    tag, start, end = _tlv(data, 0)
    out = []
    for tag, s, e in _children(data, start, end):
        raw = data[s:e]
        if tag == 0x82:
            out.append("DNS:" + raw.decode("latin-1"))
        elif tag == 0x87 and len(raw) in (4, 16):
            out.append(f"IP:{ipaddress.ip_address(raw)}")
        elif tag == 0x81:
            out.append("email:" + raw.decode("latin-1"))
        elif tag == 0x86:
            out.append("URI:" + raw.decode("latin-1"))
    return tuple(out)


def decode_certificate(der: bytes) -> CertFields:
    """Subject, issuer, validity and SANs of a DER certificate.

    Raises:
        ValueError: not a DER X.509 certificate.
    """
    _, cstart, _ = _tlv(der, 0)
    tag, tstart, tend = _tlv(der, cstart)
    if tag != 0x30:
        raise ValueError("not a certificate")
    fields = _children(der, tstart, tend)
    if fields and fields[0][0] == 0xA0:  # [0] EXPLICIT version
        fields = fields[1:]
    if len(fields) < 6:
        raise ValueError("short tbsCertificate")
    issuer = _name(der, fields[2][1], fields[2][2])
    validity = _children(der, fields[3][1], fields[3][2])
    subject = _name(der, fields[4][1], fields[4][2])
    not_before = _time(validity[0][0], der[validity[0][1] : validity[0][2]])
    not_after = _time(validity[1][0], der[validity[1][1] : validity[1][2]])
    sans: tuple[str, ...] = ()
    for tag, s, _ in fields[6:]:
        if tag != 0xA3:
            continue
        _, xs, xe = _tlv(der, s)
        for _, es, ee in _children(der, xs, xe):
            parts = _children(der, es, ee)
            if _oid(der[parts[0][1] : parts[0][2]]) == _SAN_OID:
                octets = parts[-1]
                sans = _sans(der[octets[1] : octets[2]])
    return CertFields(subject, issuer, sans, not_before, not_after)
