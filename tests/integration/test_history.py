"""The history store and its commands with real processes, sockets and namespaces.

Commands that list sockets run in a network namespace of their own (``ps11-*``, made and
deleted here) so that other programs' listeners on this machine make no events. Writers
are real processes: two at once, and one killed with SIGKILL mid-transaction.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from portscope.errors import InvalidInput, StoreError
from portscope.history import (
    SCHEMA_VERSION,
    Action,
    SnapshotKind,
    StoredSocket,
    diff_listeners,
    open_store,
)
from portscope.models import Owner, Proto, TcpState

PORTSCOPE = [sys.executable, "-m", "portscope"]
needs_ip = pytest.mark.skipif(shutil.which("ip") is None, reason="needs ip (iproute2)")


class Netns:
    """A network namespace with loopback up, and the processes started in it."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.children: list[subprocess.Popen[str]] = []

    def cmd(self, *argv: str) -> list[str]:
        return ["ip", "netns", "exec", self.name, *argv]

    def run(
        self, *argv: str, timeout: float = 30, **kw: object
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(  # type: ignore[call-overload,no-any-return]
            self.cmd(*argv), capture_output=True, text=True, timeout=timeout, **kw
        )

    def spawn(self, *argv: str, **kw: object) -> subprocess.Popen[str]:
        child = subprocess.Popen(self.cmd(*argv), text=True, **kw)  # type: ignore[call-overload]
        self.children.append(child)
        return child  # type: ignore[no-any-return]


@pytest.fixture
def netns() -> Iterator[Netns]:
    name = f"ps11-{os.getpid()}-{time.monotonic_ns() % 1_000_000}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    ns = Netns(name)
    try:
        subprocess.run(ns.cmd("ip", "link", "set", "lo", "up"), check=True)
        yield ns
    finally:
        for child in ns.children:
            if child.poll() is None:
                child.kill()
            child.wait(timeout=10)
            for pipe in (child.stdin, child.stdout, child.stderr):
                if pipe is not None:
                    pipe.close()
        subprocess.run(["ip", "netns", "del", name], check=False)


LISTENER = """
import socket, sys, time
family = socket.AF_INET6 if ":" in sys.argv[1] else socket.AF_INET
s = socket.socket(family)
s.bind((sys.argv[1], int(sys.argv[2])))
s.listen()
print("ready", flush=True)
time.sleep(float(sys.argv[3]) if len(sys.argv) > 3 else 60)
"""


def listen(ns: Netns, address: str, port: int, hold_s: float = 60) -> subprocess.Popen[str]:
    child = ns.spawn(
        sys.executable, "-c", LISTENER, address, str(port), str(hold_s), stdout=subprocess.PIPE
    )
    assert child.stdout is not None and child.stdout.readline() == "ready\n"
    return child


def stored(port: int, inode: int) -> StoredSocket:
    return StoredSocket(
        1, Proto.TCP, 4, TcpState.LISTEN, "127.0.0.1", port, None, None, 0, 128, 0, inode,
        None, None, (Owner(10, "srv", "root", ("srv", "--port", str(port)), 1.0, 3),),
    )  # fmt: skip


def count_rows(db: Path, snapshot_id: int) -> int:
    with contextlib.closing(sqlite3.connect(db)) as conn:
        return int(
            conn.execute("SELECT COUNT(*) FROM sockets WHERE snapshot_id = ?", (snapshot_id,))
            .fetchone()[0]
        )  # fmt: skip


def integrity(db: Path) -> str:
    with contextlib.closing(sqlite3.connect(db)) as conn:
        return str(conn.execute("PRAGMA integrity_check").fetchone()[0])


def small_report(directory: Path, ports: int) -> Path:
    """An nmap XML report of one host with ``ports`` open ports."""
    lines = [f'<port protocol="tcp" portid="{p}"><state state="open" reason="syn-ack"/></port>'
             for p in range(1, ports + 1)]  # fmt: skip
    path = directory / "report.xml"
    path.write_text(
        '<?xml version="1.0"?><nmaprun start="1700000000" args="nmap -sT 198.18.0.2">'
        '<host><status state="up"/><address addr="198.18.0.2" addrtype="ipv4"/>'
        f"<ports>{''.join(lines)}</ports></host></nmaprun>"
    )
    return path


# -- the store API -------------------------------------------------------------------


def test_store_round_trip_and_references(tmp_path: Path) -> None:
    db = tmp_path / "h.db"
    with open_store(str(db)) as store:
        assert store.schema_version() == SCHEMA_VERSION
        first = store.save_sockets([stored(80, 1), stored(443, 2)], label="before", taken_at=100.0)
        second = store.save_sockets([stored(80, 3)], taken_at=200.0)
        assert [s.id for s in store.snapshots()] == [second.id, first.id]
        assert store.resolve("last").id == second.id
        assert store.resolve("last~1").id == first.id
        assert store.resolve("before").id == first.id
        assert store.resolve(str(first.id)).label == "before"
        with pytest.raises(InvalidInput, match="no snapshot 'nope'"):
            store.resolve("nope")
        with pytest.raises(InvalidInput, match="no snapshot 'last-scan'"):
            store.resolve("last-scan")
        (item,) = store.listeners(second.id)
        assert (item.port, item.netns, item.owners[0].cmdline) == (80, 1, ("srv", "--port", "80"))  # type: ignore[index]
        assert os.stat(db).st_mode & 0o777 == 0o600  # command lines of every process
    # a second open does not migrate again
    with open_store(str(db)) as store:
        assert store.schema_version() == SCHEMA_VERSION
    with sqlite3.connect(db) as conn:
        applied = conn.execute("SELECT COUNT(*) FROM schema_version").fetchone()[0]
        assert applied == SCHEMA_VERSION  # one row per migration, none twice
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_diff_in_the_database_equals_the_whole_diff(tmp_path: Path) -> None:
    def sock(
        address: str,
        port: int,
        pid: int,
        name: str = "srv",
        proto: Proto = Proto.TCP,
        netns: int | None = 1,
    ) -> StoredSocket:
        state = TcpState.LISTEN if proto is Proto.TCP else TcpState.UNCONN
        return StoredSocket(
            netns,
            proto,
            6 if ":" in address else 4,
            state,
            address,
            port,
            None,
            None,
            0,
            0,
            0,
            pid * 100 + port,
            None,
            None,
            (Owner(pid, name, "root", (name,), 1.0, 3),),
        )

    before = [
        sock("127.0.0.1", 8000, 10),  # widened
        sock("0.0.0.0", 22, 11),  # restarted: another PID, same program: no event
        sock("0.0.0.0", 80, 12, "nginx"), sock("0.0.0.0", 80, 13, "nginx"),  # one worker fewer
        sock("0.0.0.0", 443, 14, "nginx"),  # another program
        sock("::", 53, 15, proto=Proto.UDP),  # removed
        sock("127.0.0.1", 5432, 16, netns=None),  # unchanged, unknown netns
        *(sock("127.0.0.1", 20000 + i, 17) for i in range(1200)),  # unchanged
    ]  # fmt: skip
    after = [
        sock("0.0.0.0", 8000, 10),
        sock("0.0.0.0", 22, 21),
        sock("0.0.0.0", 80, 12, "nginx"),
        sock("0.0.0.0", 443, 14, "caddy"),
        sock("127.0.0.1", 5432, 16, netns=None),
        sock("::1", 9999, 22),  # added
        *(sock("127.0.0.1", 20000 + i, 17) for i in range(1200)),
    ]
    with open_store(str(tmp_path / "h.db")) as store:
        a, b = store.save_sockets(before), store.save_sockets(after)
        whole = diff_listeners(store.listener_table(a.id), store.listener_table(b.id))
        part_a, part_b = store.changed_listeners(a.id, b.id)
        assert diff_listeners(part_a, part_b) == whole
        assert len(part_a) < 10 and len(part_b) < 10  # the unchanged stayed in the database
    assert [(e.action.value, e.subject.port) for e in whole] == [
        ("removed", 53), ("owner-changed", 443), ("scope-widened", 8000), ("added", 9999)
    ]  # fmt: skip


def test_prune_by_age(tmp_path: Path) -> None:
    db = str(tmp_path / "h.db")
    now = time.time()
    with open_store(db) as store:
        store.save_sockets([stored(80, 1)], taken_at=now - 40 * 86400)
        keep = store.save_sockets([stored(80, 1)], taken_at=now - 86400)
    out = subprocess.run(
        [*PORTSCOPE, "prune", "--older-than", "30d", "--db", db, "--json"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert json.loads(out.stdout) == {"snapshots": 1, "events": 0}
    with open_store(db) as store:
        assert [s.id for s in store.snapshots()] == [keep.id]
        assert count_rows(Path(db), keep.id - 1) == 0


def test_newer_schema_is_a_clear_error(tmp_path: Path) -> None:
    db = tmp_path / "h.db"
    open_store(str(db)).close()
    with sqlite3.connect(db) as conn:
        conn.execute("INSERT INTO schema_version VALUES (?, 0)", (SCHEMA_VERSION + 1,))
    with pytest.raises(StoreError, match="newer than this portscope knows"):
        open_store(str(db))
    for argv in (["snapshot"], ["diff", "last"], ["history"], ["watch", "--save", "--for", "1"]):
        out = subprocess.run(
            [*PORTSCOPE, *argv, "--db", str(db)], capture_output=True, text=True, timeout=30
        )
        assert out.returncode == 2, (argv, out.stderr)
        assert (
            out.stderr.count("\n") == 1
            and f"schema version {SCHEMA_VERSION + 1}, newer" in out.stderr
        )
        assert "Traceback" not in out.stderr


def test_missing_store_and_not_a_store(tmp_path: Path) -> None:
    out = subprocess.run(
        [*PORTSCOPE, "diff", "--db", str(tmp_path / "none.db")], capture_output=True, text=True
    )
    assert out.returncode == 2 and "no history store at" in out.stderr
    assert not (tmp_path / "none.db").exists()  # readers never create one
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"not sqlite at all" * 100)
    out = subprocess.run(
        [*PORTSCOPE, "snapshot", "--db", str(junk)], capture_output=True, text=True
    )
    assert out.returncode == 2 and out.stderr.count("\n") == 1
    assert "not a portscope history store" in out.stderr


@pytest.mark.root
def test_read_only_path_is_one_line_exit_2(tmp_path: Path) -> None:
    report = small_report(tmp_path, 10)
    # a private mount namespace: the read-only tmpfs is gone when the shell exits
    script = f"""
        set -e
        d={tmp_path}/ro
        mkdir -p $d
        mount -t tmpfs -o size=2m tmpfs $d
        {sys.executable} -m portscope import {report} --db $d/h.db >/dev/null 2>&1
        mount -o remount,ro $d
        {sys.executable} -m portscope import {report} --db $d/h.db 2>$d.err1 || echo "rc1=$?"
        {sys.executable} -m portscope import {report} --db $d/new/h.db 2>$d.err2 || echo "rc2=$?"
    """
    out = subprocess.run(["unshare", "-m", "sh", "-c", script], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "rc1=2" in out.stdout and "rc2=2" in out.stdout
    for name in ("ro.err1", "ro.err2"):
        text = (tmp_path / name).read_text()
        assert text.count("\n") == 1 and text.startswith("portscope: error:"), text
        assert "read-only" in text.lower(), text


@pytest.mark.root
def test_full_disk_is_one_line_exit_2_and_keeps_what_was_committed(tmp_path: Path) -> None:
    report = small_report(tmp_path, 2000)
    script = f"""
        set -e
        d={tmp_path}/full
        mkdir -p $d
        mount -t tmpfs -o size=400k tmpfs $d
        {sys.executable} -m portscope import {report} --db $d/h.db --label kept >/dev/null 2>&1
        dd if=/dev/zero of=$d/filler bs=4k 2>/dev/null || true
        {sys.executable} -m portscope import {report} --db $d/h.db 2>{tmp_path}/err || echo "rc=$?"
        rm $d/filler
        {sys.executable} -m portscope history --json --db $d/h.db
    """
    out = subprocess.run(["unshare", "-m", "sh", "-c", script], capture_output=True, text=True)
    assert "rc=2" in out.stdout, (out.stdout, out.stderr)
    err = (tmp_path / "err").read_text()
    assert err.count("\n") == 1 and "is full" in err, err
    listed = json.loads(out.stdout.split("rc=2", 1)[1])
    assert [s["label"] for s in listed["snapshots"]] == ["kept"]


# -- writers at once, a writer killed ---------------------------------------------------

WRITER = """
import sys, time
from portscope.history import StoredSocket, open_store
from portscope.models import Owner, Proto, TcpState
db, rows, rounds = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
owner = (Owner(1, "w", "root", ("w",), 1.0, 3),)
sockets = [
    StoredSocket(1, Proto.TCP, 4, TcpState.LISTEN, "127.0.0.1", i % 65536, None, None,
                 0, 0, 0, i, None, None, owner)
    for i in range(rows)
]
with open_store(db) as store:
    for n in range(rounds):
        info = store.save_sockets(sockets, label=f"w{n}")
        print(info.id, flush=True)
    if len(sys.argv) > 4:  # then stop inside a transaction, its pages spilled to the WAL
        store.backend.read("PRAGMA cache_size = 8")
        with store.backend.write() as w:
            w.execute("INSERT INTO snapshots (host, kind, label, taken_at, source, netns, items,"
                      " complete) VALUES ('h', 'listeners', 'torn', 0, 'x', 1, 99, 1)")
            w.executemany("INSERT INTO sockets (snapshot_id, proto, family, state, local_address,"
                          " local_port) VALUES (999999, 'tcp', 4, 'LISTEN', '127.0.0.1', ?)",
                          [(i % 65536,) for i in range(rows)])
            print("inside", flush=True)
            time.sleep(60)
"""


@pytest.mark.root
@needs_ip
def test_two_writers_at_once_lose_nothing(tmp_path: Path, netns: Netns) -> None:
    db = tmp_path / "h.db"
    open_store(str(db)).close()
    watch = netns.spawn(
        *PORTSCOPE, "watch", "--save", "--json", "--interval", "0.1", "--count", "20",
        "--for", "30", "--db", str(db), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    assert watch.stderr is not None and watch.stderr.readline().startswith("watching")
    # listeners come and go (each lives 0.5 s: added, then removed)
    churn = netns.spawn(
        sys.executable, "-c",
        "import socket, time\n"
        "for i in range(10):\n"
        "    s = socket.socket(); s.bind(('127.0.0.1', 20000 + i)); s.listen()\n"
        "    time.sleep(0.5); s.close()\n",
    )  # fmt: skip
    # a big writer (long transactions) and cron-like snapshots, at the same time
    big = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(db), "20000", "8"], stdout=subprocess.PIPE, text=True
    )
    snapshot_ids = []
    for _ in range(4):
        out = netns.run(*PORTSCOPE, "snapshot", "--json", "--db", str(db))
        assert out.returncode == 0, out.stderr
        snapshot_ids.append(json.loads(out.stdout)["snapshot"]["id"])
    assert churn.wait(timeout=30) == 0
    big_out, _ = big.communicate(timeout=60)
    assert big.returncode == 0
    printed, _ = watch.communicate(timeout=30)
    assert watch.returncode == 0
    events = [json.loads(line) for line in printed.splitlines()]
    assert len(events) >= 10  # 10 added + 10 removed, unless a loaded machine starved a poll
    with open_store(str(db)) as store:
        saved = store.events()
        assert [(e.action.value, e.subject.port) for e in saved] == [
            (e["action"], e["socket"]["local"]["port"]) for e in events
        ]
        for sid in snapshot_ids + [int(i) for i in big_out.split()]:
            info = store.resolve(str(sid))
            assert count_rows(db, sid) == info.items
    assert len(big_out.split()) == 8
    assert integrity(db) == "ok"


@pytest.mark.root
def test_sigkill_mid_transaction_keeps_every_committed_snapshot(tmp_path: Path) -> None:
    db = tmp_path / "h.db"
    committed: list[int] = []
    # killed inside a transaction whose pages are already in the WAL, then at random times
    for attempt, extra in enumerate((["inside"], [], [])):
        writer = subprocess.Popen(
            [sys.executable, "-c", WRITER, str(db), "10000", "3" if extra else "50", *extra],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert writer.stdout is not None
        with writer.stdout:
            for _ in range(3 if extra else 2):
                committed.append(int(writer.stdout.readline()))
            if extra:
                assert writer.stdout.readline() == "inside\n"
                assert os.path.getsize(f"{db}-wal") > 0
            else:
                time.sleep(0.013 * attempt)  # somewhere inside a later transaction
            os.kill(writer.pid, signal.SIGKILL)
            writer.wait(timeout=10)
            committed += [int(line) for line in writer.stdout.read().split()]
    assert integrity(db) == "ok"
    with open_store(str(db)) as store:
        infos = store.snapshots()
        assert "torn" not in {i.label for i in infos}
        assert count_rows(db, 999999) == 0
        assert {i.id for i in infos} == set(committed)
        for info in infos:
            assert info.items == 10000 and count_rows(db, info.id) == 10000


# -- the commands, in a namespace of their own -------------------------------------------


@pytest.mark.root
@needs_ip
def test_snapshot_then_diff_tells_what_changed(tmp_path: Path, netns: Netns) -> None:
    db = str(tmp_path / "h.db")
    web = listen(netns, "127.0.0.1", 8000)
    dns = netns.spawn(
        sys.executable, "-c",
        "import socket, time; s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); "
        "s.bind(('0.0.0.0', 5353)); print('ready', flush=True); time.sleep(60)",
        stdout=subprocess.PIPE,
    )  # fmt: skip
    assert dns.stdout is not None and dns.stdout.readline() == "ready\n"
    out = netns.run(*PORTSCOPE, "snapshot", "--label", "monday", "--db", db)
    assert out.returncode == 0 and "2 listeners (1 tcp, 1 udp)" in out.stdout, out
    assert netns.run(*PORTSCOPE, "diff", "--db", db).returncode == 0  # nothing changed
    web.kill()
    web.wait()
    listen(netns, "0.0.0.0", 8000)  # the same port, now on every address
    listen(netns, "::1", 9999)
    comm = Path(f"/proc/{netns.children[-1].pid}/comm").read_text().strip()
    out = netns.run(*PORTSCOPE, "diff", "--db", db)
    assert out.returncode == 1, out.stderr
    assert out.stdout.splitlines() == [
        f"scope-widened tcp 127.0.0.1:8000 -> 0.0.0.0:8000 {comm}[{netns.children[-2].pid}]",
        f"added tcp [::1]:9999 {comm}[{netns.children[-1].pid}]",
    ]
    assert "2 changes from listeners 1 'monday'" in out.stderr
    doc = json.loads(netns.run(*PORTSCOPE, "diff", "monday", "now", "--json", "--db", db).stdout)
    assert doc["schema"] == "portscope.diff/1" and doc["changed"] is True
    assert [e["action"] for e in doc["events"]] == ["scope-widened", "added"]
    widened = doc["events"][0]
    assert widened["before"]["local"] == {"address": "127.0.0.1", "port": 8000}
    assert widened["after"]["owners"][0]["name"] == comm
    assert widened["socket"] == widened["after"]
    # the timeline of the port from two snapshots
    assert netns.run(*PORTSCOPE, "snapshot", "--db", db).returncode == 0
    out = netns.run(*PORTSCOPE, "history", "8000", "--json", "--db", db)
    steps = [(e["source"], e["action"]) for e in json.loads(out.stdout)["entries"]]
    assert steps == [("snapshot", "present"), ("snapshot", "scope-widened")]
    assert netns.run(*PORTSCOPE, "diff", "last~1", "last", "--db", db).returncode == 1
    assert netns.run(*PORTSCOPE, "diff", "last", "last", "--db", db).returncode == 0


@pytest.mark.root
@needs_ip
def test_watch_sees_http_server_within_a_second(tmp_path: Path, netns: Netns) -> None:
    # the demo: watch, then `python3 -m http.server` in another terminal
    watch = netns.spawn(
        *PORTSCOPE, "watch", "--json", "--count", "1", "--for", "20",
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    assert watch.stdout is not None and watch.stderr is not None
    assert watch.stderr.readline().startswith("watching 0 listeners")
    server = netns.spawn(
        "python3", "-m", "http.server", "9999", "--bind", "127.0.0.1", cwd=tmp_path,
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )  # fmt: skip
    assert server.stdout is not None
    # it prints "Serving HTTP on ..." right after listen()
    assert server.stdout.readline().startswith("Serving HTTP on 127.0.0.1 port 9999")
    listening = time.monotonic()
    line = watch.stdout.readline()
    latency = time.monotonic() - listening
    event = json.loads(line)
    assert event["action"] == "added"
    assert event["socket"]["local"] == {"address": "127.0.0.1", "port": 9999}
    assert event["socket"]["owners"][0]["pid"] == server.pid
    assert event["socket"]["owners"][0]["cmdline"][1:3] == ["-m", "http.server"]
    assert latency < 1.0, latency
    assert watch.wait(timeout=10) == 0


@pytest.mark.root
@needs_ip
def test_watch_exec_gets_the_event_and_its_failure_is_reported(
    tmp_path: Path, netns: Netns
) -> None:
    got = tmp_path / "events"
    cmd = f"sh -c 'cat >> {got}; exit 3'"
    watch = netns.spawn(
        *PORTSCOPE, "watch", "--count", "2", "--for", "20", "--interval", "0.1", "--exec", cmd,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    assert watch.stderr is not None and watch.stderr.readline().startswith("watching")
    listen(netns, "127.0.0.1", 7001)
    listen(netns, "127.0.0.1", 7002)
    out, err = watch.communicate(timeout=20)
    assert watch.returncode == 0  # a failing command never stops the watch
    assert [line.split()[1:4] for line in out.splitlines()] == [
        ["added", "tcp", "127.0.0.1:7001"],
        ["added", "tcp", "127.0.0.1:7002"],
    ]
    assert err.count("failed (exit status 3)") == 2, err
    received = [json.loads(line) for line in got.read_text().splitlines()]
    assert sorted(e["socket"]["local"]["port"] for e in received) == [7001, 7002]


@pytest.mark.root
@needs_ip
def test_watch_interrupted_exits_130(netns: Netns) -> None:
    watch = netns.spawn(*PORTSCOPE, "watch", stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert watch.stderr is not None and watch.stderr.readline().startswith("watching")
    # ip netns exec execs the program: the pid is portscope's
    os.kill(watch.pid, signal.SIGINT)
    assert watch.wait(timeout=10) == 130


@pytest.mark.root
@needs_ip
def test_watch_terminated_saves_its_events_first(tmp_path: Path, netns: Netns) -> None:
    db = str(tmp_path / "h.db")
    watch = netns.spawn(
        *PORTSCOPE, "watch", "--save", "--interval", "0.1", "--db", db,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    assert watch.stdout is not None and watch.stderr is not None
    assert watch.stderr.readline().startswith("watching")
    listen(netns, "127.0.0.1", 7003)
    assert "added tcp 127.0.0.1:7003" in watch.stdout.readline()
    os.kill(watch.pid, signal.SIGTERM)  # as systemd stops a service
    assert watch.wait(timeout=20) == 143
    with open_store(db) as store:
        assert [(e.action, e.subject.port) for e in store.events()] == [(Action.ADDED, 7003)]


# -- scans: nmap XML and scan --save, compared with ndiff ---------------------------------


@pytest.mark.root
@needs_ip
@pytest.mark.skipif(shutil.which("nmap") is None or shutil.which("ndiff") is None,
                    reason="needs nmap and ndiff")  # fmt: skip
def test_imported_nmap_reports_diff_like_ndiff(tmp_path: Path, netns: Netns) -> None:
    db = str(tmp_path / "h.db")
    a, b = tmp_path / "a.xml", tmp_path / "b.xml"
    listen(netns, "127.0.0.1", 8081)
    scan = ("nmap", "-sT", "-Pn", "-n", "-p", "8081,8082", "127.0.0.1", "-oX")
    assert netns.run(*scan, str(a)).returncode == 0
    listen(netns, "127.0.0.1", 8082)
    assert netns.run(*scan, str(b)).returncode == 0
    ndiff_same = subprocess.run(["ndiff", str(a), str(a)], capture_output=True, text=True)
    ndiff = subprocess.run(["ndiff", str(a), str(b)], capture_output=True, text=True)
    assert (ndiff_same.returncode, ndiff.returncode) == (0, 1)
    assert "+8082/tcp open" in ndiff.stdout
    for path in (a, b):
        out = subprocess.run(
            [*PORTSCOPE, "import", str(path), "--db", db], capture_output=True, text=True
        )
        assert out.returncode == 0 and "1 host, " in out.stdout, out
    out = subprocess.run(
        [*PORTSCOPE, "diff", "a.xml", "b.xml", "--db", db], capture_output=True, text=True
    )
    assert out.returncode == ndiff.returncode
    assert out.stdout.splitlines() == ["state-changed tcp 127.0.0.1:8082 closed -> open"]
    same = subprocess.run([*PORTSCOPE, "diff", "a.xml", "a.xml", "--db", db], capture_output=True)
    assert same.returncode == ndiff_same.returncode
    # portscope's own scan, saved, against nmap's report of the same moment
    out = netns.run(
        *PORTSCOPE, "scan", "127.0.0.1", "-p", "8081,8082", "--save", "--label", "ours", "--db", db
    )
    assert out.returncode == 0 and "saved as snapshot 3" in out.stderr, out
    assert subprocess.run([*PORTSCOPE, "diff", "b.xml", "ours", "--db", db]).returncode == 0
    with open_store(db) as store:
        kinds = [s.kind for s in store.snapshots()]
    assert kinds == [SnapshotKind.SCAN, SnapshotKind.NMAP, SnapshotKind.NMAP]
    # a listing and a scan do not compare
    out = subprocess.run([*PORTSCOPE, "diff", "ours", "--db", db], capture_output=True, text=True)
    assert out.returncode == 2 and "compares with another scan only" in out.stderr


def test_import_refuses_what_is_not_a_report(tmp_path: Path) -> None:
    bad = tmp_path / "x.xml"
    bad.write_text("<html><body>no</body></html>")
    out = subprocess.run(
        [*PORTSCOPE, "import", str(bad), "--db", str(tmp_path / "h.db")],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 2 and "not an nmap XML report" in out.stderr
    bomb = tmp_path / "bomb.xml"
    bomb.write_text(
        textwrap.dedent("""\
        <?xml version="1.0"?>
        <!DOCTYPE nmaprun [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">
        <!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;"><!ENTITY d "&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;">
        <!ENTITY e "&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;"><!ENTITY f "&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;">
        <!ENTITY g "&f;&f;&f;&f;&f;&f;&f;&f;&f;&f;"><!ENTITY h "&g;&g;&g;&g;&g;&g;&g;&g;&g;&g;">]>
        <nmaprun><host><address addr="&h;" addrtype="ipv4"/></host></nmaprun>
        """)
    )
    out = subprocess.run(
        [*PORTSCOPE, "import", str(bomb), "--db", str(tmp_path / "h.db")],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert out.returncode == 2 and out.stderr.count("\n") == 1, out.stderr


def test_every_action_has_a_line() -> None:
    assert {a.value for a in Action} == {
        "added", "removed", "scope-widened", "scope-narrowed", "owner-changed", "state-changed",
        "transient",
    }  # fmt: skip
    assert socket.AF_INET  # the module's imports are used
