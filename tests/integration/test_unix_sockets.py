"""Unix domain sockets (``ls -x``, ``who /path``, ``who @name``) on real sockets with
hostile names, against ``ss -xaH`` and ``/proc/net/unix``."""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import shutil
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from portscope.cli import Env, main
from portscope.models import TcpState
from portscope.sockets.unix import holding, list_unix_sockets, parse_proc_net_unix

ME = os.getpid()


def run(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    status = main(list(argv), Env(stdout=out, stderr=err))
    return status, out.getvalue(), err.getvalue()


def ino(s: socket.socket) -> int:
    return os.fstat(s.fileno()).st_ino


@contextlib.contextmanager
def hostile(tmp: Path) -> Iterator[dict[str, object]]:
    """Listeners at paths with a space, a newline, bytes that are not UTF-8, an abstract
    name holding a NUL; a connected, accepted pair with data waiting; a datagram socket."""
    base = os.fsencode(tmp)
    paths = [base + b"/with space.sock", base + b"/new\nline.sock", base + b"/bad\xff\xfe.sock"]
    held: list[socket.socket] = []
    try:
        listeners = []
        for p in paths:
            s = socket.socket(socket.AF_UNIX)
            s.bind(p)
            s.listen(4)
            held.append(s)
            listeners.append(s)
        abstract = b"\0ps16-test-" + os.urandom(4).hex().encode() + b"\0tail"
        srv = socket.socket(socket.AF_UNIX)
        srv.bind(abstract)
        srv.listen(2)
        client = socket.socket(socket.AF_UNIX)
        client.connect(abstract)
        accepted, _ = srv.accept()
        accepted.sendall(b"hello")
        dgram = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        dgram.bind(b"\0ps16-dgram-" + os.urandom(4).hex().encode())
        held += [srv, client, accepted, dgram]
        yield {
            "paths": paths,
            "listeners": listeners,
            "abstract": abstract,
            "srv": srv,
            "client": client,
            "accepted": accepted,
            "dgram": dgram,
        }
    finally:
        for s in held:
            s.close()


def test_names_types_states_queues_peers_and_owners(tmp_path: Path) -> None:
    with hostile(tmp_path) as t:
        table = list_unix_sockets(owners=True)
        by_inode = {r.inode: r for r in table.sockets}
        for path, s in zip(t["paths"], t["listeners"], strict=True):  # type: ignore[call-overload]
            r = by_inode[ino(s)]
            assert r.type == "stream" and r.state is TcpState.LISTEN
            assert os.fsencode(r.path) == path and r.abstract is None  # exact bytes back
            assert (r.recv_q, r.send_q) == (0, 4)  # waiting connections, backlog
            st = os.stat(path)
            assert r.vfs == (st.st_dev, st.st_ino)
        client, accepted = t["client"], t["accepted"]
        c, a = by_inode[ino(client)], by_inode[ino(accepted)]  # type: ignore[arg-type]
        assert c.peer == a.inode and a.peer == c.inode
        assert c.recv_q == 5 and c.path is None and c.abstract is None  # "hello" waits
        name = os.fsdecode(t["abstract"][1:])  # type: ignore[index]
        assert a.abstract == name and by_inode[ino(t["srv"])].abstract == name  # type: ignore[arg-type]
        assert by_inode[ino(t["dgram"])].type == "dgram"  # type: ignore[arg-type]
        assert by_inode[ino(t["dgram"])].state is TcpState.UNCONN  # type: ignore[arg-type]
        owners = table.owners_of(c.inode)
        assert owners is not None and [(o.pid, o.fd) for o in owners] == [(ME, client.fileno())]  # type: ignore[attr-defined]
        peer = table.owners_of(c.peer)
        assert peer is not None and [o.fd for o in peer] == [accepted.fileno()]  # type: ignore[attr-defined]


SS_STATES = {"ESTAB": "ESTABLISHED", "LISTEN": "LISTEN", "UNCONN": "UNCONN"}
SS_TYPES = {"u_str": "stream", "u_dgr": "dgram", "u_seq": "seqpacket"}
SS_LINE = re.compile(r"^(u_\w+)\s+(\S+)\s+(\d+)\s+(\d+)\s+(.*?)\s+(\d+)\s+(\S+)\s+(\d+)\s*$")


def ss_unix() -> dict[int, tuple[str, str, int, int, str, int]]:
    """inode -> (type, state, recv-q, send-q, name, peer inode) from ``ss -xaH``; lines
    broken by a newline in a path are left out (ss prints the path raw)."""
    out = subprocess.run(["ss", "-xaH"], capture_output=True, check=True, timeout=10).stdout
    found = {}
    for raw in out.split(b"\n"):
        m = SS_LINE.match(raw.decode("utf-8", "surrogateescape"))
        if m is None:
            continue
        netid, state, rq, sq, name, inode, _, peer = m.groups()
        found[int(inode)] = (SS_TYPES[netid], SS_STATES.get(state, state), int(rq), int(sq),
                             name, int(peer))  # fmt: skip
    return found


@pytest.mark.skipif(shutil.which("ss") is None, reason="needs ss (iproute2)")
def test_parity_with_ss_xa(tmp_path: Path) -> None:
    with hostile(tmp_path) as t:
        before = ss_unix()
        table = list_unix_sockets()
        after = ss_unix()
        ours = {r.inode: r for r in table.sockets}
        stable = before.keys() & after.keys()
        assert stable, "ss shows no Unix socket"
        for inode in stable:
            if before[inode] != after[inode]:
                continue  # changed between the two dumps
            stype, state, rq, sq, name, peer = before[inode]
            r = ours[inode]
            assert (r.type, r.state.value, r.recv_q, r.send_q) == (stype, state, rq, sq)
            assert (r.peer or 0) == peer
            if r.path is not None and r.path.isprintable() and r.path.isascii():
                assert name == r.path
            elif r.abstract is not None and r.abstract.isprintable():
                assert name == "@" + r.abstract
            elif r.path is None and r.abstract is None:
                assert name == "*"
        # every socket this test made is in both
        mine = {ino(s) for s in t["listeners"]}  # type: ignore[attr-defined]
        assert mine <= ours.keys()
        assert {ino(t["client"]), ino(t["accepted"])} <= stable  # type: ignore[arg-type]


def test_procfs_fallback_agrees_with_netlink(tmp_path: Path) -> None:
    with hostile(tmp_path) as t:
        nl = {r.inode: r for r in list_unix_sockets().sockets}
        rows, bad = parse_proc_net_unix(Path("/proc/net/unix").read_bytes())
        assert bad >= 1  # the path with a newline breaks its line in /proc/net/unix
        proc = {r.inode: r for r in rows}
        for s in [*t["listeners"], t["client"], t["accepted"], t["dgram"]]:  # type: ignore[list-item]
            n = nl[ino(s)]
            if n.path is not None and "\n" in n.path:
                continue
            p = proc[ino(s)]
            assert (p.type, p.state) == (n.type, n.state)
            assert p.path == n.path
            if n.abstract is not None:  # /proc/net/unix prints NULs as '@'
                assert p.abstract == n.abstract.replace("\0", "@")
            assert p.peer is None and p.recv_q is None  # not in /proc/net/unix


def test_cli_json_is_exact_and_text_escaped(tmp_path: Path) -> None:
    with hostile(tmp_path) as t:
        status, out, _ = run("ls", "-x", "-a", "-p", "--json")
        assert status == 0
        doc = json.loads(out)
        assert doc["schema"] == "portscope.unix/1"
        by_inode = {s["inode"]: s for s in doc["sockets"]}
        for path, s in zip(t["paths"], t["listeners"], strict=True):  # type: ignore[call-overload]
            got = by_inode[ino(s)]["path"]
            assert os.fsencode(got) == path
        assert "/bad\\udcff\\udcfe.sock" in out  # not UTF-8: \udcXX escapes in the JSON text
        c = by_inode[ino(t["client"])]  # type: ignore[arg-type]
        assert c["peer_owners"][0]["fd"] == t["accepted"].fileno()  # type: ignore[attr-defined]
        status, text, _ = run("ls", "-x", "-a", "-p", "--wide")
        assert status == 0
        assert "new\\x0aline.sock" in text and "bad\\xff\\xfe.sock" in text
        assert "with space.sock" in text
        assert "\\x00tail" in text  # the abstract name's NUL, escaped
        assert "\n" + "line.sock" not in text
        status, out, err = run("ls", "-x", "--port", "80")
        assert status == 2 and "does not apply to Unix sockets" in err


def test_who_path_abstract_and_relative(tmp_path: Path) -> None:
    with hostile(tmp_path) as t:
        path = os.fsdecode(t["paths"][0])  # type: ignore[index]
        status, out, _ = run("who", path, "--json")
        doc = json.loads(out)
        assert status == 0 and doc["held"] is True
        assert [s["inode"] for s in doc["sockets"]] == [ino(t["listeners"][0])]  # type: ignore[index]
        assert doc["sockets"][0]["owners"][0]["pid"] == ME
        name = "@" + os.fsdecode(t["abstract"][1:])  # type: ignore[index]
        status, out, _ = run("who", name, "--json")
        doc = json.loads(out)
        # the listener and the connection it accepted (which carries its name)
        assert status == 0 and {s["inode"] for s in doc["sockets"]} == {
            ino(t["srv"]),
            ino(t["accepted"]),  # type: ignore[arg-type]
        }
        accepted = next(s for s in doc["sockets"] if s["inode"] == ino(t["accepted"]))  # type: ignore[arg-type]
        assert accepted["peer_owners"][0]["fd"] == t["client"].fileno()  # type: ignore[attr-defined]
        # another spelling of the same file matches by device and inode
        table = list_unix_sockets()
        other = os.path.join(os.fsdecode(tmp_path), ".", "with space.sock")
        assert [r.inode for r in holding(table, other, None)] == [ino(t["listeners"][0])]  # type: ignore[index]
        status, out, _ = run("who", str(tmp_path / "nothing.sock"))
        assert status == 1 and "no socket is bound" in out
        status, _, err = run("who", "@")
        assert status == 2 and "@NAME" in err
