"""``portscope lookup QUERY``: what a port, range or service name means.

Two ways to the same answer. ``quick`` takes the common command lines (the query words,
``--json``, ``--no-color``, ``--proto P``, ``--limit N``) and answers from the registry
cache's tuples through ``registry._answer``, importing neither argparse nor the models,
so the command starts within twice the interpreter's own start-up. Anything else (help,
abbreviated or ``=``-joined options, bad input) returns ``None`` and ``main`` parses it
with argparse and runs ``run``, over the typed API, which says what is wrong in one line.
Both print byte-identical answers (``tests/unit/test_cli_lookup.py`` checks).
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    import argparse
    from typing import TextIO

    from portscope.cli._base import Env, Parser

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
    from portscope.cli._base import ExitStatus
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


# option -> (argparse dest, takes a value)
_PLAIN_OPTIONS = {
    "--json": ("json", False),
    "--no-color": ("no_color", False),
    "--proto": ("proto", True),
    "-P": ("proto", True),
    "--limit": ("limit", True),
}


def _plain_args(argv: list[str]) -> tuple[str, str | None, int | None, bool] | None:
    """(query text, proto, limit, json) when argparse would read ``argv`` the same way.

    That is: the query words in one run (argparse takes ``nargs="+"`` positionals once),
    options spelt out in full, each at most once, values that do not start with ``-``
    and a ``--limit`` of plain digits. ``None`` for anything else.
    """
    words: list[str] = []
    values: dict[str, str | None] = {}
    after_words = False
    i = 0
    while i < len(argv):
        arg = argv[i]
        if not arg.startswith("-"):
            if after_words:
                return None  # argparse: "unrecognized arguments"
            words.append(arg)
        else:
            option = _PLAIN_OPTIONS.get(arg)
            if option is None or option[0] in values:
                return None
            after_words = bool(words)
            value = None
            if option[1]:
                i += 1
                if i == len(argv) or argv[i].startswith("-"):
                    return None
                value = argv[i]
            values[option[0]] = value
        i += 1
    limit = values.get("limit")
    if not words or (limit is not None and not limit.isdecimal()):
        return None
    return (
        " ".join(words),
        values.get("proto"),
        int(limit) if limit is not None else None,
        "json" in values,
    )


def quick(argv: list[str], stdout: TextIO) -> int | None:
    """Answer ``portscope lookup ARGV`` without argparse or models, when it is plain.

    Args:
        argv: the arguments after ``lookup``.
        stdout: where the answer goes.

    Returns:
        The exit status (as ``run`` would return it), or ``None`` when the command line
        is not one of the plain forms or the query is not valid: then ``run`` must answer.
    """
    plain = _plain_args(argv)
    if plain is None:
        return None
    text, proto, limit, as_json = plain
    from portscope.registry import _answer

    try:
        query = _answer.parse_query(text, proto)
    except ValueError:  # InvalidInput (a ValueError): the argparse way reports it
        return None
    kind, _, port, port_end, _, _ = query
    found = _answer.entries(query)
    if limit is None:
        limit = _DEFAULT_NAME_LIMIT if kind == "name" else 0
    shown = found[:limit] if limit else found
    kernel = None
    facts = []
    if port is not None:
        kernel = _answer.read_kernel()
        last = port_end if port_end is not None else port
        facts = [_answer.facts_of(p, kernel) for p in range(port, last + 1)]
    if as_json:
        import json

        services = [_answer.service_json(e) for e in shown]
        doc = _answer.answer_document(query, services, facts, kernel, len(found))
        stdout.write(json.dumps(doc, indent=2, ensure_ascii=False) + "\n")
    else:
        stdout.write(_answer.answer_text(query, shown, facts, kernel, len(found)))
    return 1 if kind == "name" and not found else 0
