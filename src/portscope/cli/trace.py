"""``portscope trace HOST:PORT``: where on the path the probes to a port stop, and why."""

from __future__ import annotations

import argparse
from collections.abc import Callable

from portscope.cli._base import Env, ExitStatus, Parser, checked
from portscope.errors import InvalidInput

HELP = "where on the path to HOST:PORT the SYNs stop (TCP traceroute; root)"


def _target(text: str) -> tuple[str, int]:
    from portscope._ports import check_port

    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise InvalidInput(
            f"target {text!r}: expected HOST:PORT (an IPv6 address as [2001:db8::1]:443)"
        )
    return host.strip("[]"), check_port(int(port))


def _int_in(kind: str, low: int, high: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        if not text.isdigit() or not low <= int(text) <= high:
            raise InvalidInput(f"{kind} {text!r}: expected a whole number from {low} to {high}")
        return int(text)

    parse.__name__ = kind
    return checked(parse)


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 < value <= 60:
        raise InvalidInput(f"--timeout {text!r}: expected seconds above 0, at most 60")
    return value


def configure(parser: Parser) -> None:
    parser.add_argument("target", type=checked(_target), metavar="HOST:PORT")
    kind = parser.add_mutually_exclusive_group()
    kind.add_argument("-U", "--udp", action="store_true", help="UDP datagrams (the port's payload)")
    kind.add_argument("-I", "--icmp", action="store_true", help="ICMP echo requests")
    fam = parser.add_mutually_exclusive_group()
    fam.add_argument("-4", dest="family", action="store_const", const=4, help="IPv4 only")
    fam.add_argument("-6", dest="family", action="store_const", const=6, help="IPv6 only")
    parser.add_argument(
        "-m", "--max-hops", type=_int_in("--max-hops", 1, 64), default=30, metavar="N",
        help="largest TTL sent (default 30)",
    )  # fmt: skip
    parser.add_argument(
        "--timeout", type=checked(_seconds), default=1.0, metavar="SECONDS",
        help="wait per round of probes (default 1)",
    )  # fmt: skip
    parser.add_argument(
        "--tries", type=_int_in("--tries", 1, 5), default=2, metavar="N",
        help="rounds: unanswered hops are probed again (default 2)",
    )  # fmt: skip


def run(args: argparse.Namespace, env: Env) -> int:
    from portscope.render import write_json
    from portscope.render.trace import render_trace, trace_json
    from portscope.scanner._raw import can_send_raw
    from portscope.scanner.trace import TraceVerdict, trace

    host, port = args.target
    proto = "udp" if args.udp else "icmp" if args.icmp else "tcp"
    if not can_send_raw():
        env.error(
            "trace sends raw packets and needs root or CAP_NET_RAW; without it, "
            "'tracepath HOST' or 'portscope probe HOST PORT' say less"
        )
        return ExitStatus.USAGE
    result = trace(
        host, port, proto=proto, max_hops=args.max_hops, timeout_s=args.timeout,
        tries=args.tries, family=args.family,
    )  # fmt: skip
    if args.json:
        write_json(trace_json(result), env.stdout)
    else:
        env.show(*render_trace(result), no_color=args.no_color)
    return ExitStatus.OK if result.verdict is TraceVerdict.REACHED else ExitStatus.NEGATIVE
