"""probe/scan bad input: one line naming the value, exit 2, and no socket ever created."""

from __future__ import annotations

import io
import socket
from pathlib import Path

import pytest

from portscope.cli import Env, main


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Creating a socket or resolving an unknown name fails the test: nothing may be sent."""

    class Refuse(socket.socket):
        def __init__(self, *args: object, **kw: object) -> None:
            raise AssertionError("a socket was created before input was validated")

    def resolver(host: str, *args: object, **kw: object) -> list:  # type: ignore[type-arg]
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(socket, "socket", Refuse)
    monkeypatch.setattr(socket, "getaddrinfo", resolver)


def run(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    status = main(list(argv), Env(stdout=out, stderr=err))
    return status, out.getvalue(), err.getvalue()


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["scan", "127.0.0.1", "-p", "0-70000"], "0-70000"),
        (["scan", "127.0.0.1", "-p", "1-70000"], "70000"),
        (["scan", "127.0.0.1", "-p", "80-20"], "80-20"),
        (["scan", "300.1.1.1", "-p", "80"], "300.1.1.1"),
        (["scan", "::g", "-p", "80"], "::g"),
        (["scan", "no-such-host.invalid", "-p", "80"], "no-such-host.invalid"),
        (["scan", "224.0.0.1", "-p", "80"], "multicast"),
        (["scan", "10.0.0.0/8", "-p", "80"], "--yes"),
        (["scan", "-p", "80"], "no targets"),
        (["scan", "127.0.0.1", "-p", "80", "--rate", "0"], "--rate"),
        (["scan", "127.0.0.1", "-p", "80", "--timeout", "abc"], "abc"),
        (["scan", "127.0.0.1", "-p", "80", "--retries=-1"], "-1"),
        (["scan", "127.0.0.1", "--top-ports", "0"], "--top-ports"),
        (["scan", "127.0.0.1", "-p", "\u00b2"], "\u00b2"),
        (["scan", "127.0.0.1", "-p", "9" * 5000], "out of range"),
        (["probe", "127.0.0.1", "\u00b2"], "\u00b2"),
        (["probe", "127.0.0.1", "9" * 5000], "out of range"),
        (["probe", "127.0.0.1", "0-70000"], "0-70000"),
        (["probe", "127.0.0.1", "80-20"], "80-20"),
        (["probe", "300.1.1.1", "80"], "300.1.1.1"),
        (["probe", "::g", "80"], "::g"),
        (["probe", "no-such-host.invalid", "80"], "no-such-host.invalid"),
        (["probe", "127.0.0.1", "80", "--timeout", "0"], "timeout"),
        (["probe", "198.18.0.0/24", "80"], "198.18.0.0/24"),
    ],
)
def test_bad_input_is_one_line_exit_2(no_network: None, argv: list[str], needle: str) -> None:
    status, out, err = run(*argv)
    assert status == 2, err
    assert out == ""
    assert err.count("\n") == 1 and err.startswith("portscope: error:")
    assert needle in err and len(err) < 400


def test_empty_and_missing_target_files(no_network: None, tmp_path: Path) -> None:
    empty = tmp_path / "targets.txt"
    empty.write_text("\n# only a comment\n")
    status, _, err = run("scan", "-iL", str(empty), "-p", "80")
    assert status == 2 and "holds no targets" in err and str(empty) in err
    status, _, err = run("scan", "127.0.0.1", "--exclude-file", str(tmp_path / "nope"), "-p", "1")
    assert status == 2 and "cannot read target file" in err


def test_help_does_not_import_asyncio() -> None:
    import subprocess
    import sys

    for cmd in ("probe", "scan"):
        proc = subprocess.run(
            [sys.executable, "-X", "importtime", "-m", "portscope", cmd, "--help"],
            capture_output=True, text=True, timeout=30, check=True,
        )  # fmt: skip
        assert "usage:" in proc.stdout
        imported = {line.split("|")[-1].strip() for line in proc.stderr.splitlines()}
        assert "asyncio" not in imported and "rich" not in imported
