"""History across network namespaces: ``snapshot -N``, and ``diff``/``history`` naming the
namespace of each change (real namespaces, ``ps11n-*``; root)."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from portscope.history import SCHEMA_VERSION, open_store
from portscope.history._sqlite import SqliteBackend
from portscope.history._store import MIGRATIONS, _ddl

PORTSCOPE = [sys.executable, "-m", "portscope"]

pytestmark = pytest.mark.skipif(shutil.which("ip") is None, reason="needs ip (iproute2)")

LISTENER = """
import socket, sys, time
s = socket.socket()
s.bind((sys.argv[1], int(sys.argv[2])))
s.listen()
print("ready", flush=True)
time.sleep(60)
"""


class Namespace:
    """A named network namespace (``ip netns add``) with loopback up, and its listeners."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.inode = os.stat(f"/run/netns/{name}").st_ino
        self.children: list[subprocess.Popen[str]] = []

    def listen(self, address: str, port: int) -> subprocess.Popen[str]:
        child = subprocess.Popen(
            ["ip", "netns", "exec", self.name, sys.executable, "-c", LISTENER, address,
             str(port)],
            stdout=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        self.children.append(child)
        assert child.stdout is not None and child.stdout.readline() == "ready\n"
        return child


@pytest.fixture
def namespace() -> Iterator[Namespace]:
    name = f"ps11n-{os.getpid()}-{time.monotonic_ns() % 1_000_000}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        subprocess.run(["ip", "-n", name, "link", "set", "lo", "up"], check=True)
        ns = Namespace(name)
        yield ns
    finally:
        for child in ns.children:
            if child.poll() is None:
                child.kill()
            child.wait(timeout=10)
            if child.stdout is not None:
                child.stdout.close()
        subprocess.run(["ip", "netns", "del", name], check=False)


@pytest.fixture
def host_listener() -> Iterator[socket.socket]:
    """A listener on the host's loopback, on a free port."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        yield s


def run(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*PORTSCOPE, *argv], capture_output=True, text=True, timeout=60)


def comm(pid: int) -> str:
    return Path(f"/proc/{pid}/comm").read_text().strip()


@pytest.mark.root
def test_snapshot_of_every_namespace_then_diff_names_the_removal(
    tmp_path: Path, namespace: Namespace, host_listener: socket.socket
) -> None:
    db = str(tmp_path / "h.db")
    port = host_listener.getsockname()[1]
    inside = namespace.listen("0.0.0.0", port)  # the same port, another namespace
    host_inode = os.stat("/proc/self/ns/net").st_ino  # pid 1's may be unreadable here
    out = run("snapshot", "-N", "all", "--label", "before", "--db", db, "--json")
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    assert doc["snapshot"]["netns"] is None and doc["snapshot"]["netns_spec"] == "all"
    spaces = {ns["inode"]: ns["name"] for ns in doc["namespaces"]}
    assert spaces[namespace.inode] == namespace.name and spaces[host_inode] == "host"
    with open_store(db, create=False) as store:
        snap = store.resolve("before")
        held = {(i.netns, i.netns_name, i.address) for i in store.listeners(snap.id, port=port)}
        assert {namespace.name, "host"} <= {n.name for n in store.namespaces(snap.id)}
    assert held == {
        (namespace.inode, namespace.name, "0.0.0.0"),
        (host_inode, "host", "127.0.0.1"),
    }
    inside.kill()
    inside.wait()
    assert run("snapshot", "-N", "all", "--label", "after", "--db", db).returncode == 0
    # other namespaces on this host come and go (other tests): our port's changes only
    out = run("diff", "before", "after", "--json", "--db", db)
    assert out.returncode == 1, out.stderr
    mine = [e for e in json.loads(out.stdout)["events"] if e["socket"]["local"]["port"] == port]
    assert len(mine) == 1, mine
    (event,) = mine
    assert event["action"] == "removed" and event["after"] is None
    assert event["before"]["netns"] == namespace.inode
    assert event["before"]["netns_name"] == namespace.name
    assert event["before"]["local"] == {"address": "0.0.0.0", "port": port}
    assert event["before"]["owners"][0]["pid"] == inside.pid
    lines = [line for line in run("diff", "before", "after", "--db", db).stdout.splitlines()
             if f":{port} " in line]  # fmt: skip
    assert lines == [
        f"removed tcp 0.0.0.0:{port} {comm(os.getpid())}[{inside.pid}] in netns {namespace.name}"
    ]
    # 'now' lists what the snapshot did (-N all): the host's listener is no change
    out = run("diff", "before", "--json", "--db", db)
    assert out.returncode == 1, out.stderr
    mine = [e for e in json.loads(out.stdout)["events"] if e["socket"]["local"]["port"] == port]
    assert [(e["action"], e["socket"]["netns_name"]) for e in mine] == [("removed", namespace.name)]
    # the port's timeline tells the two namespaces apart
    out = run("history", str(port), "--db", db)
    assert out.returncode == 0, out.stderr
    assert "NETNS" in out.stdout and namespace.name in out.stdout


@pytest.mark.root
def test_snapshot_of_one_namespace_and_diff_against_now(
    tmp_path: Path, namespace: Namespace
) -> None:
    db = str(tmp_path / "h.db")
    first = namespace.listen("127.0.0.1", 8000)
    namespace.listen("0.0.0.0", 9000)
    out = run("snapshot", "-N", namespace.name, "--db", db)
    assert out.returncode == 0, out.stderr
    assert "2 listeners (2 tcp) in 1 network namespace" in out.stdout
    with open_store(db, create=False) as store:
        snap = store.resolve("last")
        assert (snap.netns, snap.netns_spec) == (namespace.inode, namespace.name)
    assert run("diff", "--db", db).returncode == 0  # 'now' is that namespace again
    first.kill()
    first.wait()
    out = run("diff", "--db", db)
    assert out.returncode == 1, out.stderr
    name = comm(os.getpid())
    assert out.stdout.splitlines() == [
        f"removed tcp 127.0.0.1:8000 {name}[{first.pid}] in netns {namespace.name}"
    ]
    # -N overrides what 'now' lists: this process's namespace has neither listener
    out = run("diff", "-N", str(os.getpid()), "--json", "--db", db)
    assert out.returncode == 1
    gone = [
        (e["action"], e["before"]["local"]["port"])
        for e in json.loads(out.stdout)["events"]
        if e["before"] is not None and e["before"]["netns"] == namespace.inode
    ]
    assert sorted(gone) == [("removed", 8000), ("removed", 9000)]


def test_bad_netns_is_one_line_exit_2(tmp_path: Path) -> None:
    out = run("snapshot", "-N", "ps11n-no-such-namespace", "--db", str(tmp_path / "h.db"))
    assert out.returncode == 2 and out.stderr.count("\n") == 1, out
    assert "ps11n-no-such-namespace" in out.stderr and "Traceback" not in out.stderr


def test_schema_2_store_migrates_to_3_and_keeps_its_snapshots(tmp_path: Path) -> None:
    db = tmp_path / "old.db"
    backend = SqliteBackend(str(db), create=True, busy_timeout_s=5.0)
    with backend.write() as w:
        w.execute(
            "CREATE TABLE schema_version (version INTEGER NOT NULL, applied_at REAL NOT NULL)"
        )
        for version, statements in MIGRATIONS:
            if version <= 2:
                for ddl in statements:
                    w.execute(_ddl(ddl, backend.dialect))
                w.execute("INSERT INTO schema_version VALUES (?, 0)", (version,))
        w.execute(
            "INSERT INTO snapshots (host, kind, label, taken_at, source, netns, items, complete)"
            " VALUES ('vm', 'listeners', 'old', 1.0, 'snapshot', 4026531833, 0, 1)"
        )
    backend.close()
    with open_store(str(db), create=False) as store:
        assert store.schema_version() == SCHEMA_VERSION == 3
        old = store.resolve("old")
        assert (old.netns, old.netns_spec) == (4026531833, None)
        assert store.namespaces(old.id) == [] and store.listeners(old.id) == []
    with contextlib.closing(sqlite3.connect(db)) as conn:
        assert conn.execute("SELECT COUNT(*) FROM snapshot_netns").fetchone() == (0,)


@pytest.mark.root
def test_watch_of_namespaces_names_each_event(namespace: Namespace, tmp_path: Path) -> None:
    # watch runs on the host and watches the namespace through the netns worker
    watch = subprocess.Popen(
        [*PORTSCOPE, "watch", "-N", namespace.name, "--count", "2", "--for", "20"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert watch.stdout is not None and watch.stderr is not None
        assert watch.stderr.readline().startswith("watching 0 listeners")
        first = namespace.listen("127.0.0.1", 8000)
        line = watch.stdout.readline()
        assert line.split(" ", 1)[1] == (
            f"added tcp 127.0.0.1:8000 {comm(os.getpid())}[{first.pid}] in netns {namespace.name}\n"
        )
        first.kill()
        first.wait()
        line = watch.stdout.readline()
        assert line.split(" ", 1)[1].startswith("removed tcp 127.0.0.1:8000 ")
        assert line.endswith(f" in netns {namespace.name}\n")
        assert watch.wait(timeout=10) == 0
    finally:
        if watch.poll() is None:
            watch.kill()
        watch.wait(timeout=10)
        for pipe in (watch.stdout, watch.stderr):
            if pipe is not None:
                pipe.close()


@pytest.mark.root
def test_watch_json_of_every_namespace_carries_inode_and_name(namespace: Namespace) -> None:
    watch = subprocess.Popen(
        [*PORTSCOPE, "watch", "-N", "all", "--json", "-p", "8123", "--count", "1", "--for", "20"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert watch.stdout is not None and watch.stderr is not None
        assert watch.stderr.readline().startswith("watching")
        server = namespace.listen("0.0.0.0", 8123)
        event = json.loads(watch.stdout.readline())
        assert event["action"] == "added"
        assert event["socket"]["netns"] == namespace.inode
        assert event["socket"]["netns_name"] == namespace.name
        assert event["socket"]["owners"][0]["pid"] == server.pid
        assert watch.wait(timeout=10) == 0
    finally:
        if watch.poll() is None:
            watch.kill()
        watch.wait(timeout=10)
        for pipe in (watch.stdout, watch.stderr):
            if pipe is not None:
                pipe.close()
