"""Tables and text for who / why / audit / free / ephemeral (faces only).

JSON shapes (stable; ``to_dict`` of the result types, plus the computed fields named):

- who: ``WhoResult`` + ``held``; with ``--kill``: ``{"who": ..., "kill": KillReport}``.
- why bind: ``BindDiagnosis`` + ``confirmed``.
- why connect: ``ConnectDiagnosis``.
- audit: ``{"findings": [Finding ...], "counts": {severity: n}, "fail_on": str|null,
  "failed": bool}``.
- free: ``{"schema": "portscope.free/1", "proto", "requested", "found",
  "ports": [FreePort ...], "note": str|null}`` (a bare array before).
- ephemeral: ``EphemeralUsage``.

Every JSON document is an object. Processes are written ``name[pid]`` and IPv6
endpoints ``[::1]:80``, as in the socket tables.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, TextIO

from portscope.diagnose._common import endpoint_text, owner_text
from portscope.models import Proto, Socket, to_dict
from portscope.render import safe
from portscope.render._table import Column, Table

if TYPE_CHECKING:
    from typing import TypeAlias

    from rich.console import RenderableType

    from portscope.diagnose import (
        BindDiagnosis,
        ConnectDiagnosis,
        EphemeralUsage,
        Finding,
        FreePort,
        KillReport,
        Severity,
        WhoResult,
    )

    Item: TypeAlias = str | RenderableType | Table
    """What a renderer returns: a line of text or a rich renderable (a table), in order;
    a face writes them (the CLI: ``Env.show``)."""

_SEVERITY_STYLE = {
    "critical": "bold white on red",
    "high": "bold red",
    "medium": "yellow",
    "low": "cyan",
    "info": "dim",
}


def out(items: list[Item], text: str) -> None:
    """Add one line of text, untrusted parts escaped (``render.safe``); a face shows it
    whole, never wrapped or cropped (the terminal or pager wraps it)."""
    items.append(safe(text))


def when(epoch_s: float | None) -> str:
    """Seconds since the epoch as local ``YYYY-MM-DD HH:MM:SS``; ``-`` for None."""
    if epoch_s is None:
        return "-"
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(epoch_s))


def _cmd(cmdline: tuple[str, ...] | None, limit: int = 100) -> str:
    if not cmdline:
        return "-"
    text = " ".join(" ".join(cmdline).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _sock(s: Socket) -> str:
    remote = f" -> {s.remote}" if s.remote is not None else ""
    return f"{s.proto.value} {s.local}{remote} {s.state.value}{_in_netns(s)}"


def _in_netns(s: Socket) -> str:
    """`` in netns LABEL`` for a socket of a namespace asked for (``-N``), else empty."""
    if s.netns is None:
        return ""
    from portscope.sockets._netns import netns_label

    return f" in netns {netns_label(s.netns)}"


# --- who ----------------------------------------------------------------------------------


def who_json(result: WhoResult) -> dict[str, Any]:
    """The JSON document of ``who``.

    A holder's sockets carry no ``owners`` key: the holder is their owner (a socket that
    several processes share is listed under each of them). Repeating the owner's command
    line in each of 100,000 accepted connections made the document 1 KB per socket.
    """
    import dataclasses

    names = [f.name for f in dataclasses.fields(Socket) if f.name != "owners"]

    def sockets(socks: Sequence[Socket] | None) -> list[dict[str, Any]] | None:
        if socks is None:
            return None
        return [{n: to_dict(getattr(s, n)) for n in names} for s in socks]

    bare = [dataclasses.replace(h, sockets=(), other_sockets=None) for h in result.holders]
    data: dict[str, Any] = to_dict(dataclasses.replace(result, holders=tuple(bare)))
    for holder, doc in zip(result.holders, data["holders"], strict=True):
        doc["sockets"] = sockets(holder.sockets)
        doc["other_sockets"] = sockets(holder.other_sockets)
    data["held"] = result.held
    return data


def write_who_json(result: WhoResult, stream: TextIO, extra: dict[str, Any] | None = None) -> None:
    """Write the ``who_json`` document compactly, streaming the sockets.

    The same data as ``json.dumps(who_json(result))`` (a test keeps it so), without
    building it: a holder's sockets that ``who`` keeps as rows (``SocketRows``) are
    written straight from the rows (``sockets._record.row_json``), in batches, so
    100,000 accepted connections cost a few hundred milliseconds, not a dict each.

    Args:
        result: what ``who`` found.
        stream: where to write; one line, then a newline.
        extra: more keys, after ``held`` (``identities``).
    """
    from portscope.sockets._record import json_string_of

    def socket_objects(socks: Sequence[Socket] | None, owned: bool = True) -> None:
        # a holder's sockets: no "owners" (the holder is); the others': theirs, none visible
        if socks is None:
            stream.write("null")
            return
        stream.write("[")
        rows = getattr(socks, "rows", None)
        close = "}" if owned else ',"owners":[]}'
        if rows is not None:
            from portscope.sockets._record import row_json

            write_row = row_json()
            prefixes: dict[tuple[Any, ...], str] = {}
            strings: dict[str, str] = {}
            for start in range(0, len(rows), 4096):
                part = rows[start : start + 4096]
                text = (close + ",").join(write_row(r, prefixes, strings) for r in part) + close
                stream.write(text if start == 0 else "," + text)
        elif owned:
            stream.write(
                ",".join(json_string_of({n: to_dict(getattr(s, n)) for n in _NAMES}) for s in socks)
            )
        else:
            stream.write(",".join(json_string_of(to_dict(s)) for s in socks))
        stream.write("]")

    stream.write(f'{{"port":{result.port},"proto":{json_string_of(to_dict(result.proto))},')
    stream.write('"holders":[')
    for i, h in enumerate(result.holders):
        bare = to_dict(dataclasses.replace(h, sockets=(), other_sockets=None))
        head = json_string_of({k: v for k, v in bare.items() if k in _HOLDER_HEAD})
        tail = json_string_of({k: v for k, v in bare.items() if k in _HOLDER_TAIL})
        stream.write(("," if i else "") + head[:-1] + ',"sockets":')
        socket_objects(h.sockets)
        stream.write("," + tail[1:-1] + ',"other_sockets":')
        socket_objects(h.other_sockets)
        stream.write("}")
    stream.write('],"unowned":')
    socket_objects(result.unowned, owned=False)
    rest = {
        "owners_complete": result.owners_complete,
        "notes": list(result.notes),
        "held": result.held,
        **(extra or {}),
    }
    stream.write("," + json_string_of(to_dict(rest))[1:] + "\n")


_NAMES = tuple(f.name for f in dataclasses.fields(Socket) if f.name != "owners")
_HOLDER_HEAD = frozenset({"pid", "name", "user", "cmdline", "start_time"})
_HOLDER_TAIL = frozenset({"fds", "unit", "container", "start_ticks", "ppid"})

#: a holder with more sockets on the port than this gets its connections summarised
#: per peer (``who --connections`` lists every one)
SUMMARY_OVER = 20


def render_who(result: WhoResult, *, every_connection: bool = False) -> list[Item]:
    """Holders as one block per process, their sockets in a table.

    A holder with more than ``SUMMARY_OVER`` sockets on the port shows its listening
    sockets and its connections counted per state and per peer address (the ten busiest
    peers), unless ``every_connection``.
    """
    items: list[Item] = []
    what = f"{result.port}/{result.proto.value}" if result.proto else str(result.port)
    if not result.held and not result.unowned:
        out(items, f"nobody holds port {what}")
        return items
    if not result.holders:
        who = "visible process" if result.held else "process"  # else: orphans, TIME-WAIT
        out(items, f"no {who} holds port {what}")
    for h in result.holders:
        place = h.unit or h.container
        out(
            items,
            f"{owner_text(h.name, h.pid)} user {h.user or '?'}, started {when(h.start_time)}"
            + (f", in {place}" if place else ""),
        )
        out(items, f"  command  {_cmd(h.cmdline)}")
        stop = stop_hint(h.unit, h.container)
        if stop:
            out(items, f"  stop it  {stop}")
        if every_connection or len(h.sockets) <= SUMMARY_OVER:
            items.append(_socket_table(h.sockets, limit=None if every_connection else 20))
        else:
            items.extend(_summary(h.sockets, what))
        if h.other_sockets:
            out(
                items,
                f"  {owner_text(h.name, h.pid)} also holds {len(h.other_sockets)} socket(s) "
                "on other ports (stopping it closes them too):",
            )
            items.append(_socket_table(h.other_sockets))
    if result.unowned:
        out(items, f"sockets on port {what} without a {'visible ' if result.held else ''}process:")
        if every_connection or len(result.unowned) <= SUMMARY_OVER:
            limit = None if every_connection else 20
            items.append(_socket_table(result.unowned, uid=True, limit=limit))
        else:
            items.extend(_summary(result.unowned, what))
    for note in result.notes:
        out(items, f"note: {note}")
    return items


_SOCKET_COLUMNS = (
    Column("PROTO"),
    Column("STATE", drop=2),
    Column("LOCAL"),
    Column("REMOTE"),
    Column("SCOPE", drop=1, min_width=14),
)


def _summary(socks: Sequence[Socket], what: str) -> list[Item]:
    """Listening sockets in a table, connections counted per state and per peer."""
    from collections import Counter

    rows = getattr(socks, "rows", None)
    listed = socks if rows is None else rows
    bound = (
        [i for i, s in enumerate(listed) if s.remote_address is None]
        if rows is not None
        else [i for i, s in enumerate(socks) if s.remote is None]
    )
    items: list[Item] = []
    if bound:
        items.append(_socket_table([socks[i] for i in bound], limit=None))
    # (peer, state) pairs counted in C: 100,000 connections in a few milliseconds
    pairs: Counter[tuple[str, str]] = Counter(
        (r.remote_address, r.state.value) for r in rows if r.remote_address is not None
    ) if rows is not None else Counter(
        (s.remote.address, s.state.value) for s in socks if s.remote is not None
    )  # fmt: skip
    states: Counter[str] = Counter()
    peers: Counter[str] = Counter()
    peer_states: dict[str, Counter[str]] = {}
    for (peer, state), n in pairs.items():
        states[state] += n
        peers[peer] += n
        peer_states.setdefault(peer, Counter())[state] += n
    total = sum(states.values())
    if not total:
        return items
    by_state = ", ".join(f"{state} {n:,}" for state, n in states.most_common())
    out(items, f"  {total:,} connections on port {what} ({by_state}) from {len(peers):,} peers:")
    table = Table((Column("PEER"), Column("CONNECTIONS", "right"), Column("STATES", drop=1)))
    top = peers.most_common(10)
    for peer, n in top:
        shown = ", ".join(f"{st} {c:,}" for st, c in peer_states[peer].most_common())
        table.rows.append([peer, f"{n:,}", shown])
    if len(peers) > len(top):
        rest = total - sum(n for _, n in top)
        table.rows.append([f"... {len(peers) - len(top):,} more peers", f"{rest:,}", ""])
    items.append(table)
    out(items, "  (--connections lists every connection)")
    return items


def _socket_table(socks: Sequence[Socket], *, uid: bool = False, limit: int | None = 20) -> Table:
    from portscope.sockets import bind_scope
    from portscope.sockets._netns import netns_label

    shown = list(socks if limit is None else socks[:limit])
    netns = any(s.netns is not None for s in shown)
    columns = _SOCKET_COLUMNS + ((Column("UID", "right", drop=3),) if uid else ())
    if netns:
        columns = (Column("NETNS", min_width=8), *columns)
    table = Table(columns)
    for s in shown:
        row = [
            *([netns_label(s.netns)] if netns else []),
            s.proto.value,
            s.state.value,
            str(s.local),
            str(s.remote) if s.remote else "*",
            bind_scope(s),
        ]
        if uid:
            row.append("-" if s.uid is None else str(s.uid))
        table.rows.append(row)
    if len(socks) > len(shown):
        more = ["...", f"{len(socks) - len(shown)} more", "", "", ""]
        table.rows.append(([""] if netns else []) + more + ([""] if uid else []))
    return table


def stop_hint(unit: str | None, container: str | None) -> str | None:
    """How to stop a managed process for good (a plain kill may be undone by a restart)."""
    if unit and unit.endswith(".service"):
        user = "--user " if "user@" in unit else ""
        return f"systemctl {user}stop {unit}  (a kill may be undone by Restart=)"
    if container:
        runtime, _, cid = container.partition(":")
        tool = {"docker": "docker", "podman": "podman"}.get(runtime, "crictl")
        return f"{tool} stop {cid}  (the container runtime may restart a killed process)"
    return None


def render_kill(report: KillReport) -> list[Item]:
    """One line per holder, then whether the port is free."""
    items: list[Item] = []
    for r in report.results:
        sent = f" [{', '.join(r.signals)}]" if r.signals else ""
        out(items, f"{owner_text(r.name, r.pid)}: {r.outcome.value}{sent} - {r.detail}")
    what = f"{report.port}/{report.proto.value}" if report.proto else str(report.port)
    if report.port_free is True:
        out(items, f"port {what} is free now")
    elif report.port_free is False:
        still = ", ".join(owner_text(h.name, h.pid) for h in report.remaining)
        still = still or "unseen processes"
        out(items, f"port {what} is still held by {still}")
    return items


# --- why ----------------------------------------------------------------------------------


def bind_json(diag: BindDiagnosis) -> dict[str, Any]:
    """The JSON document of ``why bind``."""
    data: dict[str, Any] = to_dict(diag)
    data["confirmed"] = diag.confirmed
    return data


def render_bind(diag: BindDiagnosis) -> list[Item]:
    """The verdict first, then each reason with its evidence and fix (plain lines)."""
    from portscope.diagnose._common import owners_text

    lines: list[str] = []
    opts = [
        o for o, on in (("SO_REUSEADDR", diag.reuseaddr), ("SO_REUSEPORT", diag.reuseport)) if on
    ]
    how = f" with {' + '.join(opts)}" if opts else ""
    verdict = "would succeed" if diag.predicted_ok else "would FAIL"
    lines.append(
        f"bind {diag.proto.value} {endpoint_text(diag.address, diag.port)}{how}: {verdict}"
    )
    if diag.ok is not None:
        tried = "succeeded" if diag.ok else f"failed: {diag.error}"
        agree = "" if diag.confirmed else "  (differs from the prediction)"
        lines.append(f"  trial bind (closed at once): {tried}{agree}")
    for r in diag.reasons:
        mark = "x" if r.blocking else "i"
        lines.append(f"  [{mark}] {r.cause.value}: {r.explanation}")
        # Overlap explanations name their sockets; TIME-WAIT ones are only counted.
        listed = r.sockets if r.cause.value == "time-wait" else r.sockets[3:]
        for s in listed[:5]:
            lines.append(f"        {_sock(s)}  {owners_text(s)}")
        if len(listed) > 5:
            lines.append(f"        ... {len(listed) - 5} more")
        if r.fix:
            lines.append(f"      fix: {r.fix}")
    return [safe(line) for line in lines]


def render_connect(diag: ConnectDiagnosis) -> list[Item]:
    """Each step with its evidence, then the diagnosis and the next commands (plain lines)."""
    lines: list[str] = []
    lines.append(
        f"connect {diag.proto.value} {endpoint_text(diag.host, diag.port)}"
        + (
            f" ({endpoint_text(diag.address, diag.port)})"
            if diag.address and diag.address != diag.host
            else ""
        ),
    )
    for i, step in enumerate(diag.steps, 1):
        mark = "ok" if step.ok else "!!"
        lines.append(f"  {i}. {step.name:<9} [{mark}] {step.summary}")
        for line in step.evidence:
            if line and line not in step.summary:
                lines.append(f"       {line}")
    lines.append(f"diagnosis: {diag.verdict.value}: {diag.explanation}")
    if diag.next_commands:
        lines.append("next:")
        for cmd in diag.next_commands:
            lines.append(f"  $ {cmd}")
    return [safe(line) for line in lines]


# --- audit --------------------------------------------------------------------------------


def audit_json(
    findings: Sequence[Finding],
    fail_on: Severity | None,
    failed: bool,
    notes: Sequence[str] = (),
) -> dict[str, Any]:
    """The JSON document of ``audit``; ``notes``: the socket table's (partial owners)."""
    from portscope.diagnose import Severity

    counts = {s.value: sum(1 for f in findings if f.severity is s) for s in Severity}
    return {
        "findings": to_dict(list(findings)),
        "counts": counts,
        "fail_on": fail_on.value if fail_on else None,
        "failed": failed,
        "notes": list(notes),
    }


def render_audit(findings: Sequence[Finding], *, show_info: bool = True) -> list[Item]:
    """Findings above info as blocks (evidence, why, fix); exposed listeners as a table."""
    items: list[Item] = []
    from rich.text import Text

    from portscope.diagnose._common import owners_text

    serious = [f for f in findings if f.severity.value != "info"]
    info = [f for f in findings if f.severity.value == "info"]
    for f in serious:
        line = Text()
        line.append(f"{f.severity.value.upper():<8}", style=_SEVERITY_STYLE[f.severity.value])
        line.append(safe(f" {f.title}  [{f.rule}]"))
        items.append(line)
        s = f.socket
        users = ",".join(sorted({o.user or "?" for o in s.owners or ()})) or (
            f"uid {s.uid}" if s.uid is not None else "?"
        )
        out(items, f"         socket  {_sock(s)}  {owners_text(s)} user {users}")
        if f.confirmed_by:
            out(items, f"         answer  {f.confirmed_by}")
        if f.firewall:
            rule = f" -- {f.firewall_rule}" if f.firewall_rule else ""
            out(items, f"         firewall {f.firewall}{rule}")
        out(items, f"         why     {f.why}")
        out(items, f"         fix     {f.fix}")
    if show_info and info:
        table = Table(
            (
                Column("PROTO"),
                Column("LOCAL"),
                Column("SERVICE", drop=2, min_width=8, overflow="ellipsis"),
                Column("PROCESS", drop=1, min_width=12),
            ),
            title="Exposed listeners (info)",
        )
        for f in info:
            table.rows.append(
                [
                    f.socket.proto.value,
                    str(f.socket.local) + _in_netns(f.socket),
                    f.service or "-",
                    owners_text(f.socket),
                ]
            )
        items.append(table)
    counts: dict[str, int] = {}
    for f in findings:
        counts[f.severity.value] = counts.get(f.severity.value, 0) + 1
    order = ("critical", "high", "medium", "low", "info")
    summary = ", ".join(f"{counts[k]} {k}" for k in order if k in counts) or "no findings"
    out(items, f"audit: {summary}")
    return items


# --- free / ephemeral ---------------------------------------------------------------------


FREE_SCHEMA = "portscope.free/1"


def free_json(
    ports: Sequence[FreePort], requested: int, proto: Proto, note: str | None = None
) -> dict[str, Any]:
    """The JSON document of ``free``: an object with a schema name (a bare array before).

    Args:
        ports: the free ports found.
        requested: how many were asked for.
        proto: the transport.
        note: why fewer than ``requested`` came back, or ``None``.
    """
    return {
        "schema": FREE_SCHEMA,
        "proto": proto.value,
        "requested": requested,
        "found": len(ports),
        "ports": to_dict(list(ports)),
        "note": note,
    }


def render_free(ports: Sequence[FreePort]) -> list[Item]:
    """One port per line, so ``PORT=$(portscope free)`` works (no rich needed)."""
    return [str(p.port) for p in ports]


def render_ephemeral(usage: EphemeralUsage, *, top: int = 20) -> list[Item]:
    """The range, totals, the busiest destinations and the warnings."""
    items: list[Item] = []
    if usage.netns is not None:
        from portscope.sockets._netns import netns_label

        out(items, f"netns {netns_label(usage.netns)} (net:[{usage.netns.inode}])")
    lo, hi = usage.ephemeral
    reuse = "-" if usage.tcp_tw_reuse is None else str(usage.tcp_tw_reuse)
    out(
        items,
        f"ephemeral range {lo}-{hi}: {usage.capacity} ports"
        f" ({usage.reserved} reserved), net.ipv4.tcp_tw_reuse={reuse}",
    )
    out(
        items,
        f"in use: {usage.in_use + usage.time_wait} TCP connections ({usage.time_wait} in "
        f"TIME-WAIT), {usage.udp_in_use} UDP sockets, {usage.distinct_ports} distinct ports",
    )
    if usage.destinations:
        table = Table(
            (
                Column("DESTINATION"),
                Column("CONNS", "right", drop=3),
                Column("TIME-WAIT", "right", drop=4),
                Column("SOURCES", "right", drop=2),
                Column("BUSIEST SOURCE", drop=1),
                Column("USE"),
            )
        )
        for d in usage.destinations[:top]:
            table.rows.append(
                [
                    endpoint_text(d.address, d.port),
                    str(d.in_use),
                    str(d.time_wait),
                    str(d.sources),
                    d.busiest_source,
                    f"{d.max_per_source}/{d.capacity} ({d.usage:.1%})"
                    + (" !" if d.warning else ""),
                ]
            )
        items.append(table)
        if len(usage.destinations) > top:
            out(items, f"... {len(usage.destinations) - top} more destinations (--top N)")
    for w in usage.warnings:
        out(items, f"warning: {w}")
    return items
