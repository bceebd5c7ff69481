"""``portscope top``: a live terminal view of this host's sockets (Textual; the ``tui`` extra).

Imported only by ``portscope top``; ``run`` starts the app. The data comes from
``render.live`` (shared with ``portscope serve``).
"""

from __future__ import annotations

from portscope.render.live import View


def run(*, view: View = "listen", refresh_s: float = 1.0, netns: str | None = None) -> None:
    """Run the app in this terminal until the user quits (``q``).

    Args:
        view: the view it starts on.
        refresh_s: seconds between reads.
        netns: the network namespaces to show (``-N``: a name, pid, path or ``all``);
            ``None``: this process's own.
    """
    from functools import partial

    from portscope.render.live import read_snapshot
    from portscope.tui.app import TopApp

    TopApp(view=view, refresh_s=refresh_s, source=partial(read_snapshot, netns=netns)).run()
