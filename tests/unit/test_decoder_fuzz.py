"""Hostile bytes in the decoders (issue 18): mutations of the captured netlink dumps and
/proc/net files never hang the decoder and never raise anything but portscope's own
errors (``BackendError`` with the offset); rows that come out are well formed.

Examples per test: ``PORTSCOPE_FUZZ_EXAMPLES`` (default 150, a few seconds in all); a
longer run: ``PORTSCOPE_FUZZ_EXAMPLES=20000 pytest tests/unit/test_decoder_fuzz.py``.
"""

from __future__ import annotations

import os
import signal
import struct
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from portscope.errors import BackendError, BackendUnavailable
from portscope.models import Proto, TcpState
from portscope.sockets._diag_codec import Row, decode_chunk, decode_chunk_json
from portscope.sockets._procfs import parse_lines

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "sockets"
KINDS = [(Proto.TCP, 4), (Proto.TCP, 6), (Proto.UDP, 4), (Proto.UDP, 6)]
DUMPS = {k: (FIXTURES / f"dump-{k[0].value}{k[1]}.bin").read_bytes() for k in KINDS}
PROCFS = {
    k: (FIXTURES / f"proc-net-{k[0].value}{'6' if k[1] == 6 else ''}.txt").read_text()
    for k in KINDS
}
EXAMPLES = int(os.environ.get("PORTSCOPE_FUZZ_EXAMPLES", "150"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@contextmanager
def time_limit(seconds: float) -> Iterator[None]:
    """Fail instead of hanging: SIGALRM interrupts an endless loop."""

    def expired(signum: int, frame: Any) -> None:
        raise TimeoutError(f"the decoder ran over {seconds} s (a hang)")

    old = signal.signal(signal.SIGALRM, expired)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


@st.composite
def mutated(draw: Callable[..., Any], data: bytes) -> bytes:
    """``data`` with a few edits: bytes or 32-bit words overwritten (lengths, types and
    states sit on 4-byte boundaries), a cut, an insertion."""
    buf = bytearray(data)
    for _ in range(draw(st.integers(1, 4))):
        how = draw(st.sampled_from(["byte", "word", "cut", "insert", "zero-length"]))
        at = draw(st.integers(0, max(0, len(buf) - 1)))
        if how == "byte" and buf:
            buf[at] = draw(st.integers(0, 255))
        elif how == "word":
            at -= at % 4
            word = draw(st.sampled_from([0, 1, 4, 15, 16, 87, 88, 0xFFFF, 0x7FFFFFFF, 2**32 - 1]))
            buf[at : at + 4] = struct.pack("=I", word)
        elif how == "cut":
            del buf[at:]
        elif how == "insert":
            buf[at:at] = draw(st.binary(min_size=1, max_size=24))
        else:  # the nlmsg_len of one message: 0 looped forever before issue 18
            msg = at - at % 4
            buf[msg : msg + 4] = bytes(4)
    return bytes(buf)


def _check_rows(rows: list[Row]) -> None:
    for row in rows:
        assert isinstance(row.state, TcpState)
        assert 0 <= row.local_port <= 65535
        assert row.remote_port is None or 0 <= row.remote_port <= 65535


def test_a_zero_length_message_raises_with_its_offset_instead_of_looping() -> None:
    with time_limit(2), pytest.raises(BackendError) as caught:
        decode_chunk(bytes(16), 4, Proto.TCP, [], set())
    assert caught.value.offset == 0
    data = DUMPS[(Proto.TCP, 4)]
    second = (struct.unpack_from("=I", data)[0] + 3) & ~3  # the second message's offset
    with time_limit(2), pytest.raises(BackendError, match=rf"offset {second}\b") as caught:
        decode_chunk(data[:second] + bytes(4) + data[second + 4 :], 4, Proto.TCP, [], set())
    assert caught.value.offset == second


def test_a_message_running_past_the_chunk_and_an_unknown_state_raise() -> None:
    data = bytearray(DUMPS[(Proto.TCP, 4)])
    with pytest.raises(BackendError, match="nlmsg_len 4096"):
        decode_chunk(struct.pack("=I", 4096) + bytes(data[4:88]), 4, Proto.TCP, [], set())
    data[17] = 0  # idiag_state 0: no TCP state (rows with state None before issue 18)
    with pytest.raises(BackendError, match="state 0"):
        decode_chunk(bytes(data), 4, Proto.TCP, [], set())


@pytest.mark.parametrize(("proto", "family"), KINDS)
def test_mutated_dumps_decode_or_raise_backend_error(proto: Proto, family: int) -> None:
    @FUZZ
    @given(mutated(DUMPS[(proto, family)]))
    def run(data: bytes) -> None:
        for decode in (decode_chunk, decode_chunk_json):
            out: list[Any] = []
            with time_limit(2):
                try:
                    decode(data, family, proto, out, set())
                except BackendUnavailable:  # BackendError, or an NLMSG_ERROR it made up
                    continue
            if decode is decode_chunk:
                _check_rows(out)

    run()


@st.composite
def mutated_lines(draw: Callable[..., Any], text: str) -> list[str]:
    lines = text.splitlines()
    for _ in range(draw(st.integers(1, 3))):
        i = draw(st.integers(1, len(lines) - 1))
        fields = lines[i].split()
        j = draw(st.integers(0, len(fields) - 1))
        fields[j] = draw(
            st.one_of(
                st.text(alphabet="0123456789ABCDEFabcdef:-xZ ", max_size=40),
                st.sampled_from(["", "0", "-1", "FFFFFFFFFFFFFFFF:FFFFF", "00000000:10000"]),
                st.text(max_size=12),
            )
        )
        lines[i] = " ".join(fields)
    return lines


@pytest.mark.parametrize(("proto", "family"), KINDS)
def test_mutated_proc_net_lines_parse_or_raise_backend_error(proto: Proto, family: int) -> None:
    @FUZZ
    @given(mutated_lines(PROCFS[(proto, family)]))
    def run(lines: list[str]) -> None:
        try:
            rows = parse_lines(lines, family, proto)
        except BackendError as err:
            assert err.offset is not None and 1 <= err.offset <= len(lines)
            return
        _check_rows(rows)

    run()


@pytest.mark.parametrize(
    "line",
    [
        "0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000 0 0 1 1",
        "0: 0100007F:FFFFFF 00000000:0000 0A 00000000:00000000 00:00000000 0 0 0 1",
        "0: 0100007F0:1F90 00000000:0000 0A 00000000:00000000 00:00000000 0 0 0 1",
        "0: -100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 0 0 0 1",
        "0: 0100007F:1F90 00000000:0000 ZZ 00000000:00000000 00:00000000 0 0 0 1",
        "0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 0 x 0 1",
    ],
)
def test_malformed_proc_net_lines_raise_backend_error_with_the_line(line: str) -> None:
    header = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid"
    if line.endswith("0 0 1 1"):  # the well-formed control
        assert len(parse_lines([header, line], 4, Proto.TCP)) == 1
        return
    with pytest.raises(BackendError) as caught:
        parse_lines([header, line], 4, Proto.TCP)
    assert caught.value.offset == 2
