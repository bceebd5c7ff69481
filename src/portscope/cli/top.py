"""``portscope top [--connections] [--interval S] [-N NETNS]``: the live terminal view
(the ``tui`` extra)."""

from __future__ import annotations

import argparse
import importlib.util

from portscope.cli._base import Env, ExitStatus, Parser, add_netns_option

TYPE_CHECKING = False
if TYPE_CHECKING:
    from portscope.render.live import View

HELP = "live view of listeners and connections in the terminal (needs portscope[tui])"
INSTALL_HINT = "portscope top needs the tui extra: pip install 'portscope[tui]'"


def configure(parser: Parser) -> None:
    parser.add_argument(
        "-c", "--connections", action="store_true", help="start on connections, not listeners"
    )
    parser.add_argument(
        "--interval",
        type=float,
        default=1.0,
        metavar="SECONDS",
        help="seconds between refreshes, 0.2-60 (default 1)",
    )
    add_netns_option(parser)


def run(args: argparse.Namespace, env: Env) -> int:
    if not 0.2 <= args.interval <= 60:
        env.error(f"--interval {args.interval:g} is out of range: give 0.2-60 seconds")
        return ExitStatus.USAGE
    view: View = "connections" if args.connections else "listen"
    if args.json:
        # One read of the view as the socket document (`portscope ls --json`'s schema).
        from portscope.models import SocketTable
        from portscope.render.live import read_snapshot
        from portscope.render.sockets import write_table_json

        snap = read_snapshot(view, aggregate_above=10**9, netns=args.netns)
        write_table_json(
            SocketTable(snap.sockets, snap.backend, snap.owners_complete, snap.notes), env.stdout
        )
        return ExitStatus.OK
    if importlib.util.find_spec("textual") is None:
        env.error(INSTALL_HINT)
        return ExitStatus.USAGE
    if not env.stdout_isatty:
        env.error("portscope top needs a terminal; for a pipe use 'portscope ls' or 'top --json'")
        return ExitStatus.USAGE
    from portscope.tui import run as run_tui

    run_tui(view=view, refresh_s=args.interval, netns=args.netns)
    return ExitStatus.OK
