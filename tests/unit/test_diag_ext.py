"""The extended inet_diag attributes (``sockets._diag_ext``) on synthetic bytes:
``tcp_info`` decoded by the length the kernel sends, sentinels, timers, memory, JSON."""

from __future__ import annotations

import json
import struct

from portscope.sockets._diag_ext import (
    TCP_INFO_FIELDS,
    TCP_INFO_SIZE,
    SocketExtra,
    TcpInfo,
    decode_extras,
    decode_tcp_info,
    extra_json,
)


def tcp_info_bytes(**values: int) -> bytearray:
    """A full ``struct tcp_info`` with the given raw values (by JSON key), others 0."""
    data = bytearray(TCP_INFO_SIZE)
    for key, code, off, _kind in TCP_INFO_FIELDS:
        if key in values:
            struct.pack_into(f"={code}", data, off, values[key])
    return data


def test_full_tcp_info_in_the_units_of_the_keys() -> None:
    raw = tcp_info_bytes(
        rtt_ms=1234, rttvar_ms=567, min_rtt_ms=89, cwnd=10, mss=1448, ssthresh=20,
        bytes_acked=1 << 40, bytes_received=99, busy_ms=2500, total_rto_time_ms=7,
        options=1 | 2 | 4, ca_state=4, retransmits=3, total_retrans=9,
    )  # fmt: skip
    raw[6] = 7 | (8 << 4)  # snd_wscale 7, rcv_wscale 8
    info = decode_tcp_info(bytes(raw), "cubic")
    assert info.congestion == "cubic"
    assert (info.rtt_ms, info.rttvar_ms, info.min_rtt_ms) == (1.234, 0.567, 0.089)
    assert (info.cwnd, info.mss, info.ssthresh) == (10, 1448, 20)
    assert info.bytes_acked == 1 << 40 and info.bytes_received == 99
    assert info.busy_ms == 2.5 and info.total_rto_time_ms == 7
    assert info.options == ("ts", "sack", "wscale")
    assert (info.snd_wscale, info.rcv_wscale) == (7, 8)
    assert info.ca_state == "loss" and info.retransmits == 3 and info.total_retrans == 9


def test_a_short_tcp_info_leaves_the_fields_it_lacks_unknown() -> None:
    # an old kernel's tcp_info ends after tcpi_total_retrans (104 bytes)
    raw = bytes(tcp_info_bytes(cwnd=10, total_retrans=2, bytes_acked=5))[:104]
    info = decode_tcp_info(raw)
    assert info.cwnd == 10 and info.total_retrans == 2
    assert info.bytes_acked is None and info.pacing_rate_bytes_per_s is None
    assert info.total_rto is None and info.delivery_rate_bytes_per_s is None


def test_sentinels_are_null_not_huge_numbers() -> None:
    raw = tcp_info_bytes(ssthresh=0x7FFFFFFF, max_pacing_rate_bytes_per_s=(1 << 64) - 1)
    info = decode_tcp_info(bytes(raw))
    assert info.ssthresh is None and info.max_pacing_rate_bytes_per_s is None


def message(*, cookie: int, timer: int, retrans: int, expires: int, attrs: bytes) -> bytes:
    head = struct.pack("=IHHII BBBB 40x Q I 16x", 0, 20, 2, 1, 0, 2, 1, timer, retrans,
                       cookie, expires)  # fmt: skip
    body = head + attrs
    return struct.pack("=I", len(body)) + body[4:]


def attr(kind: int, payload: bytes) -> bytes:
    out = struct.pack("=HH", 4 + len(payload), kind) + payload
    return out + bytes(-len(out) % 4)


def test_timers_info_and_memory_from_a_message_keyed_by_cookie() -> None:
    info = bytes(tcp_info_bytes(cwnd=7, rtt_ms=1500))
    mem = struct.pack("=9I", 1, 2, 3, 4, 5, 6, 7, 8, 9)
    chunk = message(cookie=42, timer=2, retrans=1, expires=7200, attrs=attr(2, info)
                    + attr(4, b"bbr\0") + attr(7, mem))  # fmt: skip
    chunk += message(cookie=43, timer=1, retrans=0, expires=(1 << 32) - 5, attrs=b"")
    out: dict[int, SocketExtra] = {}
    decode_extras(chunk, out, timers=True, info=True, memory=True)
    first = out[42]
    assert first.timer == ("keepalive", 7200, 1)
    assert first.info is not None and first.info.cwnd == 7 and first.info.rtt_ms == 1.5
    assert first.info.congestion == "bbr"
    assert first.memory is not None and first.memory.sndbuf_bytes == 4 and first.memory.drops == 9
    assert out[43].timer == ("on", -5, 0) and out[43].info is None
    data = json.loads("{" + extra_json(first, timers=True, info=True, memory=True)[1:] + "}")
    assert data["timer"] == {"name": "keepalive", "expires_ms": 7200, "retrans": 1}
    assert data["tcp_info"]["rtt_ms"] == 1.5 and data["tcp_info"]["congestion"] == "bbr"
    assert list(data["tcp_info"]) == list(TcpInfo._fields)
    assert data["memory"]["rcvbuf_bytes"] == 2
    empty = json.loads("{" + extra_json(None, timers=True, info=True, memory=False)[1:] + "}")
    assert empty == {"timer": None, "tcp_info": None}


def test_the_json_made_from_bytes_equals_the_json_of_the_records() -> None:
    full = bytes(tcp_info_bytes(cwnd=7, rtt_ms=1500, ssthresh=0x7FFFFFFF, options=5, ca_state=2))
    short = full[:160]
    mem = struct.pack("=9I", 1, 2, 3, 4, 5, 6, 7, 8, 9)
    for info in (full, short):
        chunk = message(cookie=7, timer=4, retrans=2, expires=300,
                        attrs=attr(2, info) + attr(4, b"cubic\0") + attr(7, mem))  # fmt: skip
        chunk += message(cookie=8, timer=0, retrans=0, expires=0, attrs=b"")
        records: dict[int, SocketExtra] = {}
        texts: dict[int, str] = {}
        decode_extras(chunk, records, timers=True, info=True, memory=True)
        decode_extras(chunk, texts, timers=True, info=True, memory=True, as_json=True)
        for cookie in (7, 8):
            want = extra_json(records[cookie], timers=True, info=True, memory=True)
            assert texts[cookie] == want
            json.loads("{" + want[1:] + "}")
