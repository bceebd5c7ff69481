"""Property-based test over every command's arguments (issue 18).

For each command in ``cli.COMMANDS`` (commands added later are covered without a change
here) hypothesis draws command lines from the command's own parser: its options, with
values from a list of hostile ones (NaN, infinities, 5,000 digits, superscripts,
surrogates, control characters, ``--``, devices) and free text, and positionals the same
way. Properties:

* no exception leaves ``main`` (no traceback), and the status is 0, 1 or 2;
* status 2 (bad input) writes exactly one line, ``portscope: error: ...``, to stderr and
  nothing to stdout;
* no raw control character reaches stdout or stderr.

Safety: network targets (HOST of probe and scan, ``why connect``, ``-iL`` files) come only
from a list of loopback and malformed values, never from free text; host names never
reach a resolver (``conftest``); ``registry update`` cannot download (urlopen answers
as offline) and
writes to a temporary cache; ``who --kill`` is never drawn (it signals processes); scan
timeouts and rates are drawn from short or invalid values, every example has a time limit.

Examples per command: ``PORTSCOPE_FUZZ_EXAMPLES`` (default 6: a few seconds per command);
a longer run: ``PORTSCOPE_FUZZ_EXAMPLES=300 pytest tests/integration/test_cli_fuzz.py``.
"""

from __future__ import annotations

import argparse
import io
import os
import re
import signal
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from portscope import cli
from portscope.cli._base import Env, Parser, add_common_options

EXAMPLES = int(os.environ.get("PORTSCOPE_FUZZ_EXAMPLES", "6"))
TIME_LIMIT_S = 60

HOSTILE = [
    "", " ", "-", "--", "nan", "NaN", "inf", "-inf", "1e300", "1e-9", "-1", "0", "1",
    "65535", "65536", "9" * 5000, "²", "٣", "0x10", "1_000", "\udcff", "\x00", "\x1b]0;x\x07",
    "\u202e", "a\nb", "\r", "tcp", "udp", "sctp", "http", "80/tcp", "T:80,U:53", "1-",
    "-5", "5-1", "1,,2", "/dev/zero", "/dev/full", "/nonexistent/x", "%", "[", "]",
    "info", "critical", "LISTEN", "all", "user@", "1.2.3", "300.1.1.1", "::1::2",
]  # fmt: skip
# the only network targets ever drawn: loopback, and values refused before any traffic
TARGETS = [
    "127.0.0.1", "::1", "[::1]", "127.0.0.1/32", "127.0.0.1-2", "localhost", "fe80::1%",
    "fe80::1%lo", "300.1.1.1", "::1::2", "", "-", "--", "no_such..host", "\x1b[2Khost",
    "255.255.255.255", "224.0.0.1", "127.0.0.1:", "[::1]:80", "127.0.0.1:²",
    "127.0.0.1:" + "9" * 5000, "127.0.0.1:0", "127.0.0.1:65536",
]  # fmt: skip
HOST_PORT = [t + ":7" for t in TARGETS[:8]] + TARGETS
SHORT_TIMES = ["0.05", "0.1", "0", "-1", "nan", "inf", "1e300", "x", "²", "9" * 5000]
RATES = ["5000", "0.1", "1e-9", "0", "nan", "inf", "1e9", "1e20"]
# scan ports: short lists only (a full-range scan is correct, just slow for a fuzz example)
SCAN_PORTS = ["1", "7", "1-3", "T:7,U:7", "http", "²", "0", "65536", "-1", "nan", "", "5-1",
              "1,,2", "9" * 5000, "U:", "T:", "1-2,4"]  # fmt: skip
DASK_ADDRESSES = ["", "x", "tcp://", "tcp://127.0.0.1", "tcp://127.0.0.1:0", "udp://127.0.0.1:1",
                  "127.0.0.1:99999", "tcp://\x1b[2K:1", "tcp://[::1]"]  # fmt: skip
NEVER = {"--kill", "--yes", "-y", "--force", "--accepted", "--url", "-h", "--help",
         "--allow-kill", "--close", "--exec", "--listen", "--port-allowlist"}  # fmt: skip
# Commands that serve until stopped (a terminal UI, an HTTP server): their arguments are
# fuzzed through the parser only (tests/faces covers them running); and the bounds that
# make the others end by themselves, appended to every drawn line.
INTERACTIVE = {"top", "serve"}
BOUNDED = {"watch": ["--count", "1", "--for", "1"], "exporter": ["--once"]}
RAW = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def _parser(name: str) -> Parser:
    command = cli._load(name)
    parser = Parser(prog=f"portscope {name}", description=command.HELP)
    command.configure(parser)
    add_common_options(parser)
    return parser


def _value(name: str, action: argparse.Action, target_file: str) -> st.SearchStrategy[str]:
    """Values for one option or positional of ``name``'s parser."""
    words = set(action.option_strings) | {action.dest}
    if words & {"--timeout", "timeout"}:
        return st.sampled_from(SHORT_TIMES)
    if words & {"--rate"}:
        return st.sampled_from(RATES)
    if name == "scan" and words & {"-p", "--ports", "--top-ports"}:
        return st.sampled_from(SCAN_PORTS)
    if words & {"-iL", "--exclude-file", "input_file", "exclude_file", "--from", "from_file"}:
        return st.sampled_from([target_file, "/dev/zero", "/nonexistent/x", "/", ""])
    # never a relative path (it would create a store in the cwd), nor a missing directory
    # outside tmp (the store makes its parent directories): under a file, it cannot
    if words & {"--db", "db"}:
        return st.sampled_from(
            [target_file + ".db", "/dev/full", target_file + "/under-a-file/h.db", "/", "",
             "postgresql://127.0.0.1:1/none"]
        )  # fmt: skip
    if words & {"--dask"}:  # refused before connecting, or nothing listens (loopback port 1)
        return st.sampled_from(DASK_ADDRESSES)
    if name == "merge" and action.dest == "files":
        return st.sampled_from([target_file, "/dev/zero", "/nonexistent/x", "/", ""])
    if words & {"-oX", "xml"}:
        return st.sampled_from(["/dev/full", "/nonexistent/dir/x.xml", "/dev/null"])
    if name in ("probe", "scan") and action.dest in ("host", "targets"):
        return st.sampled_from(TARGETS)
    if name in ("why", "trace") and action.dest in ("target", "targets", "host", "destination"):
        return st.sampled_from(HOST_PORT)
    if name == "trace" and not action.option_strings:
        return st.sampled_from(HOST_PORT)  # raw probes: loopback or refused values only
    if name == "scan" and words & {"--exclude"}:
        return st.sampled_from(TARGETS)
    if action.choices:
        return st.one_of(
            st.sampled_from([str(c) for c in action.choices]), st.sampled_from(HOSTILE)
        )
    return st.one_of(
        st.sampled_from(HOSTILE),
        st.text(max_size=12),
        st.integers(-70000, 70000).map(str),
    )


@st.composite
def command_lines(draw: Callable[..., Any], name: str, target_file: str) -> list[str]:
    parser = _parser(name)
    argv = [name]
    positionals = [a for a in parser._actions if not a.option_strings]
    options = [a for a in parser._actions if a.option_strings and not set(a.option_strings) & NEVER]
    for action in positionals:
        if draw(st.integers(0, 9)) == 0:
            continue  # a missing positional: a usage error
        count = 1 if action.nargs in (None, "?") else draw(st.integers(1, 3))
        argv += [draw(_value(name, action, target_file)) for _ in range(count)]
    for _ in range(draw(st.integers(0, 3))):
        if not options:
            break
        action = draw(st.sampled_from(options))
        argv.append(draw(st.sampled_from(action.option_strings)))
        if action.nargs != 0:
            argv.append(draw(_value(name, action, target_file)))
    if draw(st.booleans()):
        argv.append("--json")
    if name in ("probe", "scan", "why", "trace") and draw(st.integers(0, 3)) == 0:
        argv.append(draw(st.sampled_from(TARGETS)))  # a stray extra positional
    return argv + BOUNDED.get(name, [])


class _Expired(Exception):
    pass


def _expired(signum: int, frame: Any) -> None:
    raise _Expired


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A temporary registry cache, no downloads, and a target file of loopback addresses."""
    import urllib.request

    root = tmp_path_factory.mktemp("fuzz")
    targets = root / "targets.txt"
    targets.write_text("127.0.0.1\n::1\n# a comment\n")
    saved = {k: os.environ.get(k) for k in ("PORTSCOPE_CACHE_DIR", "PORTSCOPE_DB")}
    os.environ["PORTSCOPE_CACHE_DIR"] = str(root / "cache")
    os.environ["PORTSCOPE_DB"] = str(root / "history.db")  # never the user's own store
    real_urlopen = urllib.request.urlopen

    def no_download(*args: Any, **kwargs: Any) -> Any:
        import errno
        import urllib.error

        # as an offline machine answers: 'registry update' ends in its one-line error
        raise urllib.error.URLError(OSError(errno.ENETUNREACH, "Network is unreachable"))

    urllib.request.urlopen = no_download  # type: ignore[assignment]
    try:
        yield str(targets)
    finally:
        urllib.request.urlopen = real_urlopen
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        from portscope.registry._store import STORE

        STORE.reset()


def _check(argv: list[str]) -> None:
    out, err = io.StringIO(), io.StringIO()
    old = signal.signal(signal.SIGALRM, _expired)
    signal.alarm(TIME_LIMIT_S)
    try:
        status = cli.main(argv, Env(stdout=out, stderr=err))
    except _Expired:
        pytest.fail(f"{argv!r} ran over {TIME_LIMIT_S} s")
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)
    stdout, stderr = out.getvalue(), err.getvalue()
    assert status in (0, 1, 2), (argv, status, stderr)
    if status == 2:
        assert stdout == "", (argv, stdout[:200])
        assert stderr.startswith("portscope: error: "), (argv, stderr[:300])
        assert stderr.count("\n") == 1, (argv, stderr[:600])
    raw = RAW.search(stdout + stderr)
    assert raw is None, (argv, raw.group() if raw else "", (stdout + stderr)[:300])


@pytest.mark.parametrize("name", sorted(set(cli.COMMANDS) - INTERACTIVE))
def test_any_command_line_ends_in_an_answer_or_one_error_line(name: str, sandbox: str) -> None:
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(command_lines(name, sandbox))
    def run(argv: list[str]) -> None:
        _check(argv)

    run()


@pytest.mark.parametrize("name", sorted(INTERACTIVE))
def test_interactive_commands_refuse_bad_arguments_in_one_line(name: str, sandbox: str) -> None:
    """``top`` and ``serve`` run until stopped, so only what their parsers refuse is drawn
    here: any argument error is one line, exit 2 (nothing starts)."""
    from portscope.cli._base import UsageError

    parser = _parser(name)

    @settings(max_examples=EXAMPLES * 4, deadline=None, database=None)
    @given(st.lists(st.sampled_from(HOSTILE), min_size=1, max_size=3))
    def run(words: list[str]) -> None:
        argv = [w for w in words if w not in ("-h", "--help")]
        if name == "serve":
            argv = ["--port", *argv]
        try:
            parser.parse_args(argv)
        except UsageError:
            _check([name, *argv])  # refused by the parser: main prints one line, exit 2
        except SystemExit as err:  # argparse's own exits only for --help/--version
            raise AssertionError(f"{argv!r} exited {err.code}") from None

    run()


def test_the_known_bad_inputs_of_issue_18(sandbox: str) -> None:
    for argv in (
        ["why", "bind", "²"],
        ["probe", "127.0.0.1", "--", "--"],
        ["lookup", "--limit", "9" * 5000, "http"],
        ["who", "1", "--timeout", "nan"],
        ["scan", "-iL", "/dev/zero", "-p", "1"],
        ["registry", "update", "--from", "/dev/zero"],
        ["scan", "fe80::1%", "-p", "1"],
    ):
        _check(argv)
    assert Path(sandbox).exists()
