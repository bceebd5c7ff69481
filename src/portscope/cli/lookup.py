"""``portscope lookup QUERY``: what a port, range or service name means."""

from __future__ import annotations

import argparse

from portscope.cli._base import Env, ExitStatus, Parser

HELP = "what a port or service name means (the registry)"
_DEFAULT_NAME_LIMIT = 20


def configure(parser: Parser) -> None:
    parser.usage = "portscope lookup [-h] [--proto PROTO] [--limit N] [--json] QUERY ..."
    parser.epilog = (
        "QUERY: 443, 8000-8100, udp/53, 53/udp, https, postgres, or words of a "
        "description ('message broker')."
    )
    parser.add_argument(
        "query",
        nargs="+",
        help="a port, a port range, PORT/PROTO, or a service name or words",
    )
    parser.add_argument(
        "--proto",
        "-P",
        metavar="PROTO",
        help="only this transport: tcp, udp, sctp or dccp",
    )
    parser.add_argument(
        "--limit",
        type=int,
        default=None,
        metavar="N",
        help=f"show at most N services (default: {_DEFAULT_NAME_LIMIT} for a name "
        "search, all for ports; 0: all)",
    )


def run(args: argparse.Namespace, env: Env) -> int:
    from portscope.registry import kernel_ports, lookup, parse_query, port_facts
    from portscope.render.registry import lookup_document, write_lookup

    text = " ".join(args.query)
    query = parse_query(text, args.proto)
    services = lookup(text, args.proto)
    limit = args.limit
    if limit is None:
        limit = _DEFAULT_NAME_LIMIT if query.kind == "name" else 0
    if limit < 0:
        env.error(f"--limit {limit}: expected 0 (all) or a positive count")
        return ExitStatus.USAGE
    shown = services[:limit] if limit else services
    facts = []
    if query.port is not None:
        kernel = kernel_ports()
        last = query.port_end if query.port_end is not None else query.port
        facts = [port_facts(p, kernel) for p in range(query.port, last + 1)]
    if args.json:
        from portscope.render import write_json

        write_json(lookup_document(query, shown, facts, len(services)), env.stdout)
    else:
        write_lookup(env.stdout, query, shown, facts, len(services))
    if query.kind == "name" and not services:
        return ExitStatus.NEGATIVE
    return ExitStatus.OK
