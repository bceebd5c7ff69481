#!/usr/bin/env python3
"""Screenshots of ``portscope serve`` and ``portscope top`` for the README (docs/img/).

Both faces run over a fixed socket table (tests/faces/data.py plus a few listeners), so
the pictures do not show this machine's processes. The dashboard runs in-process on
127.0.0.1 (random port); chromium is Debian's, driven by Playwright, with background
networking off. The TUI is exported as SVG by Textual (80x24).

    python scripts/faces-screenshots.py [OUT_DIR]     (default docs/img)
"""

from __future__ import annotations

import asyncio
import socket
import sys
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from faces.conftest import CHROMIUM, CHROMIUM_FLAGS  # noqa: E402
from faces.data import CONNECTIONS, KERNEL, LISTENERS, conn, listener, owner  # noqa: E402
from portscope.models import SocketTable  # noqa: E402
from portscope.render.live import Snapshot, View, snapshot_of  # noqa: E402

EXTRA = (
    listener(6379, "127.0.0.1", own=owner(4101, "redis-server", "redis")),
    listener(3306, "127.0.0.1", own=owner(4102, "mariadbd", "mysql")),
    listener(9090, own=owner(4103, "prometheus", "prometheus")),
    listener(1883, "::", own=owner(4104, "mosquitto", "mosquitto")),
    listener(11211, "127.0.0.1", own=owner(4105, "memcached", "memcache")),
    listener(51820, "198.18.0.1", own=owner(4106, "wg-helper")),
)
MORE_CONNS = tuple(conn(42000 + i, f"198.18.0.{i % 5 + 2}", 443, own=owner(4200, "curl"))
                   for i in range(12))  # fmt: skip


def source(view: View) -> Snapshot:
    table = SocketTable(LISTENERS + EXTRA + CONNECTIONS + MORE_CONNS, "fixed", True)
    return snapshot_of(table, view)


def web(out: Path) -> None:
    import uvicorn
    from playwright.sync_api import sync_playwright

    from portscope.web.app import Settings, create_app

    settings = Settings(source=source)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(create_app(settings), log_level="warning",
                                           lifespan="off"))  # fmt: skip
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    time.sleep(1)
    base = f"http://127.0.0.1:{port}"
    pages = {
        "serve-host": "/",
        "serve-ports": "/ports",
        "serve-connections": "/connections",
        "serve-lookup": "/lookup?q=postgres",
    }
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
            page = browser.new_page(viewport={"width": 1100, "height": 760})
            for name, path in pages.items():
                sep = "&" if "?" in path else "?"
                page.goto(f"{base}{path}{sep}token={settings.token}")
                page.wait_for_timeout(300)
                page.screenshot(path=str(out / f"{name}.png"))
            browser.close()
    finally:
        server.should_exit = True
        thread.join(timeout=5)


def tui(out: Path) -> None:
    from portscope.tui.app import TopApp

    async def run(name: str, keys: list[str]) -> None:
        app = TopApp(source=source, refresh_s=0, kernel=KERNEL)
        async with app.run_test(size=(80, 24)) as pilot:
            while app.snapshot is None:
                await pilot.pause(0.05)
            await pilot.press(*keys)
            await pilot.pause()
            app.save_screenshot(filename=f"{name}.svg", path=str(out))

    asyncio.run(run("top-listeners", ["down", "down", "down", "down"]))
    asyncio.run(run("top-connections", ["c", "slash", *"5432", "enter"]))


def main() -> None:
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else REPO / "docs" / "img"
    out.mkdir(parents=True, exist_ok=True)
    tui(out)
    web(out)
    for path in sorted(out.glob("*")):
        print(f"{path.stat().st_size:>8}  {path}")


if __name__ == "__main__":
    main()
