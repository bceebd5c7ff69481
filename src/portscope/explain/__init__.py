"""What every answer means, in plain words, on this host's own data.

``explain(thing)`` takes a port, a socket or connection, a TCP state, a scan state or
reason, an errno, a ``why`` verdict, an ``audit`` rule or a term and returns an
``Explanation``: the words (written for portscope, each with its RFC, man page or kernel
source), the kernel settings they quote with this machine's values, and what this host
shows now (holders, counts by process). ``about(...)`` gives the short "what you are
looking at" lines for a table; ``quiz(...)`` draws questions from this host's sockets.
"""

from __future__ import annotations

from portscope.explain._explain import (
    KINDS,
    Explanation,
    Setting,
    about,
    closest,
    explain,
)
from portscope.explain._quiz import Question, quiz

__all__ = [
    "KINDS",
    "Explanation",
    "Question",
    "Setting",
    "about",
    "closest",
    "explain",
    "quiz",
]
