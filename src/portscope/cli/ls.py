"""``portscope ls``: the socket table, filtered like ``ss``."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import TypeVar

from portscope.cli._base import Env, ExitStatus, Parser, add_transport_options, checked
from portscope.models import Proto
from portscope.sockets._filters import (
    ALL_STATES,
    DEFAULT_STATES,
    LISTENING_STATES,
    SORT_KEYS,
    SocketFilter,
    parse_network,
    parse_pid,
    parse_port,
    parse_process,
    parse_sort,
    parse_states,
    parse_user,
)

HELP = "the socket table, filtered like ss (-t -u -l -a --state --port ...)"
T = TypeVar("T")


def _list_of(parse: Callable[[str], T]) -> Callable[[str], list[T]]:
    def parse_list(text: str) -> list[T]:
        return [parse(part) for part in text.split(",") if part.strip()] or [parse(text)]

    parse_list.__name__ = getattr(parse, "__name__", "value")
    return parse_list


def add_wide_option(parser: Parser) -> None:
    """``--wide``, shared with the listening view."""
    # no -w: ss spends it on raw sockets
    parser.add_argument(
        "--wide", action="store_true", help="every column, whatever the terminal width"
    )


def add_backend_option(parser: Parser) -> None:
    """``--backend``, shared with the listening view."""
    parser.add_argument(
        "--backend",
        choices=("netlink", "procfs", "psutil"),
        help="socket-table source (default: the best available: netlink on Linux)",
    )


def configure(parser: Parser) -> None:
    parser.epilog = (
        "Without -a/-l/--state: connected sockets only (no listeners, TIME-WAIT or "
        "SYN-RECV), as ss shows them. States: RFC 9293 names in any case (established, "
        "time-wait, TIME_WAIT, listen ...) or the ss groups all, connected, synchronized, "
        f"bucket, big. Sort keys: {', '.join(SORT_KEYS)}."
    )
    add_transport_options(parser, exclusive=False, tcp="TCP sockets", udp="UDP sockets")
    parser.add_argument(
        "-l", "--listening", action="store_true", help="listening sockets (LISTEN, UDP UNCONN)"
    )
    parser.add_argument("-a", "--all", action="store_true", help="sockets in every state")
    parser.add_argument(
        "--state",
        action="append",
        type=checked(parse_states),
        metavar="STATE[,STATE]",
        help="only these states or groups (repeatable)",
    )
    for flag, what in (
        ("--port", "local or remote"),
        ("--sport", "local"),
        ("--dport", "remote"),
    ):
        parser.add_argument(
            flag,
            action="append",
            type=checked(_list_of(parse_port)),
            metavar="PORT[,PORT]",
            help=f"{what} port: number or service name (repeatable)",
        )
    parser.add_argument(
        "--addr",
        action="append",
        type=checked(_list_of(parse_network)),
        metavar="CIDR",
        help="local or remote address inside this address or network (repeatable)",
    )
    parser.add_argument(
        "--pid", action="append", type=checked(_list_of(parse_pid)), help="held by this pid"
    )
    parser.add_argument(
        "--process",
        action="append",
        type=checked(parse_process),
        metavar="NAME",
        help="held by a process whose name contains NAME (python matches python3); "
        "a glob if it has * ? [ (python3.1?); =NAME for exactly NAME (repeatable)",
    )
    parser.add_argument(
        "--user",
        action="append",
        type=checked(_list_of(parse_user)),
        metavar="USER",
        help="the socket's user, or the user of a process holding it (name or uid)",
    )
    parser.add_argument(
        "-p", "--processes", action="store_true", help="show owning processes (scans /proc)"
    )
    parser.add_argument(
        "-n", "--numeric", action="store_true", help="no service names, only port numbers"
    )
    parser.add_argument("--sort", type=checked(parse_sort), metavar="KEY", help="sort by KEY")
    parser.add_argument(
        "--summary", action="store_true", help="counts per transport and state (like ss -s)"
    )
    add_wide_option(parser)
    add_backend_option(parser)
    from portscope.cli.explain import add_explain_option

    add_explain_option(parser)


def _flat(values: list[list[T]] | None) -> frozenset[T] | None:
    if not values:
        return None
    return frozenset(v for group in values for v in group)


def build_filter(args: argparse.Namespace) -> SocketFilter:
    """The ``SocketFilter`` the options describe."""
    protos: frozenset[Proto] | None = None
    if args.tcp or args.udp:
        protos = frozenset(p for p, on in ((Proto.TCP, args.tcp), (Proto.UDP, args.udp)) if on)
    families: frozenset[int] | None = None
    if args.ipv4 != args.ipv6:
        families = frozenset({4 if args.ipv4 else 6})
    if args.state:
        states = frozenset(s for group in args.state for s in group)
    elif args.all or args.summary:
        states = ALL_STATES
    elif args.listening:
        states = LISTENING_STATES
    else:
        states = DEFAULT_STATES
    networks = _flat(args.addr)
    return SocketFilter(
        protos=protos,
        families=families,
        states=states,
        ports=_flat(args.port),
        sports=_flat(args.sport),
        dports=_flat(args.dport),
        networks=None if networks is None else tuple(networks),
        uids=_flat(args.user),
        pids=_flat(args.pid),
        processes=None if not args.process else frozenset(args.process),
    )


def run(args: argparse.Namespace, env: Env) -> int:
    from portscope.cli.explain import show_about
    from portscope.render import count, write_json
    from portscope.render.sockets import (
        SocketJson,
        render_ls,
        render_summary,
        service_for,
        write_sockets_json,
    )
    from portscope.sockets import SCHEMA, dump, sort_rows, summarize

    where = build_filter(args)
    owners = bool(args.processes)
    stream = args.json and not args.sort and not args.summary
    d = dump(where, owners=owners, backend=args.backend, owners_first=stream)
    if stream and args.numeric:
        # the fast path: decode straight to JSON (owners, if any, are known already)
        lines = d.json_lines(SocketJson(d.owners if owners else None, None))
        if lines is not None:
            write_sockets_json(
                None,
                env.stdout,
                backend=d.backend,
                notes=d.notes,
                lines=lines,
                owners_complete=lambda: d.owners_complete if owners else None,
            )
            _notes(env, d.notes)
            return ExitStatus.OK
    if stream:
        formatter = SocketJson(d.owners, service_for(args.numeric))
        write_sockets_json(
            d.batches,
            env.stdout,
            backend=d.backend,
            notes=d.notes,
            formatter=formatter,
            owners_complete=lambda: d.owners_complete if owners else None,
        )
        _notes(env, d.notes)
        return ExitStatus.OK
    rows = [r for batch in d.batches for r in batch]
    if args.summary:
        summary = summarize(rows)
        if args.json:
            write_json(
                {"schema": SCHEMA, "backend": d.backend, "notes": d.notes, **summary}, env.stdout
            )
        else:
            env.show(render_summary(summary), no_color=args.no_color, wide=args.wide)
        _notes(env, d.notes)
        return ExitStatus.OK
    omap = d.scan_owners(rows) if owners else None
    if args.sort:
        sort_rows(rows, args.sort, omap)
    service = service_for(args.numeric)
    if args.json:
        write_sockets_json(
            [rows],
            env.stdout,
            backend=d.backend,
            notes=d.notes,
            formatter=SocketJson(omap, service),
            owners_complete=lambda: d.owners_complete if owners else None,
        )
    else:
        table = render_ls(rows, owners=omap, service=service)
        env.show(table, no_color=args.no_color, wide=args.wide)
        env.stderr.write(f"{count(len(rows), 'socket')} (backend: {d.backend})\n")
        show_about(
            env,
            args,
            states=(r.state.value for r in rows),
            terms=("recv-q", "send-q", *(("5-tuple",) if any(r.remote_port for r in rows) else ())),
        )
    _notes(env, d.notes)
    return ExitStatus.OK


def _notes(env: Env, notes: list[str]) -> None:
    for note in notes:
        env.note(note)
