"""The socket table on real sockets of this machine: the sockets this test opens are found
with the right addresses, states, queues, inodes and owners, by every backend."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from portscope.cli import Env, main
from portscope.models import Proto, Socket, TcpState
from portscope.sockets import SocketFilter, bind_scope, list_sockets

ME = os.getpid()
HAS_V6 = socket.has_ipv6 and Path("/proc/net/tcp6").exists()
needs_v6 = pytest.mark.skipif(not HAS_V6, reason="no IPv6 on this machine")


def inode(s: socket.socket) -> int:
    return os.fstat(s.fileno()).st_ino


def find(port: int, *, proto: str = "tcp", states: str = "all", owners: bool = True,
         backend: str | None = None) -> list[Socket]:  # fmt: skip
    table = list_sockets(
        protos=[proto],
        states=states,
        owners=owners,
        backend=backend,
        where=SocketFilter(ports=frozenset({port})),
    )
    assert table.backend == (backend or "netlink")
    return list(table.sockets)


def by_inode(sockets: list[Socket], s: socket.socket) -> Socket:
    hits = [x for x in sockets if x.inode == inode(s)]
    assert len(hits) == 1, sockets
    return hits[0]


@contextlib.contextmanager
def listening(family: int, host: str, backlog: int = 17, v6only: bool | None = None
              ) -> Iterator[socket.socket]:  # fmt: skip
    s = socket.socket(family, socket.SOCK_STREAM)
    try:
        if v6only is not None:
            s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, int(v6only))
        s.bind((host, 0))
        s.listen(backlog)
        yield s
    finally:
        s.close()


def test_tcp_listener_on_127_0_0_1_with_owner() -> None:
    with listening(socket.AF_INET, "127.0.0.1", backlog=17) as s:
        port = s.getsockname()[1]
        found = by_inode(find(port, states="listen"), s)
        assert found.proto is Proto.TCP and found.family == 4
        assert found.state is TcpState.LISTEN
        assert (found.local.address, found.local.port) == ("127.0.0.1", port)
        assert found.remote is None
        assert (found.recv_q, found.send_q) == (0, 17)  # accept queue, backlog
        assert found.uid == os.geteuid()
        assert found.v6only is None and found.interface is None
        assert found.owners is not None
        mine = [o for o in found.owners if o.pid == ME]
        assert len(mine) == 1 and mine[0].fd == s.fileno()
        assert mine[0].name == Path("/proc/self/comm").read_text().strip()
        assert mine[0].cmdline and mine[0].start_time and mine[0].start_time <= time.time()
        assert bind_scope(found) == "loopback only"


@needs_v6
def test_tcp_listener_on_ipv6_loopback() -> None:
    with listening(socket.AF_INET6, "::1", backlog=5) as s:
        found = by_inode(find(s.getsockname()[1], states="listen"), s)
        assert found.family == 6 and found.local.address == "::1"
        assert found.send_q == 5 and found.v6only is not None
        assert bind_scope(found) == "loopback only"


def test_listener_on_all_ipv4_interfaces() -> None:
    with listening(socket.AF_INET, "0.0.0.0") as s:
        found = by_inode(find(s.getsockname()[1], states="listen"), s)
        assert found.local.address == "0.0.0.0"
        assert bind_scope(found) == "all interfaces (IPv4)"


@needs_v6
@pytest.mark.parametrize("v6only", [False, True])
def test_dual_stack_and_v6only_listeners(v6only: bool) -> None:
    with listening(socket.AF_INET6, "::", v6only=v6only) as s:
        port = s.getsockname()[1]
        found = by_inode(find(port, states="listen"), s)
        assert found.local.address == "::" and found.v6only is v6only
        words = "all interfaces (IPv6 only)" if v6only else "all interfaces (IPv4+IPv6)"
        assert bind_scope(found) == words
        if not v6only:
            # an IPv4 client reaches it: the accepted socket is IPv6 with v4-mapped ends
            with socket.create_connection(("127.0.0.1", port)) as c:
                a, _ = s.accept()
                with a:
                    server = by_inode(find(port, states="established"), a)
                    assert server.family == 6
                    assert server.local.address == "::ffff:127.0.0.1"
                    assert server.remote is not None
                    assert server.remote.port == c.getsockname()[1]


def test_udp_bound_and_connected() -> None:
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    c = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    with u, c:
        u.bind(("127.0.0.1", 0))
        port = u.getsockname()[1]
        c.connect(("127.0.0.1", port))
        c.send(b"x" * 100)
        time.sleep(0.05)
        found = find(port, proto="udp")
        bound = by_inode(found, u)
        assert bound.proto is Proto.UDP and bound.state is TcpState.UNCONN
        assert bound.remote is None and bound.recv_q > 0  # the datagram waits
        conn = by_inode(found, c)
        assert conn.state is TcpState.ESTABLISHED
        assert conn.remote is not None and conn.remote.port == port
        assert any(o.pid == ME for o in conn.owners or ())


def test_established_pair_both_ends_with_five_tuples_and_pid() -> None:
    with listening(socket.AF_INET, "127.0.0.1") as s:
        port = s.getsockname()[1]
        with socket.create_connection(("127.0.0.1", port)) as c:
            a, _ = s.accept()
            with a:
                a.send(b"y" * 1000)  # unread by c: c's Recv-Q
                time.sleep(0.05)
                found = find(port, states="established")
                client, server = by_inode(found, c), by_inode(found, a)
                cport = c.getsockname()[1]
                assert client.five_tuple == ("tcp", "127.0.0.1", cport, "127.0.0.1", port)
                assert server.five_tuple == ("tcp", "127.0.0.1", port, "127.0.0.1", cport)
                assert client.recv_q == 1000
                for end, sock in ((client, c), (server, a)):
                    assert end.owners is not None
                    assert [(o.pid, o.fd) for o in end.owners] == [(ME, sock.fileno())]


def test_time_wait_socket() -> None:
    with listening(socket.AF_INET, "127.0.0.1") as s:
        port = s.getsockname()[1]
        c = socket.create_connection(("127.0.0.1", port))
        a, _ = s.accept()
        local = c.getsockname()
        c.close()  # the active closer ends in TIME-WAIT
        time.sleep(0.05)
        a.close()
        time.sleep(0.1)
        tw = [x for x in find(port, states="time-wait") if x.local.port == local[1]]
        assert len(tw) == 1
        assert tw[0].state is TcpState.TIME_WAIT
        assert tw[0].remote is not None and tw[0].remote.port == port
        assert tw[0].inode is None and tw[0].uid is None and tw[0].owners == ()


def test_socket_shared_by_two_processes_lists_both() -> None:
    with listening(socket.AF_INET, "127.0.0.1") as s:
        fd = s.fileno()
        child = subprocess.Popen(
            [sys.executable, "-c", "import time; time.sleep(30)"], pass_fds=[fd]
        )
        try:
            time.sleep(0.2)
            found = by_inode(find(s.getsockname()[1], states="listen"), s)
            assert found.owners is not None
            assert sorted((o.pid, o.fd) for o in found.owners) == sorted(
                [(ME, fd), (child.pid, fd)]
            )
        finally:
            child.kill()
            child.wait()


@pytest.mark.root
def test_socket_bound_to_a_device() -> None:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, getattr(socket, "SO_BINDTODEVICE", 25), b"lo")
        s.bind(("127.0.0.1", 0))
        s.listen()
        found = by_inode(find(s.getsockname()[1], states="listen"), s)
        assert found.interface == "lo"
        assert bind_scope(found) == "loopback only, device lo"


def test_without_owners_they_are_none() -> None:
    with listening(socket.AF_INET, "127.0.0.1") as s:
        table = list_sockets(protos=["tcp"], states=["listen"])
        found = [x for x in table.sockets if x.inode == inode(s)]
        assert len(found) == 1 and found[0].owners is None
        assert table.owners_complete is None


def test_no_duplicate_rows() -> None:
    table = list_sockets()
    keys = [(x.proto, x.family, x.state, x.local, x.remote, x.inode) for x in table.sockets]
    assert len(keys) == len(set(keys))


@contextlib.contextmanager
def busy(n: int) -> Iterator[int]:
    """n loopback connections (2n sockets) to one listener; yields its port."""
    with listening(socket.AF_INET, "127.0.0.1", backlog=n) as s:
        port = s.getsockname()[1]
        ends: list[socket.socket] = []
        try:
            for _ in range(n):
                ends.append(socket.create_connection(("127.0.0.1", port)))
                ends.append(s.accept()[0])
            yield port
        finally:
            for e in ends:
                e.close()


def test_procfs_and_netlink_agree_on_a_busy_table() -> None:
    def mine(backend: str, port: int) -> set[tuple[object, ...]]:
        return {
            (x.state, x.local, x.remote, x.inode, x.uid)
            for x in find(port, states="all", owners=False, backend=backend)
            if x.state is not TcpState.TIME_WAIT
            and x.local.address == "127.0.0.1"
            and (x.remote is None or x.remote.address == "127.0.0.1")
        }

    with busy(500) as port:
        netlink = mine("netlink", port)
        procfs = mine("procfs", port)
        assert len(netlink) == 1001  # 500 pairs and the listener
        assert procfs == netlink


def test_psutil_backend_finds_a_udp_socket_and_its_owner() -> None:
    pytest.importorskip("psutil")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
        u.bind(("127.0.0.1", 0))
        table = list_sockets(protos=["udp"], families=[4], owners=True, backend="psutil")
        hits = [x for x in table.sockets if x.local.port == u.getsockname()[1]]
        assert len(hits) == 1 and hits[0].state is TcpState.UNCONN
        assert [o.pid for o in hits[0].owners or ()] == [ME]
        assert table.notes  # says what psutil cannot report
        port = str(u.getsockname()[1])
        status, out, _ = run("ls", "-u", "-4", "-l", "-p", "--json", "--backend", "psutil",
                             "--sport", port)  # fmt: skip
        doc = json.loads(out)
        assert status == 0 and doc["backend"] == "psutil"
        assert [o["pid"] for s in doc["sockets"] for o in s["owners"]] == [ME]


def run(*argv: str) -> tuple[int, str, str]:
    out, err = io_pair()
    status = main(list(argv), Env(stdout=out, stderr=err))
    return status, out.getvalue(), err.getvalue()


def io_pair() -> tuple[Any, Any]:
    import io

    return io.StringIO(), io.StringIO()


def test_cli_listen_view_shows_our_listener_with_process_and_scope() -> None:
    with listening(socket.AF_INET, "127.0.0.1") as s:
        port = s.getsockname()[1]
        status, out, err = run("--json")
        assert status == 0
        doc = json.loads(out)
        assert doc["backend"] == "netlink"
        ours = [x for x in doc["sockets"] if x["local"]["port"] == port]
        assert len(ours) == 1
        assert ours[0]["scope"] == "loopback only"
        assert ours[0]["owners"][0]["pid"] == ME
        ports = [x["local"]["port"] for x in doc["sockets"]]
        assert ports == sorted(ports)
        status, out, err = run("listen", "-t", "-4")
        assert status == 0
        line = next(x for x in out.splitlines() if f" {port} " in x)
        assert "loopback only" in line and f"[{ME}]" in line
        # the host's other listeners are none of this test's business: 1 or many, the
        # count and its noun agree ("1 listening socket", "7 listening sockets")
        counted = re.search(r"^([\d,]+) listening (sockets?) \(backend: netlink\)$", err, re.M)
        assert counted is not None, err
        n = int(counted.group(1).replace(",", ""))
        assert n >= 1 and counted.group(2) == ("socket" if n == 1 else "sockets")


def test_cli_ls_filters_and_json() -> None:
    with busy(3) as port:
        status, out, _ = run("ls", "-t", "--port", str(port), "--addr", "127.0.0.1", "-p", "--json")
        assert status == 0
        doc = json.loads(out)
        socks = doc["sockets"]
        assert len(socks) == 6 and {x["state"] for x in socks} == {"ESTABLISHED"}
        assert all(x["owners"][0]["pid"] == ME for x in socks)
        assert doc["owners_complete"] is True
        status, out, _ = run(
            "ls", "-l", "--sport", str(port), "--addr", "127.0.0.1", "--json", "-n"
        )
        assert [x["state"] for x in json.loads(out)["sockets"]] == ["LISTEN"]
        status, out, _ = run(
            "ls", "-a", "--dport", str(port), "--addr", "127.0.0.1", "--sort", "rport", "--json"
        )
        assert len(json.loads(out)["sockets"]) == 3
        status, out, _ = run(
            "ls", "--port", str(port), "--addr", "127.0.0.1", "--pid", str(ME), "--json"
        )
        assert len(json.loads(out)["sockets"]) == 6
        status, out, _ = run("ls", "--port", str(port), "--process", "no-such-proc", "--json")
        assert json.loads(out)["sockets"] == []
        status, out, _ = run("ls", "--port", str(port), "--addr", "127.0.0.0/8", "-p")
        assert status == 0 and out.count(f"[{ME}]") == 6
        status, out, _ = run("ls", "--port", str(port), "--addr", "10.0.0.0/8", "--json")
        assert json.loads(out)["sockets"] == []
        status, out, _ = run(
            "ls", "--port", str(port), "--addr", "127.0.0.1", "--backend", "procfs", "--json"
        )
        doc = json.loads(out)
        assert doc["backend"] == "procfs" and len(doc["sockets"]) == 6


def test_cli_summary_counts_our_connections() -> None:
    with busy(4):
        status, out, _ = run("ls", "--summary", "--json", "-t")
        doc = json.loads(out)
        assert status == 0
        assert doc["by_proto"]["tcp"]["states"]["ESTABLISHED"] >= 8
        assert doc["by_proto"]["tcp"]["states"]["LISTEN"] >= 1


@pytest.mark.root
def test_without_ptrace_privilege_owners_are_partial_with_a_note() -> None:
    # A listener of another user (nobody), seen by a portscope that lacks CAP_SYS_PTRACE and
    # the DAC overrides: /proc/PID/fd of that process is unreadable, as for a non-root user.
    if shutil.which("setpriv") is None or shutil.which("ncat") is None:
        pytest.skip("needs setpriv (util-linux) and ncat (scripts/install-test-deps)")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    holder = subprocess.Popen(
        ["setpriv", "--reuid", "65534", "--regid", "65534", "--clear-groups",
         "ncat", "-l", "127.0.0.1", str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 5
        while not list_sockets(
            states="listen", where=SocketFilter(ports=frozenset({port}))
        ).sockets:
            assert time.monotonic() < deadline, "ncat did not start listening"
            time.sleep(0.05)
        drop = ["setpriv", "--bounding-set", "-sys_ptrace,-dac_read_search,-dac_override"]
        cli = [sys.executable, "-m", "portscope", "ls", "-l", "-t", "-p", "--port", str(port)]
        as_json = subprocess.run([*drop, *cli, "--json"], capture_output=True, text=True,
                                 timeout=60, check=False)  # fmt: skip
        human = subprocess.run([*drop, *cli], capture_output=True, text=True, timeout=60,
                               check=False)  # fmt: skip
    finally:
        holder.kill()
        holder.wait()
    assert as_json.returncode == 0, as_json.stderr
    doc = json.loads(as_json.stdout)
    assert doc["owners_complete"] is False
    assert any("could not be inspected" in n for n in doc["notes"])
    [sock] = doc["sockets"]
    assert sock["owners"] == [] and sock["uid"] == 65534
    assert "portscope: note: process owners are partial" in as_json.stderr
    # The human table still says whose socket it is, from the socket's uid.
    assert human.returncode == 0 and "nobody" in human.stdout
    assert "Traceback" not in as_json.stderr + human.stderr


def test_kernel_port_filter_gives_what_the_python_filter_gives(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    backend_module = sys.modules["portscope.sockets._backend"]
    with busy(3) as port, listening(socket.AF_INET, "127.0.0.1") as other:
        filters = [
            SocketFilter(sports=frozenset({port})),
            SocketFilter(dports=frozenset({port})),
            SocketFilter(ports=frozenset({port, other.getsockname()[1]})),
        ]
        kernel = [set(list_sockets(where=f).sockets) for f in filters]
        monkeypatch.setattr(backend_module, "_port_clauses", lambda where: [])
        python = [set(list_sockets(where=f).sockets) for f in filters]
        assert kernel == python
        assert len(kernel[0]) >= 4 and len(kernel[1]) >= 3 and len(kernel[2]) >= 8


def test_a_kernel_without_udp_diag_falls_back_to_proc_net_with_a_note(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import errno

    from portscope.errors import BackendUnavailable

    backend_module = sys.modules["portscope.sockets._backend"]
    real = backend_module.decode_chunk

    def no_udp_diag(chunk: bytes, family: int, proto: Proto, *rest: Any) -> bool:
        if proto is Proto.UDP:
            raise BackendUnavailable("sock_diag dump failed: ENOENT", errno=errno.ENOENT)
        return bool(real(chunk, family, proto, *rest))

    monkeypatch.setattr(backend_module, "decode_chunk", no_udp_diag)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
        u.bind(("127.0.0.1", 0))
        table = list_sockets(protos=["udp"], families=[4])
        assert table.backend == "netlink"
        assert any("no sock_diag for udp/IPv4" in n for n in table.notes)
        assert [x.inode for x in table.sockets if x.local.port == u.getsockname()[1]] == [inode(u)]


def test_process_filter_matches_part_of_the_name_a_glob_or_exactly() -> None:
    comm = Path("/proc/self/comm").read_text().strip()  # python3, python3.11 ...
    with listening(socket.AF_INET, "127.0.0.1") as s:
        port = s.getsockname()[1]

        def count(*extra: str) -> int:
            status, out, err = run("ls", "-l", "--sport", str(port), "-n", "--json", *extra)
            assert status == 0, err
            return len(json.loads(out)["sockets"])

        assert count("--process", comm[:4]) == 1  # "pyth" matches python3 (pgrep-like)
        assert count("--process", comm[:3] + "*") == 1
        assert count("--process", f"={comm}") == 1
        assert count("--process", f"={comm[:4]}") == 0
        assert count("--process", "no-such-proc") == 0


def test_user_filter_matches_the_process_user_too() -> None:
    from portscope.sockets._owners import user_name

    me = user_name(os.geteuid())
    with listening(socket.AF_INET, "127.0.0.1") as s:
        port = s.getsockname()[1]
        for user in (me, str(os.geteuid())):
            status, out, _ = run("ls", "-l", "--sport", str(port), "--user", user, "--json")
            assert status == 0 and len(json.loads(out)["sockets"]) == 1


@needs_v6
def test_procfs_backend_shows_unknown_backlog_and_v6only_with_a_note() -> None:
    with listening(socket.AF_INET6, "::", backlog=9, v6only=False) as s:
        port = s.getsockname()[1]
        status, out, err = run("ls", "-l", "--sport", str(port), "--backend", "procfs", "--json")
        assert status == 0
        (sock,) = json.loads(out)["sockets"]
        assert sock["send_q"] is None and sock["v6only"] is None  # not 0, not false
        assert "procfs backend" in err and "IPV6_V6ONLY" in err
        status, out, err = run("listen", "-t", "--backend", "procfs")
        line = next(x for x in out.splitlines() if f" {port} " in x)
        assert "all interfaces (IPv6; IPv4 unknown)" in line and "0/?" in line
        assert "procfs backend" in err
        status, out, _ = run("listen", "-t", "--backend", "procfs", "--json")
        (sock,) = [x for x in json.loads(out)["sockets"] if x["local"]["port"] == port]
        assert sock["send_q"] is None and sock["scope"] == "all interfaces (IPv6; IPv4 unknown)"
        # netlink knows both
        status, out, _ = run("ls", "-l", "--sport", str(port), "--json", "-n")
        (sock,) = json.loads(out)["sockets"]
        assert sock["send_q"] == 9 and sock["v6only"] is False


def test_every_socket_document_names_its_schema() -> None:
    for argv in (
        ["ls", "-n", "--json"],
        ["ls", "--json"],
        ["listen", "--json"],
        ["ls", "--summary", "--json"],
        ["ls", "-t", "--json", "--sort", "port"],
    ):
        status, out, _ = run(*argv)
        assert status == 0 and json.loads(out)["schema"] == "portscope.sockets/2", argv
