"""The UDP prober's pieces that decide when silence means something: sending past pending
ICMP errors, and the model of the target's ICMP budget (``scanner/_udp.py``)."""

from __future__ import annotations

import errno
import socket
import time
from collections import deque

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


class _FakeLoop:
    """``call_later`` that records and never runs (the test drives the prober itself)."""

    class Handle:
        def cancel(self) -> None:
            pass

    def __init__(self) -> None:
        self.calls = 0

    def call_later(self, delay: float, callback: object, *args: object) -> _FakeLoop.Handle:
        self.calls += 1
        return _FakeLoop.Handle()


class _Target:
    family = 4
    address = "198.18.0.2"


class _HeldTry:
    """What ``_need``/``_slack`` read of a held try."""

    def __init__(self, port: int, tries: int) -> None:
        self.target = _Target()
        self.port = port
        self.tries = tries


@pytest.mark.parametrize("sources", [64, 1022])
def test_a_global_wake_pumps_the_sources_that_send_not_every_one(
    sources: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The slowdown of the full-range scan from 1,022 sources: every wake of the target's
    global budget pumped every waiting source, whatever it could send. The work of one wake
    must not grow with the number of sources waiting (counted in pumps, not timed)."""
    monkeypatch.setattr(time, "monotonic", lambda: 100.0)  # _udp reads the clock
    prober = _udp.UdpProber(retries=2)
    prober._loop = _FakeLoop()  # type: ignore[assignment]
    prober._closed_known[(4, _Target.address)] = deque([9])  # final tries are checked
    glob = _udp._Global(100.0)
    pumped: list[_udp._Pacer] = []

    def pump(pacer: _udp._Pacer, now: float) -> None:
        """``_pump`` without sockets: the head goes when both budgets pay for it."""
        pumped.append(pacer)
        if prober._ready(pacer, pacer.held[0], now):
            pacer.held.popleft()
            for _ in range(1 + _udp._CHECKS):  # the final try and its 2 checks
                pacer.reserve(object())
        elif not pacer.waiting:
            pacer.waiting = True
            glob.waiting.append(pacer)

    prober._pump = pump  # type: ignore[method-assign]
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        order = []
        for i in range(sources):
            pacer = _udp._Pacer(0.0, sock, glob)  # its own bucket is full at 100.0
            pacer.held.append(_HeldTry(1000 + i, 2))  # type: ignore[arg-type]
            pacer.waiting = True
            glob.waiting.append(pacer)
            order.append(pacer)
        # one wake with the budget for 2 checked final tries (the first needs 3 tokens
        # and the slack, the second finds 3 + the slack left)
        glob.tokens = 1 + _udp._CHECKS + _udp._GLOBAL_SLACK + 1 + _udp._CHECKS
        prober._on_global(glob)
    assert len(pumped) == 2, f"one wake pumped {len(pumped)} of {sources} sources"
    assert pumped == order[:2]
    assert list(glob.waiting) == order[2:]  # the others keep their turn, in order
    assert all(p.waiting for p in glob.waiting)


def test_the_checks_of_an_answered_final_try_give_their_tokens_back() -> None:
    """The stall of the full-range scan: a final try answered (its port closed after all)
    before its ICMP wait passed kept the tokens of the canaries sent after it; a canary
    whose error the target did not send held them for good, and 6 such leaks kept the
    global model below the 25 tokens a checked final try needs."""
    prober = _udp.UdpProber(retries=2)
    prober._loop = _FakeLoop()  # type: ignore[assignment]
    glob = _udp._Global(0.0)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        pacer = _udp._Pacer(0.0, sock, glob)
        final = _HeldTry(1000, 2)
        checks = [_udp._Check((_Target.address, 9), real=False, fd=sock.fileno())]
        for check in checks:
            pacer.reserve(check)
            prober._via[check] = pacer
            prober._canaries[(sock.fileno(), *check.key)] = check
        prober._vouched[final] = checks  # type: ignore[index]
        # the final try was answered (no longer sent by any pacer); its ICMP wait ends
        prober._refund(final)  # type: ignore[arg-type]
        assert not pacer.own.reserved and not glob.reserved
        assert not prober._vouched
        # the canary's error, if it comes, is a late one (it may take the model below empty)
        assert checks[0] in prober._refunded


def test_the_global_model_is_not_raised_by_what_it_measures() -> None:
    """Errors come faster than icmp_msgs_per_sec for a while (0-2 credits each, a burst of
    50): a global model raised to that rate sent final tries the target could not answer,
    and closed ports were called open|filtered."""
    glob = _udp._Global(0.0)
    for i in range(400):
        glob.icmp(0.001 * (i + 1))  # 1,000 errors per second for 0.4 s (burst included)
    assert glob.rate == _udp._GLOBAL_RATE
