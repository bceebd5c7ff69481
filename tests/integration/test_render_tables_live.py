"""The socket tables against real sockets: the CLI in-process at 80-200 columns, a process
with a hostile name, and the listening table built without the CLI (as a TUI would).

Loopback only: listeners on 127.0.0.1 and ::1, ephemeral ports.
"""

from __future__ import annotations

import io
import re
import socket
import subprocess
import sys
import textwrap
from collections.abc import Iterator

import pytest

from portscope.cli import Env, main

# --- live: the CLI in-process against real loopback listeners -------------------------------


def run_cli(*argv: str, width: int | None) -> str:
    out, err = io.StringIO(), io.StringIO()
    assert main(list(argv), Env(stdout=out, stderr=err, width=width)) == 0, err.getvalue()
    return out.getvalue()


@pytest.fixture
def listeners() -> Iterator[list[tuple[str, int]]]:
    """Four TCP listeners and a bound UDP socket on 127.0.0.1 and ::1 (ports >= 10000)."""
    socks = []
    try:
        for family, host, kind in (
            (socket.AF_INET, "127.0.0.1", socket.SOCK_STREAM),
            (socket.AF_INET, "127.0.0.1", socket.SOCK_STREAM),
            (socket.AF_INET6, "::1", socket.SOCK_STREAM),
            (socket.AF_INET6, "::1", socket.SOCK_STREAM),
            (socket.AF_INET, "127.0.0.1", socket.SOCK_DGRAM),
        ):
            s = socket.socket(family, kind)
            socks.append(s)
            s.bind((host, 0))
            if kind == socket.SOCK_STREAM:
                s.listen()
        yield [(s.getsockname()[0], s.getsockname()[1]) for s in socks]
    finally:
        for s in socks:
            s.close()


@pytest.mark.parametrize("width", [80, 100, 120])
def test_live_listening_view_keeps_every_port_whole(
    listeners: list[tuple[str, int]], width: int
) -> None:
    text = run_cli("-n", width=width)
    lines = text.splitlines()
    assert lines[0].split()[:3] == ["Proto", "Port", "Address"]
    for host, port in listeners:
        shown_host = f"[{host}]" if ":" in host else host
        assert any(li.split()[1:3] == [str(port), shown_host] for li in lines[2:]), port


@pytest.mark.parametrize("width", [80, 132])
def test_live_ls_keeps_every_endpoint_whole(listeners: list[tuple[str, int]], width: int) -> None:
    text = run_cli("ls", "-l", "-p", "-n", width=width)
    tokens = text.split()
    for host, port in listeners:
        assert (f"[{host}]:{port}" if ":" in host else f"{host}:{port}") in tokens


HOSTILE = b"\x1b]0;x\x07\n" + "\u202e".encode()  # 10 bytes: comm holds 15

CHILD = textwrap.dedent(
    """
    import ctypes, socket, sys
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(15, ctypes.c_char_p(bytes.fromhex(sys.argv[1])), 0, 0, 0) != 0:  # PR_SET_NAME
        sys.exit("prctl failed")
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen()
    print(s.getsockname()[1], flush=True)
    sys.stdin.read()  # until the test closes stdin
    """
)


@pytest.fixture
def hostile_listener() -> Iterator[tuple[int, int]]:
    """(pid, port) of a child whose comm is an escape sequence, a newline and RLO."""
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, HOSTILE.hex()],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None
        port = int(child.stdout.readline())
        with open(f"/proc/{child.pid}/comm", "rb") as f:
            assert f.read() == HOSTILE + b"\n"  # the kernel keeps the bytes as they are
        yield child.pid, port
    finally:
        assert child.stdin is not None
        child.stdin.close()
        try:
            child.wait(timeout=10)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait(timeout=10)
        assert child.stdout is not None
        child.stdout.close()


RAW = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")


@pytest.mark.parametrize("width", [None, 80, 200])
@pytest.mark.parametrize("argv", [["-n"], ["ls", "-l", "-p", "-n"]])
def test_hostile_process_name_is_shown_escaped_on_one_line(
    hostile_listener: tuple[int, int], argv: list[str], width: int | None
) -> None:
    pid, port = hostile_listener
    text = run_cli(*argv, width=width)
    assert not RAW.search(text), RAW.search(text)
    escaped = "\\x1b]0;x\\x07\\x0a\\u202e"
    port_lines = [
        li for li in text.splitlines() if f"127.0.0.1:{port}" in li.split() or f" {port} " in li
    ]
    assert len(port_lines) == 1
    if width != 80:  # wide enough for the Process column: the name whole on the port's line
        assert f"{escaped}[{pid}]" in port_lines[0]


REUSE = textwrap.dedent(
    """
    import io, sys
    from portscope import list_sockets
    from portscope.render._table import fit, to_rich, write_plain
    from portscope.render.sockets import render_listen, rows_from_sockets
    table_ = list_sockets(states=["listen", "unconn"], owners=True)
    rows, owners = rows_from_sockets(table_.sockets)
    table = render_listen(rows, owners=owners, service=None)
    fitted = fit(table, 80)
    to_rich(table, fitted=fitted)
    out = io.StringIO()
    write_plain(table, out.write, fitted=fitted)
    assert "portscope.cli" not in sys.modules, "the CLI was imported"
    print(out.getvalue())
    """
)


def test_a_tui_can_build_the_listening_table_without_the_cli(
    listeners: list[tuple[str, int]],
) -> None:
    done = subprocess.run(
        [sys.executable, "-c", REUSE], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].split()[:3] == ["Proto", "Port", "Address"]
    for host, port in listeners:
        shown_host = f"[{host}]" if ":" in host else host
        assert any(li.split()[1:3] == [str(port), shown_host] for li in lines[2:]), port
    assert "python" in done.stdout  # this test's own process owns them
