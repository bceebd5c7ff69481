"""``portscope who PORT[/tcp|/udp] [-t|-u] [-4|-6] [--kill [--force] [--timeout S] [--yes]]``."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from portscope.cli._base import Env, ExitStatus, Parser, add_transport_options, checked
from portscope.diagnose._common import owner_text, parse_port_proto

if TYPE_CHECKING:
    from portscope.diagnose.who import WhoResult
    from portscope.identify import Identity

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
        help="send SIGTERM to every holder and report whether the port is free (first lists "
        "every socket each holder has, other ports too, and asks; never pid 1 or "
        "portscope; checks the start time against PID reuse)",
    )
    parser.add_argument(
        "--force",
        action="store_true",
        help="with --kill: SIGKILL holders still alive after --timeout",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=5.0,
        metavar="SECONDS",
        help="with --kill: seconds to wait for holders to exit (default 5)",
    )
    parser.add_argument(
        "-y", "--yes", action="store_true", help="with --kill: do not ask for confirmation"
    )
    from portscope.cli.explain import add_explain_option

    add_explain_option(parser)
    parser.add_argument(
        "--identify",
        action="store_true",
        help="also connect to the TCP listener on loopback (or its address) and say what "
        "protocol it speaks: service, product, version, evidence",
    )


def _confirm(env: Env, question: str) -> bool | None:
    """Ask on the terminal; ``None`` when there is no terminal to ask on."""
    stdin = sys.stdin
    if stdin is None or not stdin.isatty():
        return None
    env.stderr.write(f"{question} [y/N] ")
    env.stderr.flush()
    answer = stdin.readline().strip().lower()
    return answer in ("y", "yes")


def run(args: argparse.Namespace, env: Env) -> int:
    from portscope.cli.explain import show_about
    from portscope.diagnose import kill_holders, who
    from portscope.models import Proto
    from portscope.render import write_json
    from portscope.render.diagnose import render_kill, render_who, who_json
    from portscope.sockets import bind_scope

    port, proto = args.port
    flag = Proto.TCP if args.tcp else Proto.UDP if args.udp else None
    if flag is not None and proto is not None and flag is not proto:
        env.error(f"{port}/{proto.value} contradicts -{flag.value[0]}: give one transport")
        return ExitStatus.USAGE
    proto = proto or flag
    families = [4] if args.ipv4 else [6] if args.ipv6 else None
    if args.timeout < 0:
        env.error(f"--timeout {args.timeout:g} is negative: give seconds >= 0")
        return ExitStatus.USAGE
    if (args.force or args.yes) and not args.kill:
        env.error("--force and --yes only apply with --kill")
        return ExitStatus.USAGE
    if args.identify and args.kill:
        env.error("--identify and --kill do not go together: identify first, then kill")
        return ExitStatus.USAGE
    # --kill shows every socket of each holder before asking: the other ports close too.
    result = who(port, proto, families=families, others=args.kill)
    if not args.kill:
        identities = _identify(result) if args.identify else None
        if args.json:
            doc = who_json(result)
            if identities is not None:
                from portscope.render.identify import identity_dict

                doc["identities"] = [identity_dict(i) for i in identities]
            write_json(doc, env.stdout)
        else:
            env.show(*render_who(result), no_color=args.no_color)
            if identities:
                from portscope.render.identify import render_identities

                env.show(*render_identities(identities), no_color=args.no_color)
            elif identities is not None:
                env.note("--identify: no TCP listener on this port to connect to")
            socks = [s for h in result.holders for s in h.sockets] + list(result.unowned)
            show_about(
                env,
                args,
                states=(s.state.value for s in socks),
                scopes=(bind_scope(s) for s in socks if s.remote is None),
            )
        return ExitStatus.OK if result.held else ExitStatus.NEGATIVE
    if not result.holders:
        if args.json:
            write_json({"who": who_json(result), "kill": None}, env.stdout)
        else:
            env.show(*render_who(result), no_color=args.no_color)
        if result.held:
            import os

            env.error(
                "the sockets on this port belong to processes portscope cannot see "
                + (
                    "(another PID namespace or container); nothing signalled"
                    if os.geteuid() == 0
                    else "(another user's); run as root to kill them"
                )
            )
        return ExitStatus.NEGATIVE
    if not args.yes:
        names = ", ".join(owner_text(h.name, h.pid) for h in result.holders)
        if not args.json:
            env.show(*render_who(result), no_color=args.no_color)
        sig = "SIGTERM, then SIGKILL" if args.force else "SIGTERM"
        answer = _confirm(env, f"send {sig} to {names}?")
        if answer is None:
            env.error("--kill asks for confirmation on a terminal; stdin is not one: add --yes")
            return ExitStatus.USAGE
        if not answer:
            env.note("nothing signalled")
            return ExitStatus.NEGATIVE
    report = kill_holders(result, force=args.force, timeout_s=args.timeout)
    if args.json:
        write_json({"who": who_json(result), "kill": report}, env.stdout)
    else:
        if args.yes:
            env.show(*render_who(result), no_color=args.no_color)
        env.show(*render_kill(report), no_color=args.no_color)
    return ExitStatus.OK if report.port_free else ExitStatus.NEGATIVE


def _identify(result: WhoResult) -> list[Identity]:
    """What the TCP listeners on the port speak, reached from here (loopback for
    wildcard listeners)."""
    import asyncio

    from portscope.identify import identify_many, listener_endpoints

    sockets = [s for h in result.holders for s in h.sockets] + list(result.unowned)
    endpoints = listener_endpoints(sockets)
    return asyncio.run(identify_many(endpoints)) if endpoints else []
