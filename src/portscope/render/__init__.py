"""Output shaping: every table and the one JSON serializer. Faces only.

``write_json``/``write_json_line`` need nothing heavy; ``console``/``new_table`` import rich
when first called, so JSON output never loads it. Per-topic renderers live in the
submodules (``render.sockets``, ``render.registry``, ``render.scan``, ``render.diagnose``).
"""

from __future__ import annotations

# Nothing heavy at import: ``portscope lookup``'s fast path imports ``render._lookup``,
# which runs this module first (json, typing and the models load where they are used).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, TextIO

    from rich.console import Console
    from rich.table import Table

    from portscope.cli._base import Env


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


def console(env: Env, *, stderr: bool = False, no_color: bool = False) -> Console:
    """A rich Console over the environment's stream; colour only on a terminal."""
    from rich.console import Console

    stream = env.stderr if stderr else env.stdout
    tty = env.stderr_isatty if stderr else env.stdout_isatty
    color = env.color and not no_color
    return Console(
        file=stream,
        force_terminal=tty and color,
        no_color=not color,
        color_system="auto" if color else None,
        width=env.width or (None if tty else 200),
        highlight=False,
        soft_wrap=False,
        emoji=False,
        markup=False,
    )


def new_table(*columns: str, title: str | None = None) -> Table:
    """A borderless table in portscope's style (like ``ss``, easy to grep)."""
    from rich import box
    from rich.table import Table

    table = Table(
        *columns,
        title=title,
        box=box.SIMPLE_HEAD,
        show_edge=False,
        pad_edge=False,
        header_style="bold",
        title_justify="left",
    )
    return table


def ms(seconds: float | None) -> str:
    """Seconds as milliseconds for humans: ``0.01234`` -> ``12.3 ms``; None -> ``-``."""
    if seconds is None:
        return "-"
    return f"{seconds * 1000:.1f} ms" if seconds < 10 else f"{seconds:.1f} s"


def count(n: int, noun: str) -> str:
    """``3 sockets``, ``1 socket``: a number with its noun in the right number (English -s)."""
    return f"{n:,} {noun}" if n == 1 else f"{n:,} {noun}s"
