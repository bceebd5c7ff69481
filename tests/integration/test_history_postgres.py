"""The history store on a real PostgreSQL server (Debian's, started by the test with
initdb in a temporary directory on a loopback port), written by two "hosts" at once, and
the fleet questions over it."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

psycopg = pytest.importorskip("psycopg", reason="the postgresql extra is not installed")

from tests.lab.real_servers import Missing, Running, free_port, start_postgresql  # noqa: E402

from portscope.errors import StoreError  # noqa: E402
from portscope.history import SCHEMA_VERSION, open_store  # noqa: E402
from portscope.history._fleet import fleet_diff, fleet_listeners  # noqa: E402

PORTSCOPE = [sys.executable, "-m", "portscope"]


@pytest.fixture(scope="module")
def server() -> Iterator[Running]:
    try:
        running = start_postgresql(free_port())
    except Missing as why:
        pytest.skip(str(why))
    yield running
    running.stop()


@pytest.fixture
def dsn(server: Running) -> Iterator[str]:
    """A fresh database on the server for each test."""
    name = f"ps14_{uuid.uuid4().hex[:10]}"
    admin = f"postgresql://postgres@127.0.0.1:{server.port}/postgres"
    deadline = time.monotonic() + 60
    while True:  # the port opens before the server accepts logins ("starting up")
        try:
            with psycopg.connect(admin, autocommit=True) as conn:
                conn.execute(f"CREATE DATABASE {name}")
            break
        except psycopg.OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)
    yield f"postgresql://postgres@127.0.0.1:{server.port}/{name}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE {name} WITH (FORCE)")


def _run(*args: str, host: str | None = None) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    if host is not None:
        env["PORTSCOPE_HOST"] = host
    return subprocess.run([*PORTSCOPE, *args], capture_output=True, text=True, timeout=120, env=env)


def test_schema_is_created_once_and_rows_carry_host_and_machine(dsn: str) -> None:
    with open_store(dsn) as store:
        assert store.schema_version() == SCHEMA_VERSION
        assert store.location.startswith("postgresql://postgres@127.0.0.1:")
    with open_store(dsn) as store:  # a second open migrates nothing
        assert store.schema_version() == SCHEMA_VERSION
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen()
    try:
        out = _run("snapshot", "--db", dsn, "--label", "first", "--json", host="alpha")
        assert out.returncode == 0, out.stderr
    finally:
        srv.close()
    with psycopg.connect(dsn) as conn:
        versions = [r[0] for r in conn.execute("SELECT version FROM schema_version ORDER BY 1")]
        assert versions == list(range(1, SCHEMA_VERSION + 1))
        host, machine = conn.execute("SELECT host, machine_id FROM snapshots").fetchone()
    assert host == "alpha"
    expected = (
        Path("/etc/machine-id").read_text().strip() if Path("/etc/machine-id").exists() else None
    )
    assert machine == (expected if expected and len(expected) == 32 else None)


def test_two_hosts_write_at_once_and_fleet_ls_finds_each_listener(dsn: str) -> None:
    listeners = {}
    for host in ("web1", "web2"):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        s.listen()
        listeners[host] = s
    ports = {h: s.getsockname()[1] for h, s in listeners.items()}
    script = (
        "import os, subprocess, sys\n"
        "for i in range(4):\n"
        "    r = subprocess.run([sys.executable, '-m', 'portscope', 'snapshot',"
        " '--db', sys.argv[1], '--label', f'run{i}'], capture_output=True, text=True)\n"
        "    assert r.returncode == 0, r.stderr\n"
    )
    try:
        writers = [
            subprocess.Popen(
                [sys.executable, "-c", script, dsn],
                env={**os.environ, "PORTSCOPE_HOST": host},
                stderr=subprocess.PIPE,
                text=True,
            )
            for host in ("web1", "web2")
        ]
        for w in writers:
            _, err = w.communicate(timeout=240)
            assert w.returncode == 0, err
    finally:
        for s in listeners.values():
            s.close()
    with open_store(dsn) as store:
        infos = store.snapshots(all_hosts=True)
        assert sorted(i.host for i in infos) == ["web1"] * 4 + ["web2"] * 4
        for info in infos:  # every snapshot whole: its rows are all there
            assert len(store.sockets(info.id)) == info.items > 0
        found = fleet_listeners(store, port=ports["web1"])
        # both "hosts" are this machine: both saw both listeners
        assert sorted(f.host for f in found) == ["web1", "web2"]
        mine = f"{Path('/proc/self/comm').read_text().strip()}"
        assert all(any(o.name == mine for o in f.listener.owners or ()) for f in found), found
    out = _run("fleet", "ls", "--port", str(ports["web2"]), "--db", dsn, "--json")
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    assert doc["schema"] == "portscope.fleet-ls/1"
    assert sorted(item["host"] for item in doc["listeners"]) == ["web1", "web2"]
    assert {item["port"] for item in doc["listeners"]} == {ports["web2"]}
    text = _run("fleet", "ls", "--port", str(ports["web2"]), "--db", dsn)
    assert "web1" in text.stdout and "web2" in text.stdout
    assert f"127.0.0.1:{ports['web2']}" in text.stdout


def test_fleet_diff_lists_changes_per_host(dsn: str) -> None:
    assert _run("snapshot", "--db", dsn, host="db1").returncode == 0
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen()
    port = srv.getsockname()[1]
    try:
        assert _run("snapshot", "--db", dsn, host="db1").returncode == 0
    finally:
        srv.close()
    with open_store(dsn) as store:
        events = [e for e in fleet_diff(store, since_s=3600) if e.event.subject.port == port]
        # db1's first snapshot is inside the window: diffed from it, the new listener is added
        assert [(e.host, e.event.action.value) for e in events] == [("db1", "added")]
    out = _run("fleet", "diff", "--since", "1h", "--db", dsn)
    assert out.returncode == 1  # changes found, as diff
    assert any(
        line.startswith("db1") and f"added tcp 127.0.0.1:{port}" in line
        for line in out.stdout.splitlines()
    ), out.stdout


def test_two_processes_creating_the_schema_at_once(dsn: str) -> None:
    code = "import sys\nfrom portscope.history import open_store\nopen_store(sys.argv[1]).close()\n"
    procs = [
        subprocess.Popen([sys.executable, "-c", code, dsn], stderr=subprocess.PIPE, text=True)
        for _ in range(3)
    ]
    for p in procs:
        _, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
    with psycopg.connect(dsn) as conn:
        count = conn.execute("SELECT COUNT(*) FROM schema_version").fetchone()[0]
    assert count == SCHEMA_VERSION


def test_unreachable_or_refusing_database_is_one_line_without_the_password(
    server: Running,
) -> None:
    closed = free_port()
    bad = f"postgresql://postgres:sekret@127.0.0.1:{closed}/postgres"
    with pytest.raises(StoreError, match="cannot reach the history store") as caught:
        open_store(bad)
    assert "sekret" not in str(caught.value)
    for argv in (["snapshot"], ["fleet", "ls"], ["diff"]):
        out = _run(*argv, "--db", bad)
        assert out.returncode == 2, (argv, out.stderr)
        assert out.stderr.count("\n") == 1 and out.stderr.startswith("portscope: error:")
        assert "sekret" not in out.stderr
    missing_db = f"postgresql://postgres@127.0.0.1:{server.port}/no_such_db"
    out = _run("fleet", "ls", "--db", missing_db)
    assert out.returncode == 2 and "no_such_db" in out.stderr
