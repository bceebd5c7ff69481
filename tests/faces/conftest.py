"""Fixtures of the faces' tests: hostile processes, running dashboards, the browser.

Every process started here listens on 127.0.0.1 only and is killed by pid in the
fixture's finalizer. The browser (test_web_browser.py) is Debian's chromium, driven by Playwright
through ``executable_path`` (``playwright install`` cannot download here), with every
background-networking feature off and every host name but 127.0.0.1 unresolvable.
"""

from __future__ import annotations

import os
import re
import select
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--no-default-browser-check",
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1, EXCLUDE localhost",
]

# Names a process can give itself: Rich markup, a closing tag, an HTML script.
HOSTILE_NAMES = ("[link=http://x]", "[/]", "<script>alert(1)</script>")

_LISTENER = r"""
import ctypes, socket, sys, time
ctypes.CDLL(None).prctl(15, sys.argv[1].encode()[:15], 0, 0, 0)  # PR_SET_NAME: comm
s = socket.socket()
s.bind(("127.0.0.1", 0))
s.listen()
print(s.getsockname()[1], flush=True)
time.sleep(float(sys.argv[2]))
"""


@dataclass
class Listener:
    """A real process listening on 127.0.0.1:port, named ``name`` (comm and argv[0])."""

    name: str
    pid: int
    port: int
    proc: subprocess.Popen[str]

    @property
    def comm(self) -> str:
        return self.name[:15]


def _read_lines(proc: subprocess.Popen[str], count: int = 1, timeout_s: float = 10.0) -> list[str]:
    """The first ``count`` lines the process prints (unbuffered reads, bounded in time)."""
    assert proc.stdout is not None
    fd = proc.stdout.fileno()
    data = b""
    deadline = time.monotonic() + timeout_s
    while data.count(b"\n") < count:
        left = deadline - time.monotonic()
        ready, _, _ = select.select([fd], [], [], max(0.0, left))
        chunk = os.read(fd, 4096) if ready else b""
        if not chunk:
            stop(proc)
            raise AssertionError(f"pid {proc.pid} printed {data!r} in {timeout_s} s")
        data += chunk
    return data.decode().splitlines()[:count]


def start_listener(name: str = "ps12-listener", lifetime_s: float = 120.0) -> Listener:
    """Start a process named ``name`` (argv[0] and, cut to 15 bytes, comm) listening on a
    free port of 127.0.0.1; it exits by itself after ``lifetime_s``."""
    proc = subprocess.Popen(
        [name, "-c", _LISTENER, name, str(lifetime_s)],
        executable=sys.executable,
        stdout=subprocess.PIPE,
        text=True,
    )
    return Listener(name, proc.pid, int(_read_lines(proc)[0]), proc)


def stop(proc: subprocess.Popen[Any]) -> None:
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)
    for stream in (proc.stdout, proc.stderr):
        if stream is not None:
            stream.close()


@pytest.fixture
def listener() -> Iterator[Listener]:
    one = start_listener()
    yield one
    stop(one.proc)


@pytest.fixture(scope="session")
def hostile() -> Iterator[list[Listener]]:
    """Three listening processes with hostile names (``HOSTILE_NAMES``)."""
    procs = [start_listener(name) for name in HOSTILE_NAMES]
    yield procs
    for p in procs:
        stop(p.proc)


@dataclass
class Served:
    """A running ``portscope serve``."""

    proc: subprocess.Popen[str]
    base: str  # http://127.0.0.1:PORT
    port: int
    token: str
    lines: list[str]

    def url(self, path: str = "/") -> str:
        sep = "&" if "?" in path else "?"
        return f"{self.base}{path}{sep}token={self.token}"


def start_serve(*args: str, wrap: tuple[str, ...] = ()) -> Served:
    """``portscope serve ARGS``, run under ``wrap`` (e.g. ``setpriv ... --``) if given."""
    proc = subprocess.Popen(
        [*wrap, sys.executable, "-m", "portscope", "serve", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines = _read_lines(proc, 3, 20.0)
    first = lines[0]
    m = re.match(r"portscope serve: (http://127\.0\.0\.1:(\d+))/\?token=(\S+)$", first)
    if not m:
        stop(proc)
        raise AssertionError(lines)
    served = Served(proc, m.group(1), int(m.group(2)), m.group(3), lines)
    deadline = time.monotonic() + 10
    import socket

    while time.monotonic() < deadline:  # listening already (bound before printing)
        try:
            socket.create_connection(("127.0.0.1", served.port), timeout=1).close()
            break
        except OSError:
            time.sleep(0.05)
    return served


@pytest.fixture(scope="session")
def missing_db(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A store path where no store is (the user's own store is never read by a test)."""
    return str(tmp_path_factory.mktemp("nostore") / "history.db")


@pytest.fixture(scope="session")
def served(missing_db: str) -> Iterator[Served]:
    """``portscope serve`` with its defaults (read-only, random port, both loopbacks), and
    no history store at ``--db``."""
    one = start_serve("--db", missing_db)
    yield one
    stop(one.proc)


# Two nmap reports of 127.0.0.1 a moment apart: 8082 went from closed to open; a service
# name that is HTML (someone else's report).
NMAP_XML = """<?xml version="1.0"?>
<nmaprun scanner="nmap" start="{start}" args="nmap -sT -p 8081,8082 127.0.0.1">
<host><status state="up" reason="conn-refused"/><address addr="127.0.0.1" addrtype="ipv4"/>
<ports><extraports state="closed" count="1"/>
<port protocol="tcp" portid="8081"><state state="open" reason="syn-ack"/>
<service name="&lt;script&gt;alert(2)&lt;/script&gt;"/></port>
{more}</ports></host></nmaprun>
"""
NMAP_MORE = '<port protocol="tcp" portid="8082"><state state="open" reason="syn-ack"/></port>'


@dataclass
class Stored:
    """A history store made by the tests: snapshots ``before`` and ``after`` a listener
    (``port``, process ``name``) was opened, and two nmap reports ``monday``/``tuesday``."""

    db: str
    port: int
    name: str
    served: Served


def _portscope(*args: str) -> str:
    out = subprocess.run(
        [sys.executable, "-m", "portscope", *args], capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out
    return out.stdout + out.stderr


@pytest.fixture(scope="session")
def stored(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stored]:
    """A real store (``portscope snapshot``, ``portscope import``) and ``portscope serve
    --db`` on it."""
    where = tmp_path_factory.mktemp("store")
    db = str(where / "history.db")
    _portscope("snapshot", "--db", db, "--label", "before")
    one = start_listener("ps12-stored")
    try:
        _portscope("snapshot", "--db", db, "--label", "after")
        for label, start, more in (("monday", 1700000000, ""), ("tuesday", 1700086400, NMAP_MORE)):
            path = where / f"{label}.xml"
            path.write_text(NMAP_XML.format(start=start, more=more))
            _portscope("import", str(path), "--db", db, "--label", label)
        served = start_serve("--db", db)
    finally:
        stop(one.proc)
    yield Stored(db, one.port, one.name, served)
    stop(served.proc)


@pytest.fixture(scope="session")
def served_kill() -> Iterator[Served]:
    """``portscope serve --allow-kill``."""
    one = start_serve("--allow-kill")
    yield one
    stop(one.proc)
