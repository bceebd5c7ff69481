"""``portscope top`` at 80x24 over a fixed table, compared with stored SVG snapshots
(pytest-textual-snapshot; textual and rich are pinned exactly in the test extra).

After a deliberate change of the look: ``pytest tests/faces/test_tui_snapshots.py
--snapshot-update`` and review the SVGs under ``__snapshots__``.
"""

from __future__ import annotations

from typing import Any

import pytest

pytest.importorskip("textual")
pytest.importorskip("pytest_textual_snapshot")

from faces.data import KERNEL, source
from portscope.tui.app import TopApp

SIZE = (80, 24)


def app() -> TopApp:
    return TopApp(source=source, refresh_s=0, kernel=KERNEL)


async def loaded(pilot: Any) -> None:
    """Wait for the first snapshot (read in a worker thread; bounded: 10 s)."""
    for _ in range(200):
        if pilot.app.snapshot is not None:
            return
        await pilot.pause(0.05)


def compare(snap_compare: Any, keys: list[str]) -> bool:
    return bool(snap_compare(app(), terminal_size=SIZE, run_before=loaded, press=keys))


def test_listeners(snap_compare: Any) -> None:
    assert compare(snap_compare, ["down", "down", "down"])


def test_connections_filtered(snap_compare: Any) -> None:
    assert compare(snap_compare, ["c", "slash", *"5432", "enter"])


def test_hostile_names_and_kill_dialog(snap_compare: Any) -> None:
    assert compare(snap_compare, ["end", "k"])
