"""``portscope`` (``portscope listen``): what is listening, with process, service and scope."""

from __future__ import annotations

import argparse

from portscope.cli._base import Env, ExitStatus, Parser, add_transport_options
from portscope.cli.ls import add_backend_option, add_wide_option

HELP = "what is listening, with process, service and exposure (default)"


def configure(parser: Parser) -> None:
    parser.epilog = (
        "TCP listeners and bound UDP sockets, IPv4 and IPv6, sorted by port: like "
        "'ss -tulpn', with the bind scope in words and the service name of each port."
    )
    add_transport_options(parser, exclusive=False, tcp="TCP listeners only", udp="UDP sockets only")
    parser.add_argument(
        "-n", "--numeric", action="store_true", help="no service names, only port numbers"
    )
    add_wide_option(parser)
    add_backend_option(parser)
    from portscope.cli.explain import add_explain_option

    add_explain_option(parser)


def run(args: argparse.Namespace, env: Env) -> int:
    from portscope.cli.explain import show_about
    from portscope.models import Proto, TcpState
    from portscope.render import count
    from portscope.render.sockets import SocketJson, render_listen, service_for, write_sockets_json
    from portscope.sockets import Row, SocketFilter, dump, scope_words, sort_rows

    protos = None
    if args.tcp or args.udp:
        protos = frozenset(p for p, on in ((Proto.TCP, args.tcp), (Proto.UDP, args.udp)) if on)
    families = None
    if args.ipv4 != args.ipv6:
        families = frozenset({4 if args.ipv4 else 6})
    where = SocketFilter(
        protos=protos, families=families, states=frozenset({TcpState.LISTEN, TcpState.UNCONN})
    )
    d = dump(where, owners=True, backend=args.backend, owners_first=False)
    rows = [r for batch in d.batches for r in batch]
    omap = d.scan_owners(rows)
    sort_rows(rows, "port")

    def scope(r: Row) -> str:
        return scope_words(r.family, r.local_address, r.v6only, r.interface)

    service = service_for(args.numeric)
    if args.json:
        write_sockets_json(
            [rows],
            env.stdout,
            backend=d.backend,
            notes=d.notes,
            formatter=SocketJson(omap, service, extra=lambda r: {"scope": scope(r)}),
            owners_complete=lambda: d.owners_complete,
        )
    else:
        table = render_listen(rows, owners=omap, service=service, scope=scope)
        env.show(table, no_color=args.no_color, wide=args.wide)
        env.stderr.write(f"{count(len(rows), 'listening socket')} (backend: {d.backend})\n")
        show_about(
            env,
            args,
            states=(r.state.value for r in rows),
            scopes=(scope(r) for r in rows),
            terms=("backlog",),
        )
    for note in d.notes:
        env.note(note)
    return ExitStatus.OK
