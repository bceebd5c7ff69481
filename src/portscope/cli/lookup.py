"""``portscope lookup QUERY``: what a port, range or service name means.

Two ways to the same answer. ``quick`` takes the common command lines (the query words,
``--json``, ``--no-color``, ``--proto P``, ``-t``/``--tcp``, ``-u``/``--udp``, ``--limit N``)
and answers from the registry cache's entries through ``registry._answer`` and
``render._lookup``, importing neither argparse nor the models, so the command starts within
twice the interpreter's own start-up. Anything else (help, abbreviated, joined or
``=``-joined options, bad input) returns ``None`` and ``main`` parses it with argparse and
runs ``run``, over the typed API, which says what is wrong in one line. Both print
byte-identical answers (``tests/unit/test_cli_lookup.py`` checks).

``-t``/``-u`` mean what they mean for ``ls``: TCP, UDP, both when both are given.
``-4``/``-6`` are refused with one line: a port's registration is the same for IPv4 and
IPv6.
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
    from portscope.cli._base import bounded

    parser.usage = "portscope lookup [-h] [-t] [-u] [--proto PROTO] [--limit N] [--json] QUERY ..."
    parser.epilog = (
        "QUERY: 443, 8000-8100, udp/53, 53/udp, https, postgres, or words of a "
        "description ('message broker')."
    )
    parser.add_argument(
        "query",
        nargs="+",
        help="a port, a port range, PORT/PROTO, or a service name or words",
    )
    parser.add_argument("-t", "--tcp", action="store_true", help="TCP registrations")
    parser.add_argument("-u", "--udp", action="store_true", help="UDP registrations")
    parser.add_argument(
        "--proto",
        "-P",
        metavar="PROTO",
        help="only this transport: tcp, udp, sctp or dccp",
    )
    parser.add_argument(
        "--limit",
        type=bounded("--limit", low=0, high=1_000_000, integer=True),
        default=None,
        metavar="N",
        help=f"show at most N services (default: {_DEFAULT_NAME_LIMIT} for a name "
        "search, all for ports; 0: all)",
    )
    # Accepted only to say that they do not apply (other commands take them). -4 and -6
    # are not declared: argparse would then read every negative number as an option
    # (`lookup -1`, `--limit -3`); they arrive as query words and `run` refuses them.
    parser.add_argument(
        "--ipv4", action="store_true", help="(-4; not for lookup: one registry for both)"
    )
    parser.add_argument(
        "--ipv6", action="store_true", help="(-6; not for lookup: one registry for both)"
    )


def transports(
    proto: str | None, tcp: bool, udp: bool
) -> tuple[str | None, tuple[str, ...] | None]:
    """(the one transport to ask for, or the set of transports to show) from the options.

    ``-t`` alone is ``--proto tcp``, ``-u`` alone ``--proto udp``; both show TCP and UDP.

    Raises:
        ValueError: ``-t``/``-u`` that contradict ``--proto``.
    """
    flags = tuple(p for p, given in (("tcp", tcp), ("udp", udp)) if given)
    if not flags:
        return proto, None
    if proto is not None:
        word = proto.strip().lower()
        if flags != (word,):
            spelt = "/".join(f"-{p[0]}/--{p}" for p in flags)
            raise ValueError(f"{spelt} with --proto {proto}: give one transport")
        return proto, None
    return (flags[0], None) if len(flags) == 1 else (None, flags)


def _shown_transports(query_proto: str | None, wanted: tuple[str, ...] | None) -> list[str] | None:
    return [query_proto] if query_proto is not None else (list(wanted) if wanted else None)


def run(args: argparse.Namespace, env: Env) -> int:
    from portscope.cli._base import ExitStatus
    from portscope.registry import kernel_ports, lookup, parse_query, port_facts
    from portscope.render.registry import json_text, lookup_document, lookup_text

    if args.ipv4 or args.ipv6 or {"-4", "-6"} & set(args.query):
        env.error(
            "-4/-6 do not apply to lookup: a port's registration is the same for IPv4 and "
            "IPv6 (use -t/-u or --proto for the transport)"
        )
        return ExitStatus.USAGE
    try:
        proto, wanted = transports(args.proto, args.tcp, args.udp)
    except ValueError as err:
        env.error(str(err))
        return ExitStatus.USAGE
    text = " ".join(args.query)
    query = parse_query(text, proto)
    if wanted is not None and query.proto is not None and query.proto.value not in wanted:
        env.error(f"{text!r} asks for {query.proto.value} but -t/-u ask for {', '.join(wanted)}")
        return ExitStatus.USAGE
    services = lookup(text, proto)
    if wanted is not None:
        services = [s for s in services if s.proto.value in wanted]
    limit = args.limit
    if limit is None:
        limit = _DEFAULT_NAME_LIMIT if query.kind == "name" else 0
    shown = services[:limit] if limit else services
    facts = []
    if query.port is not None:
        kernel = kernel_ports()
        last = query.port_end if query.port_end is not None else query.port
        facts = [port_facts(p, kernel) for p in range(query.port, last + 1)]
    if args.json:
        shown_protos = _shown_transports(query.proto.value if query.proto else None, wanted)
        doc = lookup_document(query, shown, facts, len(services), shown_protos)
        env.show(json_text(doc))
    else:
        env.show(lookup_text(query, shown, facts, len(services)))
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
    "-t": ("tcp", False),
    "--tcp": ("tcp", False),
    "-u": ("udp", False),
    "--udp": ("udp", False),
}


def _plain_args(argv: list[str]) -> dict[str, str | None] | None:
    """The options (dest -> value) and ``query`` (the words joined) when argparse would
    read ``argv`` the same way.

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
    if not words or (limit is not None and not (limit.isascii() and limit.isdigit())):
        return None
    values["query"] = " ".join(words)
    return values


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
    text = plain["query"]
    assert text is not None
    limit_text = plain.get("limit")
    from portscope.registry import _answer
    from portscope.render import _lookup

    try:  # ValueError: InvalidInput, or flags that disagree: the argparse way reports it
        proto, wanted = transports(plain.get("proto"), "tcp" in plain, "udp" in plain)
        query = _answer.parse_query(text, proto)
    except ValueError:
        return None
    kind, _, port, port_end, _, query_proto = query
    if wanted is not None and query_proto is not None and query_proto not in wanted:
        return None
    found = _answer.entries(query, wanted)
    if limit_text is not None and len(limit_text) > 7:
        return None  # the argparse way states the accepted range
    limit = int(limit_text) if limit_text is not None else None
    if limit is None:
        limit = _DEFAULT_NAME_LIMIT if kind == "name" else 0
    shown = found[:limit] if limit else found
    kernel = None
    facts = []
    if port is not None:
        kernel = _answer.read_kernel()
        last = port_end if port_end is not None else port
        facts = [_answer.facts_of(p, kernel) for p in range(port, last + 1)]
    if "json" in plain:
        shown_protos = _shown_transports(query_proto, wanted)
        doc = _lookup.lookup_document(query, shown, facts, kernel, len(found), shown_protos)
        stdout.write(_lookup.json_text(doc))
    else:
        stdout.write(_lookup.lookup_text(query, shown, facts, kernel, len(found)))
    return 1 if kind == "name" and not found else 0
