"""``portscope diff [A] [B]``: what changed between two snapshots, scans, or now."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from portscope.cli._base import Env, ExitStatus, Parser, add_netns_option
from portscope.cli._history import add_db_option, open_db

if TYPE_CHECKING:
    from portscope.history._store import ListenerTable

HELP = "what changed between two snapshots or scans (default: the last snapshot and now)"


def configure(parser: Parser) -> None:
    parser.epilog = (
        "A and B: a snapshot id, a label, 'last' (the newest snapshot), 'last~N' (N before "
        "it), 'last-scan', or 'now' (a fresh listing). Events: added, removed, "
        "scope-widened, scope-narrowed, owner-changed (another program, not another PID), "
        "state-changed (scans). Identity is (netns, transport, local address, port). "
        "Exit status as ndiff: 0 no change, 1 changes, 2 error. 'now' lists the network "
        "namespaces the other side's snapshot was taken with (snapshot -N), unless -N "
        "says otherwise; event lines name the namespace when they span several."
    )
    parser.add_argument("a", nargs="?", default="last", metavar="A", help="default: last")
    parser.add_argument("b", nargs="?", default="now", metavar="B", help="default: now")
    add_netns_option(parser, what="the fresh listing ('now')")
    add_db_option(parser)


def run(args: argparse.Namespace, env: Env) -> int:
    from portscope.errors import InvalidInput
    from portscope.history import (
        Event,
        SnapshotInfo,
        diff_listeners,
        diff_scans,
    )
    from portscope.history._capture import current_netns
    from portscope.render import count, write_json
    from portscope.render.history import diff_document, event_line, spans_namespaces, when

    if args.a == "now" and args.b == "now":
        raise InvalidInput("diff now now: give at least one snapshot (an id, a label, last)")
    with open_db(args, create=False) as store:
        side_a = None if args.a == "now" else store.resolve(args.a)
        side_b = None if args.b == "now" else store.resolve(args.b)
        scans = [s.kind.is_scan for s in (side_a, side_b) if s is not None]
        events: list[Event]
        several = any(s is not None and s.netns_spec and s.netns is None for s in (side_a, side_b))
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
                spec = args.netns
                for side in (side_a, side_b):
                    if spec is None and side is not None:
                        spec = side.netns_spec
                for side in (side_a, side_b):
                    if side is None:
                        table, spaces = _now(spec)
                        several = several or spaces > 1
                        listings.append(table)
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
            netns = several or spans_namespaces(events, home=current_netns())
            env.stdout.write("".join(event_line(e, netns=netns) + "\n" for e in events))
        summary = count(len(events), "change") if events else "no change"
        env.stderr.write(f"{summary} from {name(side_a)} to {name(side_b)}\n")
    return ExitStatus.NEGATIVE if events else ExitStatus.OK


def _now(netns: str | None) -> tuple[ListenerTable, int]:
    """A fresh listing of the namespaces ``netns`` names, and how many were listed."""
    from portscope.history._capture import capture
    from portscope.history._store import ListenerTable

    listing = capture(netns=netns)
    return ListenerTable.from_sockets(listing.sockets, listing.names()), len(listing.namespaces)
