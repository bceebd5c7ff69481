"""``portscope exporter``: the exposition checked by promtool, and a real Prometheus
(Debian's, started by the test on loopback) that scrapes it and sees a listener come and go."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("prometheus_client", reason="the exporter extra is not installed")

from portscope.exporter import SocketCollector, read_tcpext

_NETNS = f"ps14-exporter-{os.getpid()}"


@pytest.fixture(autouse=True)
def netns() -> Iterator[str]:
    """Each test runs in its own empty network namespace (lo up): this thread joins it,
    and the exporter and Prometheus run in it, so counts see only the test's sockets."""
    if os.geteuid() != 0:
        pytest.skip("needs root: creates a network namespace (ip netns add)")
    from tests.lab import joined_netns

    with joined_netns(_NETNS) as name:
        yield name


_IN_NETNS = ["ip", "netns", "exec", _NETNS]


def _once(*args: str) -> str:
    result = subprocess.run(
        [*_IN_NETNS, sys.executable, "-m", "portscope", "exporter", "--once", *args],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def _series(text: str, name: str) -> list[dict[str, str]]:
    found = []
    for line in text.splitlines():
        if line.startswith(name + "{"):
            labels = line[len(name) + 1 : line.rindex("}")]
            found.append(dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', labels)))
    return found


def _comm() -> str:
    return Path("/proc/self/comm").read_text().strip()


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(7)
    yield srv
    srv.close()


def test_exposition_passes_promtool_and_names_the_listener(listener: socket.socket) -> None:
    port = str(listener.getsockname()[1])
    text = _once("--top-destinations", "1000")
    mine = [s for s in _series(text, "portscope_listener_info") if s["port"] == port]
    assert len(mine) == 1
    assert mine[0]["address"] == "127.0.0.1" and mine[0]["proto"] == "tcp"
    assert mine[0]["scope"] == "loopback only"
    assert mine[0]["process"] == _comm()
    backlog = [s for s in _series(text, "portscope_listener_backlog") if s["port"] == port]
    assert len(backlog) == 1
    line = next(
        ln
        for ln in text.splitlines()
        if ln.startswith("portscope_listener_backlog{") and f'port="{port}"' in ln
    )
    assert line.endswith(" 7.0")
    for name in ("remote", "raddr", "rport", "peer"):
        assert f"{name}=" not in text
    if shutil.which("promtool") is None:
        pytest.skip("promtool is not installed (scripts/install-test-deps installs prometheus)")
    checked = subprocess.run(
        ["promtool", "check", "metrics"], input=text, capture_output=True, text=True, timeout=60
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_counts_states_and_ephemeral_ports_toward_a_destination(listener: socket.socket) -> None:
    port = listener.getsockname()[1]
    clients = [socket.create_connection(("127.0.0.1", port)) for _ in range(5)]
    accepted = [listener.accept()[0] for _ in clients]
    try:
        collector = SocketCollector(top_destinations=1000)
        families = {f.name: f for f in collector.collect()}
        in_use = {
            s.labels["destination"]: s.value
            for s in families["portscope_ephemeral_ports_in_use"].samples
        }
        assert in_use[f"127.0.0.1:{port}"] == 5
        lo, hi = (
            int(x) for x in Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        )
        available = {
            s.labels["destination"]: s.value
            for s in families["portscope_ephemeral_ports_available"].samples
        }
        assert available[f"127.0.0.1:{port}"] <= hi - lo + 1 - 5
        established = [
            s.value
            for s in families["portscope_sockets"].samples
            if s.labels == {"proto": "tcp", "family": "4", "state": "ESTABLISHED"}
        ]
        assert established and established[0] >= 10  # both ends of 5 connections
        tcpext = read_tcpext()
        assert "ListenOverflows" in tcpext
        assert families["portscope_listen_overflows"].samples[0].value >= 0
    finally:
        for s in clients + accepted:
            s.close()


@pytest.fixture
def mixed_sockets(listener: socket.socket) -> Iterator[int]:
    """Sockets in several states and both families: 6 connections over IPv4 and 3 over
    IPv6 (ESTABLISHED both ends), 2 half-closed (FIN-WAIT-2 / CLOSE-WAIT), 2 closed by the
    client first (TIME-WAIT), an IPv6 listener, a bound UDP socket. Yields the port."""
    port = listener.getsockname()[1]
    srv6 = socket.socket(socket.AF_INET6)
    srv6.bind(("::1", 0))
    srv6.listen(8)
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind(("127.0.0.1", 0))
    held: list[socket.socket] = [srv6, udp]
    try:
        for _ in range(6):
            held.append(socket.create_connection(("127.0.0.1", port)))
            held.append(listener.accept()[0])
        for _ in range(3):
            held.append(socket.create_connection(("::1", srv6.getsockname()[1])))
            held.append(srv6.accept()[0])
        for _ in range(2):  # half-closed: the client end in FIN-WAIT-2
            client = socket.create_connection(("127.0.0.1", port))
            held += [client, listener.accept()[0]]
            client.shutdown(socket.SHUT_WR)
        for _ in range(2):  # the client closes first and both close: it keeps TIME-WAIT
            client = socket.create_connection(("127.0.0.1", port))
            server = listener.accept()[0]
            client.close()
            server.recv(1)
            server.close()
        time.sleep(0.2)
        yield port
    finally:
        for s in held:
            s.close()


def _state_counts(families: dict[str, object]) -> dict[tuple[str, str, str], float]:
    return {
        (s.labels["proto"], s.labels["family"], s.labels["state"]): s.value
        for s in families["portscope_sockets"].samples  # type: ignore[attr-defined]
    }


# ss names (misc/ss.c sstate_name) -> RFC 9293 / portscope names
_SS_STATES = {"ESTAB": "ESTABLISHED", "UNCONN": "CLOSE"}


def test_socket_counts_match_ss_per_family_and_state(mixed_sockets: int) -> None:
    families = {f.name: f for f in SocketCollector().collect()}
    mine = {k: v for k, v in _state_counts(families).items() if k[0] == "tcp"}
    theirs: dict[tuple[str, str, str], float] = {}
    for family in ("4", "6"):
        out = subprocess.run(
            [*_IN_NETNS, "ss", "-Htan" + family], capture_output=True, text=True, timeout=30
        ).stdout
        for line in out.splitlines():
            state = line.split()[0]
            key = ("tcp", family, _SS_STATES.get(state, state))
            theirs[key] = theirs.get(key, 0) + 1
    assert mine == theirs
    assert theirs[("tcp", "4", "TIME-WAIT")] == 2
    assert theirs[("tcp", "4", "FIN-WAIT-2")] == 2
    assert theirs[("tcp", "6", "ESTABLISHED")] == 6


def test_counted_and_listed_paths_give_the_same_numbers(mixed_sockets: int) -> None:
    """``sockets.tally`` counts the kernel's bytes; the same numbers from a full dump's
    rows (the path of other backends and namespaces)."""
    from portscope.sockets import SocketFilter, Tally, dump, tally

    ephemeral = tuple(
        int(x) for x in Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
    )
    assert len(ephemeral) == 2
    fast = tally((ephemeral[0], ephemeral[1]), backend="netlink")
    slow = Tally()
    for rows in dump(SocketFilter(), backend="netlink").batches:
        slow.add_rows(rows, (ephemeral[0], ephemeral[1]))
    assert fast.counts == slow.counts
    assert fast.ephemeral_ports == slow.ephemeral_ports
    assert list(fast.destinations.items()) == list(slow.destinations.items())
    assert sorted(r.cookie or 0 for r in fast.rows) == sorted(r.cookie or 0 for r in slow.rows)
    # the client ends toward the IPv4 listener: established, FIN-WAIT-2, TIME-WAIT
    assert fast.destinations[("127.0.0.1", mixed_sockets)] == 6 + 2 + 2
    procfs = tally((ephemeral[0], ephemeral[1]), backend="procfs")
    assert procfs.counts == fast.counts


def test_the_strided_count_and_the_per_message_loop_agree(
    mixed_sockets: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Chunks of equal messages are counted in C (``_uniform_chunk``), others message by
    message; both give the same numbers, here and with every chunk forced either way."""
    from portscope.sockets import _tally, tally

    ephemeral = (32768, 60999)
    uniform_calls: list[bool | None] = []
    real = _tally._uniform_chunk

    def spy(*args, **kwargs):  # type: ignore[no-untyped-def]
        done = real(*args, **kwargs)
        uniform_calls.append(done)
        return done

    monkeypatch.setattr(_tally, "_uniform_chunk", spy)
    both = tally(ephemeral, backend="netlink")
    # TIME-WAIT and established sockets share the IPv4 dump: not one run of equal messages
    assert None in uniform_calls
    monkeypatch.setattr(_tally, "_uniform_chunk", lambda *args, **kwargs: None)
    loop = tally(ephemeral, backend="netlink")
    assert (both.counts, both.ephemeral_ports, both.destinations) == (
        loop.counts,
        loop.ephemeral_ports,
        loop.destinations,
    )


def test_port_allowlist_limits_listener_series(listener: socket.socket) -> None:
    port = listener.getsockname()[1]
    text = _once("--port-allowlist", str(port))
    ports = {s["port"] for s in _series(text, "portscope_listener_info")}
    assert ports == {str(port)}
    assert _series(text, "portscope_sockets")  # host totals stay


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--listen", "localhost:9105"], "not an IP address"),
        (["--listen", "127.0.0.1:70000"], "70000"),
        (["--top-destinations", "5000"], "0 to 1000"),
        (["--port-allowlist", "http"], "http"),
        (["--json"], "not --json"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(args: list[str], needle: str) -> None:
    result = subprocess.run(
        [*_IN_NETNS, sys.executable, "-m", "portscope", "exporter", *args],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("portscope: error:"), result.stderr
    assert needle in lines[0]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _query(prom: int, expr: str) -> list[dict[str, object]]:
    url = f"http://127.0.0.1:{prom}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    with urllib.request.urlopen(url, timeout=5) as reply:
        doc = json.load(reply)
    assert doc["status"] == "success"
    return list(doc["data"]["result"])


def _until(check, seconds: float) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.25)
    return bool(check())


@pytest.fixture
def exporter(netns: str) -> Iterator[int]:
    proc = subprocess.Popen(
        [*_IN_NETNS, sys.executable, "-m", "portscope", "exporter", "--listen", "127.0.0.1:0"],
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stderr is not None
        line = proc.stderr.readline()
        match = re.search(r"http://127\.0\.0\.1:(\d+)/metrics", line)
        assert match, line
        yield int(match.group(1))
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == 0
        if proc.stderr is not None:
            proc.stderr.close()


def test_a_real_prometheus_sees_a_listener_come_and_go(exporter: int, tmp_path: Path) -> None:
    if shutil.which("prometheus") is None:
        pytest.skip("prometheus is not installed (scripts/install-test-deps installs it)")
    prom = _free_port()
    config = tmp_path / "prometheus.yml"
    config.write_text(
        "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n"
        "scrape_configs:\n  - job_name: portscope\n"
        f"    static_configs:\n      - targets: ['127.0.0.1:{exporter}']\n"
    )
    proc = subprocess.Popen(
        [
            *_IN_NETNS,
            "prometheus",
            f"--config.file={config}",
            f"--storage.tsdb.path={tmp_path / 'data'}",
            f"--web.listen-address=127.0.0.1:{prom}",
            "--log.level=warn",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    srv = socket.socket()
    try:
        assert _until(lambda: _ready(prom), 30), "prometheus did not become ready"
        srv.bind(("127.0.0.1", 0))
        srv.listen()
        port = str(srv.getsockname()[1])
        expr = f'portscope_listener_info{{port="{port}"}}'
        assert _until(lambda: len(_query(prom, expr)) == 1, 20), "the listener never appeared"
        labels = _query(prom, expr)[0]["metric"]
        assert isinstance(labels, dict)
        assert labels["process"] == _comm() and labels["job"] == "portscope"
        srv.close()
        assert _until(lambda: _query(prom, expr) == [], 20), "the series did not go"
        errors = _query(prom, "portscope_scrape_errors_total")
        assert errors and errors[0]["value"][1] == "0"
    finally:
        srv.close()
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _ready(prom: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{prom}/-/ready", timeout=2) as r:
            return r.status == 200
    except OSError:
        return False
