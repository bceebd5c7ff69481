"""``portscope`` (``portscope listen``): what is listening, with process, service and scope."""

from __future__ import annotations

import argparse
from typing import Any

from portscope.cli._base import Env, ExitStatus, Parser, add_netns_option, add_transport_options
from portscope.cli.ls import _in, add_backend_option, add_wide_option

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
    add_netns_option(parser, what="listeners")
    add_wide_option(parser)
    add_backend_option(parser)
    parser.add_argument(
        "--no-firewall",
        action="store_true",
        help="bind scopes only: do not read the host firewall for the scope column",
    )
    from portscope.cli.explain import add_explain_option

    add_explain_option(parser)


def run(args: argparse.Namespace, env: Env) -> int:
    from portscope.cli.explain import show_about
    from portscope.models import Proto, TcpState
    from portscope.render import count
    from portscope.render.sockets import SocketJson, render_listen, service_for, write_sockets_json
    from portscope.sockets import Row, SocketFilter, dump, scope_words, sort_rows
    from portscope.sockets.overflow import CounterWatch, accept_queue_full

    watch = CounterWatch()

    protos = None
    if args.tcp or args.udp:
        protos = frozenset(p for p, on in ((Proto.TCP, args.tcp), (Proto.UDP, args.udp)) if on)
    families = None
    if args.ipv4 != args.ipv6:
        families = frozenset({4 if args.ipv4 else 6})
    where = SocketFilter(
        protos=protos, families=families, states=frozenset({TcpState.LISTEN, TcpState.UNCONN})
    )
    d = dump(where, owners=True, backend=args.backend, owners_first=False, netns=args.netns)
    rows = [r for batch in d.batches for r in batch]
    omap = d.scan_owners(rows)
    sort_rows(rows, "port")  # stable: namespace after namespace, by port in each
    if d.netns is not None:
        order = {ns.inode: i for i, ns in enumerate(d.netns)}
        rows.sort(key=lambda r: order.get(r.netns.inode, -1) if r.netns is not None else -1)
    full = [r for r in rows if accept_queue_full(r)]
    # a full queue: read the counters a quarter second apart to see whether it drops now
    counters = watch.finish(min_interval_s=0.25 if full else 0.0)

    firewall = {} if args.no_firewall else _firewall_notes(rows, d.notes)

    def scope(r: Row) -> str:
        words = scope_words(r.family, r.local_address, r.v6only, r.interface)
        note = firewall.get(r)
        return f"{words}, {note}" if note else words

    service = service_for(args.numeric)
    if args.json:
        write_sockets_json(
            [rows],
            env.stdout,
            backend=d.backend,
            notes=d.notes,
            formatter=SocketJson(
                omap,
                service,
                extra=lambda r: {"scope": scope(r), "accept_queue_full": accept_queue_full(r)},
            ),
            owners_complete=lambda: d.owners_complete,
            more=lambda: {"listen_counters": counters},
        )
    else:
        many = d.netns is not None and len(d.netns) > 1
        table = render_listen(rows, owners=omap, service=service, scope=scope, netns=many)
        env.show(table, no_color=args.no_color, wide=args.wide)
        env.stderr.write(
            f"{count(len(rows), 'listening socket')} (backend: {d.backend}{_in(d.netns)})\n"
        )
        show_about(
            env,
            args,
            states=(r.state.value for r in rows),
            scopes=(scope(r) for r in rows),
            terms=("backlog",),
        )
    for note in d.notes:
        env.note(note)
    from portscope.render import safe
    from portscope.render.sockets import endpoint_text, owners_text

    for r in full:
        at = endpoint_text(r.local_address, r.local_port)
        env.note(
            safe(
                f"the accept queue of {r.proto.value} {at}"
                f" ({owners_text(omap, r)}) is full: {r.recv_q} connections wait for accept() "
                f"with a backlog of {r.send_q}; new connections are dropped (the application "
                "is not calling accept() fast enough)"
            )
        )
    if counters is not None and counters.grew:
        env.note(counters.note())
    return ExitStatus.OK


def _firewall_notes(rows: list[Any], notes: list[str]) -> dict[Any, str]:
    """Row -> ``firewall: filtered from outside`` (``diagnose.exposure.scope_note``) for the
    listeners not bound to loopback; a note when the firewall cannot be read."""
    from portscope.diagnose._common import reach
    from portscope.diagnose.exposure import firewall_view, scope_note
    from portscope.sockets import row_to_socket

    socks = {r: row_to_socket(r) for r in rows}
    exposed = {r: s for r, s in socks.items() if reach(s) != "loopback"}
    if not exposed:
        return {}
    view = firewall_view(list(exposed.values()))
    if not view.read:
        from portscope.render import safe

        notes.append(
            safe(f"firewall not read ({view.error}): the Scope column is the bind scope only")
        )
        return {}
    out: dict[Any, str] = {}
    for r, s in exposed.items():
        rows = view.rows_for(s)
        texts = [scope_note(x) for x in rows]
        text = texts[0] if texts else None
        if len(set(texts)) > 1:  # dual-stack [::], the families differ
            text = "firewall: " + "; ".join(
                f"IPv{x.family} {t.removeprefix('firewall: ') if t else 'not filtered'}"
                for x, t in sorted(zip(rows, texts, strict=True), key=lambda p: p[0].family)
            )
        if text:
            out[r] = text
    return out
