"""``portscope probe HOST PORT[,PORT...]``: open, closed, filtered or unreachable, and why."""

from __future__ import annotations

import argparse

from portscope.cli._base import Env, ExitStatus, Parser, checked
from portscope.errors import InvalidInput

HELP = "is HOST:PORT open, closed or filtered, and why (like nc -zv); exit 0 only if all open"


def _timeout(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 < value <= 3600:
        raise InvalidInput(f"timeout {text!r}: expected seconds, above 0 and at most 3600")
    return value


def configure(parser: Parser) -> None:
    parser.add_argument("host", help="host name or address (every A/AAAA answer is probed)")
    parser.add_argument("ports", help="ports: 22 | 22,80,443 | 8000-8010 | T:80,U:53 (nmap syntax)")
    parser.add_argument("-u", "--udp", action="store_true", help="probe UDP instead of TCP")
    fam = parser.add_mutually_exclusive_group()
    fam.add_argument("-4", dest="family", action="store_const", const=4, help="IPv4 only")
    fam.add_argument("-6", dest="family", action="store_const", const=6, help="IPv6 only")
    parser.add_argument(
        "--timeout",
        type=checked(_timeout),
        default=3.0,
        metavar="SECONDS",
        help="wait this long for an answer per port (default 3; the kernel resends a SYN "
        "after 1 s and 3 s)",
    )
    parser.add_argument(
        "--banner", action="store_true", help="read what an open TCP service sends first"
    )
    parser.add_argument(
        "--reason", action="store_true",
        help="add the reply's TTL to each reason where it was read (UDP: the ICMP error)",
    )  # fmt: skip


def run(args: argparse.Namespace, env: Env) -> int:
    from portscope.models import PortState, Proto
    from portscope.render import write_json
    from portscope.render.scan import probe_json, render_probe
    from portscope.scanner.probe import probe
    from portscope.scanner.targets import parse_ports

    proto = Proto.UDP if args.udp else Proto.TCP
    parse_ports(args.ports, default_proto=proto)  # bad ports: exit 2 before resolving
    results = probe(
        args.host,
        args.ports,
        proto=proto,
        family=args.family,
        timeout_s=args.timeout,
        banner=args.banner,
    )
    if args.json:
        write_json(probe_json(args.host, proto, results), env.stdout)
    else:
        env.show(*render_probe(results, ttl=args.reason), no_color=args.no_color)
    ok = bool(results) and all(r.state is PortState.OPEN for r in results)
    return ExitStatus.OK if ok else ExitStatus.NEGATIVE
