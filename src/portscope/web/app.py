"""``portscope serve``: the pages, the live updates and the kill action (Starlette).

Server-rendered HTML and SVG from Jinja2 templates with autoescape on: every process
name, command line and address reaches the page escaped (a process named
``<script>alert(1)</script>`` is text). Live regions are refreshed by our own script
(``static/app.js``) from Server-Sent Events that carry the same fragments, rendered by
the same templates. The socket table is read in a worker thread, at most once per
``min_interval_s`` for every client together.

Pages: ``/`` this host (the building: a door per listener, coloured by bind scope),
``/ports`` (the port line: RFC 6335 ranges, this kernel's ephemeral range, listeners),
``/connections`` (grouped by remote and state), ``/port/N`` (registry, range, holders,
kill, the port's history from the store), ``/lookup``, ``/scans`` (stored scans, imports
and listings, one opened, the diff of two: ``web._history``). Security: ``web._guard``
(Host, token, headers) on every request; kill only with ``allow_kill``, as a POST with
the CSRF token, through ``who --kill``'s PID-reuse-safe path.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field, replace
from functools import partial
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

from jinja2 import Environment, PackageLoader, select_autoescape
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from portscope.render.live import (
    LiveRow,
    Snapshot,
    View,
    read_snapshot,
    scope_class,
    shown,
)
from portscope.web._guard import Guard
from portscope.web._history import port_timeline, scans_page

if TYPE_CHECKING:
    from portscope.diagnose.exposure import Exposure, FirewallView
    from portscope.models import Socket

Source = Callable[[View], Snapshot]

#: Doors drawn on the building; more listeners are listed in the table only.
MAX_DOORS = 120
#: Remote addresses listed on the connections page.
MAX_REMOTES = 200
#: How long one SSE stream lasts before the browser reconnects (bounded loops).
STREAM_S = 600.0

#: Seconds a firewall reading is reused (the live stream refreshes every second; ``nft``
#: is not run that often).
FIREWALL_TTL_S = 5.0


@dataclass
class Settings:
    """What one running dashboard knows.

    Attributes:
        token: the URL token (``web._guard``).
        csrf: the token every kill form carries.
        allow_kill: kill forms shown and accepted.
        source: view -> snapshot (a seam for tests).
        min_interval_s: reads of the socket table are at most this often.
        interval_s: seconds between live updates.
        stopping: set when the server shuts down: live streams end.
        db: the history store (``--db``; ``None``: ``history.default_path()``), opened
            read-only per request.
        netns: the network namespaces the pages show (``-N``: a name, pid, path or
            ``all``; ``None``: the server's own). ``source`` reads them.
        firewall: evaluate the firewall for the host page (``--no-firewall``: False).
        firewall_source: (listeners, netns) -> ``diagnose.exposure.FirewallView`` (a seam
            for tests); ``None``: ``diagnose.exposure.firewall_view``.
        firewall_ttl_s: a firewall reading is reused this long.
    """

    token: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    csrf: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    allow_kill: bool = False
    source: Source = read_snapshot
    min_interval_s: float = 0.5
    interval_s: float = 1.0
    stopping: bool = False
    db: str | None = None
    netns: str | None = None
    firewall: bool = True
    firewall_source: Callable[[Sequence[Socket], str | None], FirewallView] | None = None
    firewall_ttl_s: float = FIREWALL_TTL_S


class _Cache:
    """The latest snapshot per view, read in a thread, shared by every client."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._got: dict[str, tuple[float, Snapshot]] = {}
        self._lock = asyncio.Lock()

    async def get(self, view: View) -> Snapshot:
        async with self._lock:
            now = time.monotonic()
            hit = self._got.get(view)
            if hit is not None and now - hit[0] < self._settings.min_interval_s:
                return hit[1]
            snap = await run_in_threadpool(self._settings.source, view)
            self._got[view] = (time.monotonic(), snap)
            return snap


class _FirewallCache:
    """The latest firewall reading (``FirewallView``), read in a thread at most once per
    ``firewall_ttl_s`` for every client together: the live stream does not run ``nft``
    every second. A listener new since the reading has no verdict until the next one."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._got: tuple[float, FirewallView] | None = None
        self._lock = asyncio.Lock()

    async def get(self, sockets: Sequence[Socket]) -> FirewallView | None:
        if not self._settings.firewall:
            return None
        async with self._lock:
            hit = self._got
            if hit is not None and time.monotonic() - hit[0] < self._settings.firewall_ttl_s:
                return hit[1]
            read = self._settings.firewall_source or _firewall_view
            view = await run_in_threadpool(read, list(sockets), self._settings.netns)
            self._got = (time.monotonic(), view)
            return view


def _firewall_view(sockets: Sequence[Socket], netns: str | None) -> FirewallView:
    from portscope.diagnose.exposure import FirewallView, firewall_view

    if netns == "all":
        return FirewallView(False, "one network namespace at a time (-N all)", {})
    return firewall_view(sockets, netns=netns)


@dataclass(frozen=True, slots=True)
class DoorVerdict:
    """The firewall's verdict on a door, for the page.

    Attributes:
        label: ``open from outside``, ``filtered from outside``, ``rejected (tcp-reset)``,
            ``unknown`` ... (nmap's words, ``firewall.Verdict``).
        verdict: the verdict's value: the CSS class ``verdict-VALUE``.
        rule: the deciding rule (``family table chain: rule text``) or the decision's
            reason when a policy or the socket table decided; untrusted (autoescaped).
        reason: the decision in words (``firewall.Decision.reason``).
    """

    label: str
    verdict: str
    rule: str
    reason: str = ""


def door_verdict(row: Exposure) -> DoorVerdict:
    """The verdict from outside of one exposure row, in words, with its deciding rule."""
    d = row.decision
    value = d.verdict.value
    label = (
        "unknown"
        if value == "unknown"
        else f"rejected ({d.reject})"
        if value == "rejected" and d.reject
        else f"{value} from outside"
    )
    if d.rule is not None:
        rule = f"{d.rule.family} {d.rule.table} {d.rule.chain}: {d.rule.text}"
    elif d.unknown_rules:
        rule = "; ".join(r.text for r in d.unknown_rules)
    else:
        rule = f"{d.chain}: {d.reason}" if d.chain else d.reason
    return DoorVerdict(label, value, rule, d.reason)


def firewall_verdicts(rows: Sequence[LiveRow], view: FirewallView | None) -> dict[str, DoorVerdict]:
    """LiveRow key -> the verdict from outside of that listener (``FirewallView.row_for``);
    empty without a readable firewall."""
    if view is None or not view.read:
        return {}
    out = {}
    for r in rows:
        exp = view.row_for(r.sock)
        if exp is not None:
            out[r.key] = door_verdict(exp)
    return out


@dataclass(frozen=True, slots=True)
class ForwardedDoor:
    """A port a DNAT rule forwards with no local listener behind it.

    Attributes:
        proto: ``tcp`` or ``udp``.
        port: the port connected to (before NAT).
        address: the host address the rule serves (``0.0.0.0`` / ``::``: any).
        receiver: where it goes (``198.18.0.2:80``, ``netns ctr``), or ``""`` unknown.
        verdict: the verdict from outside.
    """

    proto: str
    port: int
    address: str
    receiver: str
    verdict: DoorVerdict


def forwarded_doors(view: FirewallView | None) -> list[ForwardedDoor]:
    """The DNAT'd ports without a local listener, port order."""
    if view is None or not view.read or view.report is None:
        return []
    out = []
    for r in view.report.rows:
        if r.listener is not None or not r.dnat:
            continue
        d = r.decision
        to = ""
        if d.destination is not None:
            host, port = d.destination
            to = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        receiver = " · ".join(x for x in (to, d.listener or "") if x)
        out.append(ForwardedDoor(r.proto.value, r.port, r.address, receiver, door_verdict(r)))
    out.sort(key=lambda f: (f.port, f.proto, f.address))
    return out[:MAX_DOORS]


def firewall_note(view: FirewallView | None, enabled: bool) -> str | None:
    """The one line above the building about the firewall, or ``None`` when it was read."""
    if not enabled:
        return "firewall not read: --no-firewall"
    if view is None:
        return None
    if not view.read:
        return f"firewall not read: {view.error}"
    return None


# drawings ---------------------------------------------------------------------------


def building(rows: list[LiveRow], forwarded: Sequence[ForwardedDoor] = ()) -> dict[str, Any]:
    """The host as a building: one door per listener (port order), then one per DNAT'd
    port without a listener (``fwd``), ten doors a floor, the first floor at the bottom.
    Geometry in SVG user units."""
    items: list[LiveRow | ForwardedDoor] = [*rows, *forwarded]
    doors = items[:MAX_DOORS]
    per_floor, door_w, door_h, gap, floor_h = 10, 52, 64, 16, 96
    floors = max(1, -(-len(doors) // per_floor))
    width = per_floor * (door_w + gap) + gap + 40
    body_top = 70
    height = body_top + floors * floor_h + 20
    placed: list[dict[str, Any]] = []
    for i, row in enumerate(doors):
        floor, slot = divmod(i, per_floor)
        x = 20 + gap + slot * (door_w + gap)
        y = body_top + (floors - 1 - floor) * floor_h + (floor_h - door_h)
        spot = {"x": x, "y": y, "w": door_w, "h": door_h}
        if isinstance(row, ForwardedDoor):
            placed.append({"row": None, "fwd": row, **spot})
        else:
            placed.append({"row": row, "fwd": None, **spot})
    return {
        "width": width,
        "height": height,
        "body_top": body_top,
        "doors": placed,
        "more": len(items) - len(doors),
        "roof": f"10,{body_top} {width / 2:.0f},8 {width - 10},{body_top}",
    }


def _line_x(port: int, left: float, width: float) -> float:
    """Piecewise scale: system ports 0-1023 get a quarter, user ports half, dynamic a
    quarter (a linear scale would give the system range 1.5% of the line)."""
    if port <= 1023:
        return left + width * 0.25 * port / 1023
    if port <= 49151:
        return left + width * (0.25 + 0.5 * (port - 1024) / (49151 - 1024))
    return left + width * (0.75 + 0.25 * (port - 49152) / (65535 - 49152))


def port_line(rows: list[LiveRow]) -> dict[str, Any]:
    """The port number line: RFC 6335 ranges, the kernel's ephemeral range, listeners."""
    from portscope.registry import kernel_ports

    left, width = 20.0, 960.0
    kernel = kernel_ports()
    lo, hi = kernel.ephemeral
    ranges = [
        ("system", 0, 1023, "System 0-1023"),
        ("user", 1024, 49151, "User 1024-49151"),
        ("dynamic", 49152, 65535, "Dynamic 49152-65535"),
    ]
    bands = [
        {
            "cls": cls,
            "x": _line_x(a, left, width),
            "w": _line_x(b, left, width) - _line_x(a, left, width),
            "label": label,
        }
        for cls, a, b, label in ranges
    ]
    eph = {
        "x": _line_x(lo, left, width),
        "w": max(2.0, _line_x(hi, left, width) - _line_x(lo, left, width)),
        "label": f"this kernel's ephemeral range {lo}-{hi}",
    }
    ticks = []
    seen: dict[int, int] = {}
    for row in sorted(rows, key=lambda r: r.sock.local.port):
        port = row.sock.local.port
        if port in seen:
            continue
        seen[port] = len(seen)
        ticks.append(
            {"row": row, "x": _line_x(port, left, width), "level": seen[port] % 5, "port": port}
        )
    return {"bands": bands, "eph": eph, "ticks": ticks, "width": left * 2 + width}


@dataclass(frozen=True, slots=True)
class RemoteGroup:
    remote: str
    count: int
    states: tuple[tuple[str, int], ...]
    processes: str


def by_remote(rows: list[LiveRow]) -> list[RemoteGroup]:
    """Connections grouped by remote address, the busiest first."""
    groups: dict[str, list[LiveRow]] = {}
    for r in rows:
        remote = r.sock.remote.address if r.sock.remote is not None else "*"
        groups.setdefault(remote, []).append(r)
    out = []
    for remote, members in groups.items():
        states = Counter(m.sock.state.value for m in members)
        procs = ", ".join(dict.fromkeys(m.cell("Process", "connections") for m in members))
        out.append(RemoteGroup(remote, len(members), tuple(states.most_common()), procs))
    out.sort(key=lambda g: (-g.count, g.remote))
    return out[:MAX_REMOTES]


# the app ----------------------------------------------------------------------------


def _environment() -> Environment:
    env = Environment(
        loader=PackageLoader("portscope.web", "templates"),
        autoescape=select_autoescape(["html"], default=True),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.globals["scope_class"] = scope_class
    return env


def create_app(settings: Settings | None = None) -> Starlette:
    """The dashboard as an ASGI app, behind ``web._guard.Guard``.

    Args:
        settings: tokens, kill permission, data source; fresh random tokens by default.
    """
    settings = settings or Settings()
    templates = _environment()
    cache = _Cache(settings)
    walls = _FirewallCache(settings)

    def page(name: str, request: Request, status: int = 200, **context: Any) -> HTMLResponse:
        html = templates.get_template(name).render(
            token=settings.token,
            csrf=settings.csrf,
            allow_kill=settings.allow_kill,
            path=request.url.path,
            **context,
        )
        return HTMLResponse(html, status_code=status)

    async def fragment(view_name: str, query: str = "") -> str:
        if view_name == "connections":
            snap = await cache.get("connections")
            rows, counts = shown(snap, query)
            return templates.get_template("_connections.html").render(
                token=settings.token, snap=snap, groups=by_remote(rows), counts=counts,
                rows=rows[:500], query=query, matched=len(rows),
            )  # fmt: skip
        snap = await cache.get("listen")
        rows = list(snap.rows)
        if view_name != "host":
            return templates.get_template("_ports.html").render(
                token=settings.token, snap=snap, rows=rows, line=port_line(rows)
            )
        fw = await walls.get(snap.sockets or [r.sock for r in rows])
        forwarded = forwarded_doors(fw)
        return templates.get_template("_host.html").render(
            token=settings.token,
            snap=snap,
            rows=rows,
            building=building(rows, forwarded),
            verdicts=firewall_verdicts(rows, fw),
            forwarded=forwarded,
            firewall_note=firewall_note(fw, settings.firewall),
        )

    async def host(request: Request) -> Response:
        return page("host.html", request, live=await fragment("host"), live_name="host")

    async def ports(request: Request) -> Response:
        return page("ports.html", request, live=await fragment("ports"), live_name="ports")

    async def connections(request: Request) -> Response:
        query = request.query_params.get("q", "")[:200]
        live = await fragment("connections", query)
        return page("connections.html", request, live=live, live_name="connections", query=query)

    async def events(request: Request) -> Response:
        name = request.path_params["name"]
        query = request.query_params.get("q", "")[:200]
        if name not in ("host", "ports", "connections"):
            return PlainTextResponse("no such stream", status_code=404)

        async def stream() -> AsyncIterator[str]:
            deadline = time.monotonic() + STREAM_S
            last = None
            yield "retry: 2000\n\n"
            while time.monotonic() < deadline and not settings.stopping:
                if await request.is_disconnected():
                    return
                html = await fragment(name, query)
                if html != last:
                    last = html
                    data = "".join(f"data: {line}\n" for line in html.splitlines())
                    yield f"event: update\n{data}\n"
                else:
                    yield ": idle\n\n"
                wake = time.monotonic() + settings.interval_s
                while time.monotonic() < wake and not settings.stopping:
                    await asyncio.sleep(0.1)  # a shutdown ends the stream within 0.1 s

        return StreamingResponse(stream(), media_type="text/event-stream")

    async def port_page(request: Request) -> Response:
        from portscope.diagnose import who
        from portscope.errors import InvalidInput
        from portscope.registry import lookup, port_facts

        text = request.path_params["port"]
        if not text.isdigit() or not 1 <= int(text) <= 65535:
            return page("error.html", request, 400, message=f"bad port {text!r}: give 1-65535")
        port = int(text)
        try:
            result = await run_in_threadpool(partial(who, port, netns=settings.netns))
        except InvalidInput as err:
            return page("error.html", request, 400, message=str(err))
        history = await run_in_threadpool(port_timeline, settings.db, port)
        return page(
            "port.html",
            request,
            port=port,
            services=lookup(port),
            facts=port_facts(port),
            result=result,
            history=history,
        )

    async def lookup_page(request: Request) -> Response:
        from portscope.errors import InvalidInput
        from portscope.registry import lookup

        query = request.query_params.get("q", "").strip()
        services: list[Any] = []
        error = None
        if query:
            try:
                services = lookup(query)[:200]
            except InvalidInput as err:
                error = str(err)
        return page("lookup.html", request, query=query, services=services, error=error)

    async def scans(request: Request) -> Response:
        params = request.query_params
        opened = params.get("id") or None
        a, b = params.get("a") or None, params.get("b") or None
        if (a is None) != (b is None):
            a = b = None  # a diff needs both sides; the form always sends both
        view = await run_in_threadpool(scans_page, settings.db, opened=opened, a=a, b=b)
        return page(
            "scans.html", request, store=view, data=view.value, opened=opened or "",
            a=a or "", b=b or "",
        )  # fmt: skip

    async def kill(request: Request) -> Response:
        if not settings.allow_kill:
            return page(
                "error.html", request, 403,
                message="killing is off: start portscope serve with --allow-kill",
            )  # fmt: skip
        ctype = request.headers.get("content-type", "").split(";")[0].strip()
        if ctype != "application/x-www-form-urlencoded":
            return page("error.html", request, 415, message="a kill is a form post")
        body = await request.body()
        if len(body) > 4096:
            return page("error.html", request, 413, message="form too large")
        form = {k: v[0] for k, v in parse_qs(body.decode("utf-8", "replace")).items()}
        if not secrets.compare_digest(form.get("csrf", "").encode(), settings.csrf.encode()):
            return page("error.html", request, 403, message="CSRF token missing or wrong")
        try:
            port, pid = int(form.get("port", "")), int(form.get("pid", ""))
            ticks = int(form["ticks"]) if form.get("ticks") else None
        except ValueError:
            return page("error.html", request, 400, message="port and pid must be numbers")
        report = await run_in_threadpool(_kill_one, port, pid, ticks, settings.netns)
        return page("killed.html", request, port=port, pid=pid, report=report)

    routes = [
        Route("/", host),
        Route("/ports", ports),
        Route("/connections", connections),
        Route("/events/{name}", events),
        Route("/port/{port}", port_page),
        Route("/lookup", lookup_page),
        Route("/scans", scans),
        Route("/kill", kill, methods=["POST"]),
        Mount("/static", StaticFiles(packages=[("portscope.web", "static")]), name="static"),
    ]
    app = Starlette(routes=routes)
    app.add_middleware(Guard, token=settings.token)
    return app


def _kill_one(port: int, pid: int, ticks: int | None, netns: str | None = None) -> Any:
    """SIGTERM ``pid`` if it still holds ``port`` and is the process the page showed
    (same start time), through ``kill_holders`` (pidfd, start time checked again).
    ``netns``: the namespaces the port page showed (``-N``).

    Returns:
        The ``KillReport``, or a sentence saying why nothing was signalled.
    """
    from portscope.diagnose import kill_holders, who

    if not 1 <= port <= 65535:
        return "bad port: give 1-65535"
    result = who(port, netns=netns)
    mine = tuple(h for h in result.holders if h.pid == pid)
    if not mine:
        return f"pid {pid} does not hold port {port} any more: nothing signalled"
    if ticks is not None and mine[0].start_ticks != ticks:
        return f"pid {pid} is another process than the page showed (pid reused): not signalled"
    return kill_holders(replace(result, holders=mine), timeout_s=3.0)
