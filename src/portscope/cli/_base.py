"""What every command shares: the environment seam, exit statuses, the one-line parser."""

from __future__ import annotations

import argparse
import enum
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NoReturn, TextIO, TypeVar

from portscope.errors import InvalidInput

if TYPE_CHECKING:
    from rich.console import Console, RenderableType

    from portscope.render._table import Table

T = TypeVar("T")


class ExitStatus(enum.IntEnum):
    """Exit statuses of every command."""

    OK = 0
    NEGATIVE = 1  # port closed, nobody holds it, findings at or above --fail-on
    USAGE = 2  # bad input: one line on stderr
    INTERRUPTED = 130  # Ctrl-C


class UsageError(Exception):
    """A command-line usage error; shown as one line, exit 2."""


@dataclass
class Env:
    """Where a command writes and what it may assume about the terminal (a test seam).

    Attributes:
        stdout: output stream.
        stderr: messages and progress.
        stdout_isatty: True when stdout is a terminal (colour, widths).
        stderr_isatty: True when stderr is a terminal (progress bars).
        color: colour allowed (a terminal and no NO_COLOR).
        width: terminal width in columns; None: the terminal's when stdout is one, else
            no limit (a pipe gets whole tables).
    """

    stdout: TextIO
    stderr: TextIO
    stdout_isatty: bool = False
    stderr_isatty: bool = False
    color: bool = False
    width: int | None = None

    @classmethod
    def from_process(cls) -> Env:
        out_tty = sys.stdout.isatty()
        return cls(
            stdout=sys.stdout,
            stderr=sys.stderr,
            stdout_isatty=out_tty,
            stderr_isatty=sys.stderr.isatty(),
            color=out_tty and "NO_COLOR" not in os.environ,
        )

    def columns(self) -> int | None:
        """The width tables are fitted to: ``width``, the terminal's, or None (no limit)."""
        if self.width is not None:
            return self.width
        if not self.stdout_isatty:
            return None
        import shutil

        return shutil.get_terminal_size().columns

    def console(
        self, *, stderr: bool = False, no_color: bool = False, width: int | None = None
    ) -> Console:
        """A rich Console over this environment's stream; colour only on a terminal.

        ``width`` overrides the environment's (a table wider than the terminal).
        """
        from rich.console import Console

        stream = self.stderr if stderr else self.stdout
        tty = self.stderr_isatty if stderr else self.stdout_isatty
        color = self.color and not no_color
        return Console(
            file=stream,
            force_terminal=tty and color,
            no_color=not color,
            color_system="auto" if color else None,
            width=width or self.width or (None if tty else 200),
            highlight=False,
            soft_wrap=False,
            emoji=False,
            markup=False,
        )

    def show(
        self,
        *items: str | RenderableType | Table,
        no_color: bool = False,
        wide: bool = False,
        hint: str | None = "use --wide or --json",
    ) -> None:
        """Write what a renderer built: text as it is, tables and rich renderables.

        A ``render._table.Table`` is fitted to ``columns()`` (no limit with ``wide``), drawn
        by rich up to ``RICH_MAX_ROWS`` rows and by the plain writer beyond, and followed by
        one line naming the columns hidden, if any, with ``hint``. This is the one place
        the CLI turns ``render``'s output into bytes on stdout.
        """
        from portscope.render._table import Table

        con: Console | None = None
        for item in items:
            if isinstance(item, str):
                self.stdout.write(item if item.endswith("\n") or not item else item + "\n")
            elif isinstance(item, Table):
                self._show_table(item, no_color=no_color, wide=wide, hint=hint)
            else:
                if con is None:
                    con = self.console(no_color=no_color)
                con.print(item)

    def _show_table(self, table: Table, *, no_color: bool, wide: bool, hint: str | None) -> None:
        from portscope.render._table import RICH_MAX_ROWS, fit, to_rich, write_plain

        width = None if wide else self.columns()
        fitted = fit(table, width)
        if len(table.rows) > RICH_MAX_ROWS:
            write_plain(table, self.stdout.write, fitted=fitted)
        else:
            # at least the table's width: rich would cut a column the fitting kept whole
            room = max(width or 200, fitted.total, len(table.title or ""))
            self.console(no_color=no_color, width=room).print(to_rich(table, fitted=fitted))
        footer = fitted.footer(hint)
        if footer:
            self.stdout.write(footer + "\n")

    def error(self, message: str) -> None:
        """Write one line ``portscope: error: MESSAGE`` to stderr.

        Messages quote what the user or a process gave (names, paths, values): whitespace
        runs become one space and every other control or bidi character is escaped
        (``render.safe``), so a message is one line that cannot act on the terminal.
        """
        from portscope.render import safe

        first = safe(" ".join(message.split()))
        self.stderr.write(f"portscope: error: {first}\n")

    def note(self, message: str) -> None:
        """Write one line ``portscope: note: MESSAGE`` to stderr (``render.safe``)."""
        from portscope.render import safe

        self.stderr.write(f"portscope: note: {safe(message)}\n")

    def ask(self, question: str) -> bool | None:
        """Ask a yes/no ``question`` on the terminal (stderr), escaped by ``render.safe``
        (a name in it reads as in the tables: ``\\x0a``, not a new line).

        Returns:
            True for y/yes, False for anything else, None when stdin is not a terminal.
        """
        from portscope.render import safe

        stdin = sys.stdin
        if stdin is None or not stdin.isatty():
            return None
        self.stderr.write(f"{safe(question)} [y/N] ")
        self.stderr.flush()
        return stdin.readline().strip().lower() in ("y", "yes")


class Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line and exit 2, never a usage dump."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{self.prog}: {message} (see '{self.prog} --help')")

    def parse_known_args(  # type: ignore[override]
        self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> tuple[argparse.Namespace, list[str]]:
        parsed, extra = super().parse_known_args(args, namespace)
        # Python 3.11's argparse gives a one-value positional an empty list when its value
        # is a second '--' ('probe HOST -- --'); a command would take the list for a str.
        for action in self._actions:
            value = getattr(parsed, action.dest, None)
            if not action.option_strings and action.nargs is None and isinstance(value, list):
                self.error(f"argument {action.metavar or action.dest}: expected a value")
        return parsed, extra


def add_common_options(parser: argparse.ArgumentParser) -> None:
    """Options every command takes."""
    parser.add_argument("--json", action="store_true", help="machine-readable JSON output")
    parser.add_argument(
        "--no-color", action="store_true", help="no colour even on a terminal (also NO_COLOR)"
    )


def add_transport_options(
    parser: argparse.ArgumentParser,
    *,
    exclusive: bool,
    tcp: str = "TCP only",
    udp: str = "UDP only",
    ipv4: str = "IPv4 only",
    ipv6: str = "IPv6 only",
) -> None:
    """``-t/--tcp``, ``-u/--udp``, ``-4/--ipv4``, ``-6/--ipv6``: the same flags with the same
    meaning in every command that takes them (only the help says what they select there).

    Args:
        parser: the command's parser.
        exclusive: one transport and one family at most (commands about one socket); without
            it both may be given, as with ``ss -t -u``.
        tcp: help of ``-t``; likewise ``udp``, ``ipv4``, ``ipv6``.
    """
    kind = parser.add_mutually_exclusive_group() if exclusive else parser
    kind.add_argument("-t", "--tcp", action="store_true", help=tcp)
    kind.add_argument("-u", "--udp", action="store_true", help=udp)
    fam = parser.add_mutually_exclusive_group() if exclusive else parser
    fam.add_argument("-4", "--ipv4", action="store_true", help=ipv4)
    fam.add_argument("-6", "--ipv6", action="store_true", help=ipv6)


def _netns_value(text: str) -> str:
    from portscope.sockets._netns import parse_netns

    return parse_netns(text)


def add_netns_option(parser: argparse.ArgumentParser, *, what: str = "sockets") -> None:
    """``-N/--netns NAME|PID|PATH|all``: which network namespaces, the same in every
    command that takes it (``sockets.list_sockets(netns=...)``)."""
    parser.add_argument(
        "-N",
        "--netns",
        metavar="NAME|PID|PATH|all",
        type=checked(_netns_value),
        help=f"{what} of another network namespace: an ip netns NAME, the namespace of "
        "process PID, an nsfs PATH (/run/netns/x, /proc/PID/ns/net), or all of them, "
        "labelled with their container (default: this one)",
    )


def checked(parse: Callable[[str], T]) -> Callable[[str], T]:
    """Wrap a library parser as an argparse ``type=``: InvalidInput becomes a usage error."""

    def convert(text: str) -> T:
        try:
            return parse(text)
        except InvalidInput as err:
            raise argparse.ArgumentTypeError(str(err)) from err

    convert.__name__ = getattr(parse, "__name__", "value")
    return convert


def bounded(
    option: str,
    *,
    low: float,
    high: float,
    low_open: bool = False,
    integer: bool = False,
    unit: str = "seconds",
) -> Callable[[str], Any]:
    """An argparse ``type=`` for a number within ``[low, high]`` (``(low, high]`` with
    ``low_open``), whose error states the accepted range.

    NaN, infinities, numbers of thousands of digits, ``1e300`` and non-ASCII digits
    (``²``) are refused as any other value outside the range, before the command acts
    (``who --kill --timeout nan`` used to fail after SIGTERM was sent).
    """

    def num(x: float) -> str:
        return f"{int(x):,}" if x == int(x) else f"{x:g}"

    above = "above" if low_open else "from"
    what = "a whole number" if integer else unit
    to = "to" if not low_open else "and at most"
    accepted = f"{what} {above} {num(low)} {to} {num(high)}"

    def convert(text: str) -> float | int:
        value: float | int | None = None
        if text.isascii() and len(text) <= 32:
            try:
                value = int(text) if integer else float(text)
            except ValueError:
                value = None
        if value is None or not (value > low if low_open else value >= low) or not value <= high:
            shown = repr(text) if len(text) <= 40 else repr(text[:40]) + "..."
            raise argparse.ArgumentTypeError(f"{shown} is not accepted; expected {accepted}")
        return value

    convert.__name__ = option
    return convert
