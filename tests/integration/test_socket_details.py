"""``ls -i``, ``-o``, ``-e``, ``-m`` on real loopback connections, against ``ss -tinoemH``
taken right after (the values that do not move without traffic are compared exactly)."""

from __future__ import annotations

import contextlib
import io
import json
import re
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator

import pytest

from portscope.cli import Env, main
from portscope.render.socket_details import timer_text
from portscope.sockets import Extras, SocketFilter, dump

pytestmark = pytest.mark.skipif(shutil.which("ss") is None, reason="needs ss (iproute2)")


def run(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    status = main(list(argv), Env(stdout=out, stderr=err))
    return status, out.getvalue(), err.getvalue()


@contextlib.contextmanager
def pairs(count: int, payload: int) -> Iterator[tuple[int, list[socket.socket]]]:
    """``count`` loopback connections; each client sent ``payload`` bytes, each server
    answered half; everything read, then quiet."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(count)
    port = srv.getsockname()[1]
    held = [srv]
    try:
        for i in range(count):
            c = socket.create_connection(("127.0.0.1", port))
            if i == 0:
                c.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
                c.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, 600)
            a, _ = srv.accept()
            held += [c, a]
            c.sendall(b"x" * (payload * (i + 1)))
            got = 0
            while got < payload * (i + 1):
                got += len(a.recv(1 << 16))
            a.sendall(b"y" * (payload // 2))
            got = 0
            while got < payload // 2:
                got += len(c.recv(1 << 16))
        time.sleep(0.3)  # delayed ACKs settle: bytes_acked stops moving
        yield port, held
    finally:
        for s in held:
            s.close()


def ss_ms(text: str) -> float:
    """``9min59sec``, ``59.5sec``, ``200ms`` (ss's print_ms_timer) in milliseconds."""
    m = re.fullmatch(r"(?:(\d+)min)?(?:([\d.]+)sec)?(?:(\d+)ms)?", text)
    assert m is not None, text
    mins, secs, ms = m.groups()
    return int(mins or 0) * 60_000 + float(secs or 0) * 1000 + int(ms or 0)


def ss_info(port: int) -> dict[tuple[int, int], dict[str, str]]:
    out = subprocess.run(
        ["ss", "-tinoemH", f"sport = :{port} or dport = :{port}"],
        capture_output=True, text=True, check=True, timeout=10,
    ).stdout  # fmt: skip
    found: dict[tuple[int, int], dict[str, str]] = {}
    key = None
    for line in out.splitlines():
        if not line.startswith((" ", "\t")):
            parts = line.split()
            key = (int(parts[3].rsplit(":", 1)[1]), int(parts[4].rsplit(":", 1)[1]))
            found[key] = {"head": line}
        elif key is not None:
            found[key]["info"] = line
    result = {}
    for k, v in found.items():
        words = dict(re.findall(r"(\w+):(\S+)", v["head"] + " " + v.get("info", "")))
        words["timer"] = (re.findall(r"timer:\(([^)]*)\)", v["head"]) or [""])[0]
        words["skmem"] = (re.findall(r"skmem:\(([^)]*)\)", v.get("info", "")) or [""])[0]
        result[k] = words
    return result


def test_tcp_info_timers_memory_and_cookie_equal_ss() -> None:
    with pairs(3, 100_000) as (port, _):
        d = dump(
            SocketFilter(ports=frozenset({port})),
            extras=Extras(timers=True, info=True, memory=True),
        )
        rows = [
            r
            for b in d.batches
            for r in b
            if r.remote_port is not None and r.local_address == r.remote_address == "127.0.0.1"
        ]
        theirs = ss_info(port)
        assert d.extras is not None and len(rows) == 6
        for r in rows:
            assert r.remote_port is not None and r.cookie is not None
            ss = theirs[(r.local_port, r.remote_port)]
            extra = d.extras[r.cookie]
            info = extra.info
            assert info is not None and info.rtt_ms is not None
            assert ss["sk"] == f"{r.cookie:x}"  # ss -e: sk:COOKIE in hex
            assert int(ss["mss"]) == info.mss
            assert int(ss["cwnd"]) == info.cwnd
            rtt, rttvar = (float(x) for x in ss["rtt"].split("/"))
            assert (rtt, rttvar) == (info.rtt_ms, info.rttvar_ms)
            for key in ("bytes_sent", "bytes_acked", "bytes_received"):
                assert int(ss.get(key, 0)) == getattr(info, key), key
            assert ss["skmem"].split(",")[1] == f"rb{extra.memory.rcvbuf_bytes}"  # type: ignore[union-attr]
            assert ss["skmem"].split(",")[3] == f"tb{extra.memory.sndbuf_bytes}"  # type: ignore[union-attr]
            assert extra.timer is not None
            if ss["timer"].startswith("keepalive"):
                assert extra.timer.name == "keepalive"
                # the time left shrinks between the two dumps: within a second
                left = ss["timer"].split(",")[1]
                assert abs(ss_ms(left) - extra.timer.expires_ms) < 1000, (left, extra.timer)
                assert timer_text(extra.timer).startswith("keepalive,")
            else:
                assert extra.timer.name == "off" and ss["timer"] == ""
        assert any(d.extras[r.cookie].timer.name == "keepalive" for r in rows)  # type: ignore[union-attr]


def test_cli_info_json_keeps_units_in_key_names_and_text_reads_like_ss() -> None:
    with pairs(1, 50_000) as (port, held):
        status, out, _ = run("ls", "--port", str(port), "-n", "-i", "-o", "-m", "--json")
        assert status == 0
        doc = json.loads(out)
        sockets = doc["sockets"]
        assert len(sockets) == 2
        client = next(s for s in sockets if s["remote"]["port"] == port)
        assert client["tcp_info"]["bytes_acked"] == 50_001  # SYN counts one
        assert client["tcp_info"]["bytes_received"] == 25_000
        assert isinstance(client["tcp_info"]["rtt_ms"], float)
        assert client["timer"]["name"] == "keepalive" and client["memory"]["rcvbuf_bytes"] > 0
        assert client["cookie"] > 0
        status, out, _ = run("ls", "--port", str(port), "-i", "-o", "-e", "-m", "--wide")
        assert status == 0
        assert "rtt:" in out and "cwnd:" in out and "keepalive," in out and " rb" in out
        assert f"sk:{client['cookie']:x}" in out
        del held


def test_plain_json_has_no_extended_keys() -> None:
    with pairs(1, 10) as (port, _):
        status, out, _ = run("ls", "--port", str(port), "-n", "--json")
        doc = json.loads(out)
        assert status == 0 and doc["sockets"]
        assert all("tcp_info" not in s and "timer" not in s for s in doc["sockets"])
