"""``portscope snapshot``: save this host's listeners (or every socket) in the history."""

from __future__ import annotations

import argparse
from collections import Counter

from portscope.cli._base import Env, ExitStatus, Parser, add_netns_option, checked
from portscope.cli._history import add_db_option, add_label_option, open_db
from portscope.cli.ls import add_backend_option

HELP = "save this host's listeners in the history store (diff them later)"


def _duration(text: str) -> float:
    from portscope.history import parse_duration

    return parse_duration(text)


def configure(parser: Parser) -> None:
    parser.epilog = (
        "A snapshot holds the listening sockets (TCP LISTEN, UDP UNCONN) with their "
        "processes; 'portscope diff' compares it with another one or with now. With -N, "
        "every row keeps its network namespace (and the snapshot their names)."
    )
    parser.add_argument(
        "--all", action="store_true", help="every TCP/UDP socket, not only listeners"
    )
    add_label_option(parser, "a name for it (diff LABEL finds it)")
    parser.add_argument(
        "--keep",
        type=checked(_duration),
        metavar="AGE",
        help="then delete snapshots and events older than AGE (30d, 12h, 2w)",
    )
    add_netns_option(parser, what="the listeners")
    add_db_option(parser)
    add_backend_option(parser)


def run(args: argparse.Namespace, env: Env) -> int:
    from portscope.history import SnapshotKind
    from portscope.history._capture import capture
    from portscope.render import count, write_json
    from portscope.render.history import snapshot_json, when

    if args.label is not None and not args.label.strip():
        from portscope.errors import InvalidInput

        raise InvalidInput("empty --label; give some text, or leave --label out")
    store = open_db(args, create=True)  # before the listing: a bad --db fails first
    with store:
        listing = capture(all_sockets=args.all, backend=args.backend, netns=args.netns)
        kind = SnapshotKind.SOCKETS if args.all else SnapshotKind.LISTENERS
        info = store.save_sockets(
            listing.sockets,
            kind=kind,
            label=args.label,
            source="snapshot --all" if args.all else "snapshot",
            netns=listing.netns,
            complete=listing.complete,
            namespaces=listing.namespaces,
            netns_spec=args.netns,
        )
        pruned = None if args.keep is None else store.prune(args.keep)
    listeners = [s for s in listing.sockets if s.state.value in ("LISTEN", "UNCONN")]
    by_proto = Counter(s.proto.value for s in listeners)
    if args.json:
        doc = {
            "schema": "portscope.snapshot/1",
            "store": store.location,
            "snapshot": snapshot_json(info),
            "sockets": len(listing.sockets),
            "listeners": {"total": len(listeners), **dict(sorted(by_proto.items()))},
            "namespaces": [{"inode": ns.inode, "name": ns.name} for ns in listing.namespaces],
            "pruned": None
            if pruned is None
            else {"snapshots": pruned.snapshots, "events": pruned.events},
            "notes": list(listing.notes),
        }
        write_json(doc, env.stdout)
    else:
        parts = ", ".join(f"{n:,} {p}" for p, n in sorted(by_proto.items()))
        what = count(len(listeners), "listener") + (f" ({parts})" if parts else "")
        if args.all:
            what = f"{count(len(listing.sockets), 'socket')}, {what}"
        if args.netns is not None:
            what += f" in {count(len(listing.namespaces), 'network namespace')}"
        label = f" '{args.label}'" if args.label else ""
        env.show(f"snapshot {info.id}{label}: {what}, {when(info.taken_at)}")
        if pruned is not None:
            env.show(
                f"pruned {count(pruned.snapshots, 'snapshot')} and "
                f"{count(pruned.events, 'event')} older than --keep"
            )
        env.stderr.write(f"store: {store.location}\n")
    for note in listing.notes:
        env.note(note)
    return ExitStatus.OK
