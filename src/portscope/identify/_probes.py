"""The probes: what each sends, how much it reads, and when an answer is complete.

Every probe opens its own TCP connection (a server may close after a foreign protocol's
bytes), sends at most a few hundred bytes written from the protocol's specification, reads
at most ``READ_LIMIT`` bytes, and closes. None authenticates or changes server state: no
credentials are sent, a PostgreSQL startup without a user is refused before authentication,
MQTT connects with a clean session and disconnects, SMTP/FTP/POP3/IMAP get EHLO/SYST/CAPA/
CAPABILITY and QUIT/LOGOUT. Waits are bounded by the probe's ``wait_s`` and the port's
budget (the caller's ``asyncio.timeout``).
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import ssl
import struct
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from portscope.identify import _match as m
from portscope.identify._match import Match
from portscope.identify._types import Confidence, TlsInfo

__all__ = ["PROBES", "Probe", "ProbeContext"]

READ_LIMIT = 16384
ANSWER = Callable[[bytes], bool]


@dataclass(frozen=True, slots=True)
class ProbeContext:
    """Where a probe goes and how long it waits for each answer.

    Attributes:
        address: the address to connect to.
        port: the TCP port.
        host: the name for HTTP ``Host`` and TLS SNI (the address when none was given).
        wait_s: seconds to wait for one answer (after sending).
        banner_wait_s: seconds the banner probe waits for a greeting.
    """

    address: str
    port: int
    host: str
    wait_s: float
    banner_wait_s: float


class _Conn:
    """One connection's stream pair, with bounded reads."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def read(
        self, wait_s: float, done: ANSWER | None = None, limit: int = READ_LIMIT
    ) -> bytes:
        """Bytes until ``done(data)``, EOF, ``limit`` bytes, or ``wait_s`` seconds."""
        data = b""
        try:
            async with asyncio.timeout(wait_s):
                while len(data) < limit:
                    chunk = await self.reader.read(limit - len(data))
                    if not chunk:
                        break
                    data += chunk
                    if done is not None and done(data):
                        break
        except (TimeoutError, OSError, ssl.SSLError):
            pass
        return data

    async def close(self) -> None:
        self.writer.close()
        try:
            async with asyncio.timeout(0.5):
                await self.writer.wait_closed()
        except (TimeoutError, OSError, ssl.SSLError):
            pass


async def _connect(ctx: ProbeContext, tls: ssl.SSLContext | None = None) -> _Conn:
    sni = ctx.host if tls is not None and ctx.host != ctx.address else None
    reader, writer = await asyncio.open_connection(
        ctx.address,
        ctx.port,
        ssl=tls,
        server_hostname=sni if tls is not None else None,
        ssl_handshake_timeout=ctx.wait_s if tls is not None else None,
        limit=READ_LIMIT,
    )
    return _Conn(reader, writer)


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one probe got: a match (or ``None``) and the raw answer for other matchers."""

    match: Match | None
    answer: bytes


def _line(data: bytes) -> bool:
    return b"\n" in data


def _crlf_end(data: bytes) -> bool:
    return data.endswith(b"\r\n")


# ---------------------------------------------------------------- banner and line protocols


async def probe_banner(ctx: ProbeContext) -> Outcome:
    """Wait for a greeting; for a mail or file-transfer greeting, ask one read-only command
    that confirms the protocol (EHLO or SYST, CAPA, CAPABILITY), then say goodbye."""
    conn = await _connect(ctx)
    try:
        greeting = await conn.read(ctx.banner_wait_s, _greeting_done)
        if not greeting:
            return Outcome(None, b"")
        if greeting.startswith(b"220"):
            return Outcome(await _smtp_or_ftp(conn, ctx, greeting), greeting)
        if greeting.startswith(b"+OK"):
            await conn.send(b"CAPA\r\n")
            capa = await conn.read(ctx.wait_s, lambda d: d.endswith(b"\r\n.\r\n") or d[:1] == b"-")
            await conn.send(b"QUIT\r\n")
            return Outcome(m.match_pop3(greeting, capa), greeting)
        if greeting.startswith(b"* "):
            await conn.send(b"ps1 CAPABILITY\r\n")
            caps = await conn.read(ctx.wait_s, lambda d: b"ps1 " in d and d.endswith(b"\r\n"))
            await conn.send(b"ps2 LOGOUT\r\n")
            return Outcome(m.match_imap(greeting, caps), greeting)
        return Outcome(m.match_any(greeting), greeting)
    finally:
        await conn.close()


def _greeting_done(data: bytes) -> bool:
    if data[:3].isdigit() and data[3:4] == b"-":  # multi-line reply: wait for the last line
        return b"\r\n" + data[:3] + b" " in data and data.endswith(b"\n")
    if data.startswith((b"SSH-", b"220", b"+OK", b"* ", b"RFB")):
        return data.endswith(b"\n")
    if len(data) >= 4:  # a length-prefixed binary greeting (MySQL)
        return len(data) >= 4 + int.from_bytes(data[:3], "little")
    return False


def _reply_done(data: bytes) -> bool:
    """A complete SMTP/FTP reply: the last line is ``NNN text`` (RFC 5321 4.2.1)."""
    lines = data.split(b"\r\n")
    return len(lines) >= 2 and lines[-1] == b"" and lines[-2][3:4] == b" "


async def _smtp_or_ftp(conn: _Conn, ctx: ProbeContext, greeting: bytes) -> Match | None:
    text = greeting.upper()
    order = ("ftp", "smtp") if b"FTP" in text and b"SMTP" not in text else ("smtp", "ftp")
    found = None
    for kind in order:
        if kind == "smtp":
            await conn.send(b"EHLO portscope.invalid\r\n")
            reply = await conn.read(ctx.wait_s, _reply_done)
            found = m.match_smtp(greeting, reply)
        else:
            await conn.send(b"SYST\r\n")
            reply = await conn.read(ctx.wait_s, _reply_done)
            found = m.match_ftp(greeting, reply)
        if found is not None and found.confidence is Confidence.CONFIRMED:
            break
    await conn.send(b"QUIT\r\n")
    return found


# ---------------------------------------------------------------- HTTP and TLS


def _http_request(ctx: ProbeContext, path: str = "/") -> bytes:
    host = ctx.host if ctx.host != ctx.address else ctx.address
    if ":" in host:
        host = f"[{host}]"
    return (
        f"GET {path} HTTP/1.1\r\nHost: {host}:{ctx.port}\r\nUser-Agent: portscope\r\n"
        "Accept: */*\r\nConnection: close\r\n\r\n"
    ).encode()


async def _exchange(
    ctx: ProbeContext, data: bytes, done: ANSWER | None, tls: ssl.SSLContext | None = None
) -> bytes:
    conn = await _connect(ctx, tls)
    try:
        await conn.send(data)
        return await conn.read(ctx.wait_s, done)
    finally:
        await conn.close()


async def probe_http(ctx: ProbeContext) -> Outcome:
    """``GET /`` (RFC 9110/9112), then ``GET /metrics`` when ``/`` named no application."""
    answer = await _exchange(ctx, _http_request(ctx), m.http_complete)
    found = m.match_http(answer) or m.match_any(answer)
    if found is not None and found.service == "http" and found.refine is None:
        metrics = await _exchange(ctx, _http_request(ctx, "/metrics"), m.http_complete)
        extra = m.match_metrics(metrics)
        if extra is not None:
            found = Match(
                "http",
                Confidence.CONFIRMED,
                found.matched,
                found.product or extra.product,
                found.version if found.product else extra.version,
                found.facts | extra.facts,
            )
    return Outcome(found, answer)


def _tls_context(alpn: list[str]) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # identify, not trust: the certificate is reported
    context.minimum_version = ssl.TLSVersion.MINIMUM_SUPPORTED
    context.set_ciphers("DEFAULT:@SECLEVEL=0")
    context.set_alpn_protocols(alpn)
    return context


def _tls_info(conn: _Conn) -> TlsInfo:
    from portscope.identify._x509 import decode_certificate

    obj = conn.writer.get_extra_info("ssl_object")
    version = obj.version() or "unknown"
    cipher = obj.cipher()
    info = TlsInfo(version, cipher[0] if cipher else None, obj.selected_alpn_protocol())
    der = obj.getpeercert(binary_form=True)
    if der:
        try:
            cert = decode_certificate(der)
        except (ValueError, IndexError, UnicodeDecodeError):
            return info
        return TlsInfo(
            info.version, info.cipher, info.alpn, cert.subject, cert.issuer, cert.sans,
            cert.not_before, cert.not_after,
        )  # fmt: skip
    return info


async def probe_tls(ctx: ProbeContext) -> Outcome:
    """A TLS handshake (stdlib ``ssl``, ALPN h2 and http/1.1 offered, RFC 7301): version,
    cipher, ALPN, certificate; then ``GET /`` inside (over HTTP/1.1: a second handshake
    when the server chose h2). What answers inside is matched like a plaintext answer."""
    conn = await _connect(ctx, _tls_context(["h2", "http/1.1"]))
    try:
        tls = _tls_info(conn)
        if tls.alpn != "h2":
            await conn.send(_http_request(ctx))
            answer = await conn.read(ctx.wait_s, m.http_complete)
    finally:
        await conn.close()
    if tls.alpn == "h2":
        answer = await _exchange(
            ctx, _http_request(ctx), m.http_complete, _tls_context(["http/1.1"])
        )
    inner = m.match_http(answer) or m.match_any(answer)
    if inner is None or inner.service is None:
        return Outcome(Match(None, Confidence.CONFIRMED, answer[:64], tls=tls), answer)
    found = dataclasses.replace(inner, tls=tls, refine=None)
    return Outcome(found, answer)


# ---------------------------------------------------------------- data stores and brokers


def _resp_done(data: bytes) -> bool:
    if data.startswith(b"$"):
        head, sep, rest = data.partition(b"\r\n")
        try:
            return bool(sep) and len(rest) >= int(head[1:]) + 2
        except ValueError:
            return True
    return data.endswith(b"\r\n")


async def probe_redis(ctx: ProbeContext) -> Outcome:
    """RESP ``PING``; when it answers ``+PONG``, ``INFO server`` (both read-only)."""
    conn = await _connect(ctx)
    try:
        await conn.send(b"*1\r\n$4\r\nPING\r\n")
        ping = await conn.read(ctx.wait_s, _crlf_end)
        info = None
        if ping.startswith(b"+PONG"):
            await conn.send(b"*2\r\n$4\r\nINFO\r\n$6\r\nserver\r\n")
            info = await conn.read(ctx.wait_s, _resp_done)
    finally:
        await conn.close()
    return Outcome(m.match_redis(ping, info) or m.match_any(ping), ping)


async def probe_memcached(ctx: ProbeContext) -> Outcome:
    """memcached's text protocol ``version``."""
    answer = await _exchange(ctx, b"version\r\n", _crlf_end)
    return Outcome(m.match_memcached(answer) or m.match_any(answer), answer)


def _pg_done(data: bytes) -> bool:
    return len(data) >= 5 and len(data) >= 1 + int.from_bytes(data[1:5], "big")


async def probe_postgresql(ctx: ProbeContext) -> Outcome:
    """SSLRequest (code 80877103), then a StartupMessage (protocol 3.0) without a user,
    which the server refuses before authentication (PostgreSQL protocol docs 55.2.1)."""
    params = b"database\0portscope\0application_name\0portscope\0\0"
    startup = struct.pack("!ii", 8 + len(params), 196608) + params
    conn = await _connect(ctx)
    try:
        await conn.send(struct.pack("!ii", 8, 80877103))
        ssl_reply = await conn.read(ctx.wait_s, lambda d: d[:1] != b"E" or _pg_done(d))
        reply = None
        if ssl_reply == b"N":
            await conn.send(startup)
            reply = await conn.read(ctx.wait_s, _pg_done)
    finally:
        await conn.close()
    if ssl_reply == b"S":  # TLS is offered; plaintext startup on a new connection
        reply = await _exchange(ctx, startup, _pg_done)
    return Outcome(m.match_postgresql(ssl_reply, reply) or m.match_any(ssl_reply), ssl_reply)


def _bson(fields: list[tuple[str, int | str]]) -> bytes:
    body = b""
    for name, value in fields:
        if isinstance(value, int):
            body += b"\x10" + name.encode() + b"\0" + struct.pack("<i", value)
        else:
            raw = value.encode() + b"\0"
            body += b"\x02" + name.encode() + b"\0" + struct.pack("<i", len(raw)) + raw
    return struct.pack("<i", len(body) + 5) + body + b"\0"


def _op_msg(request_id: int, doc: bytes) -> bytes:
    body = struct.pack("<I", 0) + b"\0" + doc
    return struct.pack("<iiii", 16 + len(body), request_id, 0, 2013) + body


def _mongo_done(data: bytes) -> bool:
    try:
        return len(m.mongodb_replies(data)) >= 2
    except (ValueError, IndexError, struct.error):
        return True


async def probe_mongodb(ctx: ProbeContext) -> Outcome:
    """OP_MSG ``hello`` and ``buildInfo`` on the admin database (MongoDB wire protocol);
    both commands are allowed without authentication."""
    hello = _op_msg(1, _bson([("hello", 1), ("$db", "admin")]))
    build = _op_msg(2, _bson([("buildInfo", 1), ("$db", "admin")]))
    answer = await _exchange(ctx, hello + build, _mongo_done)
    return Outcome(m.match_mongodb(answer) or m.match_any(answer), answer)


KAFKA_CORRELATION = 0x70733137


def _kafka_done(data: bytes) -> bool:
    return len(data) >= 4 and len(data) >= 4 + int.from_bytes(data[:4], "big")


async def probe_kafka(ctx: ProbeContext) -> Outcome:
    """Kafka ApiVersions (key 18) version 0, request header v1 (Kafka protocol guide)."""
    client = b"portscope"
    body = struct.pack(">hhih", 18, 0, KAFKA_CORRELATION, len(client)) + client
    answer = await _exchange(ctx, struct.pack(">i", len(body)) + body, _kafka_done)
    return Outcome(m.match_kafka(answer, KAFKA_CORRELATION) or m.match_any(answer), answer)


def _amqp_done(data: bytes) -> bool:
    if data.startswith(b"AMQP"):
        return len(data) >= 8
    return len(data) >= 8 and len(data) >= 8 + int.from_bytes(data[3:7], "big")


async def probe_amqp(ctx: ProbeContext) -> Outcome:
    """The AMQP 0-9-1 protocol header ``AMQP\\0\\0\\x09\\x01`` (spec 4.2.2); the server
    answers Connection.Start, and we close before Start-Ok (no login)."""
    answer = await _exchange(ctx, b"AMQP\x00\x00\x09\x01", _amqp_done)
    return Outcome(m.match_amqp(answer) or m.match_any(answer), answer)


def _mqtt_string(text: str) -> bytes:
    raw = text.encode()
    return struct.pack(">H", len(raw)) + raw


async def probe_mqtt(ctx: ProbeContext) -> Outcome:
    """MQTT 3.1.1 CONNECT (clean session, no user name); when accepted, SUBSCRIBE to the
    retained ``$SYS/broker/version`` (QoS 0), then DISCONNECT (MQTT 3.1.1 sections 3.1,
    3.8, 3.14). A clean session leaves nothing behind on the broker."""
    client = _mqtt_string(f"portscope-{os.getpid()}")
    variable = _mqtt_string("MQTT") + bytes([4, 0x02]) + struct.pack(">H", 30)
    body = variable + client
    connect = bytes([0x10, len(body)]) + body
    conn = await _connect(ctx)
    try:
        await conn.send(connect)
        answer = await conn.read(ctx.wait_s, lambda d: len(d) >= 4)
        if answer[:4] == b"\x20\x02\x00\x00":
            topic = _mqtt_string("$SYS/broker/version")
            sub = struct.pack(">H", 1) + topic + b"\x00"
            await conn.send(bytes([0x82, len(sub)]) + sub)
            answer += await conn.read(
                min(ctx.wait_s, 1.0),
                lambda d: any(p[0] >> 4 == 3 for p in m.mqtt_packets(answer + d)),
            )
            await conn.send(b"\xe0\x00")
    finally:
        await conn.close()
    return Outcome(m.match_mqtt(answer) or m.match_any(answer), answer)


def _ber(tag: int, content: bytes) -> bytes:
    n = len(content)
    if n < 0x80:
        return bytes([tag, n]) + content
    raw = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([tag, 0x80 | len(raw)]) + raw + content


def _ldap_done(data: bytes) -> bool:
    """SearchResultDone (resultCode, matchedDN, diagnosticMessage) ends the answer."""
    return b"\x65\x07\x0a\x01" in data or (data[:1] == b"\x30" and b"\x78" in data[:8])


async def probe_ldap(ctx: ProbeContext) -> Outcome:
    """An anonymous LDAPv3 search of the rootDSE (RFC 4511 4.5.1, RFC 4512 5.1): base "",
    scope base, filter ``(objectClass=*)``; no bind is sent."""
    attrs = b"".join(
        _ber(0x04, a)
        for a in (b"vendorName", b"vendorVersion", b"supportedLDAPVersion", b"namingContexts")
    )
    search = _ber(
        0x63,
        _ber(0x04, b"")
        + b"\x0a\x01\x00\x0a\x01\x00\x02\x01\x00\x02\x01\x00\x01\x01\x00"
        + _ber(0x87, b"objectClass")
        + _ber(0x30, attrs),
    )
    answer = await _exchange(ctx, _ber(0x30, b"\x02\x01\x01" + search), _ldap_done)
    return Outcome(m.match_ldap(answer) or m.match_any(answer), answer)


def _netbios_done(data: bytes) -> bool:
    return len(data) >= 4 and len(data) >= 4 + int.from_bytes(data[1:4], "big")


async def probe_smb(ctx: ProbeContext) -> Outcome:
    """An SMB2 NEGOTIATE request offering dialects 2.0.2 to 3.0.2 (MS-SMB2 2.2.3) in a
    NetBIOS session message (RFC 1002); no session setup follows."""
    header = struct.pack(
        "<4sHHIHHIIQIIQ16s", b"\xfeSMB", 64, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, b"\0" * 16
    )
    dialects = (0x0202, 0x0210, 0x0300, 0x0302)
    negotiate = struct.pack("<HHHHI16sQ", 36, len(dialects), 1, 0, 0, os.urandom(16), 0)
    negotiate += struct.pack(f"<{len(dialects)}H", *dialects)
    smb = header + negotiate
    answer = await _exchange(ctx, b"\0" + len(smb).to_bytes(3, "big") + smb, _netbios_done)
    return Outcome(m.match_smb(answer) or m.match_any(answer), answer)


def _tpkt_done(data: bytes) -> bool:
    return len(data) >= 4 and len(data) >= int.from_bytes(data[2:4], "big")


async def probe_rdp(ctx: ProbeContext) -> Outcome:
    """An X.224 Connection Request in TPKT with RDP_NEG_REQ asking for TLS or CredSSP
    (MS-RDPBCGR 2.2.1.1); the security handshake that would follow is not started."""
    neg = struct.pack("<BBHI", 1, 0, 8, 0x3)
    tpdu = bytes([6 + len(neg), 0xE0, 0, 0, 0, 0, 0]) + neg
    answer = await _exchange(ctx, struct.pack(">BBH", 3, 0, 4 + len(tpdu)) + tpdu, _tpkt_done)
    return Outcome(m.match_rdp(answer) or m.match_any(answer), answer)


DNS_QUERY_ID = 0x7073


def _dns_done(data: bytes) -> bool:
    return len(data) >= 2 and len(data) >= 2 + int.from_bytes(data[:2], "big")


async def probe_dns(ctx: ProbeContext) -> Outcome:
    """A ``version.bind`` CH TXT query over TCP (RFC 1035 4.2.2; no recursion asked): the
    server's own name, never a name on the network."""
    query = struct.pack(">HHHHHH", DNS_QUERY_ID, 0, 1, 0, 0, 0)
    query += b"\x07version\x04bind\x00" + struct.pack(">HH", 16, 3)
    answer = await _exchange(ctx, struct.pack(">H", len(query)) + query, _dns_done)
    return Outcome(m.match_dns(answer, DNS_QUERY_ID) or m.match_any(answer), answer)


@dataclass(frozen=True, slots=True)
class Probe:
    """One probe: its name, the ports where its protocol is usual, and how to run it.

    Attributes:
        name: the probe's name (shown in evidence).
        ports: the ports its protocol is registered on or usually found at (IANA).
        services: registry service names that point to it.
        run: the coroutine function that sends and matches.
    """

    name: str
    ports: frozenset[int]
    services: frozenset[str]
    run: Callable[[ProbeContext], Awaitable[Outcome]]


def _probe(
    name: str, ports: tuple[int, ...], services: tuple[str, ...], run: Callable[..., Any]
) -> Probe:
    return Probe(name, frozenset(ports), frozenset(services), run)


# The fixed order after the port's likely probes: greetings first (free when a server
# speaks first), then the most common protocols, then the rarer ones; TLS last, as a
# plaintext server may wait silently for the rest of a ClientHello while a TLS server
# answers any plaintext probe at once (an alert, or nginx's 400) and is sent to it.
PROBES: tuple[Probe, ...] = (
    _probe("banner", (21, 22, 25, 110, 143, 587, 2222, 3306, 5900, 5901),
           ("ftp", "ssh", "smtp", "submission", "pop3", "imap", "mysql", "vnc", "rfb"),
           probe_banner),
    _probe("http", (80, 591, 3000, 5000, 8000, 8008, 8080, 8081, 8888, 9090, 9100, 9200),
           ("http", "http-alt", "http-proxy", "www", "www-http", "elasticsearch",
            "prometheus", "websm"), probe_http),
    _probe("redis", (6379, 6380, 26379), ("redis",), probe_redis),
    _probe("memcached", (11211,), ("memcache", "memcached"), probe_memcached),
    _probe("postgresql", (5432, 5433), ("postgresql", "postgres"), probe_postgresql),
    _probe("mongodb", (27017, 27018, 27019), ("mongodb", "mongod"), probe_mongodb),
    _probe("mqtt", (1883,), ("mqtt",), probe_mqtt),
    _probe("amqp", (5672,), ("amqp",), probe_amqp),
    _probe("kafka", (9092,), ("kafka", "XmlIpcRegSvc"), probe_kafka),
    _probe("ldap", (389, 3268), ("ldap",), probe_ldap),
    _probe("smb", (139, 445), ("microsoft-ds", "netbios-ssn"), probe_smb),
    _probe("rdp", (3389,), ("ms-wbt-server", "rdp"), probe_rdp),
    _probe("dns", (53,), ("domain", "dns"), probe_dns),
    _probe("tls", (443, 465, 636, 853, 989, 990, 992, 993, 995, 5986, 6443, 8443, 8883, 9443),
           ("https", "ssl", "imaps", "pop3s", "ldaps", "ftps", "https-alt", "submissions",
            "secure-mqtt"), probe_tls),
)  # fmt: skip
