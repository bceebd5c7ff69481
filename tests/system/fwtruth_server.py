"""Listeners for the firewall ground truth (run inside a namespace; killed by PID).

argv[1] is ``{"tcp": [ports], "udp": [ports]}``: TCP listeners that accept and close, UDP
sockets that echo every datagram; all dual-stack on ``[::]``. Prints ``ready`` once bound.
"""

from __future__ import annotations

import json
import selectors
import socket
import sys


def main() -> None:
    spec = json.loads(sys.argv[1])
    sel = selectors.DefaultSelector()
    for port in spec.get("tcp", []):
        s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("::", port))
        s.listen(512)
        s.setblocking(False)
        sel.register(s, selectors.EVENT_READ, "tcp")
    for port in spec.get("udp", []):
        u = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
        u.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        u.bind(("::", port))
        u.setblocking(False)
        sel.register(u, selectors.EVENT_READ, "udp")
    print("ready", flush=True)
    while True:
        for key, _ in sel.select():
            sock = key.fileobj
            assert isinstance(sock, socket.socket)
            try:
                if key.data == "tcp":
                    conn, _ = sock.accept()
                    conn.close()
                else:
                    data, peer = sock.recvfrom(2048)
                    sock.sendto(data, peer)
            except OSError:
                pass


if __name__ == "__main__":
    main()
