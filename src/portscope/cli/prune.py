"""``portscope prune --older-than AGE``: delete old snapshots and events from the store."""

from __future__ import annotations

import argparse

from portscope.cli._base import Env, ExitStatus, Parser, checked
from portscope.cli._history import add_db_option, open_db
from portscope.cli.snapshot import _duration

HELP = "delete snapshots and events older than an age from the history store"


def configure(parser: Parser) -> None:
    parser.add_argument(
        "--older-than",
        type=checked(_duration),
        required=True,
        metavar="AGE",
        help="30d, 12h, 2w, 90m, 45s",
    )
    add_db_option(parser)


def run(args: argparse.Namespace, env: Env) -> int:
    from portscope.render import count, write_json

    with open_db(args, create=False) as store:
        result = store.prune(args.older_than)
    if args.json:
        write_json({"snapshots": result.snapshots, "events": result.events}, env.stdout)
    else:
        env.show(
            f"pruned {count(result.snapshots, 'snapshot')} and {count(result.events, 'event')}"
        )
    return ExitStatus.OK
