"""Generate the shipped completion scripts and man page from the argument tree.

Run by ``scripts/gen-shell-files`` (after any change to a command's options) and by the
tests, which fail when the shipped files differ from a fresh generation. The generators
are libraries: ``shtab`` (bash, zsh, fish) and ``argparse-manpage`` (roff), both in
the ``test`` extra only; the installed package just reads the files.

Only DESCRIPTION, EXAMPLES, EXIT STATUS, ENVIRONMENT, FILES and SEE ALSO are written by
hand (below); every command and option comes from the parser.
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

from portscope.cli._tree import full_parser

#: The package folder the files are shipped in.
DATA_DIR: Final = Path(__file__).resolve().parent.parent / "data"

_DESCRIPTION: Final = r""".B portscope
answers questions about network ports and sockets on this machine and on the network:
what listens here and which process owns it (like
.BR ss (8)
and
.BR lsof (8)),
what a port number or service name means (the IANA registry, RFC 6335 ranges, this
kernel's ephemeral range), why a
.BR bind (2)
or
.BR connect (2)
fails, and what a remote host exposes (connect and UDP scans like
.BR nmap (1)).
.PP
Without a command,
.B portscope
shows what is listening, with the process, the service and the bind scope in words.
Every command takes \fB\-h\fR, \fB\-\-help\fR for its options and
.B \-\-json
for machine-readable output; text output escapes control characters from process
names, command lines and banners.
.PP
Probes and scans send traffic only to the addresses given on the command line.
.PP
The options below without a command are those of \fBportscope listen\fR."""

_EXAMPLES: Final = r""".TP
.B portscope
What is listening, with process, service and exposure.
.TP
.B portscope ls \-t \-\-state established \-p
Established TCP connections with their processes, like \fBss \-tnp\fR.
.TP
.B portscope lookup 5432
What port 5432 is (registry entries, range, notes).
.TP
.B portscope who 8080 \-\-kill
Which processes hold port 8080; send them SIGTERM after confirmation.
.TP
.B portscope why bind 80
Why a bind to port 80 would fail here (privilege, a holder, the address).
.TP
.B portscope scan 127.0.0.1 \-p 1\-1024
Connect scan of the first 1024 TCP ports of this host.
.TP
.B portscope completion bash > ~/.local/share/bash-completion/completions/portscope
Install Tab completion for bash."""

_EXIT_STATUS: Final = r""".TP
.B 0
Success: the answer is positive (something listens, the port is open, nothing changed).
.TP
.B 1
A negative answer: closed, nobody holds the port, findings, or a library error
explained in one line.
.TP
.B 2
Bad input: one line naming the bad value and what is accepted.
.TP
.B 130
Interrupted (Ctrl\-C)."""

_ENVIRONMENT: Final = r""".TP
.B NO_COLOR
When set, no colour even on a terminal (as \fB\-\-no\-color\fR).
.TP
.B PORTSCOPE_CACHE_DIR
Where the compiled registry is cached (default: \fI$XDG_CACHE_HOME/portscope\fR)."""

_SEE_ALSO: Final = r""".BR ss (8),
.BR lsof (8),
.BR netstat (8),
.BR nmap (1),
.BR ip\-netns (8),
.BR services (5),
.BR tcp (7),
.BR udp (7)"""


def completion_scripts() -> dict[str, str]:
    """The completion script per shipped file name (``cli.completion.SCRIPTS`` values)."""
    import shtab

    from portscope.cli.completion import SCRIPTS

    parser = full_parser(values=True)
    scripts = {name: shtab.complete(parser, shell) for shell, name in SCRIPTS.items()}
    scripts[SCRIPTS["fish"]] = _fish_old_options(scripts[SCRIPTS["fish"]])
    return scripts


def _fish_old_options(text: str) -> str:
    """shtab 1.13 writes nmap-style flags (``-iL``, ``-oX``) as ``complete -s iL``, which
    fish reads as the two flags ``-i`` and ``-L``; fish spells them ``-o iL`` (an old-style
    option, fish's ``complete(1)``)."""
    import re

    return re.sub(
        r"^(complete -c portscope .*?) -s ([A-Za-z0-9][A-Za-z0-9]+) ",
        r"\1 -o \2 ",
        text,
        flags=re.MULTILINE,
    )


def man_page() -> str:
    """portscope(1) in roff, reproducible (the date is fixed to the package version's)."""
    from argparse_manpage.manpage import Manpage  # type: ignore[import-untyped]

    from portscope import __version__

    parser = full_parser()
    page = Manpage(
        parser,
        _data={
            "project_name": "portscope",
            "description": "network ports and sockets: what listens, who talks, what a "
            "port means, what the network answers",
            "manual_title": "portscope manual",
            "manual_section": 1,
            "date": f"version {__version__}",
        },
    )
    for heading, text in (
        ("description", _DESCRIPTION),
        ("examples", _EXAMPLES),
        ("exit status", _EXIT_STATUS),
        ("environment", _ENVIRONMENT),
        ("see also", _SEE_ALSO),
    ):
        page.add_section(heading, "=", text)
    return str(page)


def generate() -> dict[str, str]:
    """Every shipped file name -> its freshly generated text."""
    files = completion_scripts()
    files["portscope.1"] = man_page()
    return files


def write(directory: Path = DATA_DIR) -> list[Path]:
    """Write every generated file into ``directory``; returns the paths written."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in generate().items():
        path = directory / name
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written


if __name__ == "__main__":
    for path in write():
        print(path)
