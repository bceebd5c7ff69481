"""The lab's WAN stage: a userspace forwarder that delays and drops Ethernet frames.

This kernel has neither ``sch_netem`` nor ``act_gact``, so WAN conditions are made in user
space. The forwarder opens two TAP devices (``/dev/net/tun``, ``TUNSETIFF`` with
``IFF_TAP | IFF_NO_PI``; see the kernel's Documentation/networking/tuntap.rst) in the
namespace it runs in; the lab then moves one of them into the target namespace (the open fd
stays valid). Every frame read from one TAP is, with probability ``loss``, dropped, otherwise
written to the other TAP after ``delay +- jitter`` (uniform). One thread: ``epoll`` on both fds
and a heap of ``(due time, frame)``. Each direction has its own seeded RNG, so a run's
loss/jitter sequence is reproducible per direction.

Counters are written as JSON to ``--stats`` every 0.1 s and at exit::

    {"a_to_b": {"received", "forwarded", "dropped", "write_errors"}, "b_to_a": {...},
     "queued", "max_queued", "params": {...}, "updated": unix time}

``a`` is the scanner side. Frames the forwarder reads too late are dropped by the kernel at
the TAP's queue (``txqueuelen``, set to :data:`TXQUEUELEN`) and show as ``tx_dropped`` on the
TAP, not here.

Run: ``python wan.py --tap-a NAME --tap-b NAME [--delay-ms 20 --jitter-ms 5 --loss 0.005
--seed 1 --stats FILE]``; prints ``ready`` once both TAPs exist; SIGTERM stops it.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import heapq
import json
import os
import random
import select
import signal
import struct
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

TUNSETIFF = 0x400454CA  # _IOW('T', 202, int), linux/if_tun.h
IFF_TAP = 0x0002
IFF_NO_PI = 0x1000
# Kernel-side queue of frames waiting for the forwarder to read them (frames per TAP).
TXQUEUELEN = 20000
STATS_INTERVAL_S = 0.1
# Frames read from one fd before looking at the other and at due frames.
READ_BATCH = 256
# Safety bound on the forwarder's lifetime (seconds); the lab kills it long before.
MAX_RUNTIME_S = 6 * 3600.0


def open_tap(name: str) -> int:
    """Create TAP device ``name`` in this process's network namespace; return its fd.

    Raises:
        OSError: no ``/dev/net/tun``, not root, or the name is taken.
    """
    if not os.path.exists("/dev/net/tun"):
        os.makedirs("/dev/net", exist_ok=True)
        os.mknod("/dev/net/tun", 0o600 | 0o020000, os.makedev(10, 200))
    fd = os.open("/dev/net/tun", os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH22x", name.encode(), IFF_TAP | IFF_NO_PI))
    except OSError:
        os.close(fd)
        raise
    return fd


@dataclass
class Direction:
    """Counters and RNG of one direction (frames read from ``in_fd``, written to ``out_fd``)."""

    in_fd: int
    out_fd: int
    rng: random.Random = field(repr=False)
    received: int = 0
    forwarded: int = 0
    dropped: int = 0
    write_errors: int = 0

    def counters(self) -> dict[str, int]:
        data = asdict(self)
        return {k: data[k] for k in ("received", "forwarded", "dropped", "write_errors")}


class Forwarder:
    """Forward frames between two TAP fds with a delay, jitter and random loss.

    Args:
        fd_a: the scanner side's TAP fd.
        fd_b: the target side's TAP fd.
        delay_s: one-way delay in seconds (each direction).
        jitter_s: uniform jitter in seconds, ``delay_s +- jitter_s``.
        loss: probability (0..1) that a frame is dropped, each direction.
        seed: RNG seed; direction b->a uses ``seed + 1``.
        stats_path: where counters are written as JSON, or None.
    """

    def __init__(
        self,
        fd_a: int,
        fd_b: int,
        *,
        delay_s: float,
        jitter_s: float,
        loss: float,
        seed: int,
        stats_path: str | None = None,
    ) -> None:
        self.a_to_b = Direction(fd_a, fd_b, random.Random(seed))
        self.b_to_a = Direction(fd_b, fd_a, random.Random(seed + 1))
        self.delay_s = delay_s
        self.jitter_s = jitter_s
        self.loss = loss
        self.stats_path = stats_path
        self.running = True
        self.max_queued = 0
        self._heap: list[tuple[float, int, int, bytes, Direction]] = []

    def stats(self) -> dict[str, object]:
        return {
            "a_to_b": self.a_to_b.counters(),
            "b_to_a": self.b_to_a.counters(),
            "queued": len(self._heap),
            "max_queued": self.max_queued,
            "params": {
                "delay_ms": self.delay_s * 1000,
                "jitter_ms": self.jitter_s * 1000,
                "loss": self.loss,
            },
            "updated": time.time(),
        }

    def write_stats(self) -> None:
        if not self.stats_path:
            return
        tmp = f"{self.stats_path}.tmp"
        Path(tmp).write_text(json.dumps(self.stats()))
        os.replace(tmp, self.stats_path)

    def _read(self, d: Direction, seq: int) -> int:
        heap = self._heap
        now = time.monotonic()
        rng = d.rng
        for _ in range(READ_BATCH):
            try:
                frame = os.read(d.in_fd, 65536)
            except (BlockingIOError, InterruptedError):
                break
            d.received += 1
            if rng.random() < self.loss:
                d.dropped += 1
                continue
            due = now + self.delay_s + rng.uniform(-self.jitter_s, self.jitter_s)
            heapq.heappush(heap, (due, seq, d.out_fd, frame, d))
            seq += 1
        return seq

    def _release(self) -> None:
        heap = self._heap
        now = time.monotonic()
        while heap and heap[0][0] <= now:
            _, _, out_fd, frame, d = heapq.heappop(heap)
            try:
                os.write(out_fd, frame)
                d.forwarded += 1
            except OSError:
                d.write_errors += 1

    def run(self, max_runtime_s: float = MAX_RUNTIME_S) -> None:
        """Forward until :attr:`running` is cleared or ``max_runtime_s`` seconds pass."""
        ep = select.epoll()
        ep.register(self.a_to_b.in_fd, select.EPOLLIN)
        ep.register(self.b_to_a.in_fd, select.EPOLLIN)
        by_fd = {self.a_to_b.in_fd: self.a_to_b, self.b_to_a.in_fd: self.b_to_a}
        seq = 0
        start = time.monotonic()
        next_stats = start
        try:
            while self.running:
                self._release()
                now = time.monotonic()
                if now >= next_stats:
                    self.max_queued = max(self.max_queued, len(self._heap))
                    self.write_stats()
                    next_stats = now + STATS_INTERVAL_S
                    if now - start > max_runtime_s:
                        break
                wake = next_stats
                if self._heap:
                    wake = min(wake, self._heap[0][0])
                for fd, _ in ep.poll(max(0.0, wake - now)):
                    seq = self._read(by_fd[fd], seq)
                self.max_queued = max(self.max_queued, len(self._heap))
        finally:
            ep.close()
            self.write_stats()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--tap-a", required=True, help="scanner-side TAP name")
    parser.add_argument("--tap-b", required=True, help="target-side TAP name")
    parser.add_argument("--delay-ms", type=float, default=20.0)
    parser.add_argument("--jitter-ms", type=float, default=5.0)
    parser.add_argument("--loss", type=float, default=0.005)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--stats", default=None, help="JSON counters file")
    parser.add_argument("--max-runtime-s", type=float, default=MAX_RUNTIME_S)
    args = parser.parse_args(argv)
    fd_a = open_tap(args.tap_a)
    fd_b = open_tap(args.tap_b)
    fwd = Forwarder(
        fd_a,
        fd_b,
        delay_s=args.delay_ms / 1000,
        jitter_s=args.jitter_ms / 1000,
        loss=args.loss,
        seed=args.seed,
        stats_path=args.stats,
    )

    def stop(_signum: int, _frame: object) -> None:
        fwd.running = False

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    print("ready", flush=True)
    with contextlib.suppress(OSError):
        sys.stdout.close()
    fwd.run(args.max_runtime_s)
    return 0


if __name__ == "__main__":
    sys.exit(main())
