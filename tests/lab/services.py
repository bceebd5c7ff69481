"""The lab's target services: one process holding every TCP listener and UDP responder.

Run inside the target namespace as a standalone script (the lab starts it with
``ip netns exec NS python services.py SPEC_JSON``); it prints ``ready`` on stdout once every
socket is bound, then serves until SIGTERM. Standard library only, one thread, ``selectors``.

SPEC_JSON: ``{"tcp": [ports], "banners": {"port": "text"}, "http": [ports],
"udp_dns": [ports], "udp_ntp": [ports], "udp_echo": [ports], "udp_silent": [ports]}``.
Every port is bound on ``0.0.0.0`` and on ``::`` (IPV6_V6ONLY) so all lab addresses answer.
"""

from __future__ import annotations

import contextlib
import json
import selectors
import signal
import socket
import struct
import sys
import time
from collections import deque
from typing import Any

# Open connections kept at most; the oldest is closed first (scans open many).
MAX_CONNS = 512
# NTP era offset: seconds from 1900-01-01 to 1970-01-01 (RFC 5905, section 6).
NTP_EPOCH_OFFSET = 2_208_988_800
HTTP_REPLY = (
    b"HTTP/1.0 200 OK\r\nServer: portscope-lab\r\nContent-Type: text/plain\r\n"
    b"Content-Length: 13\r\nConnection: close\r\n\r\nportscope-lab"
)


def _bind(family: int, kind: int, port: int) -> socket.socket:
    sock = socket.socket(family, kind)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if family == socket.AF_INET6:
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
    sock.bind(("::" if family == socket.AF_INET6 else "0.0.0.0", port))
    if kind == socket.SOCK_STREAM:
        sock.listen(4096)
    sock.setblocking(False)
    return sock


def dns_reply(query: bytes) -> bytes | None:
    """Answer any DNS query (RFC 1035, section 4.1): A/IN gets 198.18.0.2, others NODATA.

    Args:
        query: the UDP payload received.

    Returns:
        The response payload, or None for datagrams too short to carry a header.
    """
    if len(query) < 12:
        return None
    qid, flags, qdcount = struct.unpack("!HHH", query[:6])
    opcode = (flags >> 11) & 0xF
    rd = flags & 0x0100
    question = b""
    qtype = 0
    if qdcount >= 1:
        pos = 12
        while pos < len(query) and query[pos] != 0:
            pos += 1 + query[pos]
        end = pos + 5
        if end > len(query):
            # FORMERR: the question does not parse.
            return struct.pack("!HHHHHH", qid, 0x8000 | (opcode << 11) | rd | 1, 0, 0, 0, 0)
        question = query[12:end]
        qtype, qclass = struct.unpack("!HH", query[pos + 1 : end])
        qtype = qtype if qclass == 1 else 0
    answer = b""
    if question and qtype == 1 and opcode == 0:
        # Name as a pointer to offset 12 (the question), type A, class IN, TTL 60 s.
        answer = struct.pack("!HHHIH", 0xC00C, 1, 1, 60, 4) + socket.inet_aton("198.18.0.2")
    rflags = 0x8000 | (opcode << 11) | 0x0400 | rd | 0x0080
    header = struct.pack("!HHHHHH", qid, rflags, 1 if question else 0, 1 if answer else 0, 0, 0)
    return header + question + answer


def ntp_reply(query: bytes) -> bytes | None:
    """Answer an NTP client request as a stratum-2 server (RFC 5905, mode 4).

    Args:
        query: the UDP payload received.

    Returns:
        A 48-byte NTP packet, or None when the query is shorter than an NTP header.
    """
    if len(query) < 48:
        return None
    version = (query[0] >> 3) & 0x7 or 4
    now = time.time() + NTP_EPOCH_OFFSET
    stamp = struct.pack("!II", int(now), int((now % 1) * 2**32))
    head = struct.pack("!BBbb", (version << 3) | 4, 2, query[2], -20)
    head += struct.pack("!II", 0x00000100, 0x00000100) + b"LAB\x00"
    # reference, origin (= client's transmit), receive, transmit timestamps
    return head + stamp + query[40:48] + stamp + stamp


class Server:
    """All lab services in one selector loop."""

    def __init__(self, spec: dict[str, Any]) -> None:
        self.sel = selectors.DefaultSelector()
        self.banners = {int(p): t.encode() for p, t in spec.get("banners", {}).items()}
        self.http = set(spec.get("http", []))
        self.conns: deque[socket.socket] = deque()
        self.running = True
        for family in (socket.AF_INET, socket.AF_INET6):
            for port in spec.get("tcp", []):
                self.sel.register(_bind(family, socket.SOCK_STREAM, port), 1, ("accept", port))
            for kind in ("dns", "ntp", "echo", "silent"):
                for port in spec.get(f"udp_{kind}", []):
                    self.sel.register(_bind(family, socket.SOCK_DGRAM, port), 1, (kind, port))

    def _accept(self, lsock: socket.socket, port: int) -> None:
        for _ in range(64):
            try:
                conn, _addr = lsock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return
            conn.setblocking(False)
            banner = self.banners.get(port)
            if banner:
                try:
                    conn.send(banner)
                except OSError:
                    conn.close()
                    continue
            self.sel.register(conn, 1, ("conn", port))
            self.conns.append(conn)
            while len(self.conns) > MAX_CONNS:
                self._close(self.conns.popleft())

    def _close(self, conn: socket.socket) -> None:
        if conn.fileno() < 0:
            return
        with contextlib.suppress(KeyError, ValueError):
            self.sel.unregister(conn)
        conn.close()

    def _read(self, conn: socket.socket, port: int) -> None:
        try:
            data = conn.recv(4096)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:
            self._close(conn)
            return
        if port in self.http and data[:4] in (b"GET ", b"HEAD"):
            with contextlib.suppress(OSError):
                conn.send(HTTP_REPLY)
            self._close(conn)

    def _datagram(self, sock: socket.socket, kind: str) -> None:
        for _ in range(64):
            try:
                data, addr = sock.recvfrom(65535)
            except (BlockingIOError, InterruptedError):
                return
            if kind == "dns":
                reply = dns_reply(data)
            elif kind == "ntp":
                reply = ntp_reply(data)
            elif kind == "echo":
                reply = data
            else:
                reply = None
            if reply is not None:
                with contextlib.suppress(OSError):
                    sock.sendto(reply, addr)

    def serve(self) -> None:
        while self.running:
            for key, _ in self.sel.select(timeout=0.5):
                kind, port = key.data
                sock = key.fileobj
                assert isinstance(sock, socket.socket)
                if kind == "accept":
                    self._accept(sock, port)
                elif kind == "conn":
                    self._read(sock, port)
                else:
                    self._datagram(sock, kind)


def main(argv: list[str]) -> int:
    spec = json.loads(argv[1])
    server = Server(spec)

    def stop(_signum: int, _frame: object) -> None:
        server.running = False

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    print("ready", flush=True)
    server.serve()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
