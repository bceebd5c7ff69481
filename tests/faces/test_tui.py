"""``portscope top``: Textual's pilot drives the real app (keys, filter, sort, detail,
kill dialog), over fixed tables and over this host's real sockets."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import pytest

pytest.importorskip("textual")

from faces.conftest import HOSTILE_NAMES, Listener
from faces.data import KERNEL, PG, SSHD, source
from portscope.models import SocketTable
from portscope.render.live import LiveRow, Snapshot, View, snapshot_of
from portscope.tui._table import RowTable
from portscope.tui.app import ConfirmScreen, TopApp


def run(app: TopApp, script: Callable[[Any], Any], size: tuple[int, int] = (100, 30)) -> None:
    async def main() -> None:
        async with app.run_test(size=size) as pilot:
            for _ in range(200):  # first snapshot, read in a worker (bounded: 10 s)
                if app.snapshot is not None:
                    break
                await pilot.pause(0.05)
            await pilot.pause()
            await script(pilot)

    asyncio.run(main())


def table_text(app: TopApp) -> list[str]:
    table = app.query_one(RowTable)
    return [table.render_line(y).text for y in range(min(table.size.height, table.row_count + 1))]


def ports(app: TopApp) -> list[int]:
    return [r.sock.local.port for r in app.rows]


def test_filter_as_you_type_sort_and_reverse() -> None:
    app = TopApp(source=source, refresh_s=0, kernel=KERNEL)

    async def script(pilot: Any) -> None:
        assert ports(app) == [22, 53, 443, 5432, 8080, 9000]
        await pilot.press("slash", "n", "g", "i")
        await pilot.pause()
        assert app.query_text == "ngi" and ports(app) == [443, 8080]
        await pilot.press("n", "x", "enter")
        await pilot.pause()
        assert ports(app) == [443, 8080]  # "nginx"
        await pilot.press("r")
        await pilot.pause()
        assert ports(app) == [8080, 443]
        await pilot.press("slash", *["backspace"] * 5, "enter")
        await pilot.pause()
        assert len(app.rows) == 6
        await pilot.press("s")  # Port -> Address
        await pilot.pause()
        assert app.sort_column == "Address"
        assert app.rows[0].sock.local.address == "0.0.0.0"
        header = table_text(app)[0]
        assert "Address ^" in header

    run(app, script)


def test_detail_pane_follows_the_cursor() -> None:
    app = TopApp(source=source, refresh_s=0, kernel=KERNEL)

    async def script(pilot: Any) -> None:
        await pilot.press("down", "down", "down")  # 22, 53, 443, 5432
        await pilot.pause()
        row = app.selected()
        assert row is not None and row.sock.local.port == 5432
        detail = str(app.query_one("#detail").render())
        assert f"postgres pid {PG} fd 3, user postgres" in detail
        assert "postgresql" in detail and "loopback only" in detail
        assert "outside this kernel's ephemeral range 32768-60999" in detail

    run(app, script)


def test_the_cursor_stays_on_its_socket_across_refreshes() -> None:
    tables = [source("listen")]

    def changing(view: View) -> Snapshot:
        return tables[-1]

    app = TopApp(source=changing, refresh_s=0, kernel=KERNEL)

    async def script(pilot: Any) -> None:
        await pilot.press("down", "down", "down")
        await pilot.pause()
        assert app.selected().sock.local.port == 5432  # type: ignore[union-attr]
        # two new listeners sort before it; the cursor follows the socket, not the line
        first = tables[0]
        extra = [r.sock for r in first.rows[:2]]
        moved = [s.__class__(**{**_fields(s), "local": s.local.__class__("10.9.9.9", 1)})
                 for s in extra]  # fmt: skip
        socks = tuple(moved) + tuple(r.sock for r in first.rows)
        tables.append(snapshot_of(SocketTable(socks, "fixed", True), "listen"))
        app.reload()
        await pilot.pause(0.3)
        assert len(app.rows) == 8
        assert app.selected().sock.local.port == 5432  # type: ignore[union-attr]

    run(app, script)


def _fields(sock: Any) -> dict[str, Any]:
    return {name: getattr(sock, name) for name in sock.__slots__}


def test_connections_toggle_group_and_aggregate() -> None:
    app = TopApp(source=source, refresh_s=0, kernel=KERNEL, aggregate_above=3)

    async def script(pilot: Any) -> None:
        # 6 listeners > 3: counts instead of rows
        assert app.rows == [] and "aggregated" in str(app.query_one("#status").render())
        await pilot.press("slash", "n", "g", "i", "n", "x", "enter")
        await pilot.pause()
        assert ports(app) == [443, 8080]  # a filter below the limit brings rows back
        await pilot.press("c")
        await pilot.pause(0.3)
        assert app.view == "connections"
        assert app.query_one(RowTable).columns[:4] == ("Proto", "State", "Local", "Peer")
        await pilot.press("slash", *["backspace"] * 5, "enter")
        await pilot.pause()
        assert app.query_one(RowTable).columns == ("By", "Value", "Sockets")  # 4 > 3
        await pilot.press("slash", *"5432", "enter", "g")
        await pilot.pause()
        assert app.grouped
        table = app.query_one(RowTable)
        assert table.columns == ("Process", "User", "Sockets", "Ports")
        assert table.row_count == 2  # postgres and psql, one socket each
        await pilot.press("enter")  # a group's sockets, ungrouped
        await pilot.pause()
        assert not app.grouped and app.query_text in (f"postgres[{PG}]", f"psql[{SSHD}]")
        assert len(app.rows) == 1

    run(app, script)


def test_kill_dialog_cancelled_signals_nothing() -> None:
    killed: list[LiveRow] = []
    app = TopApp(source=source, refresh_s=0, kernel=KERNEL, killer=killed.append)

    async def script(pilot: Any) -> None:
        await pilot.press("down", "down", "down", "k")
        await pilot.pause()
        assert isinstance(app.screen, ConfirmScreen)
        question = str(app.screen.query_one("#question").render())
        assert f"postgres[{PG}]" in question and "127.0.0.1:5432" in question
        await pilot.press("n")
        await pilot.pause()
        assert not isinstance(app.screen, ConfirmScreen)
        await pilot.press("k", "escape")
        await pilot.pause()
        await pilot.press("k")
        await pilot.pause()
        await pilot.click("#no")
        await pilot.pause()
        assert killed == []

    run(app, script)


def test_copy_as_json_after_confirmation() -> None:
    app = TopApp(source=source, refresh_s=0, kernel=KERNEL)

    async def script(pilot: Any) -> None:
        await pilot.press("y")
        await pilot.pause()
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("y")
        await pilot.pause()
        assert '"port": 22' in app.clipboard and '"name": "sshd"' in app.clipboard

    run(app, script)


def test_fits_80x24_without_horizontal_scrolling() -> None:
    app = TopApp(source=source, refresh_s=0, kernel=KERNEL)

    async def script(pilot: Any) -> None:
        table = app.query_one(RowTable)
        assert table.virtual_size.width <= table.size.width
        assert table.columns[:3] == ("Proto", "Port", "Address")
        assert "Process" in table.columns
        assert "Quit" in str(app.query_one("Footer").render()) or app.query("Footer")

    run(app, script, size=(80, 24))


@pytest.mark.root
def test_kill_confirmed_frees_a_real_listener(listener: Listener) -> None:
    app = TopApp(refresh_s=0)

    async def script(pilot: Any) -> None:
        await pilot.press("slash", *str(listener.port), "enter")
        await pilot.pause()
        assert ports(app) == [listener.port]
        assert app.rows[0].pids == (listener.pid,)
        await pilot.press("k")
        await pilot.pause()
        await pilot.press("y")
        deadline = time.monotonic() + 60  # who + kill_holders: slow on a loaded machine
        while listener.proc.poll() is None and time.monotonic() < deadline:
            await pilot.pause(0.05)
        assert listener.proc.poll() is not None

    run(app, script)
    assert listener.proc.wait(timeout=5) == -15  # SIGTERM


def test_hostile_process_names_are_text_not_markup(hostile: list[Listener]) -> None:
    app = TopApp(refresh_s=0)

    async def script(pilot: Any) -> None:
        for proc in hostile:
            await pilot.press("slash", *["backspace"] * 6, *str(proc.port), "enter")
            await pilot.pause()
            assert ports(app) == [proc.port], proc.name
            table = app.query_one(RowTable)
            strip = table.render_line(1)
            assert f"{proc.comm}[{proc.pid}]" in strip.text
            assert all(seg.style is None or not seg.style.link for seg in strip)
            detail = app.query_one("#detail").render()
            assert proc.name in str(detail)  # the command line, as text

    run(app, script, size=(160, 40))
    assert [p.name for p in hostile] == list(HOSTILE_NAMES)


def test_namespaces_column_and_filter() -> None:
    from dataclasses import replace

    from faces.data import LISTENERS
    from portscope.models import Container, Netns

    redis = Netns(4026532513, None, (Container("docker", "54d10f54" + "0" * 56, "redis"),))
    sockets = (replace(LISTENERS[0], netns=Netns(4026531833, "host")),
               replace(LISTENERS[1], netns=redis))  # fmt: skip

    def with_netns(view: View) -> Snapshot:
        return snapshot_of(SocketTable(sockets, "fixed", True), view)

    app = TopApp(source=with_netns, refresh_s=0, kernel=KERNEL)

    async def script(pilot: Any) -> None:
        text = table_text(app)
        assert "Netns" in text[0] and any("docker:redis" in line for line in text)
        await pilot.press("slash", *"redis", "enter")
        await pilot.pause()
        assert ports(app) == [22]

    run(app, script, size=(160, 30))
