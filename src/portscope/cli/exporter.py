"""``portscope exporter``: Prometheus metrics of this host's sockets, read at scrape time."""

from __future__ import annotations

import argparse

from portscope.cli._base import Env, ExitStatus, Parser, UsageError, checked

HELP = "serve Prometheus metrics of listeners, sockets and ephemeral ports (extra [exporter])"

_HINT = "portscope exporter needs the exporter extra: pip install 'portscope[exporter]'"


def _listen(text: str) -> tuple[str, int]:
    """``ADDRESS:PORT`` or ``[IPV6]:PORT``; port 0 picks a free port."""
    import ipaddress

    from portscope._ports import parse_port
    from portscope.errors import InvalidInput

    host, sep, port = text.rpartition(":")
    if not sep or not host:
        raise InvalidInput(f"--listen {text!r}: give ADDRESS:PORT (127.0.0.1:9105, [::1]:9105)")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    try:
        address = str(ipaddress.ip_address(host))
    except ValueError:
        raise InvalidInput(
            f"--listen {text!r}: {host!r} is not an IP address (names are not resolved)"
        ) from None
    return address, parse_port(port, allow_zero=True, names=False)


def _allowlist(text: str) -> frozenset[int]:
    from portscope.registry._answer import parse_port_list

    return parse_port_list(text)


def configure(parser: Parser) -> None:
    parser.epilog = (
        "Prometheus scrapes http://ADDRESS:PORT/metrics; every scrape reads the kernel's "
        "socket table then (no background thread). Metrics and labels: docs/exporter.md."
    )
    parser.add_argument(
        "--listen",
        type=checked(_listen),
        default=None,
        metavar="ADDRESS:PORT",
        help="where to serve (default 127.0.0.1:9105; port 0 picks a free one)",
    )
    parser.add_argument(
        "--top-destinations",
        type=int,
        default=10,
        metavar="N",
        help="destinations with their own ephemeral-port series, busiest first "
        "(0-1000, default 10)",
    )
    parser.add_argument(
        "--port-allowlist",
        type=checked(_allowlist),
        metavar="PORTS",
        help="listener series only for these ports (22,80,8000-8100): fewer series per host",
    )
    parser.add_argument(
        "--once",
        action="store_true",
        help="print one scrape in the text exposition format and exit (for promtool, cron)",
    )


def run(args: argparse.Namespace, env: Env) -> int:
    if args.json:
        raise UsageError("exporter speaks the Prometheus text format, not --json")
    try:
        from prometheus_client import CollectorRegistry, generate_latest, start_http_server
    except ImportError:
        env.error(_HINT)
        return ExitStatus.USAGE
    from portscope.exporter import DEFAULT_LISTEN, SocketCollector

    collector = SocketCollector(
        top_destinations=args.top_destinations, port_allowlist=args.port_allowlist
    )
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    if args.once:
        env.stdout.write(generate_latest(registry).decode("utf-8"))
        return ExitStatus.OK
    address, port = args.listen or DEFAULT_LISTEN
    try:
        server, thread = start_http_server(port, addr=address, registry=registry)
    except OSError as err:
        env.error(
            f"cannot listen on {_show(address, port)}: {err.strerror or err} "
            f"('portscope why bind {port} --addr {address}' tells why)"
        )
        return ExitStatus.NEGATIVE
    bound = server.server_address[1]
    env.stderr.write(f"portscope exporter: serving http://{_show(address, bound)}/metrics\n")
    env.stderr.flush()
    return _serve_until_signal(server, thread)


def _show(address: str, port: int) -> str:
    return f"[{address}]:{port}" if ":" in address else f"{address}:{port}"


def _serve_until_signal(server: object, thread: object) -> int:
    """Wait for SIGINT (exit 130) or SIGTERM (exit 0), then stop serving."""
    import signal
    import threading

    stop = threading.Event()
    status = [int(ExitStatus.OK)]

    def on_term(signum: int, frame: object) -> None:
        stop.set()

    previous = signal.signal(signal.SIGTERM, on_term)
    try:
        while not stop.wait(3600):
            pass
    except KeyboardInterrupt:
        status[0] = ExitStatus.INTERRUPTED
    finally:
        signal.signal(signal.SIGTERM, previous)
        server.shutdown()  # type: ignore[attr-defined]
        server.server_close()  # type: ignore[attr-defined]
        thread.join(5)  # type: ignore[attr-defined]
    return status[0]
