"""Connection attempts for the firewall ground truth (run inside the client namespace).

Reads ``{"timeout_s": T, "cases": [[id, family, proto, src, dst, port], ...]}`` on stdin and
writes ``[[id, outcome], ...]`` on stdout, where outcome is ``open`` (TCP handshake done, or a
UDP reply), ``refused`` (ECONNREFUSED: a RST, or ICMP port unreachable), ``timeout`` (no
answer within T seconds), or the errno name of another ICMP error (``EHOSTUNREACH`` ...).
Every attempt runs in parallel, each bounded by T; the whole run by T plus a margin.
"""

from __future__ import annotations

import errno
import json
import select
import socket
import sys
import time
from concurrent.futures import ThreadPoolExecutor

IP_RECVERR = 11
IPV6_RECVERR = 25


def _name(code: int) -> str:
    if code == errno.ECONNREFUSED:
        return "refused"
    return errno.errorcode.get(code, str(code))


def attempt(case: list[object], timeout_s: float) -> list[object]:
    cid, family, proto, src, dst, port = case
    fam = socket.AF_INET if family == 4 else socket.AF_INET6
    kind = socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM
    s = socket.socket(fam, kind)
    try:
        s.bind((str(src), 0))
        deadline = time.monotonic() + timeout_s
        if proto == "tcp":
            s.setblocking(False)
            rc = s.connect_ex((str(dst), int(port)))  # type: ignore[call-overload]
            if rc not in (0, errno.EINPROGRESS):
                return [cid, _name(rc)]
            _, w, _ = select.select([], [s], [], max(0.0, deadline - time.monotonic()))
            if not w:
                return [cid, "timeout"]
            err = s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            return [cid, "open" if err == 0 else _name(err)]
        if family == 4:
            s.setsockopt(socket.IPPROTO_IP, IP_RECVERR, 1)
        else:
            s.setsockopt(socket.IPPROTO_IPV6, IPV6_RECVERR, 1)
        s.connect((str(dst), int(port)))  # type: ignore[call-overload]
        s.send(b"portscope-fwtruth")
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return [cid, "timeout"]
            r, _, _ = select.select([s], [], [], left)
            if not r:
                return [cid, "timeout"]
            try:
                s.recv(2048)
                return [cid, "open"]
            except OSError as e:
                return [cid, _name(e.errno or 0)]
    except OSError as e:
        return [cid, _name(e.errno or 0)]
    finally:
        s.close()


def main() -> None:
    spec = json.load(sys.stdin)
    timeout_s = float(spec["timeout_s"])
    cases = spec["cases"]
    with ThreadPoolExecutor(max_workers=max(1, min(512, len(cases)))) as pool:
        results = list(pool.map(lambda c: attempt(c, timeout_s), cases))
    json.dump(results, sys.stdout)


if __name__ == "__main__":
    main()
