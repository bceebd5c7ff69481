"""The UDP prober's pieces that decide when silence means something: sending past pending
ICMP errors, and the model of the target's ICMP budget (``scanner/_udp.py``)."""

from __future__ import annotations

import errno
import socket
import time

import pytest

from portscope.scanner import _udp
from portscope.scanner._errors import IP_RECVERR


class FakeSocket:
    """``sendto`` fails with the given errnos in turn, then succeeds (``None`` = success)."""

    def __init__(self, errors: list[int | None], *, repeat_last: bool = False) -> None:
        self.errors = list(errors)
        self.repeat_last = repeat_last
        self.calls = 0
        self.sent = 0

    def sendto(self, payload: bytes, to: object) -> int:
        self.calls += 1
        code = self.errors[0] if self.errors else None
        if self.errors and not (self.repeat_last and len(self.errors) == 1):
            self.errors.pop(0)
        if code is not None:
            raise OSError(code, "fake")
        self.sent += 1
        return len(payload)


def send(sock: FakeSocket) -> None:
    _udp._send_past_pending_errors(sock, b"x", ("198.18.0.2", 53))  # type: ignore[arg-type]


def test_pending_errors_of_earlier_probes_are_sent_past() -> None:
    # the flake of round 2: two port unreachables pending one after the other, then a host
    # unreachable: the datagram still leaves, once
    sock = FakeSocket([errno.ECONNREFUSED, errno.ECONNREFUSED, errno.EHOSTUNREACH, None])
    send(sock)
    assert (sock.calls, sock.sent) == (4, 1)


def test_an_error_that_repeats_is_the_routes_own() -> None:
    sock = FakeSocket([errno.ENETUNREACH], repeat_last=True)
    with pytest.raises(OSError) as info:
        send(sock)
    assert info.value.errno == errno.ENETUNREACH and sock.calls == _udp._SAME_ERROR_IS_LOCAL
    sock = FakeSocket([errno.ECONNREFUSED], repeat_last=True)
    with pytest.raises(OSError) as info:
        send(sock)
    assert info.value.errno == errno.ECONNREFUSED and sock.calls == _udp._SEND_ATTEMPTS
    for code in (errno.ENOBUFS, errno.EAGAIN):
        sock = FakeSocket([code])
        with pytest.raises(OSError):
            send(sock)
        assert sock.calls == 1


def test_the_kernel_returns_a_port_unreachable_to_the_next_sendto() -> None:
    """What the fix is about, on loopback: with IP_RECVERR an unconnected socket's next
    sendto fails once with the ICMP error of an earlier datagram, sending nothing."""
    closed = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    closed.bind(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()  # nobody listens there now: the kernel answers port unreachable
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.setsockopt(socket.IPPROTO_IP, IP_RECVERR, 1)
        sock.sendto(b"x", ("127.0.0.1", port))
        deadline = time.monotonic() + 2
        while time.monotonic() < deadline:
            try:
                sock.sendto(b"y", ("127.0.0.1", port))
            except ConnectionRefusedError:
                break
            time.sleep(0.01)
        else:
            pytest.fail("no pending ECONNREFUSED within 2 s")
        # the helper sends past the next one (one is pending again from b"y"'s error)
        time.sleep(0.05)
        _udp._send_past_pending_errors(sock, b"z", ("127.0.0.1", port))


def test_the_budget_model_starts_empty_refills_and_takes_errors() -> None:
    bucket = _udp._Bucket(100.0, _udp._RATE, _udp._BURST)
    assert bucket.available(100.0) == 0.0
    assert bucket.available(102.5) == pytest.approx(2.5)
    assert bucket.available(200.0) == _udp._BURST
    bucket.reserved.add("a")
    assert bucket.available(200.0) == _udp._BURST - 1
    bucket.reserved.clear()
    for _ in range(8):
        bucket.icmp(200.0)
    assert bucket.available(200.0) == 0.0  # an on-time error never goes below empty
    bucket.icmp(200.0, late=True)  # an error after its token was given back
    assert bucket.available(200.0) == -1.0
    assert bucket.wait(200.0, 1.0) == pytest.approx(2.0)


def test_sources_share_the_targets_global_budget() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        glob = _udp._Global(0.0)
        pacers = [_udp._Pacer(0.0, sock, glob) for _ in range(100)]
        # after 10 s each source's own bucket holds 6, the global one 30 for all of them
        assert [p.own.available(10.0) for p in pacers[:2]] == [6.0, 6.0]
        assert glob.available(10.0) == _udp._GLOBAL_BURST
        assert pacers[0].available(10.0) == 6.0  # the smaller of the two
        for i in range(25):
            pacers[i].reserve(i)
        assert pacers[99].available(10.0) == _udp._GLOBAL_BURST - 25
        assert pacers[0].unreserve(0) and not pacers[0].unreserve(0)
        pacers[1].icmp(10.0)  # an error to one source takes a token of both buckets
        assert pacers[1].own.available(10.0) == 5.0 - 1  # (its reservation: 1)
        assert glob.available(10.0) == _udp._GLOBAL_BURST - 24 - 1


def test_a_target_without_limit_is_measured() -> None:
    bucket = _udp._Bucket(0.0, _udp._RATE, _udp._BURST)
    for i in range(200):
        bucket.icmp(0.01 * (i + 1))  # 100 errors per second came back
    assert bucket.rate > 50
