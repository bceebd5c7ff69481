"""``portscope who PORT[/tcp|/udp] [-t|-u] [-4|-6] [--kill [--force] [--timeout S] [--yes]]``;
``portscope who /path.sock`` and ``who @abstract`` for Unix domain sockets."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from portscope.cli._base import (
    Env,
    ExitStatus,
    Parser,
    add_netns_option,
    add_transport_options,
    bounded,
    checked,
)
from portscope.diagnose._common import owner_text, parse_port_proto

if TYPE_CHECKING:
    from collections.abc import Sequence
    from typing import Any

    from portscope.diagnose import WhoResult
    from portscope.identify import Identity
    from portscope.models import Socket

HELP = (
    "which processes hold a port (any address, IPv4 and IPv6) or a Unix socket; --kill to free it"
)


class UnixName(str):
    """A Unix socket name given to ``who``: a path, or ``@name`` (abstract)."""


def parse_target(text: str) -> tuple[int, object] | UnixName:
    """``PORT[/proto]``, or a Unix socket: a path (``/run/x.sock``, ``./x.sock``) or
    ``@abstract``."""
    if text.startswith(("/", "@", "./", "../")):
        from portscope.sockets.unix import parse_unix_name

        parse_unix_name(text)  # empty names are refused
        return UnixName(text)
    return parse_port_proto(text)


def configure(parser: Parser) -> None:
    parser.add_argument(
        "port",
        metavar="PORT[/tcp|/udp] | /PATH | @NAME",
        type=checked(parse_target),
        help="port 1-65535 or a service name (redis, http-alt), optionally /tcp or /udp "
        "(default: both); or a Unix socket: its path, or @NAME for an abstract one",
    )
    add_transport_options(parser, exclusive=True, tcp="TCP sockets only", udp="UDP sockets only")
    add_netns_option(parser, what="holders")
    parser.add_argument(
        "--kill",
        action="store_true",
        help="send SIGTERM to every listener and report whether the port is free (first lists "
        "every socket each holder has, other ports too, and asks; never pid 1 or "
        "portscope; checks the start time against PID reuse)",
    )
    parser.add_argument(
        "--accepted",
        action="store_true",
        help="with --kill: also signal processes holding connections accepted on the port "
        "(sessions, forked workers); by default only listeners are, and never a client "
        "whose outgoing connection merely comes from the port",
    )
    parser.add_argument(
        "--force",
        action="store_true",
        help="with --kill: SIGKILL holders still alive after --timeout",
    )
    parser.add_argument(
        "--timeout",
        type=bounded("--timeout", low=0, high=3600),
        default=5.0,
        metavar="SECONDS",
        help="with --kill: seconds to wait for holders to exit, 0-3600 (default 5)",
    )
    parser.add_argument(
        "-y",
        "--yes",
        action="store_true",
        help="with --kill or --close: do not ask for confirmation",
    )
    from portscope.cli.ls import add_close_options

    add_close_options(
        parser, "the TCP/UDP sockets whose local port is PORT (listeners, connections)"
    )
    from portscope.cli.explain import add_explain_option

    add_explain_option(parser)
    parser.add_argument(
        "--connections",
        action="store_true",
        help="list every connection on the port (by default a process with more than 20 "
        "sockets on it shows its listeners and its connections counted per peer)",
    )
    parser.add_argument(
        "--identify",
        action="store_true",
        help="also connect to the TCP listener on loopback (or its address) and say what "
        "protocol it speaks: service, product, version, evidence",
    )


def run_unix(args: argparse.Namespace, env: Env, name: str) -> int:
    """``who /path.sock`` / ``who @name``: the sockets bound to that name, their
    processes, and the processes connected to them (from the peer inodes)."""
    from portscope.render.unix import render_unix, write_unix_json
    from portscope.sockets.unix import holding, list_unix_sockets, parse_unix_name

    for flag, given in (("--kill", args.kill), ("-t", args.tcp), ("-u", args.udp),
                        ("-4", args.ipv4), ("-6", args.ipv6), ("--force", args.force),
                        ("--yes", args.yes)):  # fmt: skip
        if given:
            env.error(f"{flag} does not apply to a Unix socket ({name!r})")
            return ExitStatus.USAGE
    path, abstract = parse_unix_name(name)
    table = list_unix_sockets(owners=True)
    rows = holding(table, path, abstract)
    held = bool(rows)
    if args.json:
        write_unix_json(table, env.stdout, rows, name=name, held=held)
    elif held:
        env.show(render_unix(table, rows), no_color=args.no_color)
    else:
        from portscope.render import safe

        env.stdout.write(f"no socket is bound to {safe(name)}\n")
    for note in table.notes:
        env.note(note)
    return ExitStatus.OK if held else ExitStatus.NEGATIVE


def run(args: argparse.Namespace, env: Env) -> int:
    if isinstance(args.port, UnixName):
        return run_unix(args, env, str(args.port))
    if args.close:
        return run_close(args, env)
    return run_port(args, env)


def run_close(args: argparse.Namespace, env: Env) -> int:
    """``who PORT --close``: close the sockets whose local port is PORT (listeners and
    their connections, as ``ss -K 'sport = :PORT'``), without killing the processes."""
    from portscope.cli.ls import close_rows
    from portscope.models import Proto
    from portscope.sockets import SocketFilter, dump

    port, proto = args.port
    if args.kill or args.force:
        env.error("--close and --kill/--force do not go together: --close leaves the processes")
        return ExitStatus.USAGE
    flag = Proto.TCP if args.tcp else Proto.UDP if args.udp else None
    if flag is not None and proto is not None and flag is not proto:
        env.error(f"{port}/{proto.value} contradicts -{flag.value[0]}: give one transport")
        return ExitStatus.USAGE
    proto = proto or flag
    where = SocketFilter(
        protos=None if proto is None else frozenset({proto}),
        families=frozenset({4}) if args.ipv4 else frozenset({6}) if args.ipv6 else None,
        sports=frozenset({port}),
    )
    d = dump(where, owners=True, backend="netlink", owners_first=False)
    rows = [r for batch in d.batches for r in batch]
    omap = d.scan_owners(rows)
    for note in d.notes:
        env.note(note)
    return close_rows(rows, omap, args, env)


def run_port(args: argparse.Namespace, env: Env) -> int:
    from portscope.cli.explain import show_about
    from portscope.diagnose import kill_holders, kill_targets, who
    from portscope.models import Proto
    from portscope.render import write_json
    from portscope.render.diagnose import render_kill, render_who, who_json, write_who_json
    from portscope.sockets import scope_words

    port, proto = args.port
    flag = Proto.TCP if args.tcp else Proto.UDP if args.udp else None
    if flag is not None and proto is not None and flag is not proto:
        env.error(f"{port}/{proto.value} contradicts -{flag.value[0]}: give one transport")
        return ExitStatus.USAGE
    proto = proto or flag
    families = [4] if args.ipv4 else [6] if args.ipv6 else None
    if (args.force or args.accepted) and not args.kill:
        env.error("--force and --accepted only apply with --kill")
        return ExitStatus.USAGE
    if args.yes and not args.kill:
        env.error("--yes only applies with --kill or --close")
        return ExitStatus.USAGE
    if args.identify and args.kill:
        env.error("--identify and --kill do not go together: identify first, then kill")
        return ExitStatus.USAGE
    # --kill shows every socket of each holder before asking: the other ports close too;
    # it reads every process's descriptors (every holder of a socket), display stops
    # once each socket has one (and looks at their children)
    result = who(
        port, proto, families=families, others=args.kill, netns=args.netns, all_holders=args.kill
    )
    every = args.connections
    if not args.kill:
        identities = _identify(result) if args.identify else None
        if args.json:
            extra = None
            if identities is not None:
                from portscope.render.identify import identity_dict

                extra = {"identities": [identity_dict(i) for i in identities]}
            write_who_json(result, env.stdout, extra)
        else:
            env.show(*render_who(result, every_connection=every), no_color=args.no_color)
            if identities:
                from portscope.render.identify import render_identities

                env.show(*render_identities(identities), no_color=args.no_color)
            elif identities is not None:
                env.note("--identify: no TCP listener on this port to connect to")
            if getattr(args, "explain", False):
                rows = [r for h in result.holders for r in _rows(h.sockets)]
                rows += _rows(result.unowned)
                show_about(
                    env,
                    args,
                    states=(r.state.value for r in rows),
                    scopes=(
                        scope_words(r.family, r.local_address, r.v6only, r.interface)
                        for r in rows
                        if r.remote_address is None
                    ),
                )
        return ExitStatus.OK if result.held else ExitStatus.NEGATIVE
    targets = kill_targets(result, accepted=args.accepted)
    if not targets:
        if args.json:
            write_json({"who": who_json(result), "kill": None}, env.stdout)
        else:
            env.show(*render_who(result, every_connection=every), no_color=args.no_color)
        env.note(_nothing_to_kill(result, args.accepted))
        return ExitStatus.NEGATIVE
    if not args.yes:
        names = ", ".join(owner_text(h.name, h.pid) for h in targets)
        if not args.json:
            env.show(*render_who(result, every_connection=every), no_color=args.no_color)
        sig = "SIGTERM, then SIGKILL" if args.force else "SIGTERM"
        answer = env.ask(f"send {sig} to {names}?")
        if answer is None:
            env.error("--kill asks for confirmation on a terminal; stdin is not one: add --yes")
            return ExitStatus.USAGE
        if not answer:
            env.note("nothing signalled")
            return ExitStatus.NEGATIVE
    report = kill_holders(result, force=args.force, timeout_s=args.timeout, accepted=args.accepted)
    if args.json:
        write_json({"who": who_json(result), "kill": report}, env.stdout)
    else:
        if args.yes:
            env.show(*render_who(result, every_connection=every), no_color=args.no_color)
        env.show(*render_kill(report), no_color=args.no_color)
    return ExitStatus.OK if report.port_free else ExitStatus.NEGATIVE


def _rows(socks: Sequence[Socket]) -> list[Any]:
    """The rows behind ``socks`` (``SocketRows``), else the sockets as row-like records
    (``family``, ``local_address``, ``remote_address``, ``state`` ...)."""
    from portscope.sockets import Row

    rows = getattr(socks, "rows", None)
    if rows is not None:
        return list(rows)
    return [
        Row(s.proto, s.family, s.state, s.local.address, s.local.port,
            None if s.remote is None else s.remote.address,
            None if s.remote is None else s.remote.port, s.recv_q, s.send_q, s.uid,
            s.inode, s.interface, s.v6only, s.cookie, s.netns)
        for s in socks
    ]  # fmt: skip


def _identify(result: WhoResult) -> list[Identity]:
    """What the TCP listeners on the port speak, reached from here (loopback for
    wildcard listeners)."""
    import asyncio

    from portscope.identify import identify_many, listener_endpoints

    sockets = [s for h in result.holders for s in h.sockets] + list(result.unowned)
    endpoints = listener_endpoints(sockets)
    return asyncio.run(identify_many(endpoints)) if endpoints else []


def _nothing_to_kill(result: WhoResult, accepted: bool) -> str:
    """Why ``--kill`` signals nobody, in one line."""
    import os

    from portscope.diagnose import HolderRole
    from portscope.diagnose.who import holder_roles

    roles = set(holder_roles(result).values())
    if HolderRole.ACCEPTED in roles and not accepted:
        return (
            "the visible processes hold only connections accepted on this port (the "
            "listener is not theirs): nothing signalled; --accepted signals them too"
        )
    if HolderRole.CLIENT in roles:
        return (
            f"nothing listens on port {result.port} and it is in the ephemeral range: it is "
            "only the source port of outgoing connections (clients, not servers): nothing "
            "signalled"
        )
    if result.held:
        return "the sockets on this port belong to processes portscope cannot see " + (
            "(another PID namespace or container); nothing signalled"
            if os.geteuid() == 0
            else "(another user's); run as root to kill them"
        )
    if result.orphans:
        return "no process holds the port, only sockets the kernel is closing (see the note)"
    return f"nobody holds port {result.port}: nothing signalled"
