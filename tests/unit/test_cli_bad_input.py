"""Bad input ends in one line ``portscope: error: ...`` and exit 2, before anything is done.

Each case here ended in a traceback, a wrong answer or an endless wait before issue 18.
The property-based test over every command is ``test_cli_fuzz.py``.
"""

from __future__ import annotations

import errno
import io
import os
from pathlib import Path

import pytest

from portscope.cli import Env, main

NINES = "9" * 5000


def run(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    status = main(list(argv), Env(stdout=out, stderr=err))
    return status, out.getvalue(), err.getvalue()


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["why", "bind", "²"], "unknown port"),
        (["why", "connect", "[::1]:²"], "unknown port"),
        (["probe", "127.0.0.1", "²"], "unknown port"),
        (["scan", "127.0.0.1", "-p", "²"], "unknown port"),
        (["why", "bind", NINES], "out of range"),
        (["probe", "127.0.0.1", NINES], "out of range"),
        (["lookup", NINES], "out of range"),
        (["lookup", "--limit", NINES, "http"], "from 0 to 1,000,000"),
        (["lookup", "--limit", "-1", "http"], "from 0 to 1,000,000"),
        (["lookup", "--limit", "²", "http"], "from 0 to 1,000,000"),
        (["probe", "127.0.0.1", "\udcff"], "unknown port"),
        (["probe", "127.0.0.1", "--", "--"], "expected a value"),
        (["why", "bind", "--", "--"], "expected a value"),
        (["registry", "update", "--timeout", "1e10"], "above 0 and at most 3,600"),
        (["registry", "update", "--timeout", "nan"], "above 0 and at most 3,600"),
        (["who", "1", "--kill", "--yes", "--timeout", "nan"], "from 0 to 3,600"),
        (["who", "1", "--kill", "--yes", "--timeout", "inf"], "from 0 to 3,600"),
        (["who", "1", "--kill", "--yes", "--timeout", "1e300"], "from 0 to 3,600"),
        (["why", "connect", "--udp", "--timeout", "inf", "127.0.0.1:9"], "at most 3,600"),
        (["why", "connect", "--timeout=-1", "127.0.0.1:9"], "at most 3,600"),
        (["scan", "127.0.0.1", "-p", "1", "--rate", "1e-9"], "from 1 to 10,000,000"),
        (["scan", "127.0.0.1", "-p", "1", "--rate", "0.1"], "from 1 to 10,000,000"),
        (["scan", "127.0.0.1", "-p", "1", "--rate", "inf"], "from 1 to 10,000,000"),
        (["scan", "fe80::1%", "-p", "1"], "link-local"),
        (["probe", "fe80::1%lo", "1"], "link-local"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(argv: list[str], says: str) -> None:
    status, out, err = run(*argv)
    assert status == 2, (status, err)
    assert out == ""
    assert err.startswith("portscope: error: ") and err.count("\n") == 1, err
    assert says in err
    assert len(err) < 400  # a value of 5,000 digits is cut in the message


@pytest.mark.parametrize(
    "argv",
    [
        ["scan", "-iL", "/dev/zero", "-p", "1"],
        ["scan", "127.0.0.1", "-p", "1", "--exclude-file", "/dev/zero"],
        ["registry", "update", "--from", "/dev/zero"],
    ],
)
def test_files_are_read_with_a_cap(
    argv: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PORTSCOPE_CACHE_DIR", str(tmp_path))
    status, out, err = run(*argv)  # before issue 18: read /dev/zero until memory ran out
    assert (status, out) == (2, "")
    assert "larger than" in err and "MiB" in err and err.count("\n") == 1, err


def test_xml_output_on_a_full_device_is_one_line_and_exit_2() -> None:
    status, _, err = run("scan", "127.0.0.1", "-p", "1", "--retries", "0", "-oX", "/dev/full")
    assert status == 2
    assert err.startswith("portscope: error: cannot write -oX file '/dev/full'") and (
        "No space left on device" in err
    )


def test_xml_output_is_whole_or_absent(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from portscope.render.scan import NmapXmlWriter

    target = tmp_path / "scan.xml"
    target.write_text("the previous scan\n")

    def full(self: object, report: object) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(NmapXmlWriter, "close", full)
    status, _, err = run("scan", "127.0.0.1", "-p", "1", "--retries", "0", "-oX", str(target))
    assert status == 2 and "nothing written" in err
    assert target.read_text() == "the previous scan\n"  # untouched
    assert sorted(p.name for p in tmp_path.iterdir()) == ["scan.xml"]  # no temporary left
    monkeypatch.undo()

    odd = tmp_path / "x\udcff.xml"  # a name that is not UTF-8 (argv as the OS gives it)
    status, _, err = run("scan", "127.0.0.1", "-p", "1", "--retries", "0", "-oX", str(odd))
    assert (status, err) == (0, "")
    assert odd.read_text().rstrip().endswith("</nmaprun>")
    assert oct(odd.stat().st_mode & 0o777) == oct(0o666 & ~_umask())


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
