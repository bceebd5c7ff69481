"""``portscope probe HOST PORT[,PORT...]``: open, closed, filtered or unreachable, and why."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from portscope.cli._base import Env, ExitStatus, Parser, checked
from portscope.errors import InvalidInput

if TYPE_CHECKING:
    from portscope.identify import Identity
    from portscope.models import ProbeResult

HELP = (
    "is HOST:PORT open, closed or filtered, and why (like nc -zv); exit 0 only if all open; "
    "--identify says what answers"
)


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
        "--identify",
        action="store_true",
        help="identify what answers on each open TCP port by speaking its protocol "
        "(service, product, version, TLS certificate, evidence)",
    )
    parser.add_argument(
        "--version-timeout",
        type=checked(_timeout),
        default=None,
        metavar="SECONDS",
        help="with --identify: at most this long per open port (default 8)",
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
    if args.version_timeout is not None and not args.identify:
        raise InvalidInput("--version-timeout only applies with --identify")
    parse_ports(args.ports, default_proto=proto)  # bad ports: exit 2 before resolving
    results = probe(
        args.host,
        args.ports,
        proto=proto,
        family=args.family,
        timeout_s=args.timeout,
        banner=args.banner,
    )
    identities = _identify(args, results) if args.identify else []
    if args.json:
        doc = probe_json(args.host, proto, results)
        if args.identify:
            from portscope.render.identify import identity_dict

            by_port = {(i.address, i.port, i.proto): identity_dict(i) for i in identities}
            for item in doc["results"]:
                key = (item["address"], item["port"], item["proto"])
                item["identity"] = by_port.get(key)
        write_json(doc, env.stdout)
    else:
        env.show(*render_probe(results, ttl=args.reason), no_color=args.no_color)
        if identities:
            from portscope.render.identify import render_identities

            env.show(*render_identities(identities), no_color=args.no_color)
    ok = bool(results) and all(r.state is PortState.OPEN for r in results)
    return ExitStatus.OK if ok else ExitStatus.NEGATIVE


def _identify(args: argparse.Namespace, results: list[ProbeResult]) -> list[Identity]:
    """Identities of the open TCP ports in ``results`` (portscope.identify)."""
    import asyncio

    from portscope.identify import DEFAULT_TIMEOUT_S, identify_many, identify_udp_answer
    from portscope.models import PortState, Proto
    from portscope.render.scan import is_name

    open_tcp = [(r.address, r.port) for r in results
                if r.proto is Proto.TCP and r.state is PortState.OPEN]  # fmt: skip
    hosts = {r.address: r.host for r in results if is_name(r.host)}
    timeout_s = args.version_timeout or DEFAULT_TIMEOUT_S
    found = asyncio.run(identify_many(open_tcp, timeout_s=timeout_s, hosts=hosts))
    for r in results:  # UDP: what the answer already says (nothing more is sent)
        if r.proto is Proto.UDP and r.banner:
            udp = identify_udp_answer(r.address, r.port, r.banner)
            if udp is not None:
                found.append(udp)
    return found
