"""``portscope watch``: listeners as they appear and go, one line (or JSON) per event."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import TYPE_CHECKING

from portscope.cli._base import (
    Env,
    ExitStatus,
    Parser,
    add_netns_option,
    add_transport_options,
    checked,
)
from portscope.cli._history import add_db_option, open_db
from portscope.cli.ls import add_backend_option
from portscope.errors import InvalidInput

if TYPE_CHECKING:
    from portscope.history import Event, Store
    from portscope.history._exec import EventCommand

HELP = "print listeners as they appear and go (added, removed, scope, owner changes)"


def _number(kind: str, *, low: float, high: float, integer: bool = False) -> Callable[[str], float]:
    def parse(text: str) -> float:
        try:
            value = int(text) if integer else float(text)
        except ValueError:
            value = low - 1
        if not low <= value <= high:
            unit = "a whole number" if integer else "a number"
            raise InvalidInput(f"{kind} {text!r}: expected {unit} from {low:g} to {high:g}")
        return value

    parse.__name__ = kind
    return checked(parse)


def _ports(text: str) -> frozenset[int]:
    from portscope._ports import parse_port

    return frozenset(parse_port(p, allow_zero=False) for p in text.split(",") if p.strip())


def configure(parser: Parser) -> None:
    parser.epilog = (
        "Polls the listening sockets (a kernel-filtered dump: connections cost nothing) "
        "every --interval. A new listener is reported when it is still there one interval "
        "later; one that is gone by then is reported once as 'transient'. Ctrl-C stops "
        "(exit 130). --exec runs CMD per event with the event as JSON on its stdin."
    )
    add_transport_options(parser, exclusive=False, tcp="TCP listeners only", udp="UDP only")
    parser.add_argument(
        "-p", "--port", type=checked(_ports), metavar="PORTS", help="only these ports (22,80)"
    )
    parser.add_argument(
        "--interval",
        type=_number("--interval", low=0.05, high=3600),
        default=None,
        metavar="S",
        help="seconds between two looks (default 0.25)",
    )
    parser.add_argument(
        "--count",
        type=_number("--count", low=1, high=1e9, integer=True),
        metavar="N",
        help="stop after N events",
    )
    parser.add_argument(
        "--for",
        dest="for_s",
        type=_number("--for", low=0.05, high=1e9),
        metavar="S",
        help="stop after S seconds",
    )
    parser.add_argument(
        "--no-transient", action="store_true", help="hide listeners that lived one interval"
    )
    parser.add_argument("--save", action="store_true", help="record the events in the store")
    parser.add_argument(
        "--exec", dest="exec_cmd", metavar="CMD", help="run CMD per event (no shell; JSON on stdin)"
    )
    parser.add_argument(
        "--exec-jobs",
        type=_number("--exec-jobs", low=1, high=64, integer=True),
        default=4,
        metavar="N",
        help="commands running at once (default 4); more events wait, beyond 1000 dropped",
    )
    parser.add_argument(
        "--exec-timeout",
        type=_number("--exec-timeout", low=0.1, high=86400),
        default=60.0,
        metavar="S",
        help="kill a command running longer (default 60)",
    )
    add_netns_option(parser, what="the listeners")
    add_db_option(parser)
    add_backend_option(parser)


def run(args: argparse.Namespace, env: Env) -> int:
    import shlex
    import signal
    import time

    from portscope.history._exec import EventCommand
    from portscope.history._watch import DEFAULT_INTERVAL_S, LiveListeners, Watcher
    from portscope.models import Proto
    from portscope.render import count
    from portscope.sockets import SocketFilter

    argv = None
    if args.exec_cmd is not None:
        try:
            argv = shlex.split(args.exec_cmd)
        except ValueError as err:
            raise InvalidInput(f"--exec {args.exec_cmd!r}: {err}") from None
        if not argv:
            raise InvalidInput("--exec: empty command")
    store = open_db(args, create=True) if args.save else None
    protos = None
    if args.tcp or args.udp:
        protos = frozenset(p for p, on in ((Proto.TCP, args.tcp), (Proto.UDP, args.udp)) if on)
    families = None if args.ipv4 == args.ipv6 else frozenset({4 if args.ipv4 else 6})
    where = SocketFilter(protos=protos, families=families, sports=args.port)
    source = LiveListeners(where, backend=args.backend, netns=args.netns)
    watcher = Watcher(source, transient=not args.no_transient)
    interval = args.interval or DEFAULT_INTERVAL_S
    command = (
        None
        if argv is None
        else EventCommand(argv, jobs=args.exec_jobs, timeout_s=args.exec_timeout)
    )
    out = _Output(env, args.json, store, command, netns=args.netns is not None)
    status: int = ExitStatus.OK
    # SIGTERM ends the watch cleanly too: events waiting for the store are saved first
    previous = signal.signal(signal.SIGTERM, _on_term)
    try:
        start = time.monotonic()
        first = watcher.prime()
        env.stderr.write(
            f"watching {count(len(first), 'listener')} every {interval:g} s; Ctrl-C stops\n"
        )
        env.stderr.flush()
        for note in source.notes:
            env.note(note)
        seen_notes = len(source.notes)
        deadline = None if args.for_s is None else start + args.for_s
        tick = time.monotonic()
        while True:
            tick += interval
            pause = tick - time.monotonic()
            if deadline is not None:
                pause = min(pause, deadline - time.monotonic())
            if pause > 0:
                time.sleep(pause)
            else:
                tick = time.monotonic()  # a slow poll: no burst to catch up
            if deadline is not None and time.monotonic() >= deadline:
                break
            events = watcher.poll()
            if events:
                out.emit(events)
            out.round()
            for note in source.notes[seen_notes:]:
                env.note(note)
            seen_notes = len(source.notes)
            if args.count is not None and out.emitted >= args.count:
                break
    except KeyboardInterrupt:
        status = ExitStatus.INTERRUPTED
    except _Terminated:
        status = _TERMINATED
    finally:
        out.close(interrupted=status != ExitStatus.OK)
        signal.signal(signal.SIGTERM, previous)
    if status is ExitStatus.INTERRUPTED:
        env.error("interrupted")
    return status


class _Terminated(Exception):
    """SIGTERM (a service manager stopping the watch): stop as after Ctrl-C."""


#: the exit status after SIGTERM (128 + 15, as a shell reports it)
_TERMINATED = 143


def _on_term(signum: int, frame: object) -> None:
    import signal

    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # the saving that follows is bounded
    raise _Terminated


class _Output:
    """Writes events, hands them to the store's saving thread, and runs --exec."""

    def __init__(
        self,
        env: Env,
        as_json: bool,
        store: Store | None,
        command: EventCommand | None,
        *,
        netns: bool = False,
    ) -> None:
        from portscope.history._watch import EventLog

        self.env = env
        self.as_json = as_json
        self.log = None if store is None else EventLog(store)
        self.command = command
        self.emitted = 0
        self.netns = netns  # lines name the namespace (-N)

    def emit(self, events: list[Event]) -> None:
        import json

        from portscope.render.history import event_json, event_line

        if self.log is not None:
            self.log.put(events)  # before printing: whatever was printed is queued
        stream = self.env.stdout
        for e in events:
            doc = event_json(e, stamp=True)
            if self.as_json:
                stream.write(json.dumps(doc, ensure_ascii=False, separators=(",", ":")) + "\n")
            else:
                stream.write(event_line(e, stamp=True, netns=self.netns) + "\n")
            if self.command is not None:
                payload = json.dumps(doc, ensure_ascii=False).encode() + b"\n"
                self.command.submit(payload, event_line(e, netns=self.netns))
        stream.flush()
        self.emitted += len(events)

    def round(self) -> None:
        if self.log is not None:
            for problem in self.log.problems():
                self.env.note(problem)
        if self.command is not None:
            for failure in self.command.failures():
                self.env.note(failure)

    def close(self, *, interrupted: bool) -> None:
        if self.command is not None:
            self.command.close(wait=not interrupted)
            for failure in self.command.failures():
                self.env.note(failure)
        if self.log is not None:
            unsaved = self.log.close()
            for problem in self.log.problems():
                self.env.note(problem)
            if unsaved:
                self.env.error(f"{unsaved} events could not be saved in the store")
