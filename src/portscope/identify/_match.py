"""Pure matchers: the bytes a service sent -> what it is (no I/O; tested on captured answers).

Every matcher is written from the protocol's own specification, cited at the function, and
returns a ``Match`` or ``None``. ``confirmed`` needs the protocol's structure to hold (a
length that adds up, a magic number, a status line with headers); ``likely`` is a partial
fit (one byte, another protocol's error). ``refine`` names a probe that can say more (an
HTTP 400 from nginx telling that TLS is expected -> the ``tls`` probe).
"""

from __future__ import annotations

import html
import json
import re
import struct
from collections.abc import Callable
from dataclasses import dataclass, field

from portscope.identify._types import Confidence, TlsInfo

__all__ = [
    "BANNER_MATCHERS",
    "Match",
    "match_amqp",
    "match_any",
    "match_dns",
    "match_ftp",
    "match_http",
    "match_imap",
    "match_kafka",
    "match_ldap",
    "match_memcached",
    "match_metrics",
    "match_mongodb",
    "match_mqtt",
    "match_mysql",
    "match_pop3",
    "match_postgresql",
    "match_rdp",
    "match_redis",
    "match_resp_error",
    "match_rfb",
    "match_smb",
    "match_smtp",
    "match_ssh",
    "match_tls_record",
]

CONFIRMED = Confidence.CONFIRMED
LIKELY = Confidence.LIKELY
EVIDENCE_BYTES = 256  # evidence kept per answer


@dataclass(frozen=True, slots=True)
class Match:
    """One matcher's verdict on an answer (see ``Identity`` for the fields)."""

    service: str | None
    confidence: Confidence
    matched: bytes
    product: str | None = None
    version: str | None = None
    facts: dict[str, str] = field(default_factory=dict)
    tls: TlsInfo | None = None
    refine: str | None = None


def _text(raw: bytes) -> str:
    return raw.decode("utf-8", "replace")


def _first_line(data: bytes) -> bytes:
    return data.split(b"\n", 1)[0].rstrip(b"\r")


def _product(text: str, table: tuple[tuple[str, str], ...]) -> tuple[str | None, str | None]:
    """(product, version) from a greeting by a small table of (regex, product name)."""
    for pattern, name in table:
        m = re.search(pattern, text, re.IGNORECASE)
        if m:
            return name, (m.group(1) if m.groups() and m.group(1) else None)
    return None, None


# ---------------------------------------------------------------- greetings


_SSH = re.compile(rb"^SSH-(\d+\.\d+)-([\x21-\x2c\x2e-\x7e]+)(?: ([^\r\n]*))?\r?\n", re.MULTILINE)


def match_ssh(data: bytes) -> Match | None:
    """SSH identification string, RFC 4253 section 4.2.

    ``SSH-protoversion-softwareversion SP comments CR LF``; other lines may come first.
    The software version is split at its first ``_`` (``OpenSSH_9.2p1``: by convention,
    product and version).
    """
    m = _SSH.search(data[:1024])
    if not m:
        return None
    software = m.group(2).decode("ascii")
    product, _, version = software.partition("_")
    facts = {"protocol": m.group(1).decode("ascii")}
    if m.group(3):
        facts["comment"] = _text(m.group(3))
    return Match("ssh", CONFIRMED, m.group(0), product, version or None, facts)


def match_rfb(data: bytes) -> Match | None:
    """VNC: the RFB ProtocolVersion message ``RFB 003.008\\n`` (RFC 6143 section 7.1.1)."""
    m = re.match(rb"RFB (\d{3})\.(\d{3})\n", data)
    if not m:
        return None
    proto = f"{int(m.group(1))}.{int(m.group(2))}"
    return Match("vnc", CONFIRMED, m.group(0), None, None, {"protocol": proto})


def match_mysql(data: bytes) -> Match | None:
    """MySQL/MariaDB initial handshake packet (HandshakeV10) or an ERR packet.

    Packet: 3-byte little-endian payload length, sequence id 0, payload. HandshakeV10:
    protocol version 10, server version (NUL-terminated), thread id (4), 8 bytes of
    auth data, a filler 0 (MySQL client/server protocol docs, "Initial Handshake").
    MariaDB prefixes its version with ``5.5.5-`` for old clients (MariaDB KB, "Server
    version string"). ERR: 0xff, error code (2), message.
    """
    if len(data) < 5:
        return None
    length = int.from_bytes(data[:3], "little")
    if data[3] != 0 or not 4 < length < 4096 or len(data) < 4 + min(length, 16):
        return None
    payload = data[4 : 4 + length]
    if payload[0] == 0xFF and len(payload) >= 3:
        code = int.from_bytes(payload[1:3], "little")
        message = _text(payload[3:])
        if not message.isprintable():
            return None
        product = "MariaDB" if "MariaDB" in message else "MySQL" if "MySQL" in message else None
        facts = {"error": f"{code} {message}"}
        return Match("mysql", CONFIRMED, data[: 4 + length], product, None, facts)
    if payload[0] != 10:
        return None
    end = payload.find(b"\0", 1)
    if end < 2 or len(payload) < end + 1 + 4 + 8 + 1:
        return None
    raw = payload[1:end]
    if not all(32 < b < 127 for b in raw):
        return None
    version = raw.decode("ascii")
    facts = {"thread_id": str(int.from_bytes(payload[end + 1 : end + 5], "little"))}
    if "MariaDB" in version:
        version = version.removeprefix("5.5.5-")
        number, _, build = version.partition("-MariaDB")
        if build.strip("-"):
            facts["build"] = build.strip("-")
        return Match("mysql", CONFIRMED, data[: 4 + end], "MariaDB", number, facts)
    return Match("mysql", CONFIRMED, data[: 4 + end], "MySQL", version, facts)


_SMTP_PRODUCTS = (
    (r"\bPostfix\b", "Postfix"),
    (r"\bExim (\S+)", "Exim"),
    (r"\bSendmail ([\w.]+)", "Sendmail"),
    (r"\bOpenSMTPD\b", "OpenSMTPD"),
    (r"Microsoft ESMTP MAIL Service", "Microsoft Exchange"),
    (r"\bPython SMTP (\S+)", "aiosmtpd"),  # aiosmtpd's default greeting
    (r"\bHaraka(?:/| )(\S+)", "Haraka"),
)
_FTP_PRODUCTS = (
    (r"\bvsFTPd (\S+?)\)?$", "vsftpd"),
    (r"\bProFTPD (\S+)", "ProFTPD"),
    (r"\bPure-FTPd\b", "Pure-FTPd"),
    (r"\bpyftpdlib (\S+)", "pyftpdlib"),
    (r"\bFileZilla Server(?: version)? (\S+)", "FileZilla Server"),
    (r"Microsoft FTP Service", "Microsoft IIS ftpd"),
)
_MAIL_PRODUCTS = (
    (r"\bDovecot\b", "Dovecot"),
    (r"\bCyrus\b.*?v(\d[\w.\-]*)", "Cyrus"),
    (r"\bCourier\b", "Courier"),
)


def match_smtp(greeting: bytes, ehlo: bytes | None) -> Match | None:
    """SMTP: a ``220`` greeting, confirmed by a ``250`` reply to EHLO (RFC 5321 4.2, 4.1.1.1).

    The EHLO reply's keyword lines (``250-SIZE 33554432``, ``250 STARTTLS``) become the
    ``extensions`` fact.
    """
    if not re.match(rb"220[ -]", greeting):
        return None
    line = _text(_first_line(greeting))
    product, version = _product(line, _SMTP_PRODUCTS)
    if ehlo is None or not ehlo.startswith(b"250"):
        return (
            Match("smtp", LIKELY, _first_line(greeting), product, version)
            if "SMTP" in line.upper()
            else None
        )
    keywords = [
        _text(x[4:]).split(" ")[0].upper() for x in ehlo.split(b"\r\n")[1:] if x.startswith(b"250")
    ]
    facts = {"extensions": " ".join(k for k in keywords if k)}
    matched = _first_line(greeting) + b"\r\n" + _first_line(ehlo)
    return Match("smtp", CONFIRMED, matched, product, version, facts)


def match_ftp(greeting: bytes, syst: bytes | None) -> Match | None:
    """FTP: a ``220`` greeting, confirmed by a ``215`` reply to SYST (RFC 959 4.2, 5.3)."""
    if not re.match(rb"220[ -]", greeting):
        return None
    line = _text(_first_line(greeting))
    product, version = _product(line, _FTP_PRODUCTS)
    if syst is None or not syst.startswith(b"215"):
        return (
            Match("ftp", LIKELY, _first_line(greeting), product, version)
            if "FTP" in line.upper()
            else None
        )
    facts = {"system": _text(_first_line(syst)[4:])}
    matched = _first_line(greeting) + b"\r\n" + _first_line(syst)
    return Match("ftp", CONFIRMED, matched, product, version, facts)


def match_pop3(greeting: bytes, capa: bytes | None) -> Match | None:
    """POP3: a ``+OK`` greeting (RFC 1939 4), confirmed by ``+OK`` to CAPA (RFC 2449 5)."""
    if not greeting.startswith(b"+OK"):
        return None
    line = _text(_first_line(greeting))
    product, version = _product(line, _MAIL_PRODUCTS)
    confirmed = capa is not None and capa.startswith(b"+OK")
    return Match("pop3", CONFIRMED if confirmed else LIKELY, _first_line(greeting), product,
                 version)  # fmt: skip


def match_imap(greeting: bytes, capability: bytes | None) -> Match | None:
    """IMAP: an untagged ``* OK`` / ``* PREAUTH`` greeting (RFC 9051 7.1), confirmed by
    ``IMAP4`` in the greeting's or the CAPABILITY command's capability list."""
    if not re.match(rb"\* (OK|PREAUTH)\b", greeting):
        return None
    line = _text(_first_line(greeting))
    product, version = _product(line, _MAIL_PRODUCTS)
    caps = greeting + (capability or b"")
    confirmed = re.search(rb"CAPABILITY[^\r\n]* IMAP4", caps) is not None
    facts = {}
    m = re.search(rb"\* CAPABILITY ([^\r\n]*)", caps) or re.search(rb"\[CAPABILITY ([^\]]*)", caps)
    if m:
        facts["capabilities"] = _text(m.group(1))
    return Match("imap", CONFIRMED if confirmed else LIKELY, _first_line(greeting), product,
                 version, facts)  # fmt: skip


# ---------------------------------------------------------------- HTTP


_STATUS = re.compile(rb"HTTP/(\d)\.(\d) (\d{3})(?: ([^\r\n]*))?\r?\n")
_TITLE = re.compile(rb"<title[^>]*>(.*?)</title>", re.IGNORECASE | re.DOTALL)


def _headers(head: bytes) -> dict[str, str]:
    out: dict[str, str] = {}
    for line in head.split(b"\n")[1:]:
        name, sep, value = line.partition(b":")
        if sep and name and not name[:1].isspace():
            out.setdefault(_text(name).strip().lower(), _text(value).strip())
    return out


def http_complete(data: bytes) -> bool:
    """True when an HTTP/1.x response is complete (RFC 9112 section 6.3), as far as a
    probe needs: headers ended and Content-Length bytes or the last chunk arrived."""
    end = data.find(b"\r\n\r\n")
    if end < 0:
        return False
    headers = _headers(data[:end])
    body = data[end + 4 :]
    if "content-length" in headers:
        try:
            return len(body) >= int(headers["content-length"])
        except ValueError:
            return True
    if "chunked" in headers.get("transfer-encoding", "").lower():
        return body.endswith(b"0\r\n\r\n")
    status = _STATUS.match(data)
    return status is not None and status.group(3) in (b"204", b"304")


def match_http(data: bytes) -> Match | None:
    """An HTTP/1.x response: status line and header fields (RFC 9112 sections 4, 5).

    Product and version come from the ``Server`` field (``nginx/1.22.1``, RFC 9110
    10.2.4), the title from the HTML ``<title>``. A JSON body that names itself
    Elasticsearch or OpenSearch (their root endpoint: ``version.number``,
    ``version.distribution``, ``tagline``) makes the service that.
    """
    m = _STATUS.match(data)
    if not m:
        return None
    end = data.find(b"\r\n\r\n")
    head = data[:end] if end >= 0 else data
    headers = _headers(head)
    if end < 0 and not headers:
        return Match("http", LIKELY, _first_line(data))
    body = data[end + 4 :] if end >= 0 else b""
    status = m.group(3).decode()
    facts = {"status": f"{status} {_text(m.group(4) or b'')}".strip()}
    product = version = None
    server = headers.get("server")
    if server:
        facts["server"] = server
        token = server.split(" ", 1)[0]
        name, _, ver = token.partition("/")
        product, version = name or None, ver or None
    if "location" in headers and status.startswith("3"):
        facts["location"] = headers["location"]
    title = _TITLE.search(body[:65536])
    if title:
        text = " ".join(html.unescape(_text(title.group(1))).split())
        if text:
            facts["title"] = text[:200]
    matched = head[:EVIDENCE_BYTES]
    refine = None
    if status == "400" and b"plain HTTP request was sent to HTTPS port" in body:
        refine = "tls"  # nginx's answer (its error 497) on a TLS port
    es = _elastic(headers, body)
    if es is not None:
        service, product, version, extra = es
        return Match(service, CONFIRMED, matched, product, version, facts | extra)
    return Match("http", CONFIRMED, matched, product, version, facts, refine=refine)


def _elastic(
    headers: dict[str, str], body: bytes
) -> tuple[str, str, str | None, dict[str, str]] | None:
    if "json" not in headers.get("content-type", "") or b'"version"' not in body:
        return None
    try:
        doc = json.loads(body)
    except ValueError:
        return None
    if not isinstance(doc, dict) or not isinstance(doc.get("version"), dict):
        return None
    ver = doc["version"]
    if ver.get("distribution") == "opensearch":
        service, product = "opensearch", "OpenSearch"
    elif "You Know, for Search" in str(doc.get("tagline", "")):
        service, product = "elasticsearch", "Elasticsearch"
    else:
        return None
    extra = {k: str(doc[k]) for k in ("cluster_name", "name") if isinstance(doc.get(k), str)}
    number = ver.get("number")
    return service, product, str(number) if number else None, extra


_METRIC_LINE = re.compile(
    rb"^# TYPE ([a-zA-Z_:][a-zA-Z0-9_:]*) (counter|gauge|histogram|summary|untyped)\r?$",
    re.MULTILINE,
)
_BUILD_INFO = re.compile(
    rb'^([a-zA-Z_][a-zA-Z0-9_]*?)_build_info\{[^}]*\bversion="([^"]+)"', re.MULTILINE
)


def match_metrics(data: bytes) -> Match | None:
    """A Prometheus text exposition (``/metrics``): ``# TYPE name kind`` lines
    (Prometheus docs, "Exposition formats"). ``X_build_info{version="..."}`` names the
    exporter (``node_exporter``, ``prometheus``) by the convention of Prometheus' client
    libraries."""
    base = match_http(data)
    if base is None or not base.facts.get("status", "").startswith("200"):
        return None
    families = _METRIC_LINE.findall(data)
    if not families:
        return None
    facts = {"metrics": f"{len(families)} metric families (Prometheus text format)"}
    m = _BUILD_INFO.search(data)
    product, version = (m.group(1).decode(), m.group(2).decode()) if m else (None, None)
    first = _METRIC_LINE.search(data)
    matched = first.group(0) if first else b""
    return Match("http", CONFIRMED, matched, product, version, facts)


# ---------------------------------------------------------------- key-value stores


def match_redis(ping: bytes, info: bytes | None = None) -> Match | None:
    """Redis (RESP, redis.io "Redis serialization protocol specification") to PING, then
    ``INFO server``.

    ``+PONG`` answered without authentication; ``-NOAUTH`` / ``-WRONGPASS`` mean a password
    is set; ``-DENIED`` is protected mode (no password, not reachable from here). The INFO
    bulk string gives ``redis_version`` (Valkey: ``server_name:valkey``, ``valkey_version``).
    """
    line = _first_line(ping)
    facts: dict[str, str] = {}
    if line == b"+PONG":
        facts["auth"] = "none (PING answered without authentication)"
    elif line.startswith((b"-NOAUTH", b"-WRONGPASS")):
        facts["auth"] = "required"
    elif line.startswith(b"-DENIED"):
        facts["auth"] = "protected mode (refuses non-loopback clients)"
    else:
        return None
    product, version = "Redis", None
    if info and info.startswith(b"$"):
        fields = dict(
            _text(x).split(":", 1) for x in info.split(b"\r\n") if b":" in x and x[:1] != b"#"
        )
        if fields.get("server_name") == "valkey" or "valkey_version" in fields:
            product, version = "Valkey", fields.get("valkey_version")
        else:
            version = fields.get("redis_version")
        for key in ("redis_mode", "os"):
            if key in fields:
                facts[key] = fields[key]
    return Match("redis", CONFIRMED, line, product, version, facts)


def match_resp_error(data: bytes) -> Match | None:
    """A RESP simple error (``-ERR ...\\r\\n``) to another protocol's probe: Redis-like."""
    m = re.match(rb"-(ERR|NOAUTH|DENIED|WRONGTYPE)[ \w'`,.:()\-]*\r\n", data)
    return Match("redis", LIKELY, m.group(0), refine="redis") if m else None


def match_memcached(data: bytes) -> Match | None:
    """memcached ``version`` -> ``VERSION <version>\\r\\n`` (memcached protocol.txt)."""
    m = re.match(rb"VERSION ([\x21-\x7e]+)\r\n", data)
    if not m:
        return None
    return Match("memcached", CONFIRMED, m.group(0), "memcached", m.group(1).decode())


# ---------------------------------------------------------------- binary protocols


def match_postgresql(ssl_reply: bytes, startup_reply: bytes | None) -> Match | None:
    """PostgreSQL (protocol docs, "Message Flow" / "Message Formats").

    SSLRequest is answered by one byte, ``S`` or ``N`` (likely on its own); a StartupMessage
    without a ``user`` is refused with an ErrorResponse before any authentication: ``E``,
    Int32 length, fields (type byte, C string) ending in 0 -- severity ``S``, SQLSTATE ``C``
    (``28000``), message ``M``, source routine ``R``. The server says no version before
    authentication, so none is reported.
    """
    facts: dict[str, str] = {}
    if ssl_reply[:1] in (b"S", b"N") and len(ssl_reply) == 1:
        facts["ssl"] = "supported" if ssl_reply == b"S" else "not offered"
    elif ssl_reply[:1] != b"E":
        return None
    reply = startup_reply if startup_reply is not None else ssl_reply
    if reply[:1] == b"E" and len(reply) >= 5:
        length = int.from_bytes(reply[1:5], "big")
        body = reply[5 : 1 + length]
        fields = {}
        for item in body.split(b"\0"):
            if item:
                fields[chr(item[0])] = _text(item[1:])
        if "S" in fields and "M" in fields and len(reply) >= 1 + length:
            if "C" in fields:
                facts["sqlstate"] = fields["C"]
            facts["message"] = fields["M"]
            return Match("postgresql", CONFIRMED, reply[: 1 + length][:EVIDENCE_BYTES],
                         "PostgreSQL", None, facts)  # fmt: skip
    if "ssl" in facts:
        return Match("postgresql", LIKELY, ssl_reply, None, None, facts)
    return None


def bson_decode(doc: bytes) -> dict[str, object]:
    """The top-level scalar fields of a BSON document (bsonspec.org 1.1); nested
    documents and arrays are skipped. Raises ``ValueError`` on malformed input."""
    if len(doc) < 5 or int.from_bytes(doc[:4], "little") > len(doc):
        raise ValueError("bad BSON length")
    out: dict[str, object] = {}
    pos, end = 4, int.from_bytes(doc[:4], "little") - 1
    fixed = {0x01: 8, 0x07: 12, 0x08: 1, 0x09: 8, 0x10: 4, 0x11: 8, 0x12: 8, 0x0A: 0}
    while pos < end:
        kind = doc[pos]
        name_end = doc.index(b"\0", pos + 1)
        name = doc[pos + 1 : name_end].decode("utf-8", "replace")
        pos = name_end + 1
        if kind == 0x02:
            n = int.from_bytes(doc[pos : pos + 4], "little")
            out[name] = doc[pos + 4 : pos + 3 + n].decode("utf-8", "replace")
            pos += 4 + n
        elif kind in (0x03, 0x04, 0x05):
            n = int.from_bytes(doc[pos : pos + 4], "little")
            pos += n + (5 if kind == 0x05 else 0)
        elif kind in fixed:
            raw = doc[pos : pos + fixed[kind]]
            if kind == 0x01:
                out[name] = struct.unpack("<d", raw)[0]
            elif kind == 0x08:
                out[name] = raw == b"\x01"
            elif kind in (0x10, 0x12):
                out[name] = int.from_bytes(raw, "little", signed=True)
            pos += fixed[kind]
        else:
            break  # a type no field we read has
    return out


def mongodb_replies(data: bytes) -> list[dict[str, object]]:
    """The BSON bodies of OP_MSG (2013) and OP_REPLY (1) messages in ``data``
    (MongoDB Wire Protocol: 16-byte header messageLength, requestID, responseTo, opCode)."""
    out = []
    pos = 0
    while pos + 16 <= len(data):
        length, _, _, opcode = struct.unpack_from("<iiii", data, pos)
        if length < 16 or pos + length > len(data):
            break
        body = data[pos + 16 : pos + length]
        if opcode == 2013 and len(body) > 5 and body[4] == 0:
            out.append(bson_decode(body[5:]))
        elif opcode == 1 and len(body) > 20:
            out.append(bson_decode(body[20:]))
        pos += length
    return out


def match_mongodb(data: bytes) -> Match | None:
    """MongoDB to ``hello`` then ``buildInfo`` (both allowed before authentication):
    ``maxWireVersion`` confirms it, ``version`` is the server's."""
    try:
        docs = mongodb_replies(data)
    except (ValueError, IndexError, struct.error):
        return None
    hello = next((d for d in docs if "maxWireVersion" in d), None)
    if hello is None:
        return None
    facts = {"wire_version": str(hello["maxWireVersion"])}
    if hello.get("msg") == "isdbgrid":
        facts["role"] = "mongos"
    build = next((d for d in docs if isinstance(d.get("version"), str)), None)
    version = str(build["version"]) if build else None
    return Match("mongodb", CONFIRMED, data[:EVIDENCE_BYTES], "MongoDB", version, facts)


def match_kafka(data: bytes, correlation_id: int) -> Match | None:
    """Kafka ApiVersions v0 response (Kafka protocol guide): Int32 size, Int32
    correlation id (ours), Int16 error code, array of (api key, min, max)."""
    if len(data) < 14:
        return None
    size, corr, error, count = struct.unpack_from(">iihi", data)
    if corr != correlation_id or size != len(data) - 4 or not 0 <= count < 1000:
        return None
    if 10 + 6 * count != size:
        return None
    facts = {"api_keys": str(count)}
    if error:
        facts["error_code"] = str(error)
    return Match("kafka", CONFIRMED, data[:EVIDENCE_BYTES], None, None, facts)


def _amqp_table(raw: bytes) -> dict[str, str]:
    out: dict[str, str] = {}
    pos = 0
    sizes = {"t": 1, "b": 1, "B": 1, "s": 2, "u": 2, "I": 4, "i": 4, "l": 8, "T": 8,
             "D": 5, "f": 4, "d": 8, "V": 0}  # fmt: skip
    while pos < len(raw):
        n = raw[pos]
        name = _text(raw[pos + 1 : pos + 1 + n])
        pos += 1 + n
        kind = chr(raw[pos])
        pos += 1
        if kind in ("S", "F", "A", "x"):
            size = int.from_bytes(raw[pos : pos + 4], "big")
            if kind == "S":
                out[name] = _text(raw[pos + 4 : pos + 4 + size])
            pos += 4 + size
        elif kind in sizes:
            pos += sizes[kind]
        else:
            break
    return out


def match_amqp(data: bytes) -> Match | None:
    """AMQP 0-9-1 (spec section 4.2.3, 4.2.6): a Connection.Start method frame (type 1,
    channel 0, class 10, method 10) with the server-properties table (``product``,
    ``version``), or the server's own protocol header when it wants another version."""
    if data.startswith(b"AMQP") and len(data) >= 8:
        version = ".".join(str(b) for b in data[5:8])
        return Match("amqp", CONFIRMED, data[:8], None, None, {"protocol": version})
    if len(data) < 12 or data[0] != 1 or data[1:3] != b"\0\0":
        return None
    size = int.from_bytes(data[3:7], "big")
    payload = data[7 : 7 + size]
    if payload[:4] != b"\x00\x0a\x00\x0a" or len(data) < 8 + size or data[7 + size] != 0xCE:
        return None
    facts = {"protocol": f"{payload[4]}-{payload[5]}"}  # 0-9 for AMQP 0-9-1
    tsize = int.from_bytes(payload[6:10], "big")
    try:
        props = _amqp_table(payload[10 : 10 + tsize])
    except IndexError:
        props = {}
    for key in ("platform", "cluster_name"):
        if key in props:
            facts[key] = props[key]
    return Match("amqp", CONFIRMED, data[: 8 + size][:EVIDENCE_BYTES], props.get("product"),
                 props.get("version"), facts)  # fmt: skip


_CONNACK = {
    0: "accepted",
    1: "refused: protocol version",
    2: "refused: client identifier",
    3: "refused: server unavailable",
    4: "refused: bad user name or password",
    5: "refused: not authorized",
}


def mqtt_packets(data: bytes) -> list[tuple[int, bytes]]:
    """(first byte, body) of the complete MQTT control packets in ``data`` (MQTT 3.1.1
    section 2.2: fixed header, remaining length in 1-4 bytes of 7 bits)."""
    out = []
    pos = 0
    while pos + 2 <= len(data):
        value, mult, i = 0, 1, pos + 1
        while i < len(data) and i < pos + 5:
            value += (data[i] & 0x7F) * mult
            mult *= 128
            i += 1
            if not data[i - 1] & 0x80:
                break
        else:
            break
        if i + value > len(data):
            break
        out.append((data[pos], data[i : i + value]))
        pos = i + value
    return out


def match_mqtt(data: bytes) -> Match | None:
    """MQTT 3.1.1 CONNACK (section 3.2): ``0x20 0x02 flags code``, then, when connected,
    the retained ``$SYS/broker/version`` message (Mosquitto and others publish it)."""
    packets = mqtt_packets(data)
    if not packets or packets[0][0] != 0x20 or len(packets[0][1]) != 2:
        return None
    code = packets[0][1][1]
    if code not in _CONNACK:
        return None
    facts = {"connack": _CONNACK[code]}
    product = version = None
    for first, body in packets[1:]:
        if first >> 4 == 3 and len(body) > 2:  # PUBLISH, QoS 0: topic, payload
            n = int.from_bytes(body[:2], "big")
            topic, payload = body[2 : 2 + n], body[2 + n :]
            if topic == b"$SYS/broker/version":
                text = _text(payload)
                facts["broker"] = text
                m = re.match(r"(\S+) version (\S+)", text)
                if m:
                    product, version = m.group(1), m.group(2)
    return Match("mqtt", CONFIRMED, data[:4], product, version, facts)


def match_ldap(data: bytes) -> Match | None:
    """LDAPv3 (RFC 4511 4.5.2): a SearchResultEntry ([APPLICATION 4]) or SearchResultDone
    ([APPLICATION 5]) to our rootDSE search, message id 1; ``vendorName`` and
    ``vendorVersion`` (RFC 3045) name the server when it publishes them."""
    from portscope.identify._x509 import _children, _tlv

    try:
        tag, start, end = _tlv(data, 0)
        if tag != 0x30:
            return None
        parts = _children(data, start, end)
        if len(parts) < 2 or data[parts[0][1] : parts[0][2]] != b"\x01":
            return None
        op, os_, oe = parts[1]
        if op not in (0x64, 0x65, 0x78):
            return None
        facts: dict[str, str] = {}
        pos = end
        attrs: dict[str, list[str]] = {}
        msgs = [(op, os_, oe)]
        while pos < len(data):  # the entry is followed by SearchResultDone
            _, s2, e2 = _tlv(data, pos)
            sub = _children(data, s2, e2)
            if len(sub) >= 2:
                msgs.append(sub[1])
            pos = e2
        for op, os_, oe in msgs:
            if op != 0x64:
                continue
            entry = _children(data, os_, oe)
            for _, s, e in _children(data, entry[1][1], entry[1][2]):
                attr = _children(data, s, e)
                name = _text(data[attr[0][1] : attr[0][2]])
                attrs[name.lower()] = [
                    _text(data[vs:ve]) for _, vs, ve in _children(data, attr[1][1], attr[1][2])
                ]
    except (ValueError, IndexError):
        return None
    if "supportedldapversion" in attrs:
        facts["ldap_versions"] = ",".join(attrs["supportedldapversion"])
    if "namingcontexts" in attrs:
        facts["naming_contexts"] = ";".join(attrs["namingcontexts"])
    product = attrs["vendorname"][0] if attrs.get("vendorname") else None
    version = attrs["vendorversion"][0] if attrs.get("vendorversion") else None
    return Match("ldap", CONFIRMED, data[:end][:EVIDENCE_BYTES], product, version, facts)


_DIALECTS = {0x0202: "2.0.2", 0x0210: "2.1", 0x0300: "3.0", 0x0302: "3.0.2", 0x0311: "3.1.1"}


def match_smb(data: bytes) -> Match | None:
    """SMB2 NEGOTIATE response (MS-SMB2 2.2.4) after a 4-byte NetBIOS session header
    (RFC 1002 4.3.1): ``\\xfeSMB``, command 0, StructureSize 65, DialectRevision. An SMB1
    header (``\\xffSMB``, MS-CIFS) is SMB too."""
    if len(data) < 8 or data[0] != 0:
        return None
    smb = data[4:]
    if smb.startswith(b"\xffSMB"):
        return Match("smb", LIKELY, smb[:32], None, None, {"dialect": "SMB1"})
    if not smb.startswith(b"\xfeSMB") or len(smb) < 64 + 8:
        return None
    command = int.from_bytes(smb[12:14], "little")
    size, security, dialect = struct.unpack_from("<HHH", smb, 64)
    if command != 0 or size != 65:
        return None
    facts = {"dialect": _DIALECTS.get(dialect, f"0x{dialect:04x}")}
    facts["signing"] = "required" if security & 2 else "enabled" if security & 1 else "off"
    return Match("smb", CONFIRMED, smb[:72], None, None, facts)


_RDP_PROTOCOLS = {0: "RDP security", 1: "TLS", 2: "CredSSP", 8: "CredSSP (early user auth)"}


def match_rdp(data: bytes) -> Match | None:
    """RDP: a TPKT (RFC 1006, version 3) X.224 Connection Confirm (code 0xD0, ITU-T X.224)
    with the RDP_NEG_RSP or RDP_NEG_FAILURE structure (MS-RDPBCGR 2.2.1.2)."""
    if len(data) < 11 or data[0] != 3 or data[1] != 0:
        return None
    length = int.from_bytes(data[2:4], "big")
    if data[5] & 0xF0 != 0xD0 or length > len(data):
        return None
    facts: dict[str, str] = {}
    if length >= 19 and data[11] == 2:
        selected = int.from_bytes(data[15:19], "little")
        facts["security"] = _RDP_PROTOCOLS.get(selected, str(selected))
    elif length >= 19 and data[11] == 3:
        facts["negotiation_failure"] = str(int.from_bytes(data[15:19], "little"))
    return Match("rdp", CONFIRMED, data[:length], None, None, facts)


def match_dns(data: bytes, query_id: int) -> Match | None:
    """DNS over TCP (RFC 1035 4.2.2, RFC 7766): a 2-byte length, then a response (QR set)
    to our query id; a TXT answer to ``version.bind`` CH is the server's version text."""
    if len(data) < 14:
        return None
    length = int.from_bytes(data[:2], "big")
    msg = data[2 : 2 + length]
    if len(msg) < 12 or length != len(data) - 2:
        return None
    ident, flags, qd, an = struct.unpack_from(">HHHH", msg)
    if ident != query_id or not flags & 0x8000:
        return None
    rcode = flags & 0xF
    names = {0: "NOERROR", 1: "FORMERR", 2: "SERVFAIL", 3: "NXDOMAIN", 4: "NOTIMP", 5: "REFUSED"}
    facts = {"rcode": names.get(rcode, str(rcode))}
    version = None
    if rcode == 0 and an:
        try:
            version = _dns_txt(msg, qd)
        except (IndexError, ValueError):
            version = None
        if version:
            facts["version.bind"] = version
    return Match("domain", CONFIRMED, data[:EVIDENCE_BYTES], None, version, facts)


def _dns_skip_name(msg: bytes, pos: int) -> int:
    for _ in range(128):
        n = msg[pos]
        if n == 0:
            return pos + 1
        if n & 0xC0 == 0xC0:
            return pos + 2
        pos += 1 + n
    raise ValueError("name too long")


def _dns_txt(msg: bytes, qdcount: int) -> str | None:
    pos = 12
    for _ in range(qdcount):
        pos = _dns_skip_name(msg, pos) + 4
    pos = _dns_skip_name(msg, pos)
    rtype, _, _, rdlen = struct.unpack_from(">HHIH", msg, pos)
    if rtype != 16:
        return None
    rdata = msg[pos + 10 : pos + 10 + rdlen]
    return _text(rdata[1 : 1 + rdata[0]]) if rdata else None


def match_tls_record(data: bytes) -> Match | None:
    """A TLS record header (RFC 8446 5.1): content type alert (21) or handshake (22),
    legacy version 3.x -- a TLS server answering a plaintext probe."""
    if len(data) >= 5 and data[0] in (0x15, 0x16) and data[1] == 3 and data[2] <= 4:
        return Match(None, LIKELY, data[:7], None, None, {}, refine="tls")
    return None


# Matchers that recognize an answer to any probe: greetings a server sends unasked,
# and replies that give away the protocol (an HTTP status line, a RESP error, a TLS alert).
BANNER_MATCHERS: tuple[Callable[[bytes], Match | None], ...] = (
    match_ssh,
    match_mysql,
    match_rfb,
    match_http,
    match_resp_error,
    match_tls_record,
)


def match_any(data: bytes) -> Match | None:
    """The first greeting-style matcher that recognizes ``data`` (``BANNER_MATCHERS``)."""
    if not data:
        return None
    for matcher in BANNER_MATCHERS:
        found = matcher(data)
        if found is not None:
            return found
    return None
