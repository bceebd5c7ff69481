"""``portscope man``: the manual page portscope(1), for installs where ``man portscope``
cannot find it (pip installs outside a man path)."""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
from importlib import resources

from portscope.cli._base import Env, ExitStatus, Parser

HELP = "show the manual page portscope(1) (--roff prints its source)"


def configure(parser: Parser) -> None:
    parser.add_argument(
        "--roff",
        action="store_true",
        help="print the page's roff source (what 'man -l' reads) instead of showing it",
    )


def page_path() -> str:
    """Where the installed package keeps portscope.1 (a real file: the package is on disk)."""
    return str(resources.files("portscope").joinpath("data", "portscope.1"))


def run(args: argparse.Namespace, env: Env) -> int:
    path = page_path()
    man = shutil.which("man")
    if args.roff or man is None or not env.stdout.isatty():
        with open(path, encoding="utf-8") as page:
            env.stdout.write(page.read())
        return ExitStatus.OK
    env.stdout.flush()
    return subprocess.call([man, "-l", path], env=os.environ.copy())
