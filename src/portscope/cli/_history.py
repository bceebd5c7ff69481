"""What the history commands share: ``--db`` and opening the store (a ``StoreError`` is
one line and exit 2 for every command: ``cli._main``)."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from portscope.cli._base import Parser

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
        StoreError: it cannot be opened (one line, exit 2 through ``cli._main``).
    """
    from portscope.history import open_store

    return open_store(args.db or None, create=create)
