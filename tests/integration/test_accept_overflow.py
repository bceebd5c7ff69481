"""A real listener with backlog 1 and connections nobody accepts: the listening view
flags it, ``audit`` reports it, ``why connect`` blames the queue, not a firewall."""

from __future__ import annotations

import contextlib
import io
import json
import socket
import time
from collections.abc import Iterator

from portscope.cli import Env, main
from portscope.diagnose.audit import audit_sockets
from portscope.models import TcpState
from portscope.sockets import SocketFilter, list_sockets
from portscope.sockets.overflow import CounterWatch, accept_queue_full


def run(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    status = main(list(argv), Env(stdout=out, stderr=err))
    return status, out.getvalue(), err.getvalue()


@contextlib.contextmanager
def full_queue() -> Iterator[int]:
    """A listener with backlog 1 holding two connections nobody accepts (the kernel takes
    backlog + 1) and a third client whose SYNs are dropped."""
    srv = socket.socket()
    clients: list[socket.socket] = []
    try:
        srv.bind(("127.0.0.1", 0))
        srv.listen(1)
        port = srv.getsockname()[1]
        for _ in range(3):
            c = socket.socket()
            c.setblocking(False)
            with contextlib.suppress(BlockingIOError):
                c.connect(("127.0.0.1", port))
            clients.append(c)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:  # the handshakes complete at once on loopback
            rows = list_sockets(states="listen", where=SocketFilter(sports=frozenset({port})))
            if rows.sockets and rows.sockets[0].recv_q == 2:
                break
            time.sleep(0.02)
        yield port
    finally:
        for c in clients:
            c.close()
        srv.close()


def test_full_queue_is_flagged_in_the_listening_view_and_counted() -> None:
    watch = CounterWatch()
    with full_queue() as port:
        table = list_sockets(states="listen", where=SocketFilter(sports=frozenset({port})))
        (sock,) = table.sockets
        assert (sock.recv_q, sock.send_q) == (2, 1)
        assert accept_queue_full(sock) is True
        status, out, err = run("-t", "-n", "--json")
        assert status == 0
        doc = json.loads(out)
        mine = [s for s in doc["sockets"] if s["local"]["port"] == port]
        assert mine[0]["accept_queue_full"] is True
        assert all(s["accept_queue_full"] is False for s in doc["sockets"]
                   if s["state"] == "LISTEN" and s["recv_q"] <= s["send_q"])  # fmt: skip
        assert set(doc["listen_counters"]) == {
            "overflows", "drops", "overflows_grew", "drops_grew", "interval_s"
        }  # fmt: skip
        status, text, err = run("-t", "-n", "--wide")
        line = next(x for x in text.splitlines() if f" {port} " in x)
        assert line.rstrip().endswith("2/1 FULL")
        assert f"127.0.0.1:{port}" in err and "not calling accept() fast enough" in err
        time.sleep(1.2)  # the third client's SYN is retransmitted (1 s) and dropped again
        counters = watch.finish()
        assert counters is not None and counters.overflows_grew >= 1 and counters.grew


def test_audit_reports_the_full_queue() -> None:
    with full_queue() as port:
        table = list_sockets(states="listen", owners=True)
        found = [
            f for f in audit_sockets(table.sockets, rules=["accept-queue-full"])
            if f.socket.local.port == port
        ]  # fmt: skip
        assert len(found) == 1 and "accept queue is full" in found[0].title
        assert found[0].socket.state is TcpState.LISTEN
        _status, out, _ = run("audit", "--json")
        assert '"accept-queue-full"' in out and str(port) in out


def test_why_connect_blames_the_queue_not_a_firewall() -> None:
    with full_queue() as port:
        status, out, _ = run("why", "connect", f"127.0.0.1:{port}", "--timeout", "1", "--json")
        doc = json.loads(out)
        assert doc["verdict"] == "accept-queue-full", doc
        assert "not calling accept() fast enough" in doc["explanation"]
        assert status != 0
