"""The extended columns of ``portscope ls`` (``-i``, ``-o``, ``-e``, ``-m``) and their JSON.

Text cells follow ``ss``'s words (``rtt:0.022/0.012 cwnd:10 ...``, ``on,200ms,0``,
``r0,rb131072,...``) so that people who read ``ss`` read these; the JSON carries the same
values under keys with their units (``sockets._diag_ext``; docs/sockets.md).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from portscope.render._table import Column
from portscope.sockets._backend import Extras
from portscope.sockets._diag_ext import Memory, SocketExtra, TcpInfo, Timer, extra_json
from portscope.sockets._record import Row

_UID = Column("UID", "right", drop=7)
_INODE = Column("Inode", "right", drop=8)
_COOKIE = Column("Cookie", drop=9)
_TIMER = Column("Timer")
_MEMORY = Column("Memory", min_width=12)
_INFO = Column("Info", min_width=20)


def timer_text(timer: Timer | None) -> str:
    """``on,200ms,0`` (name, time to expiry, retransmissions) as ``ss -o``; ``-`` if none."""
    if timer is None or timer.name == "off":
        return "-"
    return f"{timer.name},{_duration(timer.expires_ms)},{timer.retrans}"


def _duration(ms: int) -> str:
    """``9min59sec``, ``1.5sec``, ``200ms``: the words of ``ss -o`` (``print_ms_timer``)."""
    sign, ms = ("-", -ms) if ms < 0 else ("", ms)
    mins, rest = divmod(ms, 60_000)
    secs, msecs = divmod(rest, 1000)
    out = f"{mins}min" if mins else ""
    if secs:
        out += f"{secs}.{msecs:03d}sec" if msecs else f"{secs}sec"
    elif msecs or not out:
        out += f"{msecs}ms"
    return sign + out


def memory_text(memory: Memory | None) -> str:
    """``r0 rb131072 t0 tb16384 f0 w0 o0 bl0 d0``: the words of ``ss -m``'s ``skmem:(...)``
    (space separated, so a narrow table wraps between them); ``-`` if none."""
    if memory is None:
        return "-"
    m = memory
    return (
        f"r{m.rmem_alloc_bytes} rb{m.rcvbuf_bytes} t{m.wmem_alloc_bytes} tb{m.sndbuf_bytes} "
        f"f{m.fwd_alloc_bytes} w{m.wmem_queued_bytes} o{m.optmem_bytes} bl{m.backlog_bytes}"
        + ("" if m.drops is None else f" d{m.drops}")
    )


def _rate(bytes_per_s: int) -> str:
    bits = bytes_per_s * 8
    for unit, size in (("Gbps", 10**9), ("Mbps", 10**6), ("Kbps", 10**3)):
        if bits >= size:
            return f"{bits / size:.1f}{unit}"
    return f"{bits}bps"


def _ms(value: float) -> str:
    return f"{value:.3f}".rstrip("0").rstrip(".")


def info_text(info: TcpInfo | None) -> str:
    """``tcp_info`` in ``ss -i``'s words, space separated (the table wraps at spaces)."""
    if info is None:
        return "-"
    i = info
    words: list[str] = []
    add = words.append
    if i.options:
        words += [o for o in i.options if o != "wscale"]
    if i.congestion:
        add(i.congestion)
    if i.options and "wscale" in i.options:
        add(f"wscale:{i.snd_wscale},{i.rcv_wscale}")
    if i.rto_ms:
        add(f"rto:{_ms(i.rto_ms)}")
    if i.rtt_ms is not None and i.rttvar_ms is not None and i.rtt_ms:
        add(f"rtt:{_ms(i.rtt_ms)}/{_ms(i.rttvar_ms)}")
    if i.min_rtt_ms:
        add(f"minrtt:{_ms(i.min_rtt_ms)}")
    for name, value in (("mss", i.mss), ("pmtu", i.pmtu), ("rcvmss", i.rcv_mss)):
        if value:
            add(f"{name}:{value}")
    if i.cwnd is not None:
        add(f"cwnd:{i.cwnd}")
    if i.ssthresh is not None and i.ssthresh:
        add(f"ssthresh:{i.ssthresh}")
    for name, value in (
        ("bytes_sent", i.bytes_sent),
        ("bytes_retrans", i.bytes_retrans),
        ("bytes_acked", i.bytes_acked),
        ("bytes_received", i.bytes_received),
        ("segs_out", i.segs_out),
        ("segs_in", i.segs_in),
    ):
        if value:
            add(f"{name}:{value}")
    if i.retransmits or i.total_retrans:
        add(f"retrans:{i.retransmits or 0}/{i.total_retrans or 0}")
    for name, value in (("unacked", i.unacked), ("lost", i.lost), ("sacked", i.sacked)):
        if value:
            add(f"{name}:{value}")
    if i.delivery_rate_bytes_per_s:
        add(f"delivery_rate:{_rate(i.delivery_rate_bytes_per_s)}")
    if i.pacing_rate_bytes_per_s:
        add(f"pacing_rate:{_rate(i.pacing_rate_bytes_per_s)}")
    for name, ms_value in (
        ("busy", i.busy_ms),
        ("rwnd_limited", i.rwnd_limited_ms),
        ("sndbuf_limited", i.sndbuf_limited_ms),
    ):
        if ms_value:
            add(f"{name}:{_ms(ms_value)}ms")
    for name, value in (("lastsnd", i.last_send_ms_ago), ("lastrcv", i.last_recv_ms_ago)):
        if value is not None and value < 0x7FFFFFFF and (i.bytes_sent or i.bytes_received):
            add(f"{name}:{value}")
    if i.app_limited:
        add("app_limited")
    if i.notsent_bytes:
        add(f"notsent:{i.notsent_bytes}")
    return " ".join(words) or "-"


def columns(
    want: Extras, extended: bool, extras: Mapping[int, SocketExtra] | None
) -> list[tuple[Column, Callable[[Row], str]]]:
    """The extra columns of ``render_ls`` for ``-e`` (``extended``) and ``want``."""
    table = extras or {}
    more: list[tuple[Column, Callable[[Row], str]]] = []

    def of(row: Row) -> SocketExtra | None:
        return None if row.cookie is None else table.get(row.cookie)

    if extended:
        more += [
            (_UID, lambda r: "-" if r.uid is None else str(r.uid)),
            (_INODE, lambda r: "-" if r.inode is None else str(r.inode)),
            (_COOKIE, lambda r: "-" if r.cookie is None else f"sk:{r.cookie:x}"),
        ]
    if want.timers:
        more.append((_TIMER, lambda r: timer_text(getattr(of(r), "timer", None))))
    if want.memory:
        more.append((_MEMORY, lambda r: memory_text(getattr(of(r), "memory", None))))
    if want.info:
        more.append((_INFO, lambda r: info_text(getattr(of(r), "info", None))))
    return more


def json_tail(want: Extras, extras: dict[int, Any]) -> Callable[[Row], str]:
    """The JSON keys each socket gets for ``want`` (``timer``, ``tcp_info``, ``memory``).

    Each socket's extras are taken out of ``extras`` as they are written (a streamed
    dump does not keep 200,000 of them); with ``Extras.as_json`` they are that JSON
    already.
    """
    pop = extras.pop
    timers, info, memory = want.timers, want.info, want.memory
    missing = extra_json(None, timers=timers, info=info, memory=memory)

    def tail(row: Row) -> str:
        extra = None if row.cookie is None else pop(row.cookie, None)
        if extra is None:
            return missing
        if isinstance(extra, str):
            return extra
        return extra_json(extra, timers=timers, info=info, memory=memory)

    return tail
