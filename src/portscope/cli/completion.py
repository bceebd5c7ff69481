"""``portscope completion bash|zsh|fish``: the shell completion script.

The scripts are generated from the whole argument tree (``cli._tree``) by ``shtab`` with
``scripts/gen-shell-files`` and shipped in the package (``portscope/data``), so printing
one needs no library and a Tab press costs the shell's own time; a test regenerates them
and fails when an option exists in the parser but not in a script.

``portscope completion --values KIND`` prints the dynamic values a script asks for at Tab
time (``ports`` listening now, ``netns`` names, registry ``services``, ``commands``), one
per line, from this machine only: no network traffic, no DNS. It answers without argparse
(``cli._quick``) to stay well under 100 ms.
"""

from __future__ import annotations

import argparse
from importlib import resources
from typing import Final

from portscope.cli._base import Env, ExitStatus, Parser, UsageError
from portscope.cli._values import VALUE_KINDS, values

HELP = "print a shell completion script (bash, zsh, fish); see --help to install"

#: shell -> the file under portscope/data that holds its script
SCRIPTS: Final = {
    "bash": "portscope.bash",
    "zsh": "_portscope",
    "fish": "portscope.fish",
}

INSTALL: Final = """\
install (one line per shell; open a new shell afterwards):
  bash: portscope completion bash > ~/.local/share/bash-completion/completions/portscope
  zsh:  portscope completion zsh > "${fpath[1]}/_portscope"   (or any directory in $fpath)
  fish: portscope completion fish > ~/.config/fish/completions/portscope.fish
"""


def configure(parser: Parser) -> None:
    parser.epilog = INSTALL
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("shell", nargs="?", choices=list(SCRIPTS), help="the shell")
    parser.add_argument(
        "--values",
        choices=VALUE_KINDS,
        metavar="KIND",
        help="print the values the scripts complete at Tab time, one per line: "
        + ", ".join(VALUE_KINDS),
    )


def run(args: argparse.Namespace, env: Env) -> int:
    if args.values is not None:
        if args.shell is not None:
            raise UsageError("give a shell or --values KIND, not both")
        for value in values(args.values):
            env.stdout.write(value + "\n")
        return ExitStatus.OK
    if args.shell is None:
        raise UsageError(
            f"which shell? one of {', '.join(SCRIPTS)} (see 'portscope completion --help')"
        )
    env.stdout.write(script(args.shell))
    return ExitStatus.OK


def script(shell: str) -> str:
    """The completion script for ``shell`` (a key of ``SCRIPTS``), as shipped."""
    return resources.files("portscope").joinpath("data", SCRIPTS[shell]).read_text("utf-8")
