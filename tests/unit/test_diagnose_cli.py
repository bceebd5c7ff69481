"""Bad input to who / why / audit / free / ephemeral: one line on stderr, exit 2."""

from __future__ import annotations

import io

import pytest

from portscope.cli import Env, main


def run(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    status = main(list(argv), Env(stdout=out, stderr=err))
    return status, out.getvalue(), err.getvalue()


@pytest.mark.parametrize(
    ("argv", "named"),
    [
        (["who", "0"], "0"),
        (["who", "99999"], "99999"),
        (["who", "80/sctp"], "sctp"),
        (["who", "no-such-service-xyz"], "no-such-service-xyz"),
        (["why", "connect", "host"], "host"),
        (["why", "connect", "::1:80"], "brackets"),
        (["why", "connect", "host:0"], "0"),
        (["why", "bind", "abc"], "abc"),
        (["why", "bind", "80", "--addr", "not-an-ip"], "not-an-ip"),
        (["why", "frobnicate", "80"], "frobnicate"),
        (["why", "bind", "80", "--timeout", "2"], "--timeout"),
        (["why", "connect", "h:80", "--addr", "127.0.0.1"], "--addr"),
        (["who", "80", "--force"], "--kill"),
        # -4/-6 make argparse read "-1" as an option: the value goes after "="
        (["who", "80", "--kill", "--timeout=-1"], "-1"),
        (["audit", "--fail-on", "urgent"], "urgent"),
        (["free", "-n", "abc"], "abc"),
        (["free", "--range", "5-1"], "5-1"),
        (["ephemeral", "--warn", "0"], "0"),
        (["ephemeral", "--top", "x"], "x"),
    ],
)
def test_bad_input_is_one_line_exit_2(argv: list[str], named: str) -> None:
    status, out, err = run(*argv)
    assert status == 2, err
    assert out == ""
    assert err.count("\n") == 1 and err.startswith("portscope: error: ")
    assert named in err


def test_free_help_text(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        main(["free", "--help"])
    assert done.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "ephemeral range" in text and "registry" in text and "ip_unprivileged_port_start" in text
