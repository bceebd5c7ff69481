"""``portscope import FILE.xml``: an nmap XML report into the history (diff it later)."""

from __future__ import annotations

import argparse

from portscope.cli._base import Env, ExitStatus, Parser
from portscope.cli._history import add_db_option, add_label_option, open_db

HELP = "import an nmap XML report (nmap -oX) into the history store"


def configure(parser: Parser) -> None:
    parser.epilog = "Then 'portscope diff last-scan~...' or 'portscope diff ID ID' compares scans."
    parser.add_argument("file", metavar="FILE.xml", help="an nmap XML report (nmap -oX FILE)")
    add_label_option(parser, "a name for it (default: the file name)")
    add_db_option(parser)


def run(args: argparse.Namespace, env: Env) -> int:
    import os

    from portscope.history import SnapshotKind
    from portscope.history._nmap import read_nmap_xml
    from portscope.render import count, write_json
    from portscope.render.history import snapshot_json

    report = read_nmap_xml(args.file)  # before the store: a bad file fails first
    label = args.label or os.path.basename(args.file)
    with open_db(args, create=True) as store:
        info = store.save_scan(
            report.hosts,
            report.ports,
            kind=SnapshotKind.NMAP,
            label=label,
            source=f"import {os.path.abspath(args.file)}",
            taken_at=report.started_at,
        )
    if args.json:
        write_json({"snapshot": snapshot_json(info)}, env.stdout)
    else:
        env.show(
            f"snapshot {info.id} '{label}': {count(len(report.hosts), 'host')}, "
            f"{count(len(report.ports), 'port')} listed (nmap XML)"
        )
    return ExitStatus.OK
