"""``portscope ephemeral [--top N] [--warn PERCENT]``."""

from __future__ import annotations

import argparse

from portscope.cli._base import Env, ExitStatus, Parser, add_netns_option, checked

HELP = "the kernel's ephemeral port range and its use per destination"


def _percent(text: str) -> float:
    from portscope.errors import InvalidInput

    try:
        value = float(text.rstrip("%"))
    except ValueError:
        value = -1.0
    if not 0 < value <= 100:
        raise InvalidInput(f"{text!r} is not a percentage: give a number in (0, 100]")
    return value / 100


def _top(text: str) -> int:
    from portscope.errors import InvalidInput

    if not text.isdigit() or int(text) < 1:
        raise InvalidInput(f"{text!r} is not a count: give a number >= 1")
    return int(text)


def configure(parser: Parser) -> None:
    parser.description = (
        "The ephemeral range (net.ipv4.ip_local_port_range), TCP connections on ephemeral "
        "ports per destination (address, port) including TIME-WAIT, and a warning when one "
        "(source, destination) pair nears the range's size, where connect() starts failing "
        "with EADDRNOTAVAIL."
    )
    parser.add_argument(
        "--top", type=checked(_top), default=20, help="destinations to show (default 20)"
    )
    parser.add_argument(
        "--warn",
        type=checked(_percent),
        default=0.8,
        metavar="PERCENT",
        help="warn when a destination uses this share of the range (default 80)",
    )
    add_netns_option(parser, what="ephemeral port use")


def run(args: argparse.Namespace, env: Env) -> int:
    from portscope.diagnose import ephemeral_by_netns, ephemeral_usage
    from portscope.render import write_json
    from portscope.render.diagnose import render_ephemeral

    if args.netns is not None:
        # one section per namespace: each has its own range and its own 4-tuples
        usages = ephemeral_by_netns(args.netns, warn_ratio=args.warn)
        if args.json:
            write_json({"namespaces": list(usages)}, env.stdout)
        else:
            items = [i for u in usages for i in (*render_ephemeral(u, top=args.top), "")]
            env.show(*items[:-1], no_color=args.no_color)
        return ExitStatus.NEGATIVE if any(u.warnings for u in usages) else ExitStatus.OK
    usage = ephemeral_usage(warn_ratio=args.warn)
    if args.json:
        write_json(usage, env.stdout)
    else:
        env.show(*render_ephemeral(usage, top=args.top), no_color=args.no_color)
    return ExitStatus.NEGATIVE if usage.warnings else ExitStatus.OK
