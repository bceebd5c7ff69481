"""``portscope registry update|sources``: import the IANA registry, show what is loaded."""

from __future__ import annotations

import argparse
from pathlib import Path

from portscope.cli._base import Env, ExitStatus, Parser, bounded

HELP = "registry sources: update from IANA, import, show sources"


def configure(parser: Parser) -> None:
    parser.usage = (
        "portscope registry update [--from FILE | --url URL] [--timeout SECONDS] [--json]\n"
        "       portscope registry sources [--json]"
    )
    parser.add_argument(
        "action",
        choices=("update", "sources"),
        help="update: download IANA's CSV (or import --from FILE) into the cache; "
        "sources: what was loaded, from where, how many entries, how old",
    )
    parser.add_argument(
        "--from",
        dest="from_file",
        type=Path,
        metavar="FILE",
        help="update: import this IANA service-names-port-numbers.csv instead of downloading",
    )
    parser.add_argument(
        "--url",
        metavar="URL",
        default=None,
        help="update: download from this http(s) URL (default: IANA's)",
    )
    parser.add_argument(
        "--timeout",
        type=bounded("--timeout", low=0, low_open=True, high=3600),
        default=30.0,
        metavar="SECONDS",
        help="update: the whole download's deadline in seconds, above 0 and at most 3600 "
        "(default: 30)",
    )


def run(args: argparse.Namespace, env: Env) -> int:
    from portscope.errors import RegistryError
    from portscope.registry import IANA_CSV_URL, registry_sources, update_registry
    from portscope.render.registry import (
        json_text,
        sources_document,
        sources_text,
        update_document,
        update_text,
    )

    if args.action == "sources":
        if args.from_file is not None or args.url is not None:
            env.error("registry sources: --from and --url belong to 'registry update'")
            return ExitStatus.USAGE
        sources = registry_sources()
        env.show(json_text(sources_document(sources)) if args.json else sources_text(sources))
        return ExitStatus.OK
    if args.from_file is not None and args.url is not None:
        env.error("registry update: give --from FILE or --url URL, not both")
        return ExitStatus.USAGE
    url = IANA_CSV_URL if args.url is None else args.url  # '' is a bad URL, not the default
    try:
        info = update_registry(from_file=args.from_file, url=url, timeout_s=args.timeout)
    except RegistryError as err:
        env.error(str(err))
        # A file the user named that cannot be read or is not the CSV is bad input (2);
        # a failed download is a negative answer (1).
        return ExitStatus.USAGE if args.from_file is not None else ExitStatus.NEGATIVE
    env.show(json_text(update_document(info)) if args.json else update_text(info))
    return ExitStatus.OK
