"""The ``portscope`` command line: parse, call the library, render. No logic lives here.

Commands are registered by name and their modules imported only after dispatch, so
``portscope --help`` imports none of them. Each command module defines::

    HELP: str                                   one line for the command list
    def configure(parser: Parser) -> None       its arguments
    def run(args: argparse.Namespace, env: Env) -> int   the exit status
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from typing import Protocol, cast

from portscope.cli._base import Env, ExitStatus, Parser, UsageError, add_common_options
from portscope.errors import InvalidInput, PortscopeError

__all__ = ["COMMANDS", "Env", "ExitStatus", "main"]

# name -> (module under portscope.cli, one-line summary shown by --help)
COMMANDS: dict[str, tuple[str, str]] = {
    "listen": ("listen", "what is listening, with process, service and exposure (default)"),
    "ls": ("ls", "the socket table, filtered like ss (-t -u -l -a --state --port ...)"),
    "lookup": ("lookup", "what a port or service name means (the registry)"),
    "registry": ("registry", "registry sources: update from IANA, import, show sources"),
    "who": ("who", "which processes hold a port; --kill to free it"),
    "why": ("why", "why a bind or connect fails: 'why bind PORT', 'why connect HOST:PORT'"),
    "audit": ("audit", "review this machine's listeners for exposure"),
    "free": ("free", "ports a bind would accept now"),
    "ephemeral": ("ephemeral", "the kernel's ephemeral port range and its use per destination"),
    "probe": ("probe", "is HOST:PORT open, closed or filtered (like nc -zv)"),
    "scan": ("scan", "scan hosts and networks for open ports (like nmap -sT)"),
}
DEFAULT_COMMAND = "listen"


class _CommandModule(Protocol):
    HELP: str

    def configure(self, parser: Parser) -> None: ...

    def run(self, args: argparse.Namespace, env: Env) -> int: ...


def _top_help() -> str:
    width = max(len(n) for n in COMMANDS)
    lines = [
        "usage: portscope [COMMAND] [OPTIONS]",
        "",
        "Network ports and sockets: what listens here, who talks to whom, what a port",
        "means, and what the network answers. Without a command: what is listening.",
        "",
        "commands:",
    ]
    lines += [f"  {name:<{width}}  {summary}" for name, (_, summary) in COMMANDS.items()]
    lines += [
        "",
        "Every command takes --json. 'portscope COMMAND --help' for its options.",
        "Exit status: 0 success, 1 negative answer (closed, nobody holds it, findings),",
        "2 bad input, 130 interrupted.",
    ]
    return "\n".join(lines) + "\n"


def _load(name: str) -> _CommandModule:
    module_name, _ = COMMANDS[name]
    return cast(_CommandModule, importlib.import_module(f"portscope.cli.{module_name}"))


def main(argv: Sequence[str] | None = None, env: Env | None = None) -> int:
    """Run the CLI and return the exit status (0 ok, 1 negative answer, 2 bad input)."""
    env = env or Env.from_process()
    args_in = list(sys.argv[1:] if argv is None else argv)
    try:
        if args_in and args_in[0] in ("-h", "--help", "help"):
            env.stdout.write(_top_help())
            return ExitStatus.OK
        if args_in and args_in[0] == "--version":
            from portscope import __version__

            env.stdout.write(f"portscope {__version__}\n")
            return ExitStatus.OK
        if args_in and not args_in[0].startswith("-"):
            name, rest = args_in[0], args_in[1:]
            if name not in COMMANDS:
                raise UsageError(f"unknown command {name!r}; commands: {', '.join(COMMANDS)}")
        else:
            name, rest = DEFAULT_COMMAND, args_in
        command = _load(name)
        parser = Parser(prog=f"portscope {name}", description=command.HELP)
        command.configure(parser)
        add_common_options(parser)
        args = parser.parse_args(rest)
        return int(command.run(args, env))
    except UsageError as err:
        env.error(str(err))
        return ExitStatus.USAGE
    except InvalidInput as err:
        env.error(str(err))
        return ExitStatus.USAGE
    except PortscopeError as err:
        env.error(str(err))
        return ExitStatus.NEGATIVE
    except KeyboardInterrupt:
        env.error("interrupted")
        return ExitStatus.INTERRUPTED
    except BrokenPipeError:
        # `portscope ls | head`: the reader left; not an error worth a message.
        return ExitStatus.OK
