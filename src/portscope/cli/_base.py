"""What every command shares: the environment seam, exit statuses, the one-line parser."""

from __future__ import annotations

import argparse
import enum
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, NoReturn, TextIO, TypeVar

from portscope.errors import InvalidInput

if TYPE_CHECKING:
    from rich.console import Console, RenderableType

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
        width: terminal width in columns, or None to let the renderer decide.
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

    def console(self, *, stderr: bool = False, no_color: bool = False) -> Console:
        """A rich Console over this environment's stream; colour only on a terminal."""
        from rich.console import Console

        stream = self.stderr if stderr else self.stdout
        tty = self.stderr_isatty if stderr else self.stdout_isatty
        color = self.color and not no_color
        return Console(
            file=stream,
            force_terminal=tty and color,
            no_color=not color,
            color_system="auto" if color else None,
            width=self.width or (None if tty else 200),
            highlight=False,
            soft_wrap=False,
            emoji=False,
            markup=False,
        )

    def show(self, *items: str | RenderableType, no_color: bool = False) -> None:
        """Write what a renderer built: text as it is, rich renderables through a console.

        This is the one place the CLI turns ``render``'s output into bytes on stdout.
        """
        con: Console | None = None
        for item in items:
            if isinstance(item, str):
                self.stdout.write(item if item.endswith("\n") or not item else item + "\n")
                continue
            if con is None:
                con = self.console(no_color=no_color)
            con.print(item)

    def error(self, message: str) -> None:
        """Write one line ``portscope: error: MESSAGE`` to stderr."""
        first = " ".join(message.split())
        self.stderr.write(f"portscope: error: {first}\n")

    def note(self, message: str) -> None:
        """Write one line ``portscope: note: MESSAGE`` to stderr."""
        self.stderr.write(f"portscope: note: {message}\n")


class Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line and exit 2, never a usage dump."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{self.prog}: {message} (see '{self.prog} --help')")


def add_common_options(parser: argparse.ArgumentParser) -> None:
    """Options every command takes."""
    parser.add_argument("--json", action="store_true", help="machine-readable JSON output")
    parser.add_argument(
        "--no-color", action="store_true", help="no colour even on a terminal (also NO_COLOR)"
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
