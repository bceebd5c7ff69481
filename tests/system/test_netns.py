"""Every network namespace in one table, against real namespaces and ``ss`` run inside them.

The world this module builds (torn down by PID and by name at the end, even on failure):

* two named namespaces ``ps9-PID-a`` / ``ps9-PID-b`` (``ip netns add``), a holder process in
  each with a listener, an established connection and a TIME-WAIT socket;
* an unnamed namespace held only by a process (``unshare -n``);
* an unnamed namespace held only by a bind mount (its process has exited; TIME-WAIT sockets
  stay in it);
* an unnamed namespace whose process sits in a cgroup named as Docker names its scopes
  (``/system.slice/docker-ID.scope``, here in the v1 ``pids`` hierarchy), with a Docker state
  file (``config.v2.json``) in a temporary directory.

Parity: in each of them, the TCP 5-tuples and states equal ``nsenter --net=PATH ss -tanH``.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import secrets
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from portscope.cli import Env, main
from portscope.models import Netns, Proto, TcpState
from portscope.sockets import _netns, list_netns, list_sockets

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(
        any(shutil.which(t) is None for t in ("ip", "unshare", "nsenter", "ss", "mount")),
        reason="needs ip, unshare, nsenter, ss, mount (iproute2, util-linux)",
    ),
]

# A process that holds sockets in its namespace: a listener, one established connection
# and one TIME-WAIT (its client side closed first), then waits for stdin to close.
HOLDER = r"""
import socket, subprocess, sys, time
subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
port = int(sys.argv[1])
srv = socket.socket()
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("127.0.0.1", port))
srv.listen(8)
keep = socket.create_connection(("127.0.0.1", port))
kept, _ = srv.accept()
gone = socket.create_connection(("127.0.0.1", port))
peer, _ = srv.accept()
gone.close()
time.sleep(0.05)
peer.close()
print("ready", flush=True)
if len(sys.argv) > 2:
    sys.exit(0)  # the namespace lives on through a bind mount (TIME-WAIT stays)
deadline = time.monotonic() + 300
while time.monotonic() < deadline and sys.stdin.read(1):
    pass
"""


@dataclass
class Space:
    """One namespace of the world."""

    label: str
    path: str
    port: int
    inode: int = 0
    pid: int | None = None
    name: str | None = None
    proc: subprocess.Popen[str] | None = None


@dataclass
class World:
    spaces: dict[str, Space] = field(default_factory=dict)
    container_id: str = ""
    docker_dir: Path | None = None


def _start_holder(argv_prefix: list[str], port: int, *extra: str) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [*argv_prefix, sys.executable, "-c", HOLDER, str(port), *extra],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert line.strip() == "ready", f"holder did not start: {line!r}"
    return proc


def _stop(proc: subprocess.Popen[str] | None) -> None:
    if proc is None:
        return
    if proc.poll() is None:
        with contextlib.suppress(OSError):
            assert proc.stdin is not None
            proc.stdin.close()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)
    for stream in (proc.stdin, proc.stdout):
        if stream is not None:
            with contextlib.suppress(OSError):
                stream.close()


def _inner_pid(proc: subprocess.Popen[str]) -> int:
    """The holder's pid: the child of ``unshare``/``ip netns exec`` if they forked."""
    children = Path(f"/proc/{proc.pid}/task/{proc.pid}/children")
    with contextlib.suppress(OSError):
        kids = children.read_text().split()
        if kids:
            return int(kids[0])
    return proc.pid


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    w = World()
    tag = f"ps9-{os.getpid()}"
    named = [f"{tag}-a", f"{tag}-b"]
    tmp = tmp_path_factory.mktemp("netns")
    mount_file = tmp / "held-by-mount"
    cgroup = None
    made_slice = False
    procs: list[subprocess.Popen[str]] = []
    try:
        for i, name in enumerate(named):
            subprocess.run(["ip", "netns", "add", name], check=True)
            proc = _start_holder(["ip", "netns", "exec", name], 8081 + i)
            procs.append(proc)
            w.spaces[name] = Space(name, f"/run/netns/{name}", 8081 + i, name=name, proc=proc)
        proc = _start_holder(["unshare", "-n"], 8091)
        procs.append(proc)
        pid = _inner_pid(proc)
        w.spaces["by-process"] = Space(
            "by-process", f"/proc/{pid}/ns/net", 8091, pid=pid, proc=proc
        )
        # held by a bind mount only: the holder exits after making its sockets
        mount_file.touch()
        once = subprocess.Popen(
            ["unshare", "-n", sys.executable, "-c", HOLDER, "8092", "exit"],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert once.stdout is not None
        assert once.stdout.readline().strip() == "ready"
        inner = _inner_pid(once)
        subprocess.run(["mount", "--bind", f"/proc/{inner}/ns/net", str(mount_file)], check=True)
        once.wait(timeout=10)
        once.stdout.close()
        w.spaces["by-mount"] = Space("by-mount", str(mount_file), 8092)
        # a fake Docker container: its process in a cgroup named like Docker's scopes
        w.container_id = secrets.token_hex(32)
        base = Path("/sys/fs/cgroup/pids")
        if base.is_dir():
            made_slice = not (base / "system.slice").exists()
            cgroup = base / "system.slice" / f"docker-{w.container_id}.scope"
            cgroup.mkdir(parents=True)
        proc = _start_holder(["unshare", "-n"], 8093)
        procs.append(proc)
        pid = _inner_pid(proc)
        if cgroup is not None:
            (cgroup / "cgroup.procs").write_text(str(pid))
        w.docker_dir = tmp / "docker"
        state = w.docker_dir / w.container_id
        state.mkdir(parents=True)
        (state / "config.v2.json").write_text(json.dumps({"Name": "/ps9-web", "Config": {}}))
        w.spaces["container"] = Space("container", f"/proc/{pid}/ns/net", 8093, pid=pid, proc=proc)
        for sp in w.spaces.values():
            sp.inode = os.stat(sp.path).st_ino
        yield w
    finally:
        for proc in procs:
            _stop(proc)
        with contextlib.suppress(subprocess.CalledProcessError):
            subprocess.run(["umount", str(mount_file)], check=True, capture_output=True)
        for name in named:
            subprocess.run(["ip", "netns", "del", name], capture_output=True)
        if cgroup is not None:
            with contextlib.suppress(OSError):
                cgroup.rmdir()
                if made_slice:
                    cgroup.parent.rmdir()


@pytest.fixture
def docker_state(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    assert world.docker_dir is not None
    monkeypatch.setattr(_netns, "_DOCKER_CONFIG", f"{world.docker_dir}/{{id}}/config.v2.json")


def _ss(path: str) -> set[tuple[str, str, int, str | None, int | None]]:
    """``nsenter --net=PATH ss -tanH`` as (state, local address, port, peer, peer port)."""
    out = subprocess.run(
        ["nsenter", f"--net={path}", "ss", "-tanH"], check=True, capture_output=True, text=True
    ).stdout
    names = {"ESTAB": "ESTABLISHED", "UNCONN": "CLOSE"}
    found = set()
    for line in out.splitlines():
        state, _rq, _sq, local, peer = line.split()[:5]
        la, _, lp = local.rpartition(":")
        ra, _, rp = peer.rpartition(":")
        remote = None if rp == "*" else ra.strip("[]")
        found.add(
            (
                names.get(state, state),
                la.strip("[]"),
                int(lp),
                remote,
                None if rp == "*" else int(rp),
            )
        )
    return found


def _ours(path: str) -> set[tuple[str, str, int, str | None, int | None]]:
    table = list_sockets(protos=["tcp"], netns=path)
    found = set()
    for s in table.sockets:
        r = s.remote
        state = "ESTABLISHED" if s.state is TcpState.ESTABLISHED else s.state.value
        found.add(
            (state, s.local.address, s.local.port, r.address if r else None, r.port if r else None)
        )
    return found


def test_all_finds_every_kind_of_namespace(world: World, docker_state: None) -> None:
    table = list_sockets(netns="all", owners=True)
    spaces = {ns.inode: ns for ns in table.netns or ()}
    for sp in world.spaces.values():
        assert sp.inode in spaces, f"{sp.label} ({sp.path}) not found"
    for key in ("ps9-", "by-process", "by-mount", "container"):
        for sp in (s for k, s in world.spaces.items() if k.startswith(key)):
            mine = [s for s in table.sockets if s.netns is not None and s.netns.inode == sp.inode]
            listeners = [s for s in mine if s.state is TcpState.LISTEN]
            waits = [s for s in mine if s.state is TcpState.TIME_WAIT]
            assert waits, f"{sp.label}: no TIME-WAIT socket"
            if sp.label == "by-mount":
                assert not listeners  # its process exited: only kernel state is left
                assert all(not s.owners for s in mine)
                continue
            assert [(s.local.address, s.local.port) for s in listeners] == [("127.0.0.1", sp.port)]
            (listener,) = listeners
            assert listener.owners and listener.owners[0].name.startswith("python")
            est = [s for s in mine if s.state is TcpState.ESTABLISHED]
            assert len(est) == 2
    names = {ns.inode: ns.name for ns in spaces.values()}
    for name in (k for k in world.spaces if k.startswith("ps9-")):
        assert names[world.spaces[name].inode] == name
    assert names[world.spaces["by-process"].inode] is None
    assert names[world.spaces["by-mount"].inode] is None
    host = [ns for ns in table.netns or () if ns.name == "host"]
    assert len(host) == 1 and table.netns and table.netns[0].name == "host"


def test_a_container_cgroup_path_labels_the_namespace(world: World, docker_state: None) -> None:
    if not Path("/sys/fs/cgroup/pids").is_dir():
        pytest.skip("no cgroup v1 pids hierarchy to place the process in")
    sp = world.spaces["container"]
    (ns,) = [n for n in list_netns() if n.inode == sp.inode]
    assert ns.containers is not None
    (c,) = ns.containers
    assert (c.runtime, c.id, c.name) == ("docker", world.container_id, "ps9-web")
    table = list_sockets(netns=sp.path, states=["listen"])
    assert {s.netns for s in table.sockets} == {ns}
    # the table names it by its container
    out = io.StringIO()
    env = Env(stdout=out, stderr=io.StringIO(), width=200)
    assert main(["ls", "-l", "-n", "-N", "all"], env) == 0
    assert "docker:ps9-web" in out.getvalue()


@pytest.mark.parametrize("which", ["ps9-a", "ps9-b", "by-process", "by-mount", "container"])
def test_tcp_table_equals_ss_inside_each_namespace(world: World, which: str) -> None:
    key = which if not which.startswith("ps9-") else f"ps9-{os.getpid()}-{which[-1]}"
    sp = world.spaces[key]
    assert _ours(sp.path) == _ss(sp.path)


def test_every_name_pid_and_path_form_selects_the_same_namespace(world: World) -> None:
    name = f"ps9-{os.getpid()}-a"
    sp = world.spaces[name]
    pid = _inner_pid(sp.proc) if sp.proc else None
    forms: list[str | int] = [name, sp.path, f"/proc/{pid}/ns/net", str(pid)]
    assert pid is not None
    forms.append(pid)
    seen = set()
    for form in forms:
        table = list_sockets(protos=["tcp"], states=["listen"], netns=form)
        assert table.netns is not None and [n.inode for n in table.netns] == [sp.inode], form
        seen.add(tuple(sorted((s.local.port, s.inode) for s in table.sockets)))
    assert len(seen) == 1


def test_owners_are_matched_within_their_namespace(world: World) -> None:
    table = list_sockets(netns="all", owners=True, protos=["tcp"])
    a, b = world.spaces[f"ps9-{os.getpid()}-a"], world.spaces[f"ps9-{os.getpid()}-b"]
    assert a.proc and b.proc
    pid_a, pid_b = _inner_pid(a.proc), _inner_pid(b.proc)
    for s in table.sockets:
        pids = {o.pid for o in s.owners or ()}
        if s.netns is not None and s.netns.inode == a.inode:
            assert pid_b not in pids
        if s.netns is not None and s.netns.inode == b.inode:
            assert pid_a not in pids
        if pid_a in pids:
            assert s.netns is not None and s.netns.inode == a.inode


def test_socket_inodes_are_unique_across_namespaces(world: World) -> None:
    """Why owners can be found by socket inode at all: sock_alloc numbers every socket
    from one host-wide counter (get_next_ino), whatever its namespace."""
    table = list_sockets(netns="all")
    inodes = [s.inode for s in table.sockets if s.inode is not None]
    assert len(inodes) == len(set(inodes))
    assert len({s.netns.inode for s in table.sockets if s.netns}) >= len(world.spaces)


def test_default_is_the_callers_namespace_without_netns(world: World) -> None:
    table = list_sockets(states=["listen"])
    assert table.netns is None and all(s.netns is None for s in table.sockets)
    ours = list_sockets(states=["listen"], netns=os.getpid())
    assert ours.netns is not None
    assert [n.inode for n in ours.netns] == [os.stat("/proc/self/ns/net").st_ino]
    assert all(s.netns == ours.netns[0] for s in ours.sockets)


def _run(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    status = main(list(argv), Env(stdout=out, stderr=err, width=250))
    return status, out.getvalue(), err.getvalue()


def test_cli_json_carries_the_netns_object(world: World) -> None:
    name = f"ps9-{os.getpid()}-a"
    sp = world.spaces[name]
    for extra in ([], ["-p"]):
        status, out, _ = _run("ls", "-a", "-n", "-N", "all", "--json", *extra)
        assert status == 0
        doc = json.loads(out)
        mine = [s for s in doc["sockets"] if s["netns"]["inode"] == sp.inode]
        assert mine and all(s["netns"] == {"inode": sp.inode, "name": name, "containers": None}
                            for s in mine)  # fmt: skip
        if extra:
            listener = next(s for s in mine if s["state"] == "LISTEN")
            assert listener["owners"] and listener["owners"][0]["name"].startswith("python")
        else:
            assert all(s["owners"] is None for s in mine)
    # without -N: null, as before
    status, out, _ = _run("ls", "-l", "-n", "--json")
    assert all(s["netns"] is None for s in json.loads(out)["sockets"])


def test_cli_tables_show_a_netns_column_only_for_several(world: World) -> None:
    name = f"ps9-{os.getpid()}-a"
    status, out, err = _run("-N", name, "-n")
    assert status == 0 and "Netns" not in out and "8081" in out
    assert f"netns {name}" in err
    status, out, err = _run("-N", "all", "-n")
    assert status == 0 and "Netns" in out.splitlines()[0]
    assert any(line.startswith(name) and "8081" in line for line in out.splitlines())


def test_cli_summary_per_namespace(world: World) -> None:
    status, out, _ = _run("ls", "--summary", "-N", "all", "--json")
    assert status == 0
    doc = json.loads(out)
    by = {item["netns"]["inode"]: item for item in doc["by_netns"]}
    sp = world.spaces["container"]
    assert by[sp.inode]["by_proto"]["tcp"]["states"]["LISTEN"] == 1
    assert by[world.spaces["by-mount"].inode]["by_proto"]["udp"]["total"] == 0
    assert sum(item["total"] for item in doc["by_netns"]) == doc["total"]
    status, out, _ = _run("ls", "--summary", "-N", "all")
    assert status == 0 and f"{sp.inode}" in out


def test_who_audit_and_ephemeral_take_netns(world: World) -> None:
    name = f"ps9-{os.getpid()}-b"
    status, out, _ = _run("who", "8082", "-N", "all", "--json")
    assert status == 0
    doc = json.loads(out)
    socks = [s for h in doc["holders"] for s in h["sockets"]]
    assert socks and {s["netns"]["name"] for s in socks} == {name}
    status, out, _ = _run("who", "8082")  # not in this namespace
    assert status == 1
    status, out, _ = _run("audit", "-N", name, "--json")
    assert status == 0
    status, out, _ = _run("ephemeral", "-N", name, "--json")
    assert status == 0
    (usage,) = json.loads(out)["namespaces"]
    # its client side of the established connection holds an ephemeral port
    assert usage["netns"]["name"] == name and usage["in_use"] >= 1


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("ps9-no-such-ns", "no such ip netns name"),
        ("999999999", "no process 999999999"),
        ("/etc/hostname", "is not a network namespace"),
        ("/no/such/file", "no such file"),
        ("a/b", "give an ip netns NAME"),
        ("0", "a pid is 1 or more"),
    ],
)
def test_bad_netns_values_are_one_line_and_exit_2(value: str, message: str) -> None:
    status, out, err = _run("ls", "-N", value)
    assert status == 2 and out == ""
    assert len(err.splitlines()) == 1 and message in err and err.startswith("portscope: error:")


def test_a_namespace_that_vanishes_before_its_dump_is_skipped_silently(tmp_path: Path) -> None:
    subprocess.run(["ip", "netns", "add", f"ps9-{os.getpid()}-gone"], check=True)
    try:
        refs, _ = _netns.resolve(f"ps9-{os.getpid()}-gone")
    finally:
        subprocess.run(["ip", "netns", "del", f"ps9-{os.getpid()}-gone"], check=True)
    notes: list[str] = []
    from portscope.sockets import _select_backend

    be, _ = _select_backend("netlink")
    rows = list(
        _netns.namespace_batches(be, refs, (Proto.TCP,), (4,), None, notes)  # type: ignore[arg-type]
    )
    assert rows == [] and notes == []


def test_without_root_the_namespaces_it_cannot_enter_are_skipped_once(world: World) -> None:
    if shutil.which("setpriv") is None:
        pytest.skip("needs setpriv (util-linux)")
    src = Path(__file__).resolve().parents[2] / "src"
    code = (
        "import json, sys; sys.path.insert(0, sys.argv[1]);"
        "from portscope.sockets import list_sockets;"
        "t = list_sockets(netns='all', protos=['tcp']);"
        "print(json.dumps({'notes': t.notes, 'n': len(t.netns), "
        "'names': sorted({s.netns.name or '' for s in t.sockets})}))"
    )
    run = subprocess.run(
        ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "/usr/bin/python3",
         "-c", code, str(src)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    if run.returncode != 0 and "Permission denied" in run.stderr:
        pytest.skip(f"nobody cannot run the checkout: {run.stderr.strip()[-200:]}")
    assert run.returncode == 0, run.stderr
    doc = json.loads(run.stdout)
    skipped = [n for n in doc["notes"] if n.startswith("network namespaces skipped")]
    assert len(skipped) == 1 and "cannot enter it" in skipped[0]
    assert f"ps9-{os.getpid()}-a" in skipped[0]


def test_podman_container_is_labelled(world: World, tmp_path: Path) -> None:
    """A real container (Podman, a local rootfs, no image pull), when Podman can run."""
    if shutil.which("podman") is None or shutil.which("ncat") is None:
        pytest.skip("needs podman and ncat (scripts/install-test-deps)")
    rootfs = tmp_path / "rootfs"
    libs = subprocess.run(["ldd", "/usr/bin/ncat"], capture_output=True, text=True).stdout
    for path in ["/usr/bin/ncat", *(w for w in libs.split() if w.startswith("/"))]:
        target = rootfs / path.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(path, target)
    for d in ("proc", "sys", "dev", "tmp", "etc"):
        (rootfs / d).mkdir(exist_ok=True)
    name = f"ps9-{os.getpid()}-podman"
    run = subprocess.run(
        ["podman", "run", "-d", "--name", name, "--network", "none",
         "--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024",
         "--rootfs", str(rootfs), "/usr/bin/ncat", "-lk", "127.0.0.1", "8094"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    try:
        if run.returncode != 0:
            pytest.skip(f"podman cannot run a container here: {run.stderr.strip()[-300:]}")
        cid = run.stdout.strip()
        deadline = time.monotonic() + 10
        found = None
        while found is None and time.monotonic() < deadline:
            table = list_sockets(netns="all", states=["listen"])
            found = next((s for s in table.sockets if s.local.port == 8094), None)
            time.sleep(0.2)
        assert found is not None and found.netns is not None
        ns: Netns = found.netns
        assert ns.containers and ns.containers[0].runtime == "podman"
        assert ns.containers[0].id == cid and ns.containers[0].name == name
    finally:
        subprocess.run(["podman", "rm", "-f", "-t", "0", name], capture_output=True, timeout=60)


def test_worker_thread_stays_in_its_own_namespace(world: World) -> None:
    before = os.readlink("/proc/thread-self/ns/net")
    list_sockets(netns="all")
    w = _netns.worker()
    assert (
        _netns.run_in(
            _netns.NetnsRef(world.spaces["by-mount"].inode, world.spaces["by-mount"].path),
            lambda: os.stat("/proc/thread-self/ns/net").st_ino,
        )
        == world.spaces["by-mount"].inode
    )
    # the worker went home: its next job runs in the caller's namespace
    home = _netns.NetnsRef(os.stat("/proc/self/ns/net").st_ino, "/proc/self/ns/net")
    assert w.broken is None
    assert os.readlink("/proc/thread-self/ns/net") == before
    assert _netns.run_in(home, lambda: 1) == 1
    tid_ns = []
    done = __import__("threading").Event()

    def job() -> None:
        tid_ns.append(os.stat("/proc/thread-self/ns/net").st_ino)
        done.set()

    w.submit(job)
    assert done.wait(5)
    assert tid_ns == [os.stat("/proc/self/ns/net").st_ino]


def test_ipv6_and_ipv4_tcp_of_a_namespace_come_from_one_walk(world: World) -> None:
    """Outside the host's namespace, TCP is dumped with one TCPDIAG_GETSOCK request; the
    IPv6 and IPv4 sockets must still all be there, equal to ss."""
    name = f"ps9-{os.getpid()}-v6"
    subprocess.run(["ip", "netns", "add", name], check=True)
    proc = None
    try:
        subprocess.run(["ip", "-n", name, "link", "set", "lo", "up"], check=True)
        code = (
            "import socket, sys\n"
            "a = socket.socket(socket.AF_INET6); a.bind(('::1', 8095)); a.listen()\n"
            "b = socket.socket(); b.bind(('127.0.0.1', 8096)); b.listen()\n"
            "c = socket.create_connection(('::1', 8095)); d = a.accept()\n"
            "print('ready', flush=True); sys.stdin.read()\n"
        )
        proc = subprocess.Popen(
            ["ip", "netns", "exec", name, sys.executable, "-c", code],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        table = list_sockets(protos=["tcp"], netns=name)
        got = {(s.family, s.state.value, s.local.port) for s in table.sockets}
        assert {(6, "LISTEN", 8095), (4, "LISTEN", 8096)} <= got
        assert len([s for s in table.sockets if s.family == 6]) == 3
        assert _netns._ONE_WALK[0] is True
        assert _ours(f"/run/netns/{name}") == _ss(f"/run/netns/{name}")
    finally:
        _stop(proc)
        subprocess.run(["ip", "netns", "del", name], capture_output=True)
