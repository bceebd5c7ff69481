"""The host page's firewall verdicts (issue 10's model on issue 12's building): a real
``portscope serve -N`` on a test namespace with an nftables ruleset, and the same server
without CAP_NET_ADMIN."""

from __future__ import annotations

import html
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator

import pytest

pytest.importorskip("starlette")
pytest.importorskip("uvicorn")

from faces.conftest import Served, _read_lines, start_serve, stop
from faces.test_web_http import request, tok

DROPPED, ACCEPTED, FORWARDED = 8081, 8082, 9090
COMMENT = "<b>no & entry</b>"
RULESET = f"""
table inet ps12f {{
  chain input {{
    type filter hook input priority 0; policy accept;
    tcp dport {DROPPED} drop comment "{COMMENT}"
    tcp dport {ACCEPTED} accept
  }}
}}
table ip ps12fnat {{
  chain pre {{
    type nat hook prerouting priority -100;
    tcp dport {FORWARDED} dnat to 198.18.0.2:80
  }}
}}
"""
_LISTEN = (
    "import socket,sys,time\n"
    "for p in sys.argv[1:]:\n"
    "    s=socket.socket();s.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1)\n"
    "    s.bind(('0.0.0.0',int(p)));s.listen();globals()['k'+p]=s\n"
    "print('ready',flush=True);time.sleep(60)\n"
)


@pytest.fixture(scope="module")
def walled() -> Iterator[str]:
    """A namespace ``ps12f-PID`` (lo, a veth pair d0/d1, d0 on 198.18.0.1/24, the ruleset above)
    with listeners on 0.0.0.0:DROPPED and :ACCEPTED; torn down by name and PID."""
    if os.geteuid() != 0 or shutil.which("ip") is None or shutil.which("nft") is None:
        pytest.skip("needs root, iproute2 and nft")
    name = f"ps12f-{os.getpid()}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    proc = None
    try:
        for cmd in (
            ["link", "set", "lo", "up"],
            ["link", "add", "d0", "type", "veth", "peer", "name", "d1"],
            ["addr", "add", "198.18.0.1/24", "dev", "d0"],
            ["link", "set", "d0", "up"],
            ["link", "set", "d1", "up"],
        ):
            subprocess.run(["ip", "-n", name, *cmd], check=True)
        subprocess.run(
            ["ip", "netns", "exec", name, "nft", "-f", "-"], input=RULESET, text=True, check=True
        )
        proc = subprocess.Popen(
            ["ip", "netns", "exec", name, sys.executable, "-c", _LISTEN, str(DROPPED),
             str(ACCEPTED)],
            stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        assert _read_lines(proc) == ["ready"]
        yield name
    finally:
        if proc is not None:
            stop(proc)
        subprocess.run(["ip", "netns", "del", name], check=False)


def _door(page: str, port: int) -> str:
    """The door's opening tag and content."""
    before, after = page.split(f'data-port="{port}"', 1)
    return before.rsplit("<a ", 1)[1] + after.split("</a>", 1)[0]


def _row(page: str, port: int) -> str:
    table = page.split('id="listeners"', 1)[1]
    return table.split(f'data-port="{port}"', 1)[1].split("</tr>", 1)[0]


@pytest.mark.root
def test_doors_show_the_verdict_from_outside_with_the_rule(walled: str, missing_db: str) -> None:
    served = start_serve("-N", walled, "--db", missing_db)
    try:
        status, page, _ = request(served, tok(served, "/"))
    finally:
        stop(served.proc)
    assert status == 200
    assert 'id="firewall-note"' not in page
    dropped, accepted = _row(page, DROPPED), _row(page, ACCEPTED)
    assert "filtered from outside" in dropped and "open from outside" in accepted
    assert html.escape(COMMENT, quote=False) in dropped  # the rule, escaped, as title
    assert COMMENT not in page
    door = _door(page, DROPPED)
    assert 'data-verdict="filtered from outside"' in door and "verdict-filtered" in door
    assert 'data-verdict="open from outside"' in _door(page, ACCEPTED)
    # the DNAT'd port with no listener here: its own door, marked forwarded, with the receiver
    fwd = _door(page, FORWARDED)
    assert "door forwarded" in fwd and "forwarded to 198.18.0.2:80" in fwd


@pytest.mark.root
def test_without_cap_net_admin_a_note_and_scope_colours(walled: str, missing_db: str) -> None:
    served = _serve_without_net_admin("-N", walled, "--db", missing_db)
    try:
        _, page, _ = request(served, tok(served, "/"))
    finally:
        stop(served.proc)
    note = page.split('id="firewall-note">', 1)[1].split("</p>", 1)[0]
    assert note.startswith("firewall not read: ") and "CAP_NET_ADMIN" in note
    assert "from outside" not in _row(page, ACCEPTED) and "data-verdict" not in page
    assert "door scope-all" in _door(page, ACCEPTED)


@pytest.mark.root
def test_no_firewall_skips_it(walled: str, missing_db: str) -> None:
    served = start_serve("-N", walled, "--db", missing_db, "--no-firewall")
    try:
        _, page, _ = request(served, tok(served, "/"))
    finally:
        stop(served.proc)
    assert "firewall not read: --no-firewall" in page
    assert "From outside" not in page and "data-verdict" not in page


def _serve_without_net_admin(*args: str) -> Served:
    """``serve`` as root without CAP_NET_ADMIN (entering -N still works: CAP_SYS_ADMIN)."""
    return start_serve(
        *args, wrap=("setpriv", "--bounding-set=-net_admin", "--inh-caps=-net_admin", "--")
    )


def test_the_ruleset_is_read_once_per_ttl_and_a_failure_is_the_note() -> None:
    """The live stream asks every second; the reader runs once per ``firewall_ttl_s``."""
    import asyncio

    from portscope.diagnose.exposure import FirewallView
    from portscope.web.app import Settings, _FirewallCache, firewall_note

    calls: list[str | None] = []

    def failing(sockets: object, netns: str | None) -> FirewallView:
        calls.append(netns)
        return FirewallView(False, "nft -j list ruleset needs CAP_NET_ADMIN", {})

    cache = _FirewallCache(Settings(firewall_source=failing, firewall_ttl_s=60.0, netns="x"))

    async def ask(times: int) -> list[FirewallView | None]:
        return [await cache.get([]) for _ in range(times)]

    views = asyncio.run(ask(5))
    assert calls == ["x"] and all(v is views[0] for v in views)
    assert firewall_note(views[0], True) == (
        "firewall not read: nft -j list ruleset needs CAP_NET_ADMIN"
    )
    off = _FirewallCache(Settings(firewall=False, firewall_source=failing))
    assert asyncio.run(off.get([])) is None and calls == ["x"]
