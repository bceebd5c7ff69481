"""Output shaping: every table and the one JSON serializer, for every face.

Renderers build tables (``render._table.Table``: plain text cells, fitted to a width by
``fit``, drawn by ``to_rich`` or ``write_plain``) or lines from models and return them; a
face writes them (the CLI through ``cli._base.Env.show``). Nothing here imports a face.
``safe`` is the one escape of untrusted text for terminals.

``write_json``/``write_json_line`` need nothing heavy; the table writers import rich when first
called, so JSON output never loads it. Per-topic renderers live in the submodules
(``render.sockets``, ``render.registry``, ``render.scan``, ``render.diagnose``).
"""

from __future__ import annotations

# Nothing heavy at import: ``portscope lookup``'s fast path imports ``render._lookup``,
# which runs this module first (json, typing and the models load where they are used).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, TextIO


def write_json(obj: Any, stream: TextIO) -> None:
    """Write ``obj`` (results, lists of results, dicts) as indented JSON and a newline."""
    import json

    from portscope.models import to_dict

    json.dump(to_dict(obj), stream, indent=2, ensure_ascii=False)
    stream.write("\n")


def write_json_line(obj: Any, stream: TextIO) -> None:
    """Write ``obj`` as one compact JSON line (JSON Lines streams) and flush."""
    import json

    from portscope.models import to_dict

    stream.write(json.dumps(to_dict(obj), ensure_ascii=False, separators=(",", ":")))
    stream.write("\n")
    stream.flush()


def safe(text: str) -> str:
    r"""``text`` with every character a terminal would act on shown as an escape.

    C0 and C1 controls, DEL, bidi overrides and isolates, and every other character Python
    calls non-printable (Unicode categories C* and Z*, except the ASCII space) become
    ``\xNN``, ``\uNNNN`` or ``\UNNNNNNNN``: ESC is shown as the four characters ``\x1b``,
    U+202E (right-to-left override) as ``\u202e``, a newline as ``\x0a``. Printable text
    (the usual case) comes back as is, for one ``str.isprintable``. Terminals only: JSON
    keeps the exact value.
    """
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else _escape(c) for c in text)


def _escape(char: str) -> str:
    n = ord(char)
    if n < 0x100:
        return f"\\x{n:02x}"
    if n < 0x10000:
        return f"\\u{n:04x}"
    return f"\\U{n:08x}"


def ms(seconds: float | None) -> str:
    """Seconds as milliseconds for humans: ``0.01234`` -> ``12.3 ms``; None -> ``-``."""
    if seconds is None:
        return "-"
    return f"{seconds * 1000:.1f} ms" if seconds < 10 else f"{seconds:.1f} s"


def count(n: int, noun: str) -> str:
    """``3 sockets``, ``1 socket``: a number with its noun in the right number (English -s)."""
    return f"{n:,} {noun}" if n == 1 else f"{n:,} {noun}s"
