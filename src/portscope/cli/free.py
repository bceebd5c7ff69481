"""``portscope free [-n COUNT] [--range A-B] [--udp] [--addr ADDR]``."""

from __future__ import annotations

import argparse

from portscope.cli._base import Env, ExitStatus, Parser, checked

HELP = "ports a bind would accept now"


def _range(text: str) -> tuple[int, int]:
    from portscope.diagnose.free import parse_range

    return parse_range(text)


def _count(text: str) -> int:
    from portscope.errors import InvalidInput

    if not text.isdigit() or not 1 <= int(text) <= 65535:
        raise InvalidInput(f"{text!r} is not a count: give a number 1-65535")
    return int(text)


def configure(parser: Parser) -> None:
    parser.description = (
        "Ports a bind would accept now, each confirmed by a real bind (without SO_REUSEADDR, "
        "on 0.0.0.0 and [::]). By default it avoids the kernel's ephemeral range "
        "(net.ipv4.ip_local_port_range, which outgoing connections draw from), ports the "
        "registry names a service for, and ports below net.ipv4.ip_unprivileged_port_start."
    )
    parser.add_argument(
        "-n", "--count", type=checked(_count), default=1, help="how many ports (default 1)"
    )
    parser.add_argument(
        "--range",
        type=checked(_range),
        metavar="A-B",
        help="look only in A-B (default: unprivileged start to 65535)",
    )
    parser.add_argument("--udp", action="store_true", help="UDP ports instead of TCP")
    parser.add_argument(
        "--addr", metavar="ADDR", help="check on this address only (e.g. 127.0.0.1)"
    )
    parser.add_argument(
        "--allow-ephemeral", action="store_true", help="also return ports of the ephemeral range"
    )
    parser.add_argument(
        "--allow-registered",
        action="store_true",
        help="also return ports registered for a service",
    )


def run(args: argparse.Namespace, env: Env) -> int:
    from portscope.diagnose import free_ports
    from portscope.models import Proto
    from portscope.render import write_json
    from portscope.render.diagnose import render_free

    ports = free_ports(
        args.count,
        range=args.range,
        proto=Proto.UDP if args.udp else Proto.TCP,
        address=args.addr,
        avoid_ephemeral=not args.allow_ephemeral,
        avoid_registered=not args.allow_registered,
    )
    if args.json:
        write_json(ports, env.stdout)
    else:
        render_free(ports, env.stdout)
    return ExitStatus.OK
