"""The raw engines' options: bad values are one line and exit 2, before any packet."""

from __future__ import annotations

import io

import pytest

from portscope.cli import Env, main


def run(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    status = main(list(argv), Env(stdout=out, stderr=err))
    return status, out.getvalue(), err.getvalue()


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["scan", "-sU", "127.0.0.1", "--max-wait", "0"], "--max-wait '0'"),
        (["scan", "-sU", "127.0.0.1", "--max-wait", "soon"], "--max-wait 'soon'"),
        (["scan", "-sU", "127.0.0.1", "--source-addresses", "198.18.0.1,nope"], "'nope'"),
        (["scan", "-sU", "127.0.0.1", "--source-addresses", "198.18.0.0/15"], "at most 4,096"),
        (["scan", "-sS", "-sA", "127.0.0.1"], "not allowed with argument"),
        (["trace", "127.0.0.1"], "expected HOST:PORT"),
        (["trace", "127.0.0.1:0"], "0"),
        (["trace", "127.0.0.1:22", "-m", "65"], "--max-hops '65'"),
        (["trace", "127.0.0.1:22", "--tries", "9"], "--tries '9'"),
        (["trace", "127.0.0.1:22", "--timeout", "0"], "--timeout '0'"),
        (["trace", "127.0.0.1:22", "-U", "-I"], "not allowed with argument"),
    ],
)
def test_bad_engine_options_are_one_line_and_exit_2(argv: list[str], needle: str) -> None:
    status, out, err = run(*argv)
    assert status == 2, (out, err)
    assert needle in err and err.count("\n") == 1 and "Traceback" not in err


def test_scan_help_names_the_techniques(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        run("scan", "--help")
    text = capsys.readouterr().out
    for flag in ("-sS", "-sA", "-sU", "--reason", "--max-wait", "--source-addresses"):
        assert flag in text
