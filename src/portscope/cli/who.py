"""``portscope who PORT[/tcp|/udp] [-t|-u] [-4|-6] [--kill [--force] [--timeout S] [--yes]]``."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from portscope.cli._base import Env, ExitStatus, Parser, add_transport_options, bounded, checked
from portscope.diagnose._common import owner_text, parse_port_proto

if TYPE_CHECKING:
    from portscope.diagnose import WhoResult

HELP = "which processes hold a port (any address, IPv4 and IPv6); --kill to free it"


def configure(parser: Parser) -> None:
    parser.add_argument(
        "port",
        metavar="PORT[/tcp|/udp]",
        type=checked(parse_port_proto),
        help="port 1-65535 or a service name (redis, http-alt), optionally /tcp or /udp "
        "(default: both)",
    )
    add_transport_options(parser, exclusive=True, tcp="TCP sockets only", udp="UDP sockets only")
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
        "-y", "--yes", action="store_true", help="with --kill: do not ask for confirmation"
    )


def run(args: argparse.Namespace, env: Env) -> int:
    from portscope.diagnose import kill_holders, kill_targets, who
    from portscope.models import Proto
    from portscope.render import write_json
    from portscope.render.diagnose import render_kill, render_who, who_json

    port, proto = args.port
    flag = Proto.TCP if args.tcp else Proto.UDP if args.udp else None
    if flag is not None and proto is not None and flag is not proto:
        env.error(f"{port}/{proto.value} contradicts -{flag.value[0]}: give one transport")
        return ExitStatus.USAGE
    proto = proto or flag
    families = [4] if args.ipv4 else [6] if args.ipv6 else None
    if (args.force or args.yes or args.accepted) and not args.kill:
        env.error("--force, --yes and --accepted only apply with --kill")
        return ExitStatus.USAGE
    # --kill shows every socket of each holder before asking: the other ports close too.
    result = who(port, proto, families=families, others=args.kill)
    if not args.kill:
        if args.json:
            write_json(who_json(result), env.stdout)
        else:
            env.show(*render_who(result), no_color=args.no_color)
        return ExitStatus.OK if result.held else ExitStatus.NEGATIVE
    targets = kill_targets(result, accepted=args.accepted)
    if not targets:
        if args.json:
            write_json({"who": who_json(result), "kill": None}, env.stdout)
        else:
            env.show(*render_who(result), no_color=args.no_color)
        env.note(_nothing_to_kill(result, args.accepted))
        return ExitStatus.NEGATIVE
    if not args.yes:
        names = ", ".join(owner_text(h.name, h.pid) for h in targets)
        if not args.json:
            env.show(*render_who(result), no_color=args.no_color)
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
            env.show(*render_who(result), no_color=args.no_color)
        env.show(*render_kill(report), no_color=args.no_color)
    return ExitStatus.OK if report.port_free else ExitStatus.NEGATIVE


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
