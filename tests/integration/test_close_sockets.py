"""``ls --close`` / ``who PORT --close`` (SOCK_DESTROY) on real loopback connections:
only the socket matched (by cookie) closes, its process lives on."""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator

import pytest

from portscope.cli import Env, main
from portscope.sockets import SocketFilter, dump
from portscope.sockets.destroy import CHANGED, CLOSED, GONE, close_sockets

pytestmark = pytest.mark.root  # CAP_NET_ADMIN


def run(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    status = main(list(argv), Env(stdout=out, stderr=err))
    return status, out.getvalue(), err.getvalue()


@contextlib.contextmanager
def two_connections() -> Iterator[tuple[int, list[socket.socket]]]:
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(4)
    port = srv.getsockname()[1]
    held = [srv]
    try:
        for _ in range(2):
            c = socket.create_connection(("127.0.0.1", port))
            a, _ = srv.accept()
            held += [c, a]
        yield port, held
    finally:
        for s in held:
            s.close()


def aborted(s: socket.socket) -> bool:
    """Whether the kernel aborted ``s`` (SOCK_DESTROY: the next call fails)."""
    try:
        s.send(b"x")
    except OSError:
        return True
    return False


def test_close_only_the_matched_socket() -> None:
    with two_connections() as (_port, held):
        _, c1, _a1, c2, a2 = held
        local = c1.getsockname()[1]
        # --pid: only this process's sockets (another program may use the same port number)
        status, out, err = run(
            "ls", "--sport", str(local), "--pid", str(os.getpid()), "--close", "--yes", "--json"
        )
        assert status == 0, err
        (result,) = json.loads(out)["closed"]
        assert result["result"] == "closed" and result["socket"]["local"]["port"] == local
        assert aborted(c1)
        assert not aborted(c2) and not aborted(a2)  # the other connection is untouched
        got = a2.recv(10)
        assert got == b"x"


def test_a_changed_cookie_is_not_touched() -> None:
    with two_connections() as (_port, held):
        c1 = held[1]
        d = dump(SocketFilter(sports=frozenset({c1.getsockname()[1]})))
        # by inode: another socket may have the same port number
        (row,) = [r for b in d.batches for r in b if r.inode == os.fstat(c1.fileno()).st_ino]
        assert row.cookie is not None
        stale = row._replace(cookie=row.cookie + 1)
        (res,) = close_sockets([stale])
        # the kernel finds the address but not the cookie: ENOENT (ESTALE before 4.x)
        assert res.result in (GONE, CHANGED) and not aborted(c1)
        (res,) = close_sockets([row])
        assert res.result == CLOSED and aborted(c1)


def test_refuses_without_a_filter_and_without_a_terminal() -> None:
    status, _, err = run("ls", "--close")
    assert status == 2 and "refuses to close every socket" in err
    status, _, err = run("ls", "-a", "--state", "established", "--close", "--yes")
    assert status == 2 and "--close needs a filter" in err
    with two_connections() as (_port, held):
        c1 = held[1]
        status, _, err = run(
            "ls", "--sport", str(c1.getsockname()[1]), "--pid", str(os.getpid()), "--close"
        )
        assert status == 2 and "add --yes" in err  # pytest's stdin is not a terminal
        assert not aborted(c1)
    status, _, err = run("ls", "--yes")
    assert status == 2


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_the_prompt_escapes_process_names(monkeypatch: pytest.MonkeyPatch) -> None:
    # a process named with an escape sequence holds the connection
    code = (
        "import socket,sys,time\n"
        "open('/proc/self/comm','w').write('ev\\x1b[31mil')\n"
        "c=socket.create_connection(('127.0.0.1',int(sys.argv[1])))\n"
        "print(c.getsockname()[1],flush=True)\n"
        "time.sleep(30)\n"
    )
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)
    port = srv.getsockname()[1]
    child = subprocess.Popen([sys.executable, "-c", code, str(port)], stdout=subprocess.PIPE,
                             text=True)  # fmt: skip
    try:
        assert child.stdout is not None
        local = int(child.stdout.readline())
        a, _ = srv.accept()
        mine = ("--sport", str(local), "--pid", str(child.pid))
        monkeypatch.setattr(sys, "stdin", _Tty("n\n"))
        status, out, err = run("ls", *mine, "--close")
        assert status == 1 and "nothing closed" in err
        assert "\x1b" not in err and "\x1b" not in out
        assert "ev\\x1b[31mil" in err  # in the question, escaped
        monkeypatch.setattr(sys, "stdin", _Tty("y\n"))
        status, out, err = run("ls", *mine, "--close")
        assert status == 0 and "closed" in out
        assert child.poll() is None  # the process lives on
        a.close()
    finally:
        child.kill()
        child.wait()
        if child.stdout is not None:
            child.stdout.close()
        srv.close()


WHO_CLOSE = """
import json, io, socket, subprocess
subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
from portscope.cli import Env, main
srv = socket.socket(); srv.bind(("127.0.0.1", 0)); srv.listen(4)
port = srv.getsockname()[1]
pairs = []
for _ in range(2):
    c = socket.create_connection(("127.0.0.1", port)); a, _ = srv.accept(); pairs.append((c, a))
out, err = io.StringIO(), io.StringIO()
status = main(["who", str(port), "--close", "--yes", "--json"], Env(stdout=out, stderr=err))
def aborted(s):
    try:
        s.send(b"x")
    except OSError:
        return True
    return False
try:
    socket.create_connection(("127.0.0.1", port), timeout=1)
    refused = False
except OSError:
    refused = True
print(json.dumps({"status": status, "doc": json.loads(out.getvalue()),
                  "aborted": [aborted(a) for _, a in pairs], "refused": refused}))
"""


@pytest.mark.skipif(shutil.which("unshare") is None, reason="needs unshare (util-linux)")
def test_who_port_close_closes_the_listener_and_its_connections() -> None:
    # in a network namespace of its own: nothing else there has the port
    proc = subprocess.run(
        ["unshare", "--net", sys.executable, "-c", WHO_CLOSE],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    got = json.loads(proc.stdout)
    assert got["status"] == 0
    results = got["doc"]["closed"]
    assert len(results) == 3 and {r["result"] for r in results} == {"closed"}
    assert {r["socket"]["state"] for r in results} == {"LISTEN", "ESTABLISHED"}
    assert got["aborted"] == [True, True] and got["refused"] is True
