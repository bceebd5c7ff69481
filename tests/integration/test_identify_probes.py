"""Each probe's request on the wire, against scripted responders on 127.0.0.1.

For protocols without a server package here (MongoDB, Kafka, AMQP, LDAP, SMB, RDP, DNS),
a responder parses our request as the protocol's specification frames it, records it, and
answers as a server would; the probe must then name the service. Also: budgets hold for
silent and closed ports, and a scan without -sV never loads the identification code.
"""

from __future__ import annotations

import asyncio
import socket
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator

import pytest
from tests.unit.test_identify_match import _ber, _bson, _op_msg

from portscope.identify import Confidence, identify_async

Reply = Callable[[bytes], bytes | None]


class Responder:
    """A TCP server on 127.0.0.1 answering each request with ``reply(request)``."""

    def __init__(self, reply: Reply, *, greeting: bytes = b"") -> None:
        self.reply = reply
        self.greeting = greeting
        self.requests: list[bytes] = []
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = int(self.sock.getsockname()[1])
        self.stop = False
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        self.sock.settimeout(0.2)
        while not self.stop:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            with conn:
                conn.settimeout(0.3)
                if self.greeting:
                    conn.sendall(self.greeting)
                data = b""
                for _ in range(20):  # bounded: at most 20 reads per connection
                    try:
                        chunk = conn.recv(4096)
                    except OSError:
                        break
                    if not chunk:
                        break
                    data += chunk
                    answer = self.reply(data)
                    if answer is not None:
                        self.requests.append(data)
                        conn.sendall(answer)
                        break

    def close(self) -> None:
        self.stop = True
        self.thread.join(2)
        self.sock.close()


@pytest.fixture
def responder() -> Iterator[Callable[..., Responder]]:
    made: list[Responder] = []

    def make(reply: Reply, **kw: bytes) -> Responder:
        made.append(Responder(reply, **kw))
        return made[-1]

    yield make
    for r in made:
        r.close()


def _identify(port: int, probes: list[str], timeout_s: float = 5.0):  # type: ignore[no-untyped-def]
    return asyncio.run(
        identify_async("127.0.0.1", port, probes=probes, timeout_s=timeout_s, wait_s=1.0)
    )


def test_mongodb_hello(responder: Callable[..., Responder]) -> None:
    def reply(data: bytes) -> bytes | None:
        if len(data) < 16 or len(data) < struct.unpack_from("<i", data)[0]:
            return None
        _, request_id, _, opcode = struct.unpack_from("<iiii", data)
        assert opcode == 2013 and b"hello\x00" in data and b"$db\x00" in data
        hello = _bson({"isWritablePrimary": True, "maxWireVersion": 17, "ok": 1.0})
        return _op_msg(request_id, hello) + _op_msg(2, _bson({"version": "6.0.4", "ok": 1.0}))

    server = responder(reply)
    ident = _identify(server.port, ["mongodb"])
    assert (ident.service, ident.product, ident.version) == ("mongodb", "MongoDB", "6.0.4")


def test_kafka_api_versions(responder: Callable[..., Responder]) -> None:
    def reply(data: bytes) -> bytes | None:
        size, key, version, corr = struct.unpack_from(">ihhi", data)
        assert (size, key, version) == (len(data) - 4, 18, 0)
        body = struct.pack(">ihi", corr, 0, 1) + struct.pack(">hhh", 18, 0, 3)
        return struct.pack(">i", len(body)) + body

    server = responder(reply)
    ident = _identify(server.port, ["kafka"])
    assert ident.service == "kafka" and ident.confidence is Confidence.CONFIRMED


def test_amqp_header_answered_with_the_servers_version(
    responder: Callable[..., Responder],
) -> None:
    server = responder(lambda d: b"AMQP\x00\x00\x09\x01" if d == b"AMQP\x00\x00\x09\x01" else None)
    ident = _identify(server.port, ["amqp"])
    assert ident.service == "amqp" and ident.facts["protocol"] == "0.9.1"


def test_ldap_rootdse_search(responder: Callable[..., Responder]) -> None:
    def reply(data: bytes) -> bytes | None:
        # LDAPMessage: SEQUENCE { messageID 1, [APPLICATION 3] SearchRequest { base "" ...}}
        assert data[0] == 0x30 and data[2:5] == b"\x02\x01\x01" and data[5] == 0x63
        assert b"\x87\x0bobjectClass" in data
        attr = _ber(0x30, _ber(0x04, b"vendorName") + _ber(0x31, _ber(0x04, b"389 Project")))
        entry = _ber(0x30, b"\x02\x01\x01" + _ber(0x64, _ber(0x04, b"") + _ber(0x30, attr)))
        return entry + _ber(0x30, b"\x02\x01\x01" + _ber(0x65, b"\x0a\x01\x00\x04\x00\x04\x00"))

    server = responder(reply)
    ident = _identify(server.port, ["ldap"])
    assert (ident.service, ident.product) == ("ldap", "389 Project")


def test_smb_negotiate(responder: Callable[..., Responder]) -> None:
    def reply(data: bytes) -> bytes | None:
        assert data[0] == 0 and data[4:8] == b"\xfeSMB"
        assert int.from_bytes(data[1:4], "big") == len(data) - 4
        size, count = struct.unpack_from("<HH", data, 4 + 64)
        assert (size, count) == (36, 4)
        header = data[4:68]
        neg = struct.pack("<HHHH", 65, 1, 0x0300, 0) + b"\0" * 56
        smb = header + neg
        return b"\0" + len(smb).to_bytes(3, "big") + smb

    server = responder(reply)
    ident = _identify(server.port, ["smb"])
    assert ident.service == "smb" and ident.facts["dialect"] == "3.0"


def test_rdp_connection_request(responder: Callable[..., Responder]) -> None:
    def reply(data: bytes) -> bytes | None:
        assert data[:2] == b"\x03\x00" and int.from_bytes(data[2:4], "big") == len(data)
        assert data[5] == 0xE0 and data[11] == 1  # X.224 CR with RDP_NEG_REQ
        return bytes([3, 0, 0, 19, 14, 0xD0, 0, 0, 0, 1, 0]) + struct.pack("<BBHI", 2, 0, 8, 2)

    server = responder(reply)
    ident = _identify(server.port, ["rdp"])
    assert ident.service == "rdp" and ident.facts["security"] == "CredSSP"


def test_dns_version_bind(responder: Callable[..., Responder]) -> None:
    def reply(data: bytes) -> bytes | None:
        msg = data[2:]
        ident, flags, qd = struct.unpack_from(">HHH", msg)
        assert flags & 0x0100 == 0 and qd == 1 and b"\x07version\x04bind\x00" in msg
        answer = struct.pack(">HHHHHH", ident, 0x8405, 1, 0, 0, 0) + msg[12:]
        return struct.pack(">H", len(answer)) + answer

    server = responder(reply)
    ident = _identify(server.port, ["dns"])
    assert ident.service == "domain" and ident.facts["rcode"] == "REFUSED"


def test_a_silent_port_is_a_guess_within_the_budget(responder: Callable[..., Responder]) -> None:
    server = responder(lambda d: None)
    started = time.monotonic()
    ident = asyncio.run(
        identify_async("127.0.0.1", server.port, timeout_s=1.5, wait_s=0.5, registry_name="x")
    )
    assert time.monotonic() - started < 3.0
    assert ident.confidence is Confidence.GUESS and ident.service == "x"
    assert ident.label == "x?" and not ident.identified


def test_a_closed_port_ends_early() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    ident = asyncio.run(identify_async("127.0.0.1", port, timeout_s=5, registry_name=None))
    assert ident.confidence is Confidence.NONE
    assert ident.facts["error"] == "connection refused"
    assert len(ident.probes) == 2


def test_a_greeting_in_a_foreign_answer_is_recognized(responder: Callable[..., Responder]) -> None:
    """SSH on a port whose likely probe is HTTP: the greeting comes back anyway."""
    server = responder(lambda d: b"", greeting=b"SSH-2.0-OpenSSH_9.6\r\n")
    ident = _identify(server.port, ["http", "banner"])
    assert (ident.service, ident.product, ident.version) == ("ssh", "OpenSSH", "9.6")


def test_scan_without_sv_does_not_load_identification() -> None:
    code = (
        "import sys; from portscope.cli import main\n"
        "main(['scan', '127.0.0.1', '-p', '1', '--json'])\n"
        "assert 'portscope.identify' not in sys.modules, 'identify loaded'\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["scan", "127.0.0.1", "-p", "1", "--version-timeout", "3"], "only apply with -sV"),
        (["scan", "127.0.0.1", "-p", "1", "-sV", "--version-timeout", "0"], "--version-timeout"),
        (["probe", "127.0.0.1", "1", "--version-timeout", "2"], "only applies with --identify"),
        (["who", "1", "--identify", "--kill"], "do not go together"),
    ],
)
def test_bad_input_is_one_line_exit_2(argv: list[str], needle: str) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "portscope", *argv], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 2, proc.stderr
    assert needle in proc.stderr and "Traceback" not in proc.stderr
    assert proc.stderr.count("\n") == 1


def test_interrupted_sv_scan_still_shows_the_scanned_host() -> None:
    import signal

    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        port = silent.getsockname()[1]
        proc = subprocess.Popen(
            [sys.executable, "-m", "portscope", "scan", "127.0.0.1", "-p", str(port), "-sV",
             "--version-timeout", "30"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        )  # fmt: skip
        time.sleep(3.0)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    assert f"{port}/tcp" in out and "open" in out
    assert "interrupted" in err


def test_names_are_refused_not_resolved() -> None:
    from portscope.errors import InvalidTarget

    with pytest.raises(InvalidTarget, match="not an IP address"):
        asyncio.run(identify_async("example.test", 80))
