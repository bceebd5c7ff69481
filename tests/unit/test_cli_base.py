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


def test_show_writes_text_as_is_and_fits_tables() -> None:
    from portscope.render._table import Column, Table

    out = io.StringIO()
    env = Env(stdout=out, stderr=io.StringIO(), width=20)
    table = Table((Column("Port", "right"), Column("Note", drop=1)), [["2024", "x" * 30]])
    env.show("one line", table)
    lines = out.getvalue().splitlines()
    assert lines[0] == "one line"
    assert lines[1].rstrip() == "Port" and lines[3].strip() == "2024"
    assert lines[-1] == "(Note hidden at 20 columns; use --wide or --json)"
    out.truncate(0)
    out.seek(0)
    env.show(table, wide=True)
    assert "x" * 30 in out.getvalue() and "hidden" not in out.getvalue()


def test_wide_is_accepted_by_ls_and_the_listening_view() -> None:
    for argv in (["ls", "--wide", "-n"], ["--wide", "-n"], ["listen", "--wide"]):
        out, err = io.StringIO(), io.StringIO()
        assert main(argv, Env(stdout=out, stderr=err, width=40)) == 0, err.getvalue()
        assert "hidden at" not in out.getvalue()


def test_errors_and_notes_escape_what_they_quote() -> None:
    # a message may quote a process name or a path: it stays one line, inert on a terminal
    err = io.StringIO()
    env = Env(stdout=io.StringIO(), stderr=err)
    env.error("no process \x1b]0;t\x07\u202e\nFAKE")
    env.note("held by \x1b[2K\rsshd\x9b")
    assert err.getvalue() == (
        "portscope: error: no process \\x1b]0;t\\x07\\u202e FAKE\n"
        "portscope: note: held by \\x1b[2K\\x0dsshd\\x9b\n"
    )
