"""``portscope serve [--host ADDR] [--port N] [--allow-kill] [--db PATH] [--no-firewall]
[-N NETNS]``: the local web dashboard."""

from __future__ import annotations

import argparse
import importlib.util

from portscope.cli._base import Env, ExitStatus, Parser, add_netns_option

HELP = "local web dashboard of this host's ports, on loopback (needs portscope[web])"
INSTALL_HINT = "portscope serve needs the web extra: pip install 'portscope[web]'"
_TRIES = 10


def configure(parser: Parser) -> None:
    parser.add_argument(
        "--host",
        action="append",
        metavar="ADDR",
        help="loopback address to bind (127.0.0.1, ::1, any of 127.0.0.0/8); repeatable; "
        "default 127.0.0.1 and ::1. Other addresses are refused: use an SSH tunnel",
    )
    parser.add_argument(
        "--port", type=int, metavar="N", help="port to listen on, 1-65535 (default: a random one)"
    )
    parser.add_argument(
        "--allow-kill",
        action="store_true",
        help="show kill buttons on port pages (POST with a CSRF token; SIGTERM through the "
        "same start-time check as 'who --kill')",
    )
    parser.add_argument(
        "--db",
        metavar="PATH",
        help="the history store the port and scans pages read, opened read-only "
        "(default: $PORTSCOPE_DB, else $XDG_DATA_HOME/portscope/history.db, i.e. "
        "~/.local/share/portscope/history.db); a missing store is a note on those pages",
    )
    parser.add_argument(
        "--no-firewall",
        action="store_true",
        help="do not read the firewall: the host page colours doors by bind scope only "
        "(default: each door shows the verdict from outside, as 'portscope exposure'; the "
        "ruleset is read at most every 5 s, and needs CAP_NET_ADMIN)",
    )
    add_netns_option(parser, what="sockets (live pages)")


def _loopback(text: str) -> str | None:
    import ipaddress

    try:
        address = ipaddress.ip_address(text.strip("[]"))
    except ValueError:
        return None
    return str(address) if address.is_loopback else None


def _bind(hosts: list[str], port: int) -> list[object]:
    """Listening sockets on every host, one port; port 0 picks one free on all of them.

    Raises:
        OSError: a host cannot be bound on that port.
    """
    import socket

    sockets: list[socket.socket] = []
    try:
        for host in hosts:
            family = socket.AF_INET6 if ":" in host else socket.AF_INET
            sock = socket.socket(family, socket.SOCK_STREAM)
            sockets.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.bind((host, port))
            port = sock.getsockname()[1]
            sock.listen(128)
    except OSError:
        for sock in sockets:
            sock.close()
        raise
    return list(sockets)


def run(args: argparse.Namespace, env: Env) -> int:
    if args.port is not None and not 1 <= args.port <= 65535:
        env.error(f"--port {args.port} is out of range: give 1-65535")
        return ExitStatus.USAGE
    hosts = []
    for text in args.host or []:
        address = _loopback(text)
        if address is None:
            env.error(
                f"--host {text!r} is not a loopback address: portscope serve binds "
                "127.0.0.0/8 or ::1 only (reach it from elsewhere through an SSH tunnel)"
            )
            return ExitStatus.USAGE
        hosts.append(address)
    if args.json:
        env.error("portscope serve has no --json output; its pages are the output")
        return ExitStatus.USAGE
    if any(importlib.util.find_spec(m) is None for m in ("starlette", "uvicorn", "jinja2")):
        env.error(INSTALL_HINT)
        return ExitStatus.USAGE
    # The default binds both loopbacks on one port; without IPv6 here, 127.0.0.1 alone.
    choices = [hosts] if hosts else [["127.0.0.1", "::1"], ["127.0.0.1"]]
    sockets: list[object] | None = None
    last: OSError | None = None
    for hosts in choices:
        # a random port free on 127.0.0.1 may be taken on ::1: a few tries, bounded
        for _ in range(1 if args.port else _TRIES):
            try:
                sockets = _bind(hosts, args.port or 0)
                break
            except OSError as err:
                last = err
        if sockets is not None:
            break
    if sockets is None:
        env.error(f"cannot listen on {', '.join(hosts)} port {args.port or 'any'}: {last}")
        return ExitStatus.USAGE
    return _serve(sockets, hosts, args, env)


def _serve(sockets: list[object], hosts: list[str], args: argparse.Namespace, env: Env) -> int:
    import os
    import socket
    from functools import partial
    from types import FrameType

    import uvicorn

    from portscope.history import default_path
    from portscope.history._postgres import is_dsn
    from portscope.render.live import read_snapshot
    from portscope.web.app import Settings, create_app

    db = args.db or default_path()
    settings = Settings(
        allow_kill=args.allow_kill,
        db=db if is_dsn(db) else os.path.abspath(db),
        source=partial(read_snapshot, netns=args.netns),
        netns=args.netns,
        firewall=not args.no_firewall,
    )
    socks = [s for s in sockets if isinstance(s, socket.socket)]
    port = socks[0].getsockname()[1]
    for host in hosts:
        shown = f"[{host}]" if ":" in host else host
        env.stdout.write(f"portscope serve: http://{shown}:{port}/?token={settings.token}\n")
    env.stdout.write(
        ("kill buttons on (--allow-kill)" if args.allow_kill else "read-only")
        + "; Ctrl-C stops\n"
    )  # fmt: skip
    env.stdout.flush()
    config = uvicorn.Config(
        create_app(settings),
        log_level="warning",
        access_log=False,  # the token is in every URL: keep it out of logs
        lifespan="off",
        server_header=False,
        proxy_headers=False,
        timeout_graceful_shutdown=5,
    )

    class Server(uvicorn.Server):
        def handle_exit(self, sig: int, frame: FrameType | None) -> None:
            settings.stopping = True  # live streams end at their next tick
            super().handle_exit(sig, frame)

    server = Server(config)
    try:
        server.run(sockets=socks)
    finally:
        for s in socks:
            s.close()
    return ExitStatus.OK
