"""The psutil backend keeps one row per connection (issue 18).

psutil reads the table per process and per file; under churn the same connection came
twice, ESTABLISHED and CLOSE-WAIT (4 of 9 listings on a busy host). The 5-tuple is the
connection: one row, the later state, every owner.
"""

from __future__ import annotations

import socket
from collections import namedtuple

import pytest

from portscope.models import Proto, TcpState
from portscope.sockets._psutil import PsutilBackend

psutil = pytest.importorskip("psutil")
Conn = namedtuple("Conn", "fd family type laddr raddr status pid")
Addr = namedtuple("Addr", "ip port")


def test_a_connection_listed_twice_is_one_row_in_its_later_state(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    tcp = socket.SOCK_STREAM
    conns = [
        Conn(3, socket.AF_INET, tcp, Addr("127.0.0.1", 8080), (), "LISTEN", 10),
        Conn(4, socket.AF_INET, tcp, Addr("127.0.0.1", 8080), Addr("127.0.0.1", 50000),
             "ESTABLISHED", 10),
        Conn(5, socket.AF_INET, tcp, Addr("127.0.0.1", 50000), Addr("127.0.0.1", 8080),
             "ESTABLISHED", 11),
        # the server's end again, read a moment later from another process's files
        Conn(4, socket.AF_INET, tcp, Addr("127.0.0.1", 8080), Addr("127.0.0.1", 50000),
             "CLOSE_WAIT", 10),
        Conn(7, socket.AF_INET, tcp, Addr("127.0.0.1", 8080), Addr("127.0.0.1", 50000),
             "CLOSE_WAIT", 12),  # shared with a child (an inherited fd)
    ]  # fmt: skip
    monkeypatch.setattr(psutil, "net_connections", lambda kind: conns)
    backend = PsutilBackend()
    rows = [r for batch in backend.batches((Proto.TCP,), (4,), None) for r in batch]
    got = [(r.local_port, r.remote_port, r.state) for r in rows]
    assert got == [
        (8080, None, TcpState.LISTEN),
        (8080, 50000, TcpState.CLOSE_WAIT),
        (50000, 8080, TcpState.ESTABLISHED),
    ]
    owners = backend.owner_map()
    assert owners.pids(rows[1]) == [10, 12]
