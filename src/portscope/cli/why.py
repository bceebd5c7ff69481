"""``portscope why bind PORT [--addr ADDR] [-t|-u] [-4|-6]`` and
``portscope why connect HOST:PORT [-t|-u] [-4|-6]``.

Ports may be service names (``why connect localhost:http-alt``, ``why bind http-alt``).
"""

from __future__ import annotations

import argparse

from portscope.cli._base import Env, ExitStatus, Parser, add_transport_options, bounded

HELP = "why a bind or connect fails: 'why bind PORT', 'why connect HOST:PORT'"


def configure(parser: Parser) -> None:
    parser.add_argument("action", choices=["bind", "connect"], help="what to explain")
    parser.add_argument(
        "target",
        metavar="PORT | HOST:PORT",
        help="bind: a port or service name; connect: HOST:PORT or [IPV6]:PORT",
    )
    add_transport_options(
        parser,
        exclusive=True,
        tcp="TCP (the default)",
        udp="UDP instead of TCP",
        ipv4="IPv4: bind 0.0.0.0; connect to IPv4 addresses",
        ipv6="IPv6: bind [::]; connect to IPv6 addresses",
    )
    bind = parser.add_argument_group("bind")
    bind.add_argument(
        "--addr", metavar="ADDR", help="address to bind (default 0.0.0.0, all IPv4 addresses)"
    )
    bind.add_argument(
        "--reuseaddr",
        action="store_true",
        help="assume the program sets SO_REUSEADDR (default: a plain bind())",
    )
    bind.add_argument("--reuseport", action="store_true", help="assume it sets SO_REUSEPORT")
    conn = parser.add_argument_group("connect")
    conn.add_argument(
        "--timeout",
        type=bounded("--timeout", low=0, low_open=True, high=3600),
        default=3.0,
        metavar="SECONDS",
        help="seconds to wait for the probe's answer, above 0 and at most 3600 (default 3)",
    )


def run(args: argparse.Namespace, env: Env) -> int:
    from portscope.diagnose._common import parse_host_port, parse_port
    from portscope.models import Proto
    from portscope.render import write_json

    proto = Proto.UDP if args.udp else Proto.TCP
    family = 4 if args.ipv4 else 6 if args.ipv6 else None
    if args.action == "bind":
        from portscope.diagnose import why_bind
        from portscope.render.diagnose import bind_json, render_bind

        if args.timeout != 3.0:
            env.error("--timeout applies to 'why connect' only")
            return ExitStatus.USAGE
        addr = args.addr
        if addr is None and family == 6:
            addr = "::"
        elif addr is not None and family is not None:
            from portscope.diagnose._common import family_of, parse_address

            if family_of(parse_address(addr)) != family:
                env.error(f"--addr {addr} is not an IPv{family} address (-{family})")
                return ExitStatus.USAGE
        diag = why_bind(
            parse_port(args.target),
            addr=addr,
            proto=proto,
            reuseaddr=args.reuseaddr,
            reuseport=args.reuseport,
        )
        if args.json:
            write_json(bind_json(diag), env.stdout)
        else:
            env.show(*render_bind(diag))
        ok = diag.ok if diag.ok is not None else diag.predicted_ok
        return ExitStatus.OK if ok else ExitStatus.NEGATIVE
    from portscope.diagnose import ConnectVerdict, why_connect
    from portscope.render.diagnose import render_connect

    if args.addr or args.reuseaddr or args.reuseport:
        env.error("--addr, --reuseaddr and --reuseport apply to 'why bind' only")
        return ExitStatus.USAGE
    host, port = parse_host_port(args.target)
    conn = why_connect(host, port, proto=proto, timeout_s=args.timeout, family=family)
    if args.json:
        write_json(conn, env.stdout)
    else:
        env.show(*render_connect(conn))
    return ExitStatus.OK if conn.verdict is ConnectVerdict.OPEN else ExitStatus.NEGATIVE
