"""``portscope exposure [--from ADDR|CIDR] [--netns NS] [-t|-u] [-4|-6] [--json]``."""

from __future__ import annotations

import argparse

from portscope.cli._base import Env, ExitStatus, Parser, add_transport_options, checked

HELP = "what the firewall and NAT really let in: every listener and DNAT'd port, with the rule"


def _source(text: str) -> str:
    import ipaddress

    from portscope.errors import InvalidTarget

    try:
        ipaddress.ip_network(text.strip(), strict=False)
    except ValueError:
        raise InvalidTarget(
            f"--from {text!r}: give an address or prefix, e.g. 198.18.5.9 or 198.18.5.0/24"
        ) from None
    return text.strip()


def configure(parser: Parser) -> None:
    parser.epilog = (
        "For each listener (and each port a DNAT/REDIRECT rule serves), the verdict for a "
        "new connection: open, closed, filtered (dropped), rejected (and how) or unknown "
        "(a rule the model does not understand could decide; it is quoted). Default source: "
        "any non-local address, arriving on each non-loopback interface; source prefixes "
        "the ruleset names are shown as other sources. Reading the ruleset needs "
        "CAP_NET_ADMIN; without it the answer falls back to bind addresses, marked."
    )
    parser.add_argument(
        "--from",
        dest="source",
        metavar="ADDR|CIDR",
        type=checked(_source),
        help="evaluate connections from this address or prefix (default: from outside)",
    )
    parser.add_argument(
        "-N",
        "--netns",
        metavar="NAME|PATH",
        help="evaluate a network namespace (a name under /run/netns, or a path); needs root",
    )
    parser.add_argument(
        "--reader",
        choices=["auto", "nft", "iptables"],
        default="auto",
        help="ruleset reader: auto (nft JSON; iptables-nft-save for xt rules), nft, iptables",
    )
    add_transport_options(parser, exclusive=False, tcp="TCP ports only", udp="UDP ports only")
    parser.add_argument("--wide", action="store_true", help="never hide columns")


def run(args: argparse.Namespace, env: Env) -> int:
    from portscope.diagnose.exposure import exposure
    from portscope.models import Proto
    from portscope.render import safe, write_json
    from portscope.render.exposure import exposure_json, notes, render_exposure

    protos = [Proto.TCP, Proto.UDP]
    if args.tcp != args.udp:
        protos = [Proto.TCP if args.tcp else Proto.UDP]
    report = exposure(source=args.source, netns=args.netns, protos=protos, prefer=args.reader)
    if args.ipv4 != args.ipv6:
        from dataclasses import replace

        fam = 4 if args.ipv4 else 6
        report = replace(report, rows=tuple(r for r in report.rows if r.family == fam))
    if args.json:
        write_json(exposure_json(report), env.stdout)
    else:
        env.show(*render_exposure(report), no_color=args.no_color, wide=args.wide)
    if not report.firewall_read:
        env.note(safe(f"the firewall could not be read: {report.firewall_error}"))
    for note in notes(report):
        env.note(note)
    return ExitStatus.OK
