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
        # answer from the address the datagram came to (a multihomed host otherwise
        # answers from the route's source address, which a connected client ignores)
        u.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_RECVPKTINFO, 1)
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
                    data, anc, _, peer = sock.recvmsg(2048, socket.CMSG_SPACE(20))
                    info = [
                        (lv, ty, d[:16] + bytes(4))
                        for lv, ty, d in anc
                        if lv == socket.IPPROTO_IPV6 and ty == socket.IPV6_PKTINFO
                    ]
                    sock.sendmsg([data], info, 0, peer)
            except OSError:
                pass


if __name__ == "__main__":
    main()
