"""Wait until something listens on a TCP port of this machine (for scripts and CI jobs).

    python examples/wait_for_listener.py 5432 --timeout 30

Exit 0 once a LISTEN socket holds the port (printing who), 1 after the timeout.
Written only against portscope's public API.
"""

from __future__ import annotations

import argparse
import sys
import time

import portscope


def wait_for_listener(
    port: int, timeout_s: float, interval_s: float = 0.1
) -> portscope.Socket | None:
    """Poll the socket table until a TCP listener holds ``port``; None after ``timeout_s``."""
    where = portscope.SocketFilter(ports=frozenset({port}))
    deadline = time.monotonic() + timeout_s
    while True:
        table = portscope.list_sockets(protos=["tcp"], states="listen", owners=True, where=where)
        if table.sockets:
            return table.sockets[0]
        if time.monotonic() >= deadline:
            return None
        time.sleep(interval_s)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("port", type=int)
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds (default 10)")
    args = parser.parse_args()
    sock = wait_for_listener(args.port, args.timeout)
    if sock is None:
        print(f"nothing listens on tcp/{args.port} after {args.timeout:g} s", file=sys.stderr)
        return 1
    owners = ", ".join(f"{o.name}[{o.pid}]" for o in sock.owners or ()) or "owner not visible"
    print(f"tcp/{args.port} is listening on {sock.local} ({portscope.bind_scope(sock)}): {owners}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
