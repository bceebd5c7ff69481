"""``portscope history [PORT | ADDRESS:PORT]``: a port's timeline, or the snapshots."""

from __future__ import annotations

import argparse

from portscope.cli._base import Env, ExitStatus, Parser
from portscope.cli._history import add_db_option, open_db
from portscope.errors import InvalidInput

HELP = "the timeline of a port from the history store (no PORT: the snapshots)"


def configure(parser: Parser) -> None:
    parser.epilog = (
        "Each listing snapshot is compared with the one before it; events recorded by "
        "'watch --save' are merged in time order."
    )
    parser.add_argument(
        "target", nargs="?", metavar="PORT|ADDRESS:PORT", help="80, http, 127.0.0.1:8000, [::]:22"
    )
    kind = parser.add_mutually_exclusive_group()
    kind.add_argument("-t", "--tcp", action="store_true", help="TCP only")
    kind.add_argument("-u", "--udp", action="store_true", help="UDP only")
    parser.add_argument(
        "--list", action="store_true", help="list the snapshots (the default without PORT)"
    )
    add_db_option(parser)


def parse_target(text: str) -> tuple[str | None, int]:
    """``PORT``, ``ADDRESS:PORT`` or ``[IPV6]:PORT`` -> (address or None, port).

    Raises:
        InvalidInput: a bad address or port.
    """
    import ipaddress

    from portscope._ports import parse_port

    raw = text.strip()
    address = None
    port_text = raw
    if raw.startswith("["):
        inside, sep, rest = raw[1:].partition("]")
        if not sep or not rest.startswith(":"):
            raise InvalidInput(f"bad target {text!r}; accepted: PORT, ADDRESS:PORT, [IPV6]:PORT")
        address, port_text = inside, rest[1:]
    elif raw.count(":") == 1:
        address, port_text = raw.split(":")
    elif raw.count(":") > 1:
        raise InvalidInput(f"bad target {text!r}; write an IPv6 address as [ADDRESS]:PORT")
    if address is not None:
        try:
            address = str(ipaddress.ip_address(address))
        except ValueError:
            raise InvalidInput(
                f"bad address {address!r} in {text!r}; accepted: an IPv4 or IPv6 address"
            ) from None
    return address, parse_port(port_text, allow_zero=True)


def run(args: argparse.Namespace, env: Env) -> int:
    from portscope.models import Proto
    from portscope.render import write_json
    from portscope.render.history import render_snapshots, render_timeline, snapshot_json

    target = None if args.target is None else parse_target(args.target)
    with open_db(args, create=False) as store:
        if target is None or args.list:
            snaps = store.snapshots()
            if args.json:
                write_json({"snapshots": [snapshot_json(s) for s in snaps]}, env.stdout)
            elif snaps:
                env.show(render_snapshots(snaps), no_color=args.no_color)
            else:
                env.stderr.write(f"no snapshots in {store.location}\n")
            return ExitStatus.OK if snaps else ExitStatus.NEGATIVE
        address, port = target
        proto = Proto.TCP if args.tcp else Proto.UDP if args.udp else None
        entries = store.timeline(port, address=address, proto=proto)
    if args.json:
        from portscope.render.history import iso, listener_json

        write_json(
            {
                "schema": "portscope.timeline/1",
                "port": port,
                "address": address,
                "entries": [
                    {
                        "time": iso(t.at),
                        "source": t.source,
                        "snapshot": t.snapshot_id,
                        "label": t.label,
                        "action": t.action,
                        "before": None if t.before is None else listener_json(t.before),
                        "after": None if t.after is None else listener_json(t.after),
                    }
                    for t in entries
                ],
            },
            env.stdout,
        )
    elif entries:
        from portscope.history._capture import current_netns

        env.show(render_timeline(entries, home=current_netns()), no_color=args.no_color)
    else:
        env.stderr.write(f"port {args.target} never seen in {store.location}\n")
    return ExitStatus.OK if entries else ExitStatus.NEGATIVE
