"""Shell completion and the man page: generated from the parser, loaded in real shells.

The shipped files (src/portscope/data) must equal a fresh generation, and every option of
every command must appear in each of them: a flag added to a parser without running
scripts/gen-shell-files fails here.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from portscope.cli import COMMANDS
from portscope.cli._tree import full_parser, options_of
from portscope.cli.completion import SCRIPTS, script

BIN = str(Path(sys.executable).parent)
DATA = Path(__file__).resolve().parents[2] / "src" / "portscope" / "data"
REGENERATE = "run scripts/gen-shell-files and commit src/portscope/data"


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "portscope", *args], capture_output=True, text=True, timeout=60
    )


@pytest.fixture(scope="module")
def generated() -> dict[str, str]:
    from portscope.cli._generate import generate

    return generate()


def test_shipped_files_equal_a_fresh_generation(generated: dict[str, str]) -> None:
    for name, text in generated.items():
        shipped = (DATA / name).read_text(encoding="utf-8")
        assert shipped == text, f"{name} is stale: {REGENERATE}"


def test_every_option_of_every_command_is_in_every_script_and_the_man_page(
    generated: dict[str, str],
) -> None:
    options = options_of(full_parser())
    assert set(options) == {"", *COMMANDS}
    assert "--kill" in options["who"] and "--json" in options["scan"]
    for name, text in generated.items():
        for command, flags in options.items():
            if command:
                assert command in text, f"{name} lacks the command {command}"
            missing = [f for f in flags if _spelled(f, name) not in text]
            assert not missing, f"{name} lacks {command or 'portscope'} {missing}"


def _spelled(flag: str, file_name: str) -> str:
    """How ``flag`` appears in a generated file: fish writes ``-l long``, ``-s x`` and
    ``-o oX`` (an old-style multi-letter flag such as nmap's ``-oX``); roff escapes every
    dash of an option (``\\fB\\-\\-tcp\\fR``)."""
    if file_name == "portscope.1":
        return "\\fB" + flag.replace("-", "\\-") + "\\fR"
    if file_name != SCRIPTS["fish"]:
        return flag
    if flag.startswith("--"):
        return f"-l {flag[2:]}"
    return f"-s {flag[1:]}" if len(flag) == 2 else f"-o {flag[1:]}"


def test_completion_prints_the_shipped_script_for_each_shell() -> None:
    for shell in SCRIPTS:
        result = _run("completion", shell)
        assert result.returncode == 0, result.stderr
        assert result.stdout == script(shell)
        assert "portscope" in result.stdout


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (("completion",), "which shell?"),
        (("completion", "ksh"), "invalid choice: 'ksh'"),
        (("completion", "--values", "hosts"), "invalid choice: 'hosts'"),
        (("completion", "bash", "--values", "ports"), "not both"),
    ],
)
def test_bad_completion_input_is_one_line_and_exit_2(args: tuple[str, ...], needle: str) -> None:
    result = _run(*args)
    assert result.returncode == 2
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("portscope: error:"), result.stderr
    assert needle in lines[0]


def _bash_complete(*words: str, env: dict[str, str] | None = None) -> list[str]:
    """Load the shipped bash script into a real bash and complete ``words`` (the last one
    is the word under the cursor)."""
    if shutil.which("bash") is None:
        pytest.skip("bash is not installed")
    quoted = " ".join("'" + w.replace("'", "'\\''") + "'" for w in words)
    program = f"""
source {DATA / SCRIPTS["bash"]}
complete -p portscope >/dev/null || exit 3
COMP_WORDS=({quoted}); COMP_CWORD=$(( ${{#COMP_WORDS[@]}} - 1 ))
COMP_LINE="${{COMP_WORDS[*]}}"; COMP_POINT=${{#COMP_LINE}}; COMPREPLY=()
_shtab_portscope
printf '%s\\n' "${{COMPREPLY[@]}}"
"""
    run_env = {**os.environ, "PATH": BIN + os.pathsep + os.environ.get("PATH", "")}
    result = subprocess.run(
        ["bash", "--norc", "--noprofile", "-c", program],
        capture_output=True,
        text=True,
        timeout=30,
        env=env or run_env,
    )
    assert result.returncode == 0, result.stderr
    return [w for w in result.stdout.splitlines() if w]


def test_bash_registers_the_completion_and_completes_commands() -> None:
    # bash lists the words in the generated order (the command table's), not sorted
    assert sorted(_bash_complete("portscope", "w")) == sorted(
        c for c in COMMANDS if c.startswith("w")
    )
    assert "who" in _bash_complete("portscope", "w")
    assert set(_bash_complete("portscope", "")) >= set(COMMANDS)


def test_bash_completes_flags_and_fixed_choices() -> None:
    assert _bash_complete("portscope", "who", "--k") == ["--kill"]
    assert _bash_complete("portscope", "ls", "--backend", "") == ["netlink", "procfs", "psutil"]
    states = _bash_complete("portscope", "ls", "--state", "time")
    assert {"time-wait", "timewait", "time_wait"} <= set(states)
    assert _bash_complete("portscope", "completion", "f") == ["fish"]
    assert "-oX" in _bash_complete("portscope", "scan", "-o")


def test_bash_completes_the_ports_listening_now() -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = str(server.getsockname()[1])
        assert port in _bash_complete("portscope", "who", "")
        assert port in _bash_complete("portscope", "why", "bind", port[:-1])
    assert port not in _bash_complete("portscope", "who", port)


def test_bash_completes_service_names_for_lookup() -> None:
    words = _bash_complete("portscope", "lookup", "postg")
    assert "postgresql" in words
    assert all(w.startswith("postg") for w in words)


def test_values_lists_ports_like_ss() -> None:
    with (
        socket.socket() as tcp,
        socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as udp6,
        socket.socket() as client_side,
    ):
        tcp.bind(("127.0.0.1", 0))
        tcp.listen()
        udp6.bind(("::1", 0))
        client_side.connect(tcp.getsockname())  # a connected socket is not a listener
        result = _run("completion", "--values", "ports")
        assert result.returncode == 0
        ports = result.stdout.split()
        assert str(tcp.getsockname()[1]) in ports
        assert str(udp6.getsockname()[1]) in ports
        assert str(client_side.getsockname()[1]) not in ports
        assert ports == sorted(ports, key=int)


def test_values_lists_namespace_names_and_commands() -> None:
    netns = _run("completion", "--values", "netns").stdout.split()
    assert netns[:2] == ["all", "host"]
    expected = sorted(os.listdir("/run/netns")) if os.path.isdir("/run/netns") else []
    assert netns[2:] == [n for n in expected if not n.startswith(".")]
    assert _run("completion", "--values", "commands").stdout.split() == list(COMMANDS)


@pytest.mark.parametrize(("shell", "check"), [("zsh", ["-n"]), ("fish", ["--no-execute"])])
def test_zsh_and_fish_scripts_parse(shell: str, check: list[str], tmp_path: Path) -> None:
    if shutil.which(shell) is None:
        pytest.skip(f"{shell} is not installed (scripts/install-test-deps installs it)")
    path = tmp_path / SCRIPTS[shell]
    path.write_text(script(shell), encoding="utf-8")
    result = subprocess.run([shell, *check, str(path)], capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""


def test_fish_completes_commands(tmp_path: Path) -> None:
    if shutil.which("fish") is None:
        pytest.skip("fish is not installed (scripts/install-test-deps installs it)")
    path = tmp_path / "portscope.fish"
    path.write_text(script("fish"), encoding="utf-8")
    result = subprocess.run(
        ["fish", "--no-config", "-c", f"source {path}; complete -C 'portscope w'"],
        capture_output=True,
        text=True,
        timeout=30,
        env={**os.environ, "PATH": BIN + os.pathsep + os.environ.get("PATH", "")},
    )
    assert result.returncode == 0, result.stderr
    words = sorted(line.split("\t")[0] for line in result.stdout.splitlines())
    assert words == sorted(c for c in COMMANDS if c.startswith("w"))


def test_man_page_renders_without_warnings() -> None:
    if shutil.which("groff") is None:
        pytest.skip("groff is not installed (scripts/install-test-deps installs it)")
    page = DATA / "portscope.1"
    checked = subprocess.run(
        ["groff", "-man", "-ww", "-z", "-Tutf8", str(page)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert checked.returncode == 0
    assert checked.stderr == "", checked.stderr
    if shutil.which("man") is None:
        pytest.skip("man is not installed (scripts/install-test-deps installs man-db)")
    shown = subprocess.run(
        ["man", "-l", str(page)],
        capture_output=True,
        text=True,
        timeout=30,
        env={**os.environ, "MANWIDTH": "80", "MANPAGER": "cat", "PAGER": "cat"},
    )
    assert shown.returncode == 0, shown.stderr
    text = shown.stdout
    for heading in ("NAME", "SYNOPSIS", "DESCRIPTION", "EXAMPLES", "EXIT STATUS", "SEE ALSO"):
        assert heading in text
    for command in COMMANDS:
        assert f"portscope {command}" in text
    assert max(len(line) for line in text.splitlines()) <= 80


def test_man_command_prints_the_page_source() -> None:
    result = _run("man", "--roff")
    assert result.returncode == 0
    assert result.stdout == (DATA / "portscope.1").read_text(encoding="utf-8")
    assert result.stdout.startswith(".TH PORTSCOPE")
    piped = _run("man")  # not a terminal: the source, for a pager or a file
    assert piped.stdout == result.stdout
