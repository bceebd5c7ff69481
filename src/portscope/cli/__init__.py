"""The ``portscope`` command line: parse, call the library, render. No logic lives here.

Commands are registered by name and their modules imported only after dispatch, so
``portscope --help`` imports none of them. Each command module defines::

    HELP: str                                   one line for the command list
    def configure(parser: Parser) -> None       its arguments
    def run(args: argparse.Namespace, env: Env) -> int   the exit status
"""

from __future__ import annotations

import sys

# Nothing heavy at import: ``--help``, ``--version`` and the common forms of ``lookup``
# answer without argparse, dataclasses or typing (``_base`` and the parser load only for
# the other commands and for anything unusual; ``Env`` and ``ExitStatus`` on first use).
TYPE_CHECKING = False
if TYPE_CHECKING:
    import argparse
    from collections.abc import Sequence
    from typing import Any, Protocol

    from portscope.cli._base import Env, ExitStatus, Parser

    class _CommandModule(Protocol):
        HELP: str

        def configure(self, parser: Parser) -> None: ...

        def run(self, args: argparse.Namespace, env: Env) -> int: ...


__all__ = ["COMMANDS", "Env", "ExitStatus", "main"]

# name -> (module under portscope.cli, one-line summary shown by --help)
COMMANDS: dict[str, tuple[str, str]] = {
    "listen": ("listen", "what is listening, with process, service and scope (default)"),
    "ls": ("ls", "the socket table, like ss (-t -u -l -a -x -i --state --port ...)"),
    "top": ("top", "live terminal view of listeners and connections ([tui] extra)"),
    "serve": ("serve", "local web dashboard of this host's ports ([web] extra)"),
    "who": ("who", "which processes hold a port; --kill to free it"),
    "why": ("why", "why a bind or connect fails: why bind PORT, why connect HOST:PORT"),
    "explain": ("explain", "what a port, socket, state, error or term means, on this host"),
    "lookup": ("lookup", "what a port or service name means (the registry)"),
    "registry": ("registry", "registry sources: update from IANA, import, show sources"),
    "audit": ("audit", "review this machine's listeners for exposure"),
    "exposure": ("exposure", "what the firewall and NAT let in, port by port, with the rule"),
    "free": ("free", "ports a bind would accept now"),
    "ephemeral": ("ephemeral", "the kernel's ephemeral port range and its use per destination"),
    "probe": ("probe", "is HOST:PORT open, closed or filtered (like nc -zv)"),
    "scan": ("scan", "scan hosts and networks: connect, SYN, UDP; -sV what answers"),
    "trace": ("trace", "where on the path to HOST:PORT the probes stop (root)"),
    "snapshot": ("snapshot", "save this host's listeners in the history store"),
    "diff": ("diff", "what changed between two snapshots or scans, or since the last"),
    "watch": ("watch", "print listeners as they appear and go (Ctrl-C stops)"),
    "history": ("history", "the timeline of a port from the history store; the snapshots"),
    "prune": ("prune", "delete old snapshots and events from the history store"),
    "import": ("import_xml", "import an nmap XML report into the history store"),
    "merge": ("merge", "merge scans or shards (scan --json, -oX) into one report"),
    "fleet": ("fleet", "which hosts listen where, what changed where (a shared store)"),
    "exporter": ("exporter", "Prometheus metrics of this host's sockets ([exporter] extra)"),
    "completion": ("completion", "print a shell completion script: bash, zsh or fish"),
    "man": ("man", "show the manual page portscope(1)"),
}
DEFAULT_COMMAND = "listen"


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


def __getattr__(name: str) -> Any:
    if name in ("Env", "ExitStatus"):
        from portscope.cli import _base

        value = getattr(_base, name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'portscope.cli' has no attribute {name!r}")


def _load(name: str) -> _CommandModule:
    import importlib
    from typing import cast

    module_name, _ = COMMANDS[name]
    return cast("_CommandModule", importlib.import_module(f"portscope.cli.{module_name}"))


def main(argv: Sequence[str] | None = None, env: Env | None = None) -> int:
    """Run the CLI and return the exit status (0 ok, 1 negative answer, 2 bad input)."""
    args_in = list(sys.argv[1:] if argv is None else argv)
    try:
        status = _quick(args_in, env)
    except KeyboardInterrupt:
        _environment(env).error("interrupted")
        return 130  # ExitStatus.INTERRUPTED
    except BrokenPipeError:
        return 0
    if status is not None:
        return status
    return _main(args_in, _environment(env))


def _environment(env: Env | None) -> Env:
    from portscope.cli._base import Env

    return env or Env.from_process()


def _quick(args_in: list[str], env: Env | None) -> int | None:
    """Answer what needs no parser: top-level help, the version, plain lookups.

    Returns:
        The exit status, or ``None`` to go the full way (argparse).
    """
    stdout = env.stdout if env is not None else sys.stdout
    first = args_in[0] if args_in else None
    if first == "lookup":
        from portscope.cli.lookup import quick

        return quick(args_in[1:], stdout)
    if first in ("-h", "--help", "help"):
        stdout.write(_top_help())
        return 0
    if first == "completion" and args_in[1:2] == ["--values"]:
        from portscope.cli._values import quick as values

        return values(args_in[1:], stdout)
    if first == "--version":
        from portscope import __version__

        stdout.write(f"portscope {__version__}\n")
        return 0
    return None


def _main(args_in: list[str], env: Env) -> int:
    from portscope.cli._base import ExitStatus, Parser, UsageError, add_common_options
    from portscope.errors import InvalidInput, PortscopeError, StoreError

    try:
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
    except (InvalidInput, StoreError) as err:  # a store's failure: exit 2, as ndiff
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
