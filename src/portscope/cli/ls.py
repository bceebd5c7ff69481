"""``portscope ls``: the socket table, filtered like ``ss``."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import TypeVar

from portscope.cli._base import (
    Env,
    ExitStatus,
    Parser,
    add_netns_option,
    add_transport_options,
    checked,
)
from portscope.models import Netns, Proto
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
from portscope.sockets._owners import OwnerMap
from portscope.sockets._record import Row

HELP = "the socket table, filtered like ss (-t -u -l -a --state --port ...)"
FAMILIES = ("inet", "inet6", "unix")
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
        "--summary",
        action="store_true",
        help="counts per transport and state (like ss -s); with -N, per namespace",
    )
    add_netns_option(parser)
    parser.add_argument(
        "-i",
        "--info",
        action="store_true",
        help="TCP internals (like ss -i): RTT, cwnd, MSS, retransmits, bytes, rates",
    )
    parser.add_argument(
        "-o", "--timers", action="store_true", help="TCP timers and when they fire (like ss -o)"
    )
    parser.add_argument(
        "-e", "--extended", action="store_true", help="uid, inode and socket cookie (like ss -e)"
    )
    parser.add_argument("-m", "--memory", action="store_true", help="socket memory (like ss -m)")
    parser.add_argument(
        "-x",
        "--unix",
        action="store_true",
        help="Unix domain sockets (like ss -x): path, @abstract name, peer; -p adds the "
        "process at each end",
    )
    parser.add_argument(
        "--family",
        action="append",
        type=checked(_list_of(parse_family)),
        metavar="FAMILY[,FAMILY]",
        help="inet (IPv4), inet6 (IPv6) or unix (the same as -4, -6, -x)",
    )
    add_close_options(
        parser,
        "the matching TCP/UDP sockets (a filter is required: --port, --sport, --dport, "
        "--addr, --pid, --process or --user)",
    )
    add_wide_option(parser)
    add_backend_option(parser)
    from portscope.cli.explain import add_explain_option

    add_explain_option(parser)


def add_close_options(parser: Parser, what: str) -> None:
    """``--close`` (closing ``what``) and ``-y/--yes`` (shared with ``who``)."""
    parser.add_argument(
        "--close",
        action="store_true",
        help=f"close {what} without killing their processes (like ss -K: SOCK_DESTROY, "
        "matched by socket cookie; needs CAP_NET_ADMIN); shows them and asks first",
    )
    if "--yes" not in parser._option_string_actions:
        parser.add_argument(
            "-y", "--yes", action="store_true", help="with --close: do not ask for confirmation"
        )


def parse_family(text: str) -> str:
    """``inet``, ``inet6`` or ``unix`` (any case; ``4``/``6`` too)."""
    from portscope.errors import InvalidFilter

    name = {"4": "inet", "ipv4": "inet", "6": "inet6", "ipv6": "inet6"}.get(
        text.strip().lower(), text.strip().lower()
    )
    if name not in FAMILIES:
        raise InvalidFilter(f"unknown family {text!r}; accepted: {', '.join(FAMILIES)}")
    return name


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


def _apply_family(args: argparse.Namespace) -> bool:
    """Fold ``--family`` into -4/-6/-x; True when it asks for Unix sockets only.

    Raises:
        InvalidFilter: Unix and inet families together.
    """
    from portscope.errors import InvalidFilter

    names = {n for group in args.family or () for n in group}
    if "inet" in names:
        args.ipv4 = True
    if "inet6" in names:
        args.ipv6 = True
    unix = args.unix or "unix" in names
    if unix and (names - {"unix"} or args.ipv4 or args.ipv6):
        raise InvalidFilter(
            "Unix sockets are listed on their own: give -x (--family unix) without inet families"
        )
    return unix


#: options that mean nothing for Unix sockets
_INET_ONLY = (
    ("tcp", "-t"),
    ("udp", "-u"),
    ("port", "--port"),
    ("sport", "--sport"),
    ("dport", "--dport"),
    ("addr", "--addr"),
    ("info", "-i"),
    ("timers", "-o"),
    ("memory", "-m"),
    ("extended", "-e (the JSON of -x has uid and cookie)"),
    ("summary", "--summary"),
    ("sort", "--sort"),
    ("close", "--close (SOCK_DESTROY has no Unix sockets)"),
)


def run_unix(args: argparse.Namespace, env: Env) -> int:
    """``ls -x``: the Unix domain sockets."""
    from typing import cast

    from portscope.render import count
    from portscope.render.unix import render_unix, write_unix_json
    from portscope.sockets._record import Row
    from portscope.sockets.unix import UNIX_STATES, list_unix_sockets

    for name, flag in _INET_ONLY:
        if getattr(args, name, None):
            env.error(
                f"{flag} does not apply to Unix sockets (-x); accepted with -x: "
                "-l -a --state --pid --process --user -p --json"
            )
            return ExitStatus.USAGE
    where = build_filter(args)
    states = (where.states or UNIX_STATES) & UNIX_STATES
    if not args.state and not args.all and not args.listening:
        states = frozenset({s for s in UNIX_STATES if s.value in ("ESTABLISHED", "SYN-SENT")})
    owners = bool(args.processes) or where.needs_owners
    table = list_unix_sockets(states=states, owners=owners, backend=args.backend)
    rows = table.sockets
    if where.needs_owners or where.uids is not None:
        from dataclasses import replace

        keep = replace(where, states=None).predicate(table.owners)
        rows = [r for r in rows if keep(cast(Row, r))]
    if not args.processes:
        table.owners = None
    if args.json:
        write_unix_json(table, env.stdout, rows)
    else:
        env.show(render_unix(table, rows), no_color=args.no_color, wide=args.wide)
        env.stderr.write(f"{count(len(rows), 'Unix socket')} (backend: {table.backend})\n")
    _notes(env, table.notes)
    return ExitStatus.OK


def run(args: argparse.Namespace, env: Env) -> int:
    if _apply_family(args):
        return run_unix(args, env)
    return run_inet(args, env)


def close_rows(rows: list[Row], omap: OwnerMap | None, args: argparse.Namespace, env: Env) -> int:
    """``--close``: show ``rows``, ask (unless ``--yes``), close each by cookie, report.

    Returns:
        The exit status: 0 when every socket was closed, 1 otherwise or when declined,
        2 when there is no terminal to ask on and no ``--yes``.
    """
    from portscope.render import count, write_json
    from portscope.render.sockets import owners_text, render_close, render_ls
    from portscope.sockets.destroy import CLOSED, close_sockets

    if not rows:
        env.note("no socket matches: nothing to close")
        return ExitStatus.NEGATIVE
    if not args.yes:
        if not args.json:
            env.show(render_ls(rows, owners=omap, service=None), no_color=args.no_color)
        holders = sorted({owners_text(omap, r) for r in rows} - {"-"})
        held = f" held by {', '.join(holders)}" if holders else ""
        answer = env.ask(f"close {count(len(rows), 'socket')}{held}?")
        if answer is None:
            env.error("--close asks for confirmation on a terminal; stdin is not one: add --yes")
            return ExitStatus.USAGE
        if not answer:
            env.note("nothing closed")
            return ExitStatus.NEGATIVE
    results = close_sockets(rows)
    if args.json:
        from portscope.sockets import row_to_socket

        write_json(
            {
                "closed": [
                    {"socket": row_to_socket(r.row, omap), "result": r.result, "error": r.error}
                    for r in results
                ]
            },
            env.stdout,
        )
    else:
        env.show(render_close(results, omap), no_color=args.no_color)
    ok = all(r.result == CLOSED for r in results)
    return ExitStatus.OK if ok else ExitStatus.NEGATIVE


def _has_target(where: SocketFilter) -> bool:
    """Whether a filter names particular sockets (``--close`` refuses to close all)."""
    return any(
        v is not None
        for v in (where.ports, where.sports, where.dports, where.networks, where.pids,
                  where.processes, where.uids)
    )  # fmt: skip


def run_inet(args: argparse.Namespace, env: Env) -> int:
    from portscope.cli.explain import show_about
    from portscope.render import count, write_json
    from portscope.render.sockets import (
        SocketJson,
        render_ls,
        render_summary,
        service_for,
        write_sockets_json,
    )
    from portscope.sockets import SCHEMA, Extras, dump, sort_rows, summarize, summarize_by_netns

    where = build_filter(args)
    owners = bool(args.processes)
    if args.close:
        if not _has_target(where):
            env.error(
                "--close needs a filter naming the sockets (--port, --sport, --dport, "
                "--addr, --pid, --process or --user): it refuses to close every socket"
            )
            return ExitStatus.USAGE
        if args.summary:
            env.error("--close and --summary do not go together")
            return ExitStatus.USAGE
        d = dump(where, owners=True, backend="netlink", owners_first=False)
        found = [r for batch in d.batches for r in batch]
        held = d.scan_owners(found)
        _notes(env, d.notes)
        return close_rows(found, held, args, env)
    if args.yes:
        env.error("--yes only applies with --close")
        return ExitStatus.USAGE
    stream = args.json and not args.sort and not args.summary
    want = Extras(timers=args.timers, info=args.info, memory=args.memory, as_json=args.json)
    if args.summary:
        want = Extras()
    if want and args.netns is not None:
        env.error("-i, -o, -e and -m read this network namespace only: leave out -N/--netns")
        return ExitStatus.USAGE
    d = dump(
        where,
        owners=owners,
        backend=args.backend,
        owners_first=stream,
        netns=args.netns,
        extras=want or None,
    )
    tail = None
    if want:
        from portscope.render.socket_details import json_tail

        tail = json_tail(want, d.extras if d.extras is not None else {})
    if stream and args.numeric and not want:
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
        formatter = SocketJson(d.owners, service_for(args.numeric), tail=tail)
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
        if d.netns is not None:
            summary["by_netns"] = summarize_by_netns(rows, d.netns)
        if args.json:
            write_json(
                {"schema": SCHEMA, "backend": d.backend, "notes": d.notes, **summary}, env.stdout
            )
        elif d.netns is not None:
            from portscope.render.sockets import render_netns_summary

            env.show(
                render_netns_summary(summary["by_netns"]), no_color=args.no_color, wide=args.wide
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
            formatter=SocketJson(omap, service, tail=tail),
            owners_complete=lambda: d.owners_complete if owners else None,
        )
    else:
        from portscope.render.socket_details import columns

        more = columns(want, args.extended, d.extras)
        many = d.netns is not None and len(d.netns) > 1
        table = render_ls(rows, owners=omap, service=service, netns=many, more=more)
        env.show(table, no_color=args.no_color, wide=args.wide)
        env.stderr.write(f"{count(len(rows), 'socket')} (backend: {d.backend}{_in(d.netns)})\n")
        show_about(
            env,
            args,
            states=(r.state.value for r in rows),
            terms=("recv-q", "send-q", *(("5-tuple",) if any(r.remote_port for r in rows) else ())),
        )
    _notes(env, d.notes)
    return ExitStatus.OK


def _in(namespaces: tuple[Netns, ...] | None) -> str:
    """``, N network namespaces`` for the count line, when namespaces were asked for."""
    if namespaces is None:
        return ""
    from portscope.render import count
    from portscope.sockets._netns import netns_label

    if len(namespaces) == 1:
        return f", netns {netns_label(namespaces[0])}"
    return f", {count(len(namespaces), 'network namespace')}"


def _notes(env: Env, notes: list[str]) -> None:
    for note in notes:
        env.note(note)
