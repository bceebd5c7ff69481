"""``portscope free [-c COUNT] [--range A-B] [-t|-u] [-4|-6] [--addr ADDR]``.

``-c/--count`` is the count; ``-n N``, its documented spelling before, still works (``-n``
means "numeric" in ``ls``, so the count got a letter of its own).
"""

from __future__ import annotations

import argparse

from portscope.cli._base import Env, ExitStatus, Parser, add_transport_options, checked

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
        "-c",
        "--count",
        "-n",
        dest="count",
        type=checked(_count),
        default=1,
        metavar="COUNT",
        help="how many ports (default 1); -n COUNT is the older spelling and still works",
    )
    parser.add_argument(
        "--range",
        type=checked(_range),
        metavar="A-B",
        help="look only in A-B (default: unprivileged start to 65535)",
    )
    add_transport_options(
        parser,
        exclusive=True,
        tcp="TCP ports (the default)",
        udp="UDP ports instead of TCP",
        ipv4="free on 0.0.0.0 only",
        ipv6="free on [::] only (IPv6 only)",
    )
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
    from portscope.render.diagnose import free_json, render_free

    proto = Proto.UDP if args.udp else Proto.TCP
    family = 4 if args.ipv4 else 6 if args.ipv6 else None
    ports = free_ports(
        args.count,
        range=args.range,
        proto=proto,
        address=args.addr,
        avoid_ephemeral=not args.allow_ephemeral,
        avoid_registered=not args.allow_registered,
        family=family,
        partial=True,
    )
    note = None
    if len(ports) < args.count:
        where = f"in {args.range[0]}-{args.range[1]}" if args.range else "in the default range"
        avoided = [
            flag
            for flag, on in (
                ("--allow-ephemeral", not args.allow_ephemeral),
                ("--allow-registered", not args.allow_registered),
            )
            if on
        ]
        note = (
            f"only {len(ports)} of {args.count} free {proto.value} port(s) {where}; widen "
            "--range" + (f" or add {' / '.join(avoided)}" if avoided else "")
        )
    if args.json:
        write_json(free_json(ports, args.count, proto, note), env.stdout)
    else:
        env.show(*render_free(ports))
    if note is not None:
        env.note(note)
        return ExitStatus.NEGATIVE
    return ExitStatus.OK
