"""``portscope diff [A] [B]``: what changed between two snapshots, scans, or now."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from portscope.cli._base import Env, ExitStatus, Parser
from portscope.cli._history import add_db_option, open_db, store_errors

if TYPE_CHECKING:
    from portscope.history._store import ListenerTable

HELP = "what changed between two snapshots or scans (default: the last snapshot and now)"


def configure(parser: Parser) -> None:
    parser.epilog = (
        "A and B: a snapshot id, a label, 'last' (the newest snapshot), 'last~N' (N before "
        "it), 'last-scan', or 'now' (a fresh listing). Events: added, removed, "
        "scope-widened, scope-narrowed, owner-changed (another program, not another PID), "
        "state-changed (scans). Identity is (netns, transport, local address, port). "
        "Exit status as ndiff: 0 no change, 1 changes, 2 error."
    )
    parser.add_argument("a", nargs="?", default="last", metavar="A", help="default: last")
    parser.add_argument("b", nargs="?", default="now", metavar="B", help="default: now")
    add_db_option(parser)


@store_errors
def run(args: argparse.Namespace, env: Env) -> int:
    from portscope.errors import InvalidInput
    from portscope.history import (
        Event,
        SnapshotInfo,
        diff_listeners,
        diff_scans,
    )
    from portscope.render import count, write_json
    from portscope.render.history import diff_document, event_line, when

    if args.a == "now" and args.b == "now":
        raise InvalidInput("diff now now: give at least one snapshot (an id, a label, last)")
    with open_db(args, create=False) as store:
        side_a = None if args.a == "now" else store.resolve(args.a)
        side_b = None if args.b == "now" else store.resolve(args.b)
        scans = [s.kind.is_scan for s in (side_a, side_b) if s is not None]
        events: list[Event]
        if any(scans):
            if not all(scans) or side_a is None or side_b is None:
                raise InvalidInput(
                    "a scan compares with another scan only (not with a listing or now)"
                )
            events = diff_scans(*store.scan(side_a.id), *store.scan(side_b.id))
        else:
            if side_a is not None and side_b is not None:
                # two stored listings: the database leaves out what did not change
                events = diff_listeners(*store.changed_listeners(side_a.id, side_b.id))
            else:
                listings = []
                for side in (side_a, side_b):
                    if side is None:
                        listings.append(_now())
                    else:
                        listings.append(store.listener_table(side.id))
                events = diff_listeners(listings[0], listings[1])

    def name(side: SnapshotInfo | None) -> str:
        if side is None:
            return "now"
        label = f" '{side.label}'" if side.label else ""
        return f"{side.kind.value} {side.id}{label} ({when(side.taken_at)})"

    if args.json:
        write_json(diff_document(side_a, side_b, events), env.stdout)
    else:
        if events:  # plain lines: no table machinery to load
            env.stdout.write("".join(event_line(e) + "\n" for e in events))
        summary = count(len(events), "change") if events else "no change"
        env.stderr.write(f"{summary} from {name(side_a)} to {name(side_b)}\n")
    return ExitStatus.NEGATIVE if events else ExitStatus.OK


def _now() -> ListenerTable:
    from portscope.history._capture import capture
    from portscope.history._store import ListenerTable

    return ListenerTable.from_sockets(capture().sockets)
