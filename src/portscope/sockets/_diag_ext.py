"""The extended attributes of inet_diag replies: ``tcp_info``, congestion control, timers,
socket memory (what ``ss -i``, ``-o``, ``-e``, ``-m`` show).

A separate pass from ``_diag_codec``'s row loop: the rows are decoded there, unchanged,
and this module walks the same chunk again for the attributes the request asked for
(``INET_DIAG_INFO``, ``INET_DIAG_CONG``, ``INET_DIAG_SKMEMINFO``) and the timer fields of
the header, keyed by the socket cookie (``Row.cookie``). Only dumps that show them ask
for them, so the plain dump stays as it is.

Sources: ``struct tcp_info`` (``linux/tcp.h``; decoded by the length the kernel sends:
fields a kernel does not know are ``None``), ``struct inet_diag_msg`` and the
``INET_DIAG_*`` attributes (``linux/inet_diag.h``), ``SK_MEMINFO_*``
(``linux/sock_diag.h``), the timer codes of ``net/ipv4/inet_diag.c``
(``inet_sk_diag_fill``) as ``ss`` names them (``misc/ss.c``, ``tmr_name``).
"""

from __future__ import annotations

import json
import struct
from functools import cache
from typing import Any, Final, NamedTuple

__all__ = [
    "EXT_CONG",
    "EXT_INFO",
    "EXT_SKMEMINFO",
    "TCP_INFO_FIELDS",
    "Memory",
    "SocketExtra",
    "TcpInfo",
    "Timer",
    "decode_extras",
    "extra_json",
]

INET_DIAG_INFO: Final = 2
INET_DIAG_CONG: Final = 4
INET_DIAG_SKMEMINFO: Final = 7
#: request bits (``inet_diag_req_v2.idiag_ext``: ``1 << (attribute - 1)``)
EXT_INFO: Final = 1 << (INET_DIAG_INFO - 1)
EXT_CONG: Final = 1 << (INET_DIAG_CONG - 1)
EXT_SKMEMINFO: Final = 1 << (INET_DIAG_SKMEMINFO - 1)

_SOCK_DIAG_BY_FAMILY: Final = 20
_NLMSG_DONE: Final = 3
_NLMSG_ERROR: Final = 2
_ATTRS_AT: Final = 16 + 72  # nlmsghdr + inet_diag_msg
# nlmsghdr (len, type) ... inet_diag_msg: timer, retrans, ..., cookie, expires
_HEAD = struct.Struct("=IH10x2xBB40xQI")
_RTA = struct.Struct("=HH")

#: ``idiag_timer`` -> the name ``ss -o`` prints
TIMER_NAMES: Final = ("off", "on", "keepalive", "timewait", "persist")
#: ``tcpi_ca_state`` (``enum tcp_ca_state``, linux/tcp.h)
CA_STATES: Final = ("open", "disorder", "cwr", "recovery", "loss")
#: ``tcpi_options`` bits (``TCPI_OPT_*``, linux/tcp.h), as ``ss -i`` names them
OPTIONS: Final = (
    (1, "ts"),
    (2, "sack"),
    (4, "wscale"),
    (8, "ecn"),
    (16, "ecnseen"),
    (32, "fastopen"),
    (64, "usec_ts"),
)
_INFINITE_SSTHRESH: Final = 0x7FFFFFFF  # TCP_INFINITE_SSTHRESH: not set yet
_NO_LIMIT: Final = (1 << 64) - 1  # pacing rate ~0ULL: unlimited


class Timer(NamedTuple):
    """A TCP socket's pending timer (``ss -o``: ``timer:(on,200ms,0)``).

    Attributes:
        name: ``on`` (retransmission), ``keepalive``, ``timewait``, ``persist`` (zero
            window probe), or ``off``.
        expires_ms: milliseconds until it fires (negative: overdue).
        retrans: retransmissions (``on``) or keepalive probes sent so far.
    """

    name: str
    expires_ms: int
    retrans: int


class Memory(NamedTuple):
    """Socket memory (``INET_DIAG_SKMEMINFO``; ``ss -m``'s ``skmem:(r..,rb..,...)``), bytes.

    Attributes:
        rmem_alloc_bytes: receive queue memory (``r``).
        rcvbuf_bytes: receive buffer size, ``SO_RCVBUF`` (``rb``).
        wmem_alloc_bytes: memory of packets sent, not yet freed (``t``).
        sndbuf_bytes: send buffer size, ``SO_SNDBUF`` (``tb``).
        fwd_alloc_bytes: memory reserved, not yet used (``f``).
        wmem_queued_bytes: memory of the send queue (``w``).
        optmem_bytes: option memory (``o``).
        backlog_bytes: the socket backlog queue (``bl``).
        drops: packets dropped before reaching the socket (``d``), a count.
    """

    rmem_alloc_bytes: int
    rcvbuf_bytes: int
    wmem_alloc_bytes: int
    sndbuf_bytes: int
    fwd_alloc_bytes: int
    wmem_queued_bytes: int
    optmem_bytes: int
    backlog_bytes: int
    drops: int | None


# (JSON key, struct format, offset, kind): kind is how the raw value becomes the key's:
# "": as is; "ms": microseconds -> milliseconds; "ssthresh", "rate": sentinels -> None.
# Offsets are struct tcp_info's (linux/tcp.h); a field the kernel did not send is None.
TCP_INFO_FIELDS: Final[tuple[tuple[str, str, int, str], ...]] = (
    ("ca_state", "B", 1, "ca"),
    ("retransmits", "B", 2, ""),
    ("probes", "B", 3, ""),
    ("backoff", "B", 4, ""),
    ("options", "B", 5, "options"),
    ("snd_wscale", "B", 6, "low4"),
    ("rcv_wscale", "B", 6, "high4"),
    ("app_limited", "B", 7, "bit0"),
    ("rto_ms", "I", 8, "ms"),
    ("ato_ms", "I", 12, "ms"),
    ("mss", "I", 16, ""),
    ("rcv_mss", "I", 20, ""),
    ("unacked", "I", 24, ""),
    ("sacked", "I", 28, ""),
    ("lost", "I", 32, ""),
    ("retrans", "I", 36, ""),
    ("last_send_ms_ago", "I", 44, ""),
    ("last_recv_ms_ago", "I", 52, ""),
    ("last_ack_ms_ago", "I", 56, ""),
    ("pmtu", "I", 60, ""),
    ("rcv_ssthresh", "I", 64, ""),
    ("rtt_ms", "I", 68, "ms"),
    ("rttvar_ms", "I", 72, "ms"),
    ("ssthresh", "I", 76, "ssthresh"),
    ("cwnd", "I", 80, ""),
    ("advmss", "I", 84, ""),
    ("reordering", "I", 88, ""),
    ("rcv_rtt_ms", "I", 92, "ms"),
    ("rcv_space", "I", 96, ""),
    ("total_retrans", "I", 100, ""),
    ("pacing_rate_bytes_per_s", "Q", 104, "rate"),
    ("max_pacing_rate_bytes_per_s", "Q", 112, "rate"),
    ("bytes_acked", "Q", 120, ""),
    ("bytes_received", "Q", 128, ""),
    ("segs_out", "I", 136, ""),
    ("segs_in", "I", 140, ""),
    ("notsent_bytes", "I", 144, ""),
    ("min_rtt_ms", "I", 148, "ms"),
    ("data_segs_in", "I", 152, ""),
    ("data_segs_out", "I", 156, ""),
    ("delivery_rate_bytes_per_s", "Q", 160, ""),
    ("busy_ms", "Q", 168, "ms"),
    ("rwnd_limited_ms", "Q", 176, "ms"),
    ("sndbuf_limited_ms", "Q", 184, "ms"),
    ("delivered", "I", 192, ""),
    ("delivered_ce", "I", 196, ""),
    ("bytes_sent", "Q", 200, ""),
    ("bytes_retrans", "Q", 208, ""),
    ("dsack_dups", "I", 216, ""),
    ("reord_seen", "I", 220, ""),
    ("rcv_ooopack", "I", 224, ""),
    ("snd_wnd", "I", 228, ""),
    ("rcv_wnd", "I", 232, ""),
    ("rehash", "I", 236, ""),
    ("total_rto", "H", 240, ""),
    ("total_rto_recoveries", "H", 242, ""),
    ("total_rto_time_ms", "I", 244, ""),
)
_SIZES: Final = {"B": 1, "H": 2, "I": 4, "Q": 8}
#: the bytes of ``struct tcp_info`` this decoder knows (a newer kernel sends more)
TCP_INFO_SIZE: Final = 248


class TcpInfo(NamedTuple):
    """``struct tcp_info`` of one TCP socket (``ss -i``), in the units of the names.

    Every field is ``None`` when the running kernel's ``tcp_info`` is too short to hold
    it (decoded by the length it sends). Times ``*_ms`` are milliseconds (the kernel
    gives microseconds for RTTs, RTO and the limited times: exact to 0.001 ms);
    ``*_ms_ago`` are milliseconds since the last event; ``bytes_*``/``*_bytes`` are
    bytes; ``*_bytes_per_s`` bytes per second (``ss`` prints bits per second);
    ``cwnd``, ``ssthresh``, ``unacked``, ``lost``, ``retrans`` ... are segments.
    ``ssthresh`` is ``None`` until it is set (``TCP_INFINITE_SSTHRESH``); the pacing
    rates are ``None`` when unlimited. ``congestion`` is ``INET_DIAG_CONG`` (``cubic``,
    ``bbr`` ...). For a LISTEN socket ``unacked`` is the accept queue and ``sacked`` the
    backlog, as the kernel reports them.
    """

    congestion: str | None
    ca_state: str | None
    retransmits: int | None
    probes: int | None
    backoff: int | None
    options: tuple[str, ...] | None
    snd_wscale: int | None
    rcv_wscale: int | None
    app_limited: bool | None
    rto_ms: float | None
    ato_ms: float | None
    mss: int | None
    rcv_mss: int | None
    unacked: int | None
    sacked: int | None
    lost: int | None
    retrans: int | None
    last_send_ms_ago: int | None
    last_recv_ms_ago: int | None
    last_ack_ms_ago: int | None
    pmtu: int | None
    rcv_ssthresh: int | None
    rtt_ms: float | None
    rttvar_ms: float | None
    ssthresh: int | None
    cwnd: int | None
    advmss: int | None
    reordering: int | None
    rcv_rtt_ms: float | None
    rcv_space: int | None
    total_retrans: int | None
    pacing_rate_bytes_per_s: int | None
    max_pacing_rate_bytes_per_s: int | None
    bytes_acked: int | None
    bytes_received: int | None
    segs_out: int | None
    segs_in: int | None
    notsent_bytes: int | None
    min_rtt_ms: float | None
    data_segs_in: int | None
    data_segs_out: int | None
    delivery_rate_bytes_per_s: int | None
    busy_ms: float | None
    rwnd_limited_ms: float | None
    sndbuf_limited_ms: float | None
    delivered: int | None
    delivered_ce: int | None
    bytes_sent: int | None
    bytes_retrans: int | None
    dsack_dups: int | None
    reord_seen: int | None
    rcv_ooopack: int | None
    snd_wnd: int | None
    rcv_wnd: int | None
    rehash: int | None
    total_rto: int | None
    total_rto_recoveries: int | None
    total_rto_time_ms: int | None


class SocketExtra(NamedTuple):
    """What the extended attributes say of one socket (each ``None`` when not asked for,
    or not sent: UDP has no ``tcp_info``, TIME-WAIT sockets carry no attributes).

    Attributes:
        timer: the pending timer (TCP), from the message header.
        info: ``tcp_info`` and the congestion control algorithm.
        memory: socket memory.
    """

    timer: Timer | None
    info: TcpInfo | None
    memory: Memory | None


def _ms(us: int) -> float:
    return us / 1000


def _options(bits: int) -> tuple[str, ...]:
    return tuple(name for bit, name in OPTIONS if bits & bit)


@cache
def _info_decoder() -> Any:
    """Generate ``decode(data, congestion) -> TcpInfo`` from ``TCP_INFO_FIELDS``."""
    slots = sorted({(off, code) for _, code, off, _ in TCP_INFO_FIELDS})
    fmt, at = "=", 0
    for off, code in slots:
        fmt += f"{off - at}x{code}" if off > at else code
        at = off + _SIZES[code]
    fmt += f"{TCP_INFO_SIZE - at}x" if at < TCP_INFO_SIZE else ""
    assert struct.calcsize(fmt) == TCP_INFO_SIZE
    raw = [f"_r{i}" for i in range(len(slots))]
    slot_of = {slot: name for slot, name in zip(slots, raw, strict=True)}
    exprs = []
    for _, code, off, kind in TCP_INFO_FIELDS:
        name = slot_of[off, code]
        expr = {
            "": name,
            "ms": f"{name} / 1000",
            "ca": f"_CA[{name}] if {name} < 5 else str({name})",
            "options": f"_options({name})",
            "low4": f"{name} & 15",
            "high4": f"{name} >> 4",
            "bit0": f"bool({name} & 1)",
            "ssthresh": f"None if {name} >= _INF else {name}",
            "rate": f"None if {name} == _NOLIM else {name}",
        }[kind]
        exprs.append(expr)
    ends = [off + _SIZES[code] for _, code, off, _ in TCP_INFO_FIELDS]
    source = (
        "def decode(data, congestion):\n"
        "    size = len(data)\n"
        f"    if size < {TCP_INFO_SIZE}:\n"
        f"        data = bytes(data) + bytes({TCP_INFO_SIZE} - size)\n"
        f"    ({', '.join(raw)},) = _unpack(data)\n"
        f"    values = [congestion, {', '.join(exprs)}]\n"
        f"    if size < {TCP_INFO_SIZE}:\n"
        f"        for i, end in enumerate(_ENDS):\n"
        "            if end > size:\n"
        "                values[i + 1] = None\n"
        "    return _new(_TcpInfo, values)\n"
    )
    from portscope.sockets._record import compile_source

    namespace = {
        "_unpack": struct.Struct(fmt).unpack_from,
        "_CA": CA_STATES,
        "_options": _options,
        "_INF": _INFINITE_SSTHRESH,
        "_NOLIM": _NO_LIMIT,
        "_ENDS": ends,
        "_new": tuple.__new__,
        "_TcpInfo": TcpInfo,
    }
    return compile_source(source, "tcp_info_decode", namespace)["decode"]


def decode_tcp_info(data: bytes, congestion: str | None = None) -> TcpInfo:
    """``struct tcp_info`` bytes (any length the kernel sends) as a ``TcpInfo``."""
    info: TcpInfo = _info_decoder()(data, congestion)
    return info


def decode_extras(
    chunk: bytes,
    out: dict[int, Any],
    *,
    timers: bool,
    info: bool,
    memory: bool,
    as_json: bool = False,
) -> None:
    """Decode the extended attributes of the inet_diag messages in ``chunk`` into ``out``
    (cookie -> ``SocketExtra``); errors and the end of the dump are ``_diag_codec``'s.

    Args:
        chunk: whole netlink messages, as received (the same chunk the rows come from).
        out: where each socket's extras go, by its cookie.
        timers: keep the timer of the header (``ss -o``).
        info: decode ``INET_DIAG_INFO`` and ``INET_DIAG_CONG`` (``ss -i``).
        memory: decode ``INET_DIAG_SKMEMINFO`` (``ss -m``).
        as_json: store, instead of a ``SocketExtra``, the JSON keys ``extra_json``
            writes for it, made straight from the bytes (the CLI's ``--json`` at 200,000
            sockets: no tuple per socket, one f-string per attribute).
    """
    if as_json:
        _decode_json(chunk, out, timers, info, memory)
        return
    view = memoryview(chunk)
    end = len(chunk)
    off = 0
    head = _HEAD.unpack_from
    rta = _RTA.unpack_from
    decode = _info_decoder()
    while off + 16 <= end:
        try:
            length, kind, tmr, retrans, cookie, expires = head(view, off)
        except struct.error:
            break
        if length < 16:
            break
        if kind != _SOCK_DIAG_BY_FAMILY:
            off += (length + 3) & ~3
            continue
        timer = None
        if timers:
            name = TIMER_NAMES[tmr] if tmr < len(TIMER_NAMES) else str(tmr)
            # idiag_expires is unsigned; an overdue timer shows as a huge value
            ms = expires - (1 << 32) if expires >= 1 << 31 else expires
            timer = Timer(name, ms, retrans)
        raw_info = None
        cong = None
        mem = None
        if info or memory:
            a = off + _ATTRS_AT
            stop = off + length
            while a + 4 <= stop:
                alen, akind = rta(view, a)
                if alen < 4:
                    break
                if akind == INET_DIAG_INFO and info:
                    raw_info = view[a + 4 : a + alen]
                elif akind == INET_DIAG_CONG and info:
                    cong = (
                        bytes(view[a + 4 : a + alen]).split(b"\0", 1)[0].decode("ascii", "replace")
                    )
                elif akind == INET_DIAG_SKMEMINFO and memory and alen >= 4 + 32:
                    count = min(9, (alen - 4) // 4)
                    values: list[int | None] = list(struct.unpack_from(f"={count}I", view, a + 4))
                    values += [None] * (9 - count)
                    r, rb, t, tb, f, w, o, bl, d = values
                    assert r is not None and rb is not None and t is not None and tb is not None
                    assert f is not None and w is not None and o is not None and bl is not None
                    mem = Memory(r, rb, t, tb, f, w, o, bl, d)
                a += (alen + 3) & ~3
        tcp = None if raw_info is None else decode(raw_info, cong)
        out[cookie] = SocketExtra(timer, tcp, mem)
        off += (length + 3) & ~3


def _decode_json(chunk: bytes, out: dict[int, Any], timers: bool, info: bool, memory: bool) -> None:
    """``decode_extras(..., as_json=True)``: each socket's JSON keys, from the bytes."""
    end = len(chunk)
    off = 0
    head = _HEAD.unpack_from
    rta = _RTA.unpack_from
    info_json = _info_json_raw()
    mem_json = _MEM_JSON.unpack_from
    cong_get = _CONG_JSON.get
    names = TIMER_NAMES
    layouts = _LAYOUTS
    if len(layouts) >= 64:
        layouts.clear()
    while off + 16 <= end:
        try:
            length, kind, tmr, retrans, cookie, expires = head(chunk, off)
        except struct.error:
            break
        if length < 16:
            break
        if kind != _SOCK_DIAG_BY_FAMILY:
            off += (length + 3) & ~3
            continue
        tail = ""
        if timers:
            name = names[tmr] if tmr < 5 else str(tmr)
            ms = expires - (1 << 32) if expires >= 1 << 31 else expires
            tail = f',"timer":{{"name":"{name}","expires_ms":{ms},"retrans":{retrans}}}'
        stop = off + length
        lay = layouts.get(length)
        if lay is not None and lay[0](chunk, off) == lay[1]:
            # the same attributes at the same places as a message seen before (every
            # header checked in one unpack): no walk
            _, _, info_rel, info_size, cong_rel, cong_end, mem_rel, mem_size = lay
            info_at = -1 if info_rel < 0 else off + info_rel
            mem_at = -1 if mem_rel < 0 else off + mem_rel
            if cong_rel < 0:
                cong = "null"
            else:
                raw = chunk[off + cong_rel : off + cong_end]
                cong = cong_get(raw) or _congestion_json(raw)
        else:
            info_at = mem_at = cong_at = -1
            info_size = mem_size = cong_end = 0
            cong = "null"
            seen: list[tuple[int, int, int]] = []
            a = off + _ATTRS_AT
            while a + 4 <= stop:
                alen, akind = rta(chunk, a)
                if alen < 4:
                    seen = []
                    break
                seen.append((a - off, alen, akind))
                if akind == INET_DIAG_INFO:
                    info_at = a + 4
                    info_size = alen - 4
                elif akind == INET_DIAG_CONG:
                    cong_at, cong_end = a + 4, a + alen
                    raw = chunk[cong_at:cong_end]
                    cong = cong_get(raw) or _congestion_json(raw)
                elif akind == INET_DIAG_SKMEMINFO:
                    mem_at = a + 4 if alen >= 4 + 32 else -1
                    mem_size = alen - 4
                a += (alen + 3) & ~3
            if seen and len(layouts) < 64:
                layouts[length] = _layout(
                    seen,
                    -1 if info_at < 0 else info_at - off,
                    info_size,
                    -1 if cong_at < 0 else cong_at - off,
                    cong_end - off,
                    -1 if mem_at < 0 else mem_at - off,
                    mem_size,
                )
        if info:
            tail += (
                ',"tcp_info":null' if info_at < 0 else info_json(chunk, info_at, info_size, cong)
            )
        if memory:
            if mem_at < 0:
                tail += ',"memory":null'
            elif mem_size >= 36:
                tail += _MEM_TEMPLATE.format(*mem_json(chunk, mem_at))
            else:
                r, rb, t, tb, f, w, o, bl = struct.unpack_from("=8I", chunk, mem_at)
                mem = Memory(r, rb, t, tb, f, w, o, bl, None)
                tail += extra_json(
                    SocketExtra(None, None, mem), timers=False, info=False, memory=True
                )
        out[cookie] = tail
        off += (length + 3) & ~3


#: message length -> the attribute layout of a message of that length seen before
#: (``_layout``): messages of one kind repeat it, and one unpack of the attribute headers
#: at those places confirms it exactly
_LAYOUTS: dict[int, tuple[Any, ...]] = {}


def _layout(seen: list[tuple[int, int, int]], *places: int) -> tuple[Any, ...]:
    """(unpack of the headers at the offsets ``seen``, their expected values, places)."""
    fmt, at = "=", 0
    expected: list[int] = []
    for rel, alen, akind in seen:
        fmt += f"{rel - at}xHH" if rel > at else "HH"
        at = rel + 4
        expected += (alen, akind)
    return (struct.Struct(fmt).unpack_from, tuple(expected), *places)


_MEM_JSON = struct.Struct("=9I")
_MEM_TEMPLATE = (
    ',"memory":{{' + ",".join(f'"{name}":{{{i}}}' for i, name in enumerate(Memory._fields)) + "}}"
)
_JSON_STRINGS: dict[str, str] = {}
#: microseconds -> the JSON text of the milliseconds (float repr is most of the cost of
#: a tcp_info object; RTTs and RTOs repeat): emptied at 65,536 entries
_MS_TEXT: dict[int, str] = {}
#: raw INET_DIAG_CONG bytes -> the JSON string of the name
_CONG_JSON: dict[bytes, str] = {}


def _congestion_json(raw: bytes) -> str:
    try:
        return _CONG_JSON[raw]
    except KeyError:
        if len(_CONG_JSON) > 256:
            _CONG_JSON.clear()
        name = raw.split(b"\0", 1)[0].decode("ascii", "replace")
        text = _CONG_JSON[raw] = _json_text(name)
        return text


def _json_text(text: str | None) -> str:
    if text is None:
        return "null"
    try:
        return _JSON_STRINGS[text]
    except KeyError:
        from portscope.sockets._record import json_string

        value = _JSON_STRINGS[text] = json_string(text)
        return value


@cache
def _info_json_raw() -> Any:
    """Generate ``info_json(data, congestion) -> ',"tcp_info":{...}'`` straight from the
    bytes of a full-length ``tcp_info`` (the keys and values of ``extra_json`` exactly);
    a shorter one goes through ``decode_tcp_info`` and ``extra_json``."""
    slots = sorted({(off, code) for _, code, off, _ in TCP_INFO_FIELDS})
    fmt, at = "=", 0
    for off, code in slots:
        fmt += f"{off - at}x{code}" if off > at else code
        at = off + _SIZES[code]
    raw = [f"_r{i}" for i in range(len(slots))]
    slot_of = {slot: name for slot, name in zip(slots, raw, strict=True)}
    # a %-template and its values: %d formats a raw integer in C, a fifth faster than an
    # f-string over 57 values (measured)
    parts = ['"congestion":%s']
    values = ["congestion"]
    for key, code, off, kind in TCP_INFO_FIELDS:
        r = slot_of[off, code]
        expr = {
            "": r,
            "ms": f"_MS.get({r}) or _ms({r})",
            "ca": f"_CA_JSON[{r}]",
            "options": f"_OPT_JSON[{r}]",
            "low4": f"{r} & 15",
            "high4": f"{r} >> 4",
            "bit0": f"_BOOL[{r} & 1]",
            "ssthresh": f"_NULL if {r} >= _INF else {r}",
            "rate": f"_NULL if {r} == _NOLIM else {r}",
        }[kind]
        parts.append(f'"{key}":%d' if kind == "" else f'"{key}":%s')
        values.append(expr)
    source = (
        "def info_json(data, offset, size, congestion):\n"
        f"    if size < {TCP_INFO_SIZE}:\n"
        "        return _slow(_decode(data[offset : offset + size], _name(congestion)))\n"
        f"    ({', '.join(raw)},) = _unpack(data, offset)\n"
        f"    return _TEMPLATE % ({', '.join(values)},)\n"
    )
    from portscope.sockets._record import compile_source

    def slow(info: TcpInfo) -> str:
        return extra_json(SocketExtra(None, info, None), timers=False, info=True, memory=False)

    def ms(us: int) -> str:
        if len(_MS_TEXT) >= 1 << 16:
            _MS_TEXT.clear()
        text = _MS_TEXT[us] = repr(us / 1000)
        return text

    namespace = {
        "_unpack": struct.Struct(fmt).unpack_from,
        "_text": _json_text,
        "_CA_JSON": tuple(
            f'"{CA_STATES[i]}"' if i < len(CA_STATES) else f'"{i}"' for i in range(256)
        ),
        "_OPT_JSON": tuple("[" + ",".join(f'"{o}"' for o in _options(i)) + "]" for i in range(256)),
        "_BOOL": ("false", "true"),
        "_NULL": "null",
        "_INF": _INFINITE_SSTHRESH,
        "_NOLIM": _NO_LIMIT,
        "_slow": slow,
        "_decode": _info_decoder(),
        "_MS": _MS_TEXT,
        "_ms": ms,
        "_name": lambda text: None if text == "null" else json.loads(text),
        "_TEMPLATE": ',"tcp_info":{' + ",".join(parts) + "}",
    }
    return compile_source(source, "tcp_info_json_raw", namespace)["info_json"]


def _number(value: float | int | None) -> str:
    return "null" if value is None else repr(value) if isinstance(value, float) else str(value)


@cache
def _info_json() -> Any:
    """Generate ``info_json(TcpInfo) -> JSON object text`` from ``TcpInfo``'s fields."""
    parts = []
    for name in TcpInfo._fields:
        if name in ("congestion", "ca_state"):
            parts.append(f'"{name}":{{_s({name})}}')
        elif name == "options":
            parts.append(f'"{name}":{{_opts({name})}}')
        elif name == "app_limited":
            parts.append(f'"{name}":{{_b({name})}}')
        else:
            parts.append(f'"{name}":{{_n({name})}}')
    source = (
        "def info_json(_info):\n"
        f"    ({', '.join(TcpInfo._fields)},) = _info\n"
        f"    return f'{{{{{','.join(parts)}}}}}'\n"
    )
    from portscope.sockets._record import compile_source, json_string

    def text(value: str | None) -> str:
        return "null" if value is None else json_string(value)

    def opts(value: tuple[str, ...] | None) -> str:
        return "null" if value is None else "[" + ",".join(f'"{o}"' for o in value) + "]"

    def flag(value: bool | None) -> str:
        return "null" if value is None else "true" if value else "false"

    namespace = {"_s": text, "_opts": opts, "_b": flag, "_n": _number}
    return compile_source(source, "tcp_info_json", namespace)["info_json"]


def extra_json(extra: SocketExtra | None, *, timers: bool, info: bool, memory: bool) -> str:
    """The keys the shown extras add to a socket's JSON object, with a leading comma:
    ``,"timer":{...}``, ``,"tcp_info":{...}``, ``,"memory":{...}`` (each ``null`` when the
    kernel sent nothing for this socket)."""
    out = ""
    if timers:
        t = None if extra is None else extra.timer
        out += (
            ',"timer":null'
            if t is None
            else f',"timer":{{"name":"{t.name}","expires_ms":{t.expires_ms},"retrans":{t.retrans}}}'
        )
    if info:
        i = None if extra is None else extra.info
        out += ',"tcp_info":null' if i is None else f',"tcp_info":{_info_json()(i)}'
    if memory:
        m = None if extra is None else extra.memory
        out += (
            ',"memory":null'
            if m is None
            else ',"memory":{'
            + ",".join(f'"{k}":{_number(v)}' for k, v in zip(Memory._fields, m, strict=True))
            + "}"
        )
    return out
