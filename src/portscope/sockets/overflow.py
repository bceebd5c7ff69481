"""Accept-queue overflow: a listener whose queue is full, and the host's counters.

A TCP listener's Recv-Q is the number of connections waiting for ``accept()`` and its
Send-Q the backlog (the ``listen()`` argument capped by ``net.core.somaxconn``). The
kernel refuses a new connection when the queue holds more than the backlog
(``sk_acceptq_is_full``, include/net/sock.h: ``sk_ack_backlog > sk_max_ack_backlog``):
the SYN (or the final ACK) is dropped, and the client retries and times out as if a
firewall dropped it (or gets a reset with ``net.ipv4.tcp_abort_on_overflow=1``). Each
such drop counts in ``TcpExt: ListenOverflows`` and ``ListenDrops`` (``/proc/net/netstat``,
``nstat -az TcpExtListenOverflows``), cumulative since boot for the network namespace.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Final, Protocol

from portscope.models import Proto, TcpState

COUNTERS: Final = ("ListenOverflows", "ListenDrops")


class _Listener(Protocol):
    @property
    def proto(self) -> Proto: ...
    @property
    def state(self) -> TcpState: ...
    @property
    def recv_q(self) -> int | None: ...
    @property
    def send_q(self) -> int | None: ...


def accept_queue_full(sock: _Listener) -> bool | None:
    """Whether a TCP listener's accept queue is full (Recv-Q above the backlog: the
    kernel's ``sk_acceptq_is_full``), for a ``Row`` or a ``Socket``.

    Returns:
        True or False for a TCP LISTEN socket whose queues are known; ``None`` for other
        sockets and when the backend cannot tell (procfs listeners, psutil).
    """
    if sock.proto is not Proto.TCP or sock.state is not TcpState.LISTEN:
        return None
    if sock.recv_q is None or sock.send_q is None:
        return None
    return sock.recv_q > sock.send_q


@dataclass(frozen=True)
class ListenCounters:
    """``ListenOverflows`` and ``ListenDrops`` read twice, and how much they grew.

    Attributes:
        overflows: ``ListenOverflows`` at the second read.
        drops: ``ListenDrops`` at the second read.
        overflows_grew: growth between the reads.
        drops_grew: growth between the reads.
        interval_s: seconds between the reads.
    """

    overflows: int
    drops: int
    overflows_grew: int
    drops_grew: int
    interval_s: float

    @property
    def grew(self) -> bool:
        """Whether either counter grew between the two reads."""
        return self.overflows_grew > 0 or self.drops_grew > 0

    def note(self) -> str:
        """The plain-language note for the user."""
        return (
            f"TcpExt ListenOverflows grew by {self.overflows_grew} and ListenDrops by "
            f"{self.drops_grew} in {self.interval_s:.2f} s (/proc/net/netstat; now "
            f"{self.overflows} and {self.drops} since boot): a listener's accept queue is "
            "overflowing, and its clients' connections are dropped"
        )


class CounterWatch:
    """Reads the counters now, and again on ``finish`` (``/proc/net/netstat``)."""

    def __init__(self, proc: str = "/proc") -> None:
        from portscope._proc import tcp_ext_counters

        self._proc = proc
        self._start = time.monotonic()
        self._before = tcp_ext_counters(COUNTERS, proc)

    def finish(self, min_interval_s: float = 0.0) -> ListenCounters | None:
        """Read again (after at least ``min_interval_s`` since the first read).

        Returns:
            The counters, or ``None`` when ``/proc/net/netstat`` has no such counters.
        """
        from portscope._proc import tcp_ext_counters

        wait = min_interval_s - (time.monotonic() - self._start)
        if wait > 0:
            time.sleep(min(wait, 1.0))
        after = tcp_ext_counters(COUNTERS, self._proc)
        before = self._before
        if before is None or after is None or len(after) < 2 or len(before) < 2:
            return None
        return ListenCounters(
            after["ListenOverflows"],
            after["ListenDrops"],
            after["ListenOverflows"] - before["ListenOverflows"],
            after["ListenDrops"] - before["ListenDrops"],
            time.monotonic() - self._start,
        )
