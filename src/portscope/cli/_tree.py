"""The whole command line as one argparse tree, for the completion scripts and the man page.

``portscope`` builds only the parser of the command it runs (start-up time); this module
builds all of them under one root, exactly as ``cli._main`` configures each, so the
generated files (``scripts/gen-shell-files``) cannot drift from the real options: a test
regenerates them and compares.

Dynamic values are attached here, by destination name, not in the command modules: a
positional ``port`` completes the ports listening now, ``--netns`` the namespace names,
``lookup``'s query the registry's service names. The shell asks
``portscope completion --values KIND`` for them (``cli.completion.values``), which answers
from the local socket table and registry only: no network traffic, no DNS.
"""

from __future__ import annotations

import argparse
from typing import Final

from portscope.cli import COMMANDS, DEFAULT_COMMAND, _load
from portscope.cli._base import Parser, add_common_options

# destination name of an argument -> the kind of value it completes with
_DYNAMIC: Final = {
    "port": "ports",
    "netns": "netns",
}
# (command, destination) pairs with their own kind, before _DYNAMIC
_DYNAMIC_IN: Final = {("lookup", "query"): "services", ("why", "target"): "ports"}


def full_parser(prog: str = "portscope", *, values: bool = False) -> Parser:
    """Every command's parser under one root ``prog`` (the default command's options on it).

    Args:
        prog: the program name.
        values: mark the arguments that complete with dynamic values (needs ``shtab``,
            the generator's library: test extra).

    Returns:
        The root parser; its subcommands in ``COMMANDS`` order, each with the help line
        ``portscope --help`` shows and the options ``portscope COMMAND --help`` shows.
    """
    from portscope import __version__

    root = Parser(prog=prog)
    _load(DEFAULT_COMMAND).configure(root)
    add_common_options(root)
    root.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = root.add_subparsers(title="commands", dest="command", metavar="COMMAND")
    for name, (_, summary) in COMMANDS.items():
        module = _load(name)
        sub = commands.add_parser(name, help=summary, description=module.HELP)
        assert isinstance(sub, Parser)
        module.configure(sub)
        add_common_options(sub)
        if values:
            _attach_values(sub, name)
    if values:
        _attach_values(root, DEFAULT_COMMAND)
    return root


def _attach_values(parser: argparse.ArgumentParser, command: str) -> None:
    """Mark the arguments that complete with values known only at Tab time, or with a fixed
    word list that argparse does not check as ``choices`` (shtab's ``complete`` attribute:
    a shell command per shell)."""
    import shtab

    static = _static_words()
    for action in parser._actions:
        if action.choices:
            continue
        kind = _DYNAMIC_IN.get((command, action.dest)) or _DYNAMIC.get(action.dest)
        if kind is not None:
            words = f"portscope completion --values {kind} 2>/dev/null"
        elif action.dest in static:
            words = "printf '%s\\n' " + " ".join(static[action.dest])
        else:
            continue
        action.complete = dict(shtab.cmd(words))  # type: ignore[attr-defined]


def _static_words() -> dict[str, tuple[str, ...]]:
    """Destination -> its fixed words: TCP states and ``ss`` groups, sort keys."""
    from portscope.models import TcpState
    from portscope.sockets._filters import _STATE_ALIASES, SORT_KEYS, STATE_GROUPS

    states = [*STATE_GROUPS, *(s.value.lower() for s in TcpState), *_STATE_ALIASES]
    return {"state": tuple(dict.fromkeys(states)), "sort": SORT_KEYS}


def options_of(parser: argparse.ArgumentParser) -> dict[str, list[str]]:
    """Every option string per command (``""`` for the root), help and hidden ones included.

    Returns:
        ``{command: [option strings, sorted]}``; the tests check each appears in every
        generated file.
    """
    found: dict[str, list[str]] = {"": sorted(_option_strings(parser))}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                found[name] = sorted(_option_strings(sub))
    return found


def _option_strings(parser: argparse.ArgumentParser) -> set[str]:
    return {
        option
        for action in parser._actions
        if action.help != argparse.SUPPRESS
        for option in action.option_strings
    }
