"""``portscope serve`` in a real browser: Playwright drives Debian's chromium. Each page is
loaded, checked in the DOM and photographed into the test's tmp dir.

One browser for all of them, launched by a module-scoped fixture rather than
pytest-playwright's session-scoped ``browser``: Playwright's sync API keeps its event loop
set as running in the main thread until it stops, and every later test of the suite that
calls ``asyncio.run`` would fail ("cannot be called from a running event loop").
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("playwright")
pytest.importorskip("starlette")

from playwright.sync_api import Browser, Page, expect, sync_playwright

from faces.conftest import CHROMIUM, CHROMIUM_FLAGS, Listener, Served, Stored

# Pages read the socket table with owners (/proc/*/fd of every process): seconds on a
# machine busy with other work. Generous waits; the live check has its own bound.
expect.set_options(timeout=30_000)


@pytest.fixture(scope="module")
def chromium() -> Iterator[Browser]:
    if not Path(CHROMIUM).exists():
        pytest.skip("Debian's chromium is not installed (scripts/install-test-deps)")
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        yield browser
        browser.close()


@pytest.fixture
def page(chromium: Browser) -> Iterator[Page]:
    context = chromium.new_context(viewport={"width": 1100, "height": 800})
    one = context.new_page()
    one.set_default_timeout(60_000)
    yield one
    context.close()


def shot(page: Page, tmp_path: Path, name: str) -> Path:
    path = tmp_path / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    assert path.stat().st_size > 1000
    return path


def no_dialogs(page: Page) -> list[str]:
    seen: list[str] = []

    def on_dialog(dialog: Any) -> None:
        seen.append(dialog.message)
        dialog.dismiss()

    page.on("dialog", on_dialog)
    return seen


def read_s() -> float:
    """How long one read of the listeners with owners takes here now (a loaded machine:
    seconds; idle: ~0.1 s)."""
    import time

    from portscope.render.live import read_snapshot

    start = time.monotonic()
    read_snapshot("listen")
    return time.monotonic() - start


def test_host_page_shows_a_new_listener_live(page: Page, served: Served, tmp_path: Path) -> None:
    """Within 2 s, plus two table reads on a machine busy enough to make those slow."""
    dialogs = no_dialogs(page)
    page.goto(served.url("/"))
    expect(page.locator("svg.building")).to_be_visible()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        # appears within 2 s, through the event stream, without a reload
        row = page.locator(f'#listeners tr[data-port="{port}"]')
        expect(row).to_be_visible(timeout=2000 + 3000 * read_s())
        expect(page.locator(f'svg.building a.door[data-port="{port}"]')).to_have_count(1)
        expect(row.locator(".scope")).to_have_text("loopback only")
        expect(page.locator("#live-status")).to_contain_text("live")
        shot(page, tmp_path, "host")
    expect(row).to_have_count(0)  # and leaves when closed
    assert dialogs == []


def test_port_line_page(page: Page, served: Served, tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        page.goto(served.url("/ports"))
        expect(page.locator(f'svg.portline a.tick[data-port="{port}"]')).to_have_count(1)
        expect(page.locator("svg.portline .eph-label")).to_contain_text("ephemeral range")
        expect(page.locator("svg.portline .band")).to_have_count(3)
        shot(page, tmp_path, "ports")


def test_connections_page_groups_by_remote(page: Page, served: Served, tmp_path: Path) -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.3", 0))
        server.listen()
        client = socket.create_connection(server.getsockname())
        accepted, _ = server.accept()
        with client, accepted:
            page.goto(served.url("/connections"))
            page.fill("input[name=q]", str(server.getsockname()[1]))  # either end's port
            page.click("form.lookup button")
            group = page.locator('#by-remote tr[data-remote="127.0.0.3"]')
            expect(group).to_be_visible()
            expect(group).to_contain_text("ESTABLISHED 1")
            expect(page.locator("#connections tbody tr")).to_have_count(2)  # both ends
            shot(page, tmp_path, "connections")


def test_port_lookup_and_scans_pages(
    page: Page, served: Served, missing_db: str, tmp_path: Path
) -> None:
    page.goto(served.url("/lookup"))
    page.fill("input[name=q]", "postgres")
    page.click("form.lookup button")
    expect(page.locator("#lookup")).to_contain_text("5432")
    shot(page, tmp_path, "lookup")
    page.click('#lookup a:text-is("5432")')
    expect(page.locator("h1")).to_have_text("Port 5432")
    expect(page.locator("#registry")).to_contain_text("postgresql")
    missing = f"no history store at {missing_db} ('portscope snapshot' starts one)"
    expect(page.locator("#history-note")).to_have_text(missing)
    shot(page, tmp_path, "port")
    page.goto(served.url("/scans"))
    expect(page.locator("#store-note")).to_have_text(missing)
    shot(page, tmp_path, "scans-no-store")


def test_scans_page_diff_and_port_history_from_a_store(
    page: Page, stored: Stored, tmp_path: Path
) -> None:
    dialogs = no_dialogs(page)
    page.goto(stored.served.url("/scans"))
    expect(page.locator("#scans tbody tr")).to_have_count(2)
    page.fill("#diff-form input[name=a]", "monday")
    page.fill("#diff-form input[name=b]", "tuesday")
    page.click("#diff-form button")
    row = page.locator('#diff tr[data-port="8082"]')
    expect(row).to_contain_text("state-changed")
    expect(row).to_contain_text("closed")
    shot(page, tmp_path, "scans-diff")
    page.click('#scans a:text-is("3")')  # monday's report
    expect(page.locator('#scan-ports tr[data-port="8081"]')).to_contain_text(
        "<script>alert(2)</script>"
    )
    assert page.locator("script").count() == 1  # ours (app.js) only
    page.goto(stored.served.url(f"/port/{stored.port}"))
    entry = page.locator("#timeline tbody tr")
    expect(entry).to_have_count(1)
    expect(entry).to_contain_text("snapshot 2 (after)")
    expect(entry).to_contain_text(f"{stored.name}[")
    shot(page, tmp_path, "port-history")
    assert dialogs == []


def test_hostile_names_render_as_text(
    page: Page, served: Served, hostile: list[Listener], tmp_path: Path
) -> None:
    dialogs = no_dialogs(page)
    page.goto(served.url("/"))
    for proc in hostile:
        cell = page.locator(f'#listeners tr[data-port="{proc.port}"] td.process')
        expect(cell).to_have_text(f"{proc.comm}[{proc.pid}]")
    page.goto(served.url(f"/port/{hostile[-1].port}"))
    expect(page.locator("#holders td.cmd")).to_contain_text("<script>alert(1)</script> -c")
    assert page.locator("script").count() == 1  # ours (app.js) only
    shot(page, tmp_path, "hostile")
    assert dialogs == []


@pytest.mark.root
def test_kill_button_asks_then_frees_the_port(
    page: Page, served_kill: Served, listener: Listener, tmp_path: Path
) -> None:
    page.goto(served_kill.url(f"/port/{listener.port}"))
    button = page.locator(f'#holders tr[data-pid="{listener.pid}"] button')
    page.once("dialog", lambda dialog: dialog.dismiss())  # cancelled: nothing happens
    button.click()
    expect(page.locator("h1")).to_have_text(f"Port {listener.port}")
    assert listener.proc.poll() is None
    page.once("dialog", lambda dialog: dialog.accept())
    button.click()
    expect(page.locator("#kill-result")).to_contain_text("terminated")
    shot(page, tmp_path, "killed")
    assert listener.proc.wait(timeout=5) == -15
