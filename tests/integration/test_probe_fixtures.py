"""Loopback servers for probe and scan tests (fixtures; no tests): 127.0.0.1 and ::1 only."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import pytest

BANNER = b"SSH-2.0-portscope-test\r\n"


def free_port(proto: int = socket.SOCK_STREAM, host: str = "127.0.0.1") -> int:
    """A port nothing listens on now (bound, then released)."""
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(fam, proto) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


class _Acceptor(threading.Thread):
    """Accepts connections; sends ``banner`` first when given; closes them."""

    def __init__(self, sock: socket.socket, banner: bytes | None) -> None:
        super().__init__(daemon=True)
        self.sock = sock
        self.banner = banner
        self.stopped = threading.Event()

    def run(self) -> None:
        self.sock.settimeout(0.1)
        while not self.stopped.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with conn:
                if self.banner:
                    conn.sendall(self.banner)


@pytest.fixture
def tcp_server() -> Iterator[int]:
    """A TCP listener on 127.0.0.1 that accepts and closes; yields its port."""
    yield from _tcp("127.0.0.1", None)


@pytest.fixture
def banner_server() -> Iterator[int]:
    """A TCP listener on 127.0.0.1 that greets with ``BANNER``; yields its port."""
    yield from _tcp("127.0.0.1", BANNER)


@pytest.fixture
def tcp6_server() -> Iterator[int]:
    """A TCP listener on ::1; yields its port."""
    yield from _tcp("::1", None)


def _tcp(host: str, banner: bytes | None) -> Iterator[int]:
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(fam, socket.SOCK_STREAM)
    sock.bind((host, 0))
    sock.listen(64)
    thread = _Acceptor(sock, banner)
    thread.start()
    try:
        yield int(sock.getsockname()[1])
    finally:
        thread.stopped.set()
        thread.join(2)
        sock.close()


@pytest.fixture
def full_backlog_port() -> Iterator[int]:
    """A TCP port whose SYNs are silently dropped: a listener with a full accept queue.

    Linux drops a SYN when the listener's accept queue is full (``tcp_conn_request``,
    LISTENOVERFLOWS), so the port looks filtered without any firewall rule.
    """
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(0)
    port = int(srv.getsockname()[1])
    fillers = []
    for _ in range(2):
        c = socket.socket()
        c.setblocking(False)
        c.connect_ex(("127.0.0.1", port))
        fillers.append(c)
    try:
        yield port
    finally:
        for c in fillers:
            c.close()
        srv.close()


class _UdpResponder(threading.Thread):
    """Answers each datagram: with ``reply(data)``; records what it received."""

    def __init__(self, sock: socket.socket) -> None:
        super().__init__(daemon=True)
        self.sock = sock
        self.received: list[bytes] = []
        self.stopped = threading.Event()

    def run(self) -> None:
        self.sock.settimeout(0.1)
        while not self.stopped.is_set():
            try:
                data, peer = self.sock.recvfrom(2048)
            except TimeoutError:
                continue
            except OSError:
                return
            self.received.append(data)
            # a DNS query gets a DNS answer (QR=1, RCODE=REFUSED); anything else "pong"
            reply = data[:2] + bytes([0x81, 0x05]) + data[4:] if len(data) >= 12 else b"pong"
            self.sock.sendto(reply, peer)


@pytest.fixture
def udp_responder() -> Iterator[_UdpResponder]:
    """A DNS-ish UDP responder on 127.0.0.1; ``.port`` and ``.received``."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    thread = _UdpResponder(sock)
    thread.port = int(sock.getsockname()[1])  # type: ignore[attr-defined]
    thread.start()
    try:
        yield thread
    finally:
        thread.stopped.set()
        thread.join(2)
        sock.close()


@pytest.fixture
def udp_silent() -> Iterator[int]:
    """A bound UDP socket that never answers; yields its port."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        yield int(sock.getsockname()[1])
