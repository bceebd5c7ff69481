"""who and --kill against real child processes holding real loopback ports."""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator

import pytest

from portscope.cli import Env, main
from portscope.diagnose import KillOutcome, free_ports, kill_holders, who
from portscope.models import Proto, TcpState

# The child inherits an already-bound socket (its fd in argv), so the port is never free
# for another process to take between finding it and listening on it.
CHILD = """
import signal, socket, sys, time
if sys.argv[1] == "ignore-term":
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
s = socket.socket(fileno=int(sys.argv[3]))
s.listen()
print("ready", flush=True)
time.sleep(30)
"""

Spawn = Callable[..., tuple[subprocess.Popen[str], int]]


@pytest.fixture
def spawn() -> Iterator[Spawn]:
    children: list[subprocess.Popen[str]] = []

    def start(
        mode: str = "normal", marker: str = "portscope-who-test"
    ) -> tuple[subprocess.Popen[str], int]:
        with free_ports(1, address="127.0.0.1", hold=True) as held:
            port = held.ports[0]
            fd = held.socket_for(port).fileno()
            child = subprocess.Popen(
                [sys.executable, "-c", CHILD, mode, marker, str(fd)],
                stdout=subprocess.PIPE,
                text=True,
                pass_fds=(fd,),
            )
        children.append(child)
        assert child.stdout is not None and child.stdout.readline() == "ready\n"
        return child, port

    yield start
    for child in children:
        if child.poll() is None:
            child.kill()
        child.wait(timeout=10)
        if child.stdout:
            child.stdout.close()


def run_cli(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    status = main(list(argv), Env(stdout=out, stderr=err))
    return status, out.getvalue(), err.getvalue()


def ss_pids(port: int) -> set[int]:
    """The pids ``ss -ltnp`` shows for a port (``users:(("python",pid=123,fd=3))``)."""
    out = subprocess.run(
        ["ss", "-Hltnp", f"sport = :{port}"], capture_output=True, text=True, check=True
    ).stdout
    return {int(chunk.split(",")[0]) for chunk in out.split("pid=")[1:]}


def test_who_finds_the_child_like_ss(spawn: Spawn) -> None:
    child, port = spawn(marker="who-finds-me")
    result = who(port)
    assert result.held
    assert [h.pid for h in result.holders] == [child.pid]
    holder = result.holders[0]
    assert holder.cmdline is not None and "who-finds-me" in holder.cmdline
    assert holder.start_time is not None and abs(holder.start_time - time.time()) < 60
    assert [(s.proto, s.state, str(s.local)) for s in holder.sockets] == [
        (Proto.TCP, TcpState.LISTEN, f"127.0.0.1:{port}")
    ]
    assert len(holder.fds) == 1
    if os.geteuid() == 0:
        assert ss_pids(port) == {child.pid}
    assert who(port, Proto.UDP).holders == ()


def test_kill_frees_the_port(spawn: Spawn) -> None:
    child, port = spawn()
    report = kill_holders(who(port), timeout_s=5)
    assert [(r.pid, r.outcome) for r in report.results] == [(child.pid, KillOutcome.TERMINATED)]
    assert report.results[0].signals == ("SIGTERM",)
    assert report.port_free is True
    assert child.wait(timeout=5) == -signal.SIGTERM
    assert not who(port).held


def test_kill_without_pidfd_falls_back_to_kill(
    spawn: Spawn, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Kernels before 5.3 have no pidfd_open: same start-time guard, then kill(2), and the
    # exit is seen by polling /proc (our child stays a zombie until reaped: counts as gone).
    monkeypatch.delattr(os, "pidfd_open")
    child, port = spawn()
    report = kill_holders(who(port), timeout_s=5)
    assert report.results[0].outcome is KillOutcome.TERMINATED and report.port_free is True
    assert child.wait(timeout=5) == -signal.SIGTERM


def test_force_kills_a_process_ignoring_sigterm(spawn: Spawn) -> None:
    child, port = spawn("ignore-term")
    gentle = kill_holders(who(port), timeout_s=0.3)
    assert gentle.results[0].outcome is KillOutcome.STILL_RUNNING
    assert "--force" in gentle.results[0].detail
    assert gentle.port_free is False and child.poll() is None
    forced = kill_holders(who(port), force=True, timeout_s=0.3)
    assert forced.results[0].outcome is KillOutcome.KILLED
    assert forced.results[0].signals == ("SIGTERM", "SIGKILL")
    assert forced.port_free is True
    assert child.wait(timeout=5) == -signal.SIGKILL


def test_a_reused_pid_is_not_signalled(spawn: Spawn) -> None:
    child, port = spawn()
    result = who(port)
    holder = result.holders[0]
    assert holder.start_time is not None
    assert holder.start_ticks is not None
    # As if the process had died and its pid had gone to a process started later.
    stale = dataclasses.replace(holder, start_ticks=holder.start_ticks - 1000)
    report = kill_holders(dataclasses.replace(result, holders=(stale,)), timeout_s=1)
    assert report.results[0].outcome is KillOutcome.PID_REUSED
    assert report.results[0].signals == ()
    time.sleep(0.2)
    assert child.poll() is None and report.port_free is False


def test_the_reuse_guard_compares_ticks_not_wall_clock_times(spawn: Spawn) -> None:
    # issue 8: `who` and `--kill` read the start time twice, from /proc/PID/stat ticks plus
    # btime, which the kernel derives from the clock: a stepped clock moved it and the same
    # process looked reused. The guard now compares the stable ticks (portscope._proc).
    child, port = spawn()
    result = who(port)
    holder = result.holders[0]
    assert holder.start_time is not None
    from portscope import _proc

    assert holder.start_ticks == _proc.start_ticks(child.pid)
    moved = dataclasses.replace(holder, start_time=holder.start_time + 1.0)
    report = kill_holders(dataclasses.replace(result, holders=(moved,)), timeout_s=5)
    assert report.results[0].outcome is KillOutcome.TERMINATED
    assert child.wait(timeout=5) == -signal.SIGTERM


TWO = """
import socket, sys, time
a = socket.socket(fileno=int(sys.argv[1])); a.listen()
b = socket.socket(fileno=int(sys.argv[2])); b.listen()
print("ready", flush=True)
time.sleep(30)
"""


def test_kill_lists_every_socket_of_the_process_before_asking() -> None:
    # issue 8: `who PORT --kill` did not say the process also serves other ports.
    with free_ports(2, address="127.0.0.1", hold=True) as held:
        first, second = held.ports
        fds = [held.socket_for(p).fileno() for p in (first, second)]
        child = subprocess.Popen(
            [sys.executable, "-c", TWO, *map(str, fds)],
            stdout=subprocess.PIPE,
            text=True,
            pass_fds=fds,
        )
    try:
        assert child.stdout is not None and child.stdout.readline() == "ready\n"
        result = who(first, others=True)
        (holder,) = result.holders
        assert holder.pid == child.pid
        assert [str(s.local) for s in holder.other_sockets or ()] == [f"127.0.0.1:{second}"]
        assert who(first).holders[0].other_sockets is None  # only looked up when asked
        # stdin is no terminal: it lists, then refuses to ask (nothing signalled)
        status, out, err = run_cli("who", str(first), "--kill")
        assert status == 2 and "add --yes" in err
        assert f"127.0.0.1:{second}" in out and "also holds 1 socket(s) on other ports" in out
        assert f"[{child.pid}]" in out
        assert child.poll() is None
    finally:
        child.kill()
        child.wait(timeout=10)
        if child.stdout:
            child.stdout.close()


def test_service_names_and_family_flags(spawn: Spawn) -> None:
    # issue 8: `who redis` failed (names now resolve through portscope's registry).
    status, out, err = run_cli("who", "redis", "--json")
    assert status in (0, 1), err
    assert json.loads(out)["port"] == 6379
    _child, port = spawn()
    assert run_cli("who", str(port), "-4")[0] == 0
    status, out, _ = run_cli("who", str(port), "-6", "--json")
    assert status == 1 and json.loads(out)["held"] is False
    status, out, _ = run_cli("who", str(port), "-u", "--json")
    assert status == 1 and json.loads(out)["proto"] == "udp"
    status, _, err = run_cli("who", f"{port}/tcp", "-u")
    assert status == 2 and "contradicts" in err


def test_refuses_itself_and_init() -> None:
    with free_ports(1, address="127.0.0.1", hold=True) as held:
        port = held.ports[0]
        held.socket_for(port).listen()
        result = who(port)
        assert [h.pid for h in result.holders] == [os.getpid()]
        fake_init = dataclasses.replace(result.holders[0], pid=1)
        both = dataclasses.replace(result, holders=(fake_init, result.holders[0]))
        report = kill_holders(both, recheck=False)
        outcomes = {r.pid: r.outcome for r in report.results}
        assert outcomes == {1: KillOutcome.REFUSED_INIT, os.getpid(): KillOutcome.REFUSED_SELF}


def test_cli_who_json_and_exit_status(spawn: Spawn) -> None:
    child, port = spawn()
    status, out, err = run_cli("who", f"{port}/tcp", "--json")
    assert status == 0 and err == ""
    data = json.loads(out)
    assert data["held"] is True and data["port"] == port and data["proto"] == "tcp"
    assert data["holders"][0]["pid"] == child.pid
    assert data["holders"][0]["sockets"][0]["local"] == {"address": "127.0.0.1", "port": port}
    status, out, _ = run_cli("who", str(port))
    assert status == 0 and f"[{child.pid}]" in out and f"127.0.0.1:{port}" in out


def test_cli_kill_without_terminal_or_yes_refuses(spawn: Spawn) -> None:
    child, port = spawn()
    done = subprocess.run(
        [sys.executable, "-m", "portscope", "who", str(port), "--kill"],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and "--yes" in done.stderr
    assert child.poll() is None


def test_cli_kill_yes_reports_port_free(spawn: Spawn) -> None:
    child, port = spawn()
    status, out, _ = run_cli("who", str(port), "--kill", "--yes", "--json")
    assert status == 0
    data = json.loads(out)
    assert data["kill"]["port_free"] is True
    assert data["kill"]["results"][0] == {
        **data["kill"]["results"][0],
        "pid": child.pid,
        "outcome": "terminated",
    }
    assert child.wait(timeout=5) == -signal.SIGTERM


def test_udp_and_ipv6_holders_in_this_process() -> None:
    with free_ports(1, proto=Proto.UDP, hold=True) as held:
        port = held.ports[0]
        udp = who(port, Proto.UDP)
        assert [h.pid for h in udp.holders] == [os.getpid()]
        assert [(s.state, s.local.address) for s in udp.holders[0].sockets] == [
            (TcpState.UNCONN, "0.0.0.0")
        ]
        assert not who(port, Proto.TCP).held
    six = socket.socket(socket.AF_INET6)
    try:
        six.bind(("::1", 0))
        six.listen()
        port = six.getsockname()[1]
        result = who(port)
        assert [str(s.local) for s in result.holders[0].sockets] == [f"[::1]:{port}"]
    finally:
        six.close()


def test_nobody_holds_a_free_port() -> None:
    port = free_ports(1, address="127.0.0.1")[0].port
    assert not who(port).held
    status, out, _ = run_cli("who", str(port))
    assert status == 1 and out == f"nobody holds port {port}\n"


# --- issue 18: --kill acts on listeners, never on a client's source port; orphans ---------

ROLES = r"""
import os, socket, sys, time
srv = socket.create_server(("127.0.0.1", int(sys.argv[1])))  # outside the ephemeral range
port = srv.getsockname()[1]
client = socket.create_connection(("127.0.0.1", port))
conn, _ = srv.accept()
if os.fork() == 0:  # the worker keeps the accepted connection, not the listener
    srv.close()
    client.close()
    os.write(1, f"worker {os.getpid()}\n".encode())  # one write: lines never interleave
    time.sleep(30)
    os._exit(0)
conn.close()
if os.fork() == 0:  # the client keeps its end: its local port is an ephemeral one
    srv.close()
    os.write(1, f"client {os.getpid()} {client.getsockname()[1]}\n".encode())
    time.sleep(30)
    os._exit(0)
client.close()
os.write(1, f"listener {os.getpid()} {port}\n".encode())
sys.stdin.read()
"""


@pytest.fixture
def roles() -> Iterator[dict[str, tuple[int, int]]]:
    """A listener, a forked worker holding a connection accepted on the listener's port,
    and a forked client whose source port is an ephemeral port: name -> (pid, port)."""
    port = free_ports(1, address="127.0.0.1")[0].port
    proc = subprocess.Popen(
        [sys.executable, "-c", ROLES, str(port)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    found: dict[str, tuple[int, int]] = {}
    try:
        assert proc.stdout is not None
        for _ in range(3):
            name, pid, *port = proc.stdout.readline().split()
            found[name] = (int(pid), int(port[0]) if port else 0)
        found["worker"] = (found["worker"][0], found["listener"][1])
        yield found
    finally:
        for pid, _ in found.values():
            if pid != proc.pid:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        proc.kill()
        proc.wait(timeout=10)
        assert proc.stdin is not None and proc.stdout is not None
        proc.stdin.close()
        proc.stdout.close()
        for pid, _ in found.values():
            if pid != proc.pid:
                with contextlib.suppress(ChildProcessError):
                    os.waitpid(pid, os.WNOHANG)


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ")[1][0] not in "ZX"
    except FileNotFoundError:
        return False


def test_kill_on_a_client_source_port_signals_nothing_and_says_so(
    roles: dict[str, tuple[int, int]],
) -> None:
    client_pid, client_port = roles["client"]
    out, err = io.StringIO(), io.StringIO()
    status = main(["who", str(client_port), "--kill", "--yes"], Env(stdout=out, stderr=err))
    assert status == 1
    assert "it is only the source port of outgoing connections" in err.getvalue()
    assert "nothing signalled" in err.getvalue()
    time.sleep(0.2)
    assert _alive(client_pid)  # before issue 18: SIGTERMed


def test_kill_signals_the_listener_and_leaves_accepted_connections_unless_asked(
    roles: dict[str, tuple[int, int]],
) -> None:
    listener_pid, port = roles["listener"]
    worker_pid, _ = roles["worker"]
    report = kill_holders(who(port, Proto.TCP), timeout_s=5, recheck=False)
    outcomes = {r.pid: r.outcome for r in report.results}
    assert outcomes[listener_pid] is KillOutcome.TERMINATED
    assert outcomes[worker_pid] is KillOutcome.ACCEPTED_ONLY
    assert _alive(worker_pid)
    out, err = io.StringIO(), io.StringIO()
    status = main(["who", str(port), "--kill", "--yes"], Env(stdout=out, stderr=err))
    assert status == 1 and "--accepted signals them too" in err.getvalue()
    assert _alive(worker_pid)
    status = main(["who", str(port), "--kill", "--yes", "--accepted"], Env(stdout=out, stderr=err))
    assert status == 0 and "is free now" in out.getvalue()
    assert not _alive(worker_pid)


ORPHAN = """
import socket, sys
srv = socket.create_server(("127.0.0.1", 0))
client = socket.create_connection(srv.getsockname())
conn, _ = srv.accept()
port = client.getsockname()[1]
client.close()  # FIN sent and acknowledged: the client end is an orphan in FIN-WAIT-2
print(port, srv.getsockname()[1], flush=True)
sys.stdin.read()  # the server end stays open (CLOSE-WAIT), so FIN-WAIT-2 lasts
"""


def test_an_orphaned_fin_wait_2_has_no_owner_and_will_expire() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-c", ORPHAN], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None
        port, server = map(int, proc.stdout.readline().split())

        def ours() -> list[TcpState]:  # other sockets may have used this port number
            return [s.state for s in result.orphans if s.remote and s.remote.port == server]

        deadline = time.monotonic() + 5
        result = who(port, Proto.TCP)
        while ours() != [TcpState.FIN_WAIT_2] and time.monotonic() < deadline:
            time.sleep(0.05)  # FIN-WAIT-1 until the FIN is acknowledged
            result = who(port, Proto.TCP)
        assert ours() == [TcpState.FIN_WAIT_2]
        assert not result.held and result.holders == ()
        out, err = io.StringIO(), io.StringIO()
        status = main(["who", str(port), "--kill", "--yes"], Env(stdout=out, stderr=err))
        assert status == 1
        with open("/proc/sys/net/ipv4/tcp_fin_timeout") as f:
            fin = int(f.read())
        assert f"expire by themselves (FIN-WAIT-2 within {fin} s" in out.getvalue()
        assert "only sockets the kernel is closing" in err.getvalue()
        assert "another PID namespace" not in err.getvalue()
    finally:
        proc.kill()
        proc.wait(timeout=10)
        assert proc.stdin is not None and proc.stdout is not None
        proc.stdin.close()
        proc.stdout.close()


# A listener shared with a forked worker (as nginx's master and workers share theirs), and
# 25 connections the master accepted from this test.
FORKED = """
import os, socket, sys, time
s = socket.socket()
s.bind(("127.0.0.1", 0))
s.listen(64)
if os.fork() == 0:
    time.sleep(30)  # the worker: holds the inherited listener only
    os._exit(0)
print(s.getsockname()[1], flush=True)
conns = [s.accept()[0] for _ in range(25)]
time.sleep(30)
"""


@pytest.fixture
def forked_server() -> Iterator[tuple[subprocess.Popen[str], int, list[socket.socket]]]:
    child = subprocess.Popen([sys.executable, "-c", FORKED], stdout=subprocess.PIPE, text=True)
    clients: list[socket.socket] = []
    worker = None
    try:
        assert child.stdout is not None
        port = int(child.stdout.readline())
        worker = _worker_of(child.pid)
        clients += [socket.create_connection(("127.0.0.1", port)) for _ in range(25)]
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if len(ss_established(port)) >= 25:
                break
            time.sleep(0.05)
        yield child, port, clients
    finally:
        for c in clients:
            c.close()
        if worker is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(worker, signal.SIGKILL)
        child.kill()
        child.wait(timeout=10)
        if child.stdout:
            child.stdout.close()


def ss_established(port: int) -> list[str]:
    out = subprocess.run(
        ["ss", "-Htn", "state", "established", f"sport = :{port}"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return out.splitlines()


def _worker_of(pid: int) -> int:
    from pathlib import Path

    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    assert len(children) == 1
    return int(children[0])


def test_the_fast_owner_scan_still_finds_a_forked_worker(
    forked_server: tuple[subprocess.Popen[str], int, list[socket.socket]],
) -> None:
    """The display scan stops once each socket has a holder, then reads the holders'
    descendants: the worker that inherited the listener is still found."""
    child, port, _ = forked_server
    worker = _worker_of(child.pid)
    full = who(port, Proto.TCP)
    fast = who(port, Proto.TCP, all_holders=False)
    assert [h.pid for h in full.holders] == [h.pid for h in fast.holders]
    assert sorted([child.pid, worker]) == [h.pid for h in fast.holders]
    assert {h.pid for h in fast.holders} == ss_pids(port)
    by_pid = {h.pid: h for h in fast.holders}
    assert len(by_pid[child.pid].sockets) == 26 and len(by_pid[worker].sockets) == 1
    assert [list(h.sockets) for h in full.holders] == [list(h.sockets) for h in fast.holders]


def test_cli_summarises_many_connections_and_lists_them_when_asked(
    forked_server: tuple[subprocess.Popen[str], int, list[socket.socket]],
) -> None:
    child, port, clients = forked_server
    status, out, _ = run_cli("who", str(port))
    assert status == 0
    assert f"25 connections on port {port} (ESTABLISHED 25) from 1 peers:" in out
    assert str(clients[0].getsockname()[1]) not in out
    status, every, _ = run_cli("who", str(port), "--connections")
    assert status == 0 and "connections on port" not in every
    assert all(f"127.0.0.1:{c.getsockname()[1]}" in every for c in clients)
    status, text, _ = run_cli("who", str(port), "--json")
    doc = json.loads(text)
    assert text.count("\n") == 1  # compact, one line
    master = next(h for h in doc["holders"] if h["pid"] == child.pid)
    assert len(master["sockets"]) == 26
    assert {s["remote"]["port"] for s in master["sockets"] if s["remote"]} == {
        c.getsockname()[1] for c in clients
    }


def test_the_forked_scan_finds_what_the_scan_in_this_process_finds(
    forked_server: tuple[subprocess.Popen[str], int, list[socket.socket]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``who PORT``'s /proc walk runs in a child process while the dump is decoded: the
    same holders and fds as the walk in this process, and the child is gone after."""
    import threading

    from portscope.sockets import SocketFilter, dump
    from portscope.sockets._owners import ForkedScan, OwnerMap

    child, port, _ = forked_server
    rows = [r for b in dump(SocketFilter(sports=frozenset({port}))).batches for r in b]
    wanted = {r.inode for r in rows if r.inode is not None}
    assert len(wanted) == 26
    if threading.active_count() != 1:
        pytest.skip("another thread runs in this test process: the scan does not fork")
    assert ForkedScan.WORTH_FROM > 100  # a quiet test namespace: not worth a fork ...
    monkeypatch.setattr(ForkedScan, "WORTH_FROM", 0)  # ... made to fork here
    scan = ForkedScan.start()
    assert scan is not None
    scanner = scan._pid
    forked = scan.finish(wanted)
    with pytest.raises(ProcessLookupError):
        os.kill(scanner, 0)  # killed and reaped
    here = OwnerMap.scan(wanted, first_holders=True)
    for inode in wanted:
        assert forked.holders(inode) == here.holders(inode)
    assert {pid for i in wanted for pid, _ in forked.holders(i)} == {
        child.pid,
        _worker_of(child.pid),
    }
    # the CLI (one thread) gives the same holders as ss
    out = subprocess.run(
        [sys.executable, "-m", "portscope", "who", str(port), "--json"],
        capture_output=True, text=True, timeout=60, check=True,
    ).stdout  # fmt: skip
    assert {h["pid"] for h in json.loads(out)["holders"]} == ss_pids(port)
