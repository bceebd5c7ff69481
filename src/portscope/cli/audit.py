"""``portscope audit [--fail-on SEVERITY] [--hint PORT=KIND]``."""

from __future__ import annotations

import argparse

from portscope.cli._base import Env, ExitStatus, Parser, add_netns_option, checked
from portscope.errors import InvalidInput

HELP = "review this machine's listeners for exposure"


def _hint(text: str) -> tuple[int, str]:
    from portscope.diagnose._common import parse_port

    port, sep, kind = text.partition("=")
    if not sep or not kind:
        raise InvalidInput(f"{text!r} is not a hint: give PORT=KIND, e.g. 16379=redis")
    return parse_port(port), kind.strip().lower()


def _severity(text: str) -> object:
    from portscope.diagnose import Severity

    return Severity.parse(text)


def configure(parser: Parser) -> None:
    parser.add_argument(
        "--fail-on",
        metavar="SEVERITY",
        type=checked(_severity),
        help="exit 1 when a finding is at or above SEVERITY (info, low, medium, high, "
        "critical): for CI pipelines",
    )
    parser.add_argument(
        "--hint",
        action="append",
        default=[],
        metavar="PORT=KIND",
        type=checked(_hint),
        help="treat PORT as a service kind (redis, mysql, postgresql, mongodb, "
        "elasticsearch, memcached, docker, etcd, kubelet ...); repeatable",
    )
    parser.add_argument(
        "--no-info", action="store_true", help="hide the info-level list of exposed listeners"
    )
    parser.add_argument(
        "--identify",
        action="store_true",
        help="connect to each TCP listener (loopback for wildcard ones) and confirm what it "
        "speaks: 'Redis answered PING without authentication'; 6379 speaking HTTP is not Redis",
    )
    parser.add_argument(
        "--no-firewall",
        action="store_true",
        help="judge by bind addresses only (do not read the host firewall)",
    )
    add_netns_option(parser, what="listeners")


def run(args: argparse.Namespace, env: Env) -> int:
    from portscope.diagnose import audit
    from portscope.render import write_json
    from portscope.render.diagnose import audit_json, render_audit

    notes: list[str] = []
    findings = audit(
        service_hints=dict(args.hint),
        identify=args.identify,
        netns=args.netns,
        firewall=not args.no_firewall,
        notes=notes,
    )
    fail_on = args.fail_on
    failed = fail_on is not None and any(f.severity.rank >= fail_on.rank for f in findings)
    if args.json:
        shown = [f for f in findings if not (args.no_info and f.severity.value == "info")]
        write_json(audit_json(shown, fail_on, failed, notes), env.stdout)
    else:
        env.show(*render_audit(findings, show_info=not args.no_info), no_color=args.no_color)
        for note in notes:  # as ls: partial process owners without privilege
            env.note(note)
    return ExitStatus.NEGATIVE if failed else ExitStatus.OK
