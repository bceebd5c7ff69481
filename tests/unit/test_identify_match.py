"""The identification matchers and renderers on captured and spec-built answers (no I/O).

Captured answers (tests/fixtures/identify/) come from the real servers of
tests/lab/real_servers.py; the others are built here from the protocols' specifications.
"""

from __future__ import annotations

import base64
import io
import json
import struct
from datetime import UTC, datetime
from pathlib import Path

import pytest

from portscope.identify import Confidence, Evidence, Identity, TlsInfo, _match as m, probe_order
from portscope.identify._x509 import decode_certificate

FIX = Path(__file__).resolve().parents[1] / "fixtures" / "identify"
CONFIRMED = Confidence.CONFIRMED


def fixture(name: str) -> bytes:
    return (FIX / name).read_bytes()


def test_ssh_identification_string() -> None:
    found = m.match_ssh(fixture("openssh_banner.bin"))
    assert found is not None
    assert (found.service, found.product, found.version) == ("ssh", "OpenSSH", "9.2p1")
    assert found.facts == {"protocol": "2.0", "comment": "Debian-2+deb12u10"}
    # RFC 4253 4.2: other lines may come before the identification line
    late = m.match_ssh(b"hello there\r\nSSH-2.0-dropbear_2022.83\r\n")
    assert late is not None and (late.product, late.version) == ("dropbear", "2022.83")
    assert m.match_ssh(b"SSH is great\r\n") is None


def test_mariadb_greeting_and_mysql_error_packet() -> None:
    found = m.match_mysql(fixture("mariadb_greeting.bin"))
    assert found is not None and found.confidence is CONFIRMED
    assert (found.product, found.version) == ("MariaDB", "10.11.19")
    assert found.facts["build"] == "0+deb12u1"
    mysql = b"\x0a8.0.36\x00" + b"\x01\x00\x00\x00" + b"abcdefgh" + b"\x00" + b"\x00" * 20
    found = m.match_mysql(len(mysql).to_bytes(3, "little") + b"\x00" + mysql)
    assert found is not None and (found.product, found.version) == ("MySQL", "8.0.36")
    err = b"\xff\x6a\x04Host '10.0.0.1' is not allowed to connect to this MariaDB server"
    found = m.match_mysql(len(err).to_bytes(3, "little") + b"\x00" + err)
    assert found is not None and found.product == "MariaDB"
    assert found.facts["error"].startswith("1130 Host")
    assert m.match_mysql(b"HTTP/1.1 200 OK\r\n") is None


def test_http_server_title_and_nginx_tls_hint() -> None:
    found = m.match_http(fixture("nginx_http.bin"))
    assert found is not None and found.confidence is CONFIRMED
    assert (found.product, found.version) == ("nginx", "1.22.1")
    assert found.facts["title"] == "portscope identify test"
    assert found.refine is None
    plain = (
        b"HTTP/1.1 400 Bad Request\r\nServer: nginx\r\nContent-Type: text/html\r\n\r\n"
        b"<html><head><title>400 The plain HTTP request was sent to HTTPS port</title>"
        b"</head><body>The plain HTTP request was sent to HTTPS port</body></html>"
    )
    hinted = m.match_http(plain)
    assert hinted is not None and hinted.refine == "tls"
    assert m.http_complete(fixture("nginx_http.bin"))


def test_elasticsearch_and_opensearch_root() -> None:
    def es(doc: dict[str, object]) -> bytes:
        body = json.dumps(doc).encode()
        head = f"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {len(body)}"
        return head.encode() + b"\r\n\r\n" + body

    found = m.match_http(
        es({"name": "n1", "cluster_name": "c1", "version": {"number": "8.11.1"},
            "tagline": "You Know, for Search"})
    )  # fmt: skip
    assert found is not None
    assert (found.service, found.product, found.version) == ("elasticsearch", "Elasticsearch",
                                                             "8.11.1")  # fmt: skip
    assert found.facts["cluster_name"] == "c1"
    found = m.match_http(es({"version": {"distribution": "opensearch", "number": "2.11.0"}}))
    assert found is not None and (found.service, found.version) == ("opensearch", "2.11.0")


def test_prometheus_metrics() -> None:
    body = (
        b"# HELP node_exporter_build_info A metric.\n# TYPE node_exporter_build_info gauge\n"
        b'node_exporter_build_info{branch="",goversion="go1.19",version="1.5.0"} 1\n'
        b"# TYPE up counter\nup 1\n"
    )
    data = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\n\r\n" + body
    found = m.match_metrics(data)
    assert found is not None
    assert (found.product, found.version) == ("node_exporter", "1.5.0")
    assert found.facts["metrics"].startswith("2 metric families")


def test_redis_ping_info_and_auth_states() -> None:
    found = m.match_redis(b"+PONG\r\n", fixture("redis_info.bin"))
    assert found is not None and found.confidence is CONFIRMED
    assert (found.product, found.version) == ("Redis", "7.0.15")
    assert found.facts["auth"].startswith("none")
    noauth = m.match_redis(b"-NOAUTH Authentication required.\r\n")
    assert noauth is not None and noauth.facts["auth"] == "required"
    valkey = m.match_redis(
        b"+PONG\r\n", b"$40\r\n# Server\r\nserver_name:valkey\r\nvalkey_version:8.0.1\r\n"
    )
    assert valkey is not None and (valkey.product, valkey.version) == ("Valkey", "8.0.1")
    assert m.match_redis(b"HTTP/1.1 400 Bad Request\r\n") is None
    resp = m.match_resp_error(b"-ERR unknown command 'GET', with args beginning with: \r\n")
    assert resp is not None and resp.confidence is Confidence.LIKELY and resp.refine == "redis"


def test_memcached_postgresql() -> None:
    found = m.match_memcached(b"VERSION 1.6.18\r\n")
    assert found is not None and found.version == "1.6.18"
    assert m.match_memcached(b"ERROR\r\n") is None
    pg = m.match_postgresql(b"N", fixture("postgresql_error.bin"))
    assert pg is not None and pg.confidence is CONFIRMED and pg.product == "PostgreSQL"
    assert pg.facts["ssl"] == "not offered" and pg.facts["sqlstate"] == "28000"
    one_byte = m.match_postgresql(b"S", None)
    assert one_byte is not None and one_byte.confidence is Confidence.LIKELY
    assert m.match_postgresql(b"X", None) is None


def _bson(fields: dict[str, object]) -> bytes:
    body = b""
    for k, v in fields.items():
        if isinstance(v, bool):
            body += b"\x08" + k.encode() + b"\0" + (b"\x01" if v else b"\x00")
        elif isinstance(v, int):
            body += b"\x10" + k.encode() + b"\0" + struct.pack("<i", v)
        elif isinstance(v, float):
            body += b"\x01" + k.encode() + b"\0" + struct.pack("<d", v)
        else:
            raw = str(v).encode() + b"\0"
            body += b"\x02" + k.encode() + b"\0" + struct.pack("<i", len(raw)) + raw
    return struct.pack("<i", len(body) + 5) + body + b"\0"


def _op_msg(response_to: int, doc: bytes) -> bytes:
    body = b"\0\0\0\0\0" + doc
    return struct.pack("<iiii", 16 + len(body), 99, response_to, 2013) + body


def test_mongodb_hello_and_buildinfo() -> None:
    hello = _bson({"isWritablePrimary": True, "maxWireVersion": 21, "ok": 1.0})
    build = _bson({"version": "7.0.2", "ok": 1.0})
    found = m.match_mongodb(_op_msg(1, hello) + _op_msg(2, build))
    assert found is not None
    assert (found.service, found.product, found.version) == ("mongodb", "MongoDB", "7.0.2")
    assert found.facts["wire_version"] == "21"
    assert m.match_mongodb(b"\x00" * 20) is None


def test_kafka_amqp_mqtt() -> None:
    corr = 0x70733137
    body = struct.pack(">ihi", corr, 0, 2) + struct.pack(">hhhhhh", 0, 0, 9, 18, 0, 3)
    found = m.match_kafka(struct.pack(">i", len(body)) + body, corr)
    assert found is not None and found.facts["api_keys"] == "2"
    assert m.match_kafka(struct.pack(">i", len(body)) + body, corr + 1) is None

    def longstr(text: str) -> bytes:
        return struct.pack(">I", len(text)) + text.encode()

    table = b"".join(
        bytes([len(k)]) + k.encode() + b"S" + longstr(v)
        for k, v in (("product", "RabbitMQ"), ("version", "3.12.1"), ("platform", "Erlang"))
    )
    payload = b"\x00\x0a\x00\x0a\x00\x09" + struct.pack(">I", len(table)) + table
    payload += longstr("PLAIN AMQPLAIN") + longstr("en_US")
    frame = b"\x01\x00\x00" + struct.pack(">I", len(payload)) + payload + b"\xce"
    found = m.match_amqp(frame)
    assert found is not None and (found.product, found.version) == ("RabbitMQ", "3.12.1")
    assert found.facts["protocol"] == "0-9"
    found = m.match_mqtt(fixture("mosquitto_connack_version.bin"))
    assert found is not None and (found.product, found.version) == ("mosquitto", "2.0.11")
    refused = m.match_mqtt(b"\x20\x02\x00\x05")
    assert refused is not None and refused.facts["connack"] == "refused: not authorized"


def _ber(tag: int, content: bytes) -> bytes:
    return bytes([tag, len(content)]) + content


def test_ldap_rootdse() -> None:
    def attr(name: bytes, *values: bytes) -> bytes:
        return _ber(0x30, _ber(0x04, name) + _ber(0x31, b"".join(_ber(0x04, v) for v in values)))

    attrs = attr(b"vendorName", b"OpenLDAP") + attr(b"supportedLDAPVersion", b"3")
    entry = _ber(0x64, _ber(0x04, b"") + _ber(0x30, attrs))
    done = _ber(0x30, b"\x02\x01\x01" + _ber(0x65, b"\x0a\x01\x00\x04\x00\x04\x00"))
    found = m.match_ldap(_ber(0x30, b"\x02\x01\x01" + entry) + done)
    assert found is not None and found.product == "OpenLDAP"
    assert found.facts["ldap_versions"] == "3"
    assert m.match_ldap(b"\x30\x03\x02\x01\x02") is None


def test_smb_rdp_dns_tls_rfb() -> None:
    header = struct.pack(
        "<4sHHIHHIIQIIQ16s", b"\xfeSMB", 64, 0, 0, 0, 1, 1, 0, 0, 0, 0, 0, b"\0" * 16
    )
    neg = struct.pack("<HHHH", 65, 3, 0x0302, 0) + b"\0" * 56
    found = m.match_smb(b"\0" + len(header + neg).to_bytes(3, "big") + header + neg)
    assert found is not None and found.facts == {"dialect": "3.0.2", "signing": "required"}
    cc = bytes([3, 0, 0, 19, 14, 0xD0, 0, 0, 0x12, 0x34, 0]) + struct.pack("<BBHI", 2, 0, 8, 1)
    found = m.match_rdp(cc)
    assert found is not None and found.facts["security"] == "TLS"
    txt = b"9.18.19"
    msg = struct.pack(">HHHHHH", 0x7073, 0x8400, 1, 1, 0, 0) + b"\x07version\x04bind\x00"
    msg += struct.pack(">HH", 16, 3) + b"\xc0\x0c" + struct.pack(">HHIH", 16, 3, 0, len(txt) + 1)
    msg += bytes([len(txt)]) + txt
    found = m.match_dns(struct.pack(">H", len(msg)) + msg, 0x7073)
    assert found is not None and found.version == "9.18.19" and found.facts["rcode"] == "NOERROR"
    assert m.match_dns(struct.pack(">H", len(msg)) + msg, 0x1111) is None
    alert = m.match_tls_record(b"\x15\x03\x03\x00\x02\x02\x46")
    assert alert is not None and alert.refine == "tls" and alert.service is None
    vnc = m.match_rfb(b"RFB 003.008\n")
    assert vnc is not None and vnc.facts["protocol"] == "3.8"


def test_line_protocols_need_their_confirmation() -> None:
    ehlo = b"250-mx.test\r\n250-SIZE 1000\r\n250 STARTTLS\r\n"
    smtp = m.match_smtp(b"220 mx.test ESMTP Postfix\r\n", ehlo)
    assert smtp is not None and smtp.confidence is CONFIRMED and smtp.product == "Postfix"
    assert smtp.facts["extensions"] == "SIZE STARTTLS"
    guessy = m.match_smtp(b"220 mx.test ESMTP\r\n", b"500 what\r\n")
    assert guessy is not None and guessy.confidence is Confidence.LIKELY
    ftp = m.match_ftp(b"220 (vsFTPd 3.0.3)\r\n", b"215 UNIX Type: L8\r\n")
    assert ftp is not None and (ftp.product, ftp.version) == ("vsftpd", "3.0.3")
    pop = m.match_pop3(b"+OK Dovecot ready.\r\n", b"+OK\r\nUSER\r\n.\r\n")
    assert pop is not None and pop.confidence is CONFIRMED and pop.product == "Dovecot"
    imap = m.match_imap(b"* OK [CAPABILITY IMAP4rev1 IDLE] Dovecot ready.\r\n", None)
    assert imap is not None and imap.confidence is CONFIRMED


def test_certificate_fields() -> None:
    cert = decode_certificate(fixture("selfsigned_cert.der"))
    assert cert.subject == "CN=portscope.test,O=portscope tests"
    assert cert.issuer == cert.subject
    assert cert.sans == ("DNS:portscope.test", "IP:127.0.0.1")
    assert cert.not_before is not None and cert.not_after is not None
    assert (cert.not_after - cert.not_before).days == 30
    with pytest.raises(ValueError):
        decode_certificate(b"\x30\x03\x02\x01")


def test_probe_order_puts_the_port_first() -> None:
    assert probe_order(6379, "redis")[:2] == ["redis", "banner"]
    assert probe_order(22, "ssh")[0] == "banner"
    assert probe_order(443, "https")[:2] == ["tls", "banner"]
    assert probe_order(47001)[0] == "banner"
    assert probe_order(47001)[-1] == "tls"  # last: a plaintext server may wait silently
    assert sorted(probe_order(47001)) == sorted(probe_order(80, "http"))


def _identity(banner: bytes) -> Identity:
    return Identity(
        "127.0.0.1", 2222, "ssh", CONFIRMED, "Evil\x1b[31m", "1.0\u202e",
        facts={"comment": "x\x1b]0;owned\x07"}, evidence=(Evidence("banner", banner),),
        tls=TlsInfo("TLSv1.3", None, "h2", "CN=a", "CN=a", ("DNS:a",),
                    datetime(2026, 1, 1, tzinfo=UTC), datetime(2027, 1, 1, tzinfo=UTC)),
    )  # fmt: skip


def test_json_keeps_exact_bytes_and_text_escapes() -> None:
    from rich.console import Console

    from portscope.render.identify import identity_dict, render_identities

    evil = b"SSH-2.0-Evil\x1b[2J\xff\xfe\r\n"
    ident = _identity(evil)
    doc = identity_dict(ident)
    assert base64.b64decode(doc["evidence"][0]["data_base64"]) == evil
    assert doc["product"] == "Evil\x1b[31m"  # JSON: exact
    assert doc["label"] == "ssl/ssh" and doc["tls"]["self_signed"] is True
    json.dumps(doc)
    buf = io.StringIO()
    con = Console(file=buf, width=120, color_system=None)
    for item in render_identities([ident]):
        con.print(item.to_rich() if hasattr(item, "to_rich") else item)
    text = buf.getvalue()
    assert "\x1b" not in text and "\u202e" not in text and "\x07" not in text
    assert "\\x1b" in text


def test_guess_is_never_shown_as_identified() -> None:
    from portscope.render.identify import identity_details

    guess = Identity("127.0.0.1", 6379, "redis", Confidence.GUESS, probes=("redis", "banner"))
    assert guess.label == "redis?" and not guess.identified
    assert identity_details(guess)[0].startswith("not identified")


def test_nmap_xml_service_element() -> None:
    from portscope.render.scan import _probed_service

    ident = Identity("127.0.0.1", 443, "http", CONFIRMED, "nginx", "1.22.1",
                     facts={"title": "t", "server": "nginx/1.22.1 (Debian\x01)"},
                     tls=TlsInfo("TLSv1.3"))  # fmt: skip
    xml = _probed_service(ident)
    assert xml == (
        '<service name="http" product="nginx" version="1.22.1" extrainfo="(Debian\\x01)" '
        'tunnel="ssl" method="probed" conf="10"/>'
    )


def test_udp_answers_dns_ntp_snmp() -> None:
    from portscope.identify import identify_udp_answer
    from portscope.scanner._payloads import dns_query, ntp_request

    query = dns_query()
    dns = identify_udp_answer("127.0.0.1", 53, query[:2] + b"\x81\x05" + query[4:])
    assert dns is not None and dns.service == "domain" and dns.proto == "udp"
    assert dns.facts["rcode"] == "REFUSED"
    assert ntp_request()[0] & 7 == 3
    reply = bytes([(0 << 6) | (4 << 3) | 4, 1, 6, 0xEC]) + bytes(8) + b"GPS\0" + bytes(32)
    ntp = identify_udp_answer("127.0.0.1", 123, reply)
    assert ntp is not None and ntp.facts == {"ntp_version": "4", "stratum": "1",
                                             "reference": "GPS"}  # fmt: skip
    from portscope.scanner._payloads import _ber, _ber_int, _ber_oid

    descr = b"Linux router 6.1"

    varbind = _ber(0x30, _ber_oid("1.3.6.1.2.1.1.1.0") + _ber(0x04, descr))
    pdu = _ber(0xA2, _ber_int(0x7073) + _ber_int(0) + _ber_int(0) + _ber(0x30, varbind))
    message = _ber(0x30, _ber_int(1) + _ber(0x04, b"public") + pdu)
    snmp = identify_udp_answer("127.0.0.1", 161, message)
    assert snmp is not None and snmp.facts == {"snmp_version": "2c", "sysDescr": "Linux router 6.1"}
    assert identify_udp_answer("127.0.0.1", 9, b"hello") is None
