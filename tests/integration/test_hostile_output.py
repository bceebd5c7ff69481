"""Hostile process names and command lines never reach the terminal raw (issue 18).

Real processes set their ``comm`` with ``prctl(PR_SET_NAME)`` to escape sequences (OSC 52
clipboard write, OSC 0 window title, SGR colour, erase-line + carriage return + newline that
would forge a row) and to U+202E (right-to-left override), with the same in their argv, and
hold TCP and UDP sockets on loopback (a listener, a connection, a UDP socket). Every text
command is run to a pipe and under a pseudo-terminal (colour on, the only escapes left must
be rich's own SGR colours), and the ``who --kill`` prompt is answered "no" on the pty.
"""

from __future__ import annotations

import json
import os
import pty
import re
import select
import subprocess
import sys
import termios
import textwrap
import time
from collections.abc import Iterator

import pytest

HOSTILE_NAMES = [
    b"\x1b]52;c;aGk=\x07",  # OSC 52: write the admin's clipboard
    b"\x1b]0;pwned\x07",  # OSC 0: window title
    b"\x1b[31mred\x1b[0m",  # SGR colour
    "\u202eevil\u2066".encode(),  # bidi override and isolate
    b"\x1b[2K\rsshd\nFAKE",  # erase the line, carriage return, a forged row
    b"del\x7f\xc2\x9bc1",  # DEL and C1 CSI (U+009B)
]
HOSTILE_ARG = "\x1b]0;title\x07\u202e\x1b[2K\rforged\nrow\x9b"

CHILD = textwrap.dedent(
    """
    import ctypes, socket, sys
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(15, ctypes.c_char_p(bytes.fromhex(sys.argv[1])), 0, 0, 0) != 0:
        sys.exit("prctl failed")
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen()
    port = s.getsockname()[1]
    c = socket.create_connection(("127.0.0.1", port))
    a, _ = s.accept()
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    u.bind(("127.0.0.1", port))
    print(port, flush=True)
    sys.stdin.read()  # until the test closes stdin
    """
)

# Anything a terminal acts on: C0 but newline, DEL, C1, bidi marks, overrides and isolates.
RAW = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")
# What rich writes itself on a colour terminal: SGR sequences only.
SGR = re.compile("\x1b\\[[0-9;]*m")


@pytest.fixture(scope="module")
def hostile() -> Iterator[list[tuple[int, int]]]:
    """(pid, port) of one child per hostile name, each holding TCP and UDP sockets."""
    children = [
        subprocess.Popen(
            [sys.executable, "-c", CHILD, name.hex(), HOSTILE_ARG],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for name in HOSTILE_NAMES
    ]
    try:
        held = []
        for child, name in zip(children, HOSTILE_NAMES, strict=True):
            assert child.stdout is not None
            port = int(child.stdout.readline())
            with open(f"/proc/{child.pid}/comm", "rb") as f:
                assert f.read() == name[:15] + b"\n"
            held.append((child.pid, port))
        yield held
    finally:
        for child in children:
            assert child.stdin is not None and child.stdout is not None
            child.stdin.close()
            try:
                child.wait(timeout=10)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait(timeout=10)
            child.stdout.close()


def _commands(port: int) -> list[list[str]]:
    """Every text command that shows process names, command lines or sockets."""
    p = str(port)
    return [
        [],
        ["listen", "-u"],
        ["ls", "-p"],
        ["ls", "-a", "-p"],
        ["ls", "-a", "-u", "-p", "--port", p],
        ["who", p],
        ["who", f"{p}/udp"],
        ["audit"],
        ["why", "bind", p],
        ["ephemeral"],
    ]


def _env() -> dict[str, str]:
    env = dict(os.environ, COLUMNS="250", LINES="50", TERM="xterm-256color")
    env.pop("NO_COLOR", None)
    return env


def _run_pipe(argv: list[str]) -> tuple[int, str]:
    done = subprocess.run(
        [sys.executable, "-m", "portscope", *argv],
        capture_output=True,
        timeout=60,
        check=False,
        env=_env(),
    )
    return done.returncode, (done.stdout + done.stderr).decode("utf-8", "surrogateescape")


def _run_pty(argv: list[str], answer: bytes | None = None) -> tuple[int, str]:
    """Run with stdin, stdout and stderr on a pty (no output processing: \\n stays \\n)."""
    master, slave = pty.openpty()
    attrs = termios.tcgetattr(slave)
    attrs[1] &= ~termios.OPOST  # oflag: the kernel adds no \r of its own
    attrs[3] &= ~termios.ECHO  # lflag: the answer is not echoed into the output
    termios.tcsetattr(slave, termios.TCSANOW, attrs)
    proc = subprocess.Popen(
        [sys.executable, "-m", "portscope", *argv],
        stdin=slave,
        stdout=slave,
        stderr=slave,
        env=_env(),
        close_fds=True,
    )
    os.close(slave)
    out = b""
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.5)
            if ready:
                try:
                    chunk = os.read(master, 65536)
                except OSError:  # EIO: the child closed the pty
                    break
                if not chunk:
                    break
                out += chunk
                if answer is not None and b"[y/N]" in out:
                    os.write(master, answer)
                    answer = None
            elif proc.poll() is not None:
                break
        status = proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
        os.close(master)
    return status, out.decode("utf-8", "surrogateescape")


def _assert_clean(text: str, what: str) -> None:
    found = RAW.search(text)
    assert found is None, (
        f"{what}: raw {found.group()!r} in ...{text[found.start() - 60 : found.end() + 20]!r}"
    )


@pytest.mark.parametrize("where", ["pipe", "pty"])
def test_no_raw_control_character_in_any_text_command(
    hostile: list[tuple[int, int]], where: str
) -> None:
    port = hostile[-1][1]
    shown_names = 0
    for argv in _commands(port):
        status, text = _run_pipe(argv) if where == "pipe" else _run_pty(argv)
        assert "Traceback" not in text, (argv, text)
        assert status in (0, 1), (argv, status, text)
        if where == "pty":
            text = SGR.sub("", text)
        _assert_clean(text, " ".join(argv) or "portscope")
        shown_names += text.count("\\x1b]52;c;aGk=\\x07")
    assert shown_names >= 5  # the names are shown, escaped, not dropped


def test_who_shows_the_hostile_command_line_escaped(hostile: list[tuple[int, int]]) -> None:
    pid, port = hostile[4]
    status, text = _run_pipe(["who", str(port)])
    assert status == 0
    _assert_clean(text, "who")
    assert f"\\x1b[2K\\x0dsshd\\x0aFAKE[{pid}]" in text
    command = [line for line in text.splitlines() if line.startswith("  command  ")]
    assert len(command) == 1 and sys.executable[:40] in command[0]
    status, doc = _run_pipe(["who", str(port), "--json"])
    assert status == 0
    assert HOSTILE_ARG in json.loads(doc)["holders"][0]["cmdline"]  # JSON: the exact value


def test_kill_prompt_names_the_process_escaped_and_no_means_no(
    hostile: list[tuple[int, int]],
) -> None:
    pid, port = hostile[4]
    status, text = _run_pty(["who", str(port), "--kill", "--no-color"], answer=b"n\n")
    _assert_clean(text, "who --kill prompt")
    prompt = next(line for line in text.splitlines() if "[y/N]" in line)
    assert prompt.startswith("send SIGTERM to ")
    assert f"\\x1b[2K\\x0dsshd\\x0aFAKE[{pid}]" in prompt
    assert "nothing signalled" in text
    assert status == 1
    assert os.path.exists(f"/proc/{pid}")  # "n" killed nothing


def test_error_messages_escape_what_they_quote() -> None:
    for argv in (
        ["who", "\x1b]0;x\x07"],
        ["lookup", "\x1b[31m\u202e"],
        ["scan", "-iL", "/nonexistent/\x1b]52;c;x\x07"],
        ["why", "connect", "\x1b[2Khost\n:80"],  # refused before the resolver sees it
    ):
        status, text = _run_pipe(argv)
        assert status == 2, (argv, text)
        _assert_clean(text, argv[0])
        assert text.count("portscope: error:") == 1 and text.count("\n") == 1, text
