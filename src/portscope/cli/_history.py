"""What the history commands share: ``--db``, opening the store, store errors as exit 2."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import TYPE_CHECKING

from portscope.cli._base import Env, ExitStatus, Parser

if TYPE_CHECKING:
    from portscope.history import Store


def add_db_option(parser: Parser) -> None:
    """``--db PATH``: the store (default ``$PORTSCOPE_DB``, else the XDG data directory)."""
    parser.add_argument(
        "--db",
        metavar="PATH",
        help="the history store (default: $PORTSCOPE_DB, else "
        "$XDG_DATA_HOME/portscope/history.db, i.e. ~/.local/share/portscope/history.db)",
    )


def open_db(args: argparse.Namespace, *, create: bool) -> Store:
    """The store ``--db`` names (``create``: make it when missing; readers do not).

    Raises:
        StoreError: it cannot be opened (one line, exit 2 through ``store_errors``).
    """
    from portscope.history import open_store

    return open_store(args.db or None, create=create)


def store_errors(
    run: Callable[[argparse.Namespace, Env], int],
) -> Callable[[argparse.Namespace, Env], int]:
    """A command whose ``StoreError`` is one line on stderr and exit 2 (bad input: the
    path given or the disk under it), as ndiff's error status."""

    def guarded(args: argparse.Namespace, env: Env) -> int:
        from portscope.errors import StoreError

        try:
            return run(args, env)
        except StoreError as err:
            env.error(str(err))
            return ExitStatus.USAGE

    guarded.__doc__ = run.__doc__
    return guarded
