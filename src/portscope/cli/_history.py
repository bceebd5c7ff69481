"""What the history commands share: ``--db`` and opening the store (a ``StoreError`` is
one line and exit 2 for every command: ``cli._main``)."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from portscope.cli._base import Parser

if TYPE_CHECKING:
    from portscope.history import Store


def label_text(text: str) -> str:
    """A ``--label``: printable text of at most 200 characters (it names a snapshot or a
    scan in tables and in ``diff LABEL``; a control character or undecodable byte in it
    would reach terminals or be refused by the database).

    Raises:
        InvalidInput: empty, too long, or not printable UTF-8 text.
    """
    from portscope.errors import InvalidInput

    label = text.strip()
    shown = label.encode("utf-8", "backslashreplace").decode("ascii", "backslashreplace")
    if not label:
        raise InvalidInput("empty --label; give some text, or leave --label out")
    if len(label) > 200:
        raise InvalidInput(f"--label of {len(label)} characters; at most 200")
    if not label.isprintable() or any("\udc80" <= c <= "\udcff" for c in label):
        raise InvalidInput(f"--label {shown[:60]!r}: use printable text (no control characters)")
    return label


def add_label_option(parser: Parser, help: str) -> None:
    """``--label TEXT`` (checked by ``label_text``)."""
    from portscope.cli._base import checked

    parser.add_argument("--label", metavar="TEXT", type=checked(label_text), help=help)


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
