"""Ephemeral usage counted from real loopback connections, compared with ss."""

from __future__ import annotations

import io
import json
import socket
import subprocess
import time

from portscope.cli import Env, main
from portscope.diagnose import ephemeral_usage, free_ports
from portscope.registry._ranges import kernel_ports

N = 20


def ss_count(port: int, state: str) -> int:
    out = subprocess.run(
        ["ss", "-Htn", "state", state, f"dport = :{port}"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return len(out.splitlines())


def test_connections_and_time_wait_per_destination() -> None:
    lo, hi = kernel_ports().ephemeral
    with free_ports(1, address="127.0.0.1", hold=True) as held:
        port = held.ports[0]
        server = held.release(port)
    server.listen(N)
    clients = [socket.create_connection(("127.0.0.1", port), timeout=5) for _ in range(N)]
    accepted = [server.accept()[0] for _ in range(N)]
    try:
        assert all(lo <= c.getsockname()[1] <= hi for c in clients)
        usage = ephemeral_usage()
        dest = next(d for d in usage.destinations if d.port == port)
        assert (dest.address, dest.in_use, dest.time_wait) == ("127.0.0.1", N, 0)
        assert dest.sources == 1 and dest.max_per_source == N
        assert dest.capacity == usage.capacity == kernel_ports().ephemeral_count
        assert ss_count(port, "established") == N
        for c in clients:  # clients close first: their ephemeral ports go to TIME-WAIT
            c.close()
        for a in accepted:
            a.recv(1)
            a.close()
        deadline = time.monotonic() + 5
        while ss_count(port, "time-wait") < N and time.monotonic() < deadline:
            time.sleep(0.02)
        dest = next(d for d in ephemeral_usage().destinations if d.port == port)
        assert (dest.in_use, dest.time_wait) == (0, ss_count(port, "time-wait")) == (0, N)
    finally:
        for s in (*clients, *accepted, server):
            s.close()


def test_cli_ephemeral_json() -> None:
    out = io.StringIO()
    status = main(["ephemeral", "--json", "--warn", "90"], Env(stdout=out, stderr=io.StringIO()))
    data = json.loads(out.getvalue())
    assert list(data["ephemeral"]) == list(kernel_ports().ephemeral)
    assert data["warn_ratio"] == 0.9
    assert status == (1 if data["warnings"] else 0)


def test_every_diagnose_command_writes_a_json_object() -> None:
    # issue 8: `free --json` was a bare array while every other command returned an object.
    with free_ports(1, address="127.0.0.1", hold=True) as held:
        port = held.ports[0]
        commands = [
            ["who", str(port)],
            ["why", "bind", str(port), "--addr", "127.0.0.1"],
            ["why", "connect", f"127.0.0.1:{port}", "--timeout", "0.5"],
            ["audit"],
            ["free"],
            ["ephemeral"],
        ]
        for argv in commands:
            out, err = io.StringIO(), io.StringIO()
            status = main([*argv, "--json"], Env(stdout=out, stderr=err))
            assert status in (0, 1), (argv, err.getvalue())
            assert isinstance(json.loads(out.getvalue()), dict), argv
