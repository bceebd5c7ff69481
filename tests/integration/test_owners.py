"""Owners of the few-big-processes shape (``bench/loadgen.py --shape few-big-processes``):
one process holding both ends of many loopback connections, some over ``::1``, some
half-closed, its fd table full of holes; every socket's owner is that process with the
socket's own fd, in the API, in the CLI's fused JSON and as ``ss -tanp`` says."""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import pytest

from portscope.cli import Env, main
from portscope.models import TcpState
from portscope.sockets import SocketFilter, list_sockets

ME = os.getpid()
HAS_V6 = socket.has_ipv6 and Path("/proc/net/tcp6").exists()
CONNECTIONS = 400  # both ends in this process: 800 sockets
LINGER_RESET = struct.pack("ii", 1, 0)

Pair = tuple[socket.socket, socket.socket]  # (client end, server end)


def inode(s: socket.socket) -> int:
    return os.fstat(s.fileno()).st_ino


@contextmanager
def both_ends(count: int) -> Iterator[tuple[list[Pair], list[int]]]:
    """``count`` connections to our own listeners, both ends here: one in 10 over ::1,
    one in 50 half-closed; one more per 20 made among them and reset at the end, so
    that the fd table has holes below its count of open fds."""
    with ExitStack() as stack:
        listeners = []
        for family, host in [(socket.AF_INET, "127.0.0.1")] + (
            [(socket.AF_INET6, "::1")] if HAS_V6 else []
        ):
            ls = stack.enter_context(socket.socket(family, socket.SOCK_STREAM))
            ls.bind((host, 0))
            ls.listen(64)
            listeners.append(ls)
        pairs: list[Pair] = []
        churn: list[socket.socket] = []
        try:
            for i in range(count + count // 20):
                ls = listeners[-1] if i % 10 == 9 else listeners[0]
                c = socket.create_connection(ls.getsockname()[:2], timeout=5)
                a, _ = ls.accept()
                for s in (c, a):
                    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, LINGER_RESET)
                if i % 21 == 20 and len(churn) < 2 * (count // 20):
                    churn += (c, a)
                    continue
                if len(pairs) % 50 == 49:
                    c.shutdown(socket.SHUT_WR)  # c: FIN-WAIT-2, a: CLOSE-WAIT
                pairs.append((c, a))
            for s in churn:
                s.close()
            time.sleep(0.05)
            yield pairs, [ls.getsockname()[1] for ls in listeners]
        finally:
            for c, a in pairs:
                c.close()
                a.close()
            for s in churn:
                s.close()


def test_one_process_holding_both_ends_of_many_connections() -> None:
    with both_ends(CONNECTIONS) as (pairs, ports):
        open_fds = sorted(int(n) for n in os.listdir("/proc/self/fd"))
        assert open_fds[-1] + 1 > len(open_fds)  # holes: the scan must look above N
        table = list_sockets(
            protos=["tcp"], states="all", owners=True, where=SocketFilter(ports=frozenset(ports))
        )
        assert table.owners_complete is True
        found = {s.inode: s for s in table.sockets}
        for n, (c, a) in enumerate(pairs):
            client, server = found[inode(c)], found[inode(a)]
            for end, sock in ((client, c), (server, a)):
                assert end.owners is not None
                assert [(o.pid, o.fd) for o in end.owners] == [(ME, sock.fileno())]
            assert client.remote is not None and client.remote.port == server.local.port
            assert client.local.address == ("::1" if c.family == socket.AF_INET6 else "127.0.0.1")
            half = n % 50 == 49
            assert client.state is (TcpState.FIN_WAIT_2 if half else TcpState.ESTABLISHED)
            assert server.state is (TcpState.CLOSE_WAIT if half else TcpState.ESTABLISHED)
        assert sum(1 for c, _ in pairs if c.family == socket.AF_INET6) == (
            CONNECTIONS // 10 if HAS_V6 else 0
        )


def test_cli_fused_json_gives_each_socket_its_own_fd() -> None:
    with both_ends(CONNECTIONS) as (pairs, ports):
        out, err = io.StringIO(), io.StringIO()
        argv = ["ls", "-a", "-t", "-n", "-p", "--json", "--port", ",".join(map(str, ports))]
        assert main(argv, Env(stdout=out, stderr=err)) == 0
        doc = json.loads(out.getvalue())
        owners = {s["inode"]: s["owners"] for s in doc["sockets"]}
        for c, a in pairs:
            for sock in (c, a):
                (owner,) = owners[inode(sock)]
                assert (owner["pid"], owner["fd"]) == (ME, sock.fileno())
                assert owner["name"] == Path("/proc/self/comm").read_text().strip()


USERS = re.compile(r'users:\(\("(?:[^"\\]|\\.)*",pid=(\d+),fd=(\d+)\)')


def _endpoint(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    return host.strip("[]"), int(port)


@pytest.mark.skipif(shutil.which("ss") is None, reason="needs ss (iproute2)")
def test_owners_equal_ss_tanp_on_a_sample() -> None:
    with both_ends(CONNECTIONS) as (pairs, ports):
        sample = pairs[:: CONNECTIONS // 20]
        wanted = {s.getsockname()[:2] + s.getpeername()[:2] for p in sample for s in p}
        filt = " or ".join(f"sport = :{p} or dport = :{p}" for p in ports)
        text = subprocess.run(
            ["ss", "-tanpH", "state", "all", f"( {filt} )"],
            capture_output=True,
            text=True,
            check=True,
            timeout=30,
        ).stdout
        by_ss: dict[tuple[str, int, str, int], tuple[int, int]] = {}
        for line in text.splitlines():
            fields = line.split()  # state, recv-q, send-q, local, peer, process
            match = USERS.search(line)
            if len(fields) >= 5 and match and not fields[4].endswith(":*"):
                key = _endpoint(fields[3]) + _endpoint(fields[4])
                by_ss[key] = (int(match[1]), int(match[2]))
        table = list_sockets(
            protos=["tcp"], states="all", owners=True, where=SocketFilter(ports=frozenset(ports))
        )
        ours = {}
        for s in table.sockets:
            if s.remote is None or s.owners is None:
                continue
            key = (s.local.address, s.local.port, s.remote.address, s.remote.port)
            if key in wanted:
                ours[key] = [(o.pid, o.fd) for o in s.owners]
        assert len(ours) == len(wanted) == 2 * len(sample)
        for key, held in ours.items():
            assert held == [by_ss[key]], key


FORKED_HOLDERS = r"""
import os, resource, socket, sys, time
from portscope.sockets._owners import OwnerMap

listener = socket.socket()
listener.bind(("127.0.0.1", 0))
listener.listen()
r, w = os.pipe()
children = []
for _ in range(40):
    pid = os.fork()
    if pid == 0:  # a holder of the listener: waits for the parent's end of the pipe
        os.close(w)
        os.read(r, 1)
        os._exit(0)
    children.append(pid)
os.close(r)
try:
    time.sleep(0.2)
    # room for 8 more descriptors: fewer than the number of processes to scan
    used = len(os.listdir("/proc/self/fd"))
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    resource.setrlimit(resource.RLIMIT_NOFILE, (used + 8, hard))
    ino = os.fstat(listener.fileno()).st_ino
    pids = sorted(pid for pid, _ in OwnerMap.scan({ino}).holders(ino))
    print(pids == sorted(children + [os.getpid()]))
finally:
    os.close(w)
    for pid in children:
        os.waitpid(pid, 0)
"""


def test_a_low_fd_limit_does_not_lose_owners() -> None:
    # The scan keeps one fd directory open at a time, not one per process on the machine.
    done = subprocess.run(
        [sys.executable, "-c", FORKED_HOLDERS], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "True"
