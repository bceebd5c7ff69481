"""CLI plumbing: one-line errors with exit 2, unknown commands, version."""

from __future__ import annotations

import io

from portscope.cli import Env, main


def run(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    status = main(list(argv), Env(stdout=out, stderr=err))
    return status, out.getvalue(), err.getvalue()


def test_unknown_command_is_one_line_exit_2() -> None:
    status, out, err = run("frobnicate")
    assert status == 2
    assert out == ""
    assert err.count("\n") == 1
    assert "'frobnicate'" in err and "lookup" in err


def test_version() -> None:
    status, out, _ = run("--version")
    assert status == 0
    assert out.startswith("portscope ")


def test_top_help_lists_every_command() -> None:
    from portscope.cli import COMMANDS

    status, out, _ = run("--help")
    assert status == 0
    for name in COMMANDS:
        assert f"  {name} " in out
