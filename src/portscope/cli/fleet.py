"""``portscope fleet ls|diff``: questions across every host of a shared history store."""

from __future__ import annotations

import argparse

from portscope.cli._base import Env, ExitStatus, Parser, UsageError, checked
from portscope.cli._history import add_db_option, open_db

HELP = "which hosts listen where, what changed where (a shared store: --db postgresql://...)"


def _port(text: str) -> int:
    from portscope._ports import parse_port

    return parse_port(text)


def _duration(text: str) -> float:
    from portscope.history import parse_duration

    return parse_duration(text)


def configure(parser: Parser) -> None:
    parser.epilog = (
        "Each host writes its own snapshots into one database ('portscope snapshot --db "
        "postgresql://user@db/portscope' from cron on every host); 'fleet ls' reads every "
        "host's newest snapshot, 'fleet diff' compares it with the one before the window."
    )
    parser.add_argument("action", choices=["ls", "diff"], help="ls: who listens; diff: changes")
    parser.add_argument(
        "--port", type=checked(_port), metavar="PORT", help="ls: only this port (or name)"
    )
    parser.add_argument("--process", metavar="NAME", help="ls: only this process name")
    parser.add_argument(
        "--since",
        type=checked(_duration),
        metavar="AGE",
        help="diff: the window (24h, 7d, 90m; default 24h)",
    )
    add_db_option(parser)


def run(args: argparse.Namespace, env: Env) -> int:
    from portscope.history._fleet import fleet_diff, fleet_listeners
    from portscope.render import write_json
    from portscope.render.fleet import (
        fleet_diff_json,
        fleet_event_lines,
        fleet_listeners_json,
        render_fleet_listeners,
    )

    if args.action == "ls":
        if args.since is not None:
            raise UsageError("--since goes with 'fleet diff'")
        with open_db(args, create=False) as store:
            found = fleet_listeners(store, port=args.port, process=args.process)
        if args.json:
            write_json(fleet_listeners_json(found), env.stdout)
        else:
            env.show(render_fleet_listeners(found), no_color=args.no_color)
            hosts = len({f.host for f in found})
            env.stderr.write(f"{len(found)} listener(s) on {hosts} host(s)\n")
        return ExitStatus.OK if found else ExitStatus.NEGATIVE
    if args.port is not None or args.process is not None:
        raise UsageError("--port and --process go with 'fleet ls'")
    since = args.since if args.since is not None else 86400.0
    with open_db(args, create=False) as store:
        events = fleet_diff(store, since_s=since)
    if args.json:
        write_json(fleet_diff_json(events, since), env.stdout)
    elif events:
        env.show("\n".join(fleet_event_lines(events)))
    else:
        env.stderr.write("no changes on any host in the window\n")
    return ExitStatus.NEGATIVE if events else ExitStatus.OK
