"""The TCP connect prober (no privilege needed): one non-blocking ``connect()`` per try.

The scheduler (``_schedule``) decides what is sent when and how long to wait; this module
only sends connects and reads their outcome:

* A try is not a coroutine: it is a non-blocking socket registered (one-shot,
  ``EPOLLOUT``) in an ``epoll`` set that is itself one reader of the asyncio loop, so
  readiness arrives in batches and costs no Handle, Task or Future per port (a full range
  is 65,535 connects, tens of thousands per second). Where ``select.epoll`` is missing,
  ``loop.add_writer`` is used. Sockets come from ``_socket.socket`` with
  ``SOCK_NONBLOCK`` (no ``socket.py`` wrapper, no extra ``fcntl``): the hot path.
* The outcome is ``SO_ERROR``: 0 is ``open`` (SYN-ACK), ``ECONNREFUSED`` ``closed`` (RST),
  an ICMP error ``unreachable`` with the ICMP type/code read from the socket's error queue
  (``IP_RECVERR``, ip(7); e.g. ``admin-prohibited``, RFC 1812).
* ``expire`` asks the socket itself (``SO_ERROR``, ``getpeername``) before a try counts
  as unanswered, so a busy event loop never turns an answer into a timeout. That is what
  lets the scheduler's timeout floor be as low as 50 ms.
* ``EMFILE``/``ENFILE`` creating a socket and ``EADDRNOTAVAIL`` connecting (ephemeral
  ports used up) are reported to the scheduler as shortages; the port is tried again.
* Sockets that connected close with ``SO_LINGER`` {on, 0}: an abortive close (RST) leaves
  no TIME-WAIT socket behind for each open port found.
* A connect to a loopback port in the ephemeral range can meet its own socket (TCP
  simultaneous open, RFC 9293 3.5): detected and reported ``closed`` (``self-connect``).
"""

from __future__ import annotations

import _socket
import asyncio
import contextlib
import errno
import select
import socket
import struct
import time
from collections.abc import Callable, Sequence

from portscope.models import PortState, Proto
from portscope.scanner._errors import classify, enable_icmp_details, icmp_reason
from portscope.scanner._schedule import Answer, ProbeSink, Try, release_watched

__all__ = ["ConnectProber", "is_self_connect"]

_LINGER_ABORT = struct.pack("ii", 1, 0)
_HAS_NONBLOCK = hasattr(socket, "SOCK_NONBLOCK")
_NONBLOCK = socket.SOCK_STREAM | getattr(socket, "SOCK_NONBLOCK", 0)
_UNREACH_ERRNOS = frozenset({errno.EHOSTUNREACH, errno.ENETUNREACH, errno.EHOSTDOWN})
# errors an ICMP destination unreachable turns into (icmp_err_convert, icmpv6_err_convert)
_ICMP_ERRNOS = _UNREACH_ERRNOS | {errno.EACCES, errno.EPERM, errno.EPROTO}
_FD_SHORTAGE = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})
_PORT_SHORTAGE = frozenset({errno.EADDRNOTAVAIL, errno.EAGAIN, errno.ENOBUFS})
_LATE_SHORTAGE = frozenset({errno.EADDRNOTAVAIL, errno.EMFILE, errno.ENFILE})
_EPOLL_BATCH = 4096


class ConnectProber:
    """TCP connect probes; plugs into ``_schedule.Scheduler`` (see ``_schedule.Prober``).

    Args:
        timeout_s: a fixed per-try timeout overriding the scan's, or ``None``.
        retries: tries after the first, overriding the scan's, or ``None``.
        icmp_details: read the ICMP type/code of unreachable answers (``IP_RECVERR``).
        silent_errno: the errno a port silent after every try is reported with
            (``probe``: ``ETIMEDOUT``, as a blocking connect would fail; scan: ``None``).
        socket_factory: makes the sockets, ``(family, type) -> socket`` (a test seam;
            default ``_socket.socket``).
        on_open: called with the try and its connected socket when a port is open, instead
            of closing it (``probe --banner`` reads what the service sends first); the
            callee owns the socket from then on.
    """

    proto = Proto.TCP
    fds_per_try = 1

    def __init__(
        self,
        *,
        timeout_s: float | None = None,
        retries: int | None = None,
        icmp_details: bool = True,
        silent_errno: int | None = None,
        socket_factory: Callable[[int, int], _socket.socket] = _socket.socket,
        on_open: Callable[[Try, _socket.socket], None] | None = None,
    ) -> None:
        self.timeout_s = timeout_s
        self.retries = retries
        self.silent = Answer(PortState.FILTERED, "no-response", silent_errno)
        self._icmp = icmp_details
        self._new_socket = socket_factory
        self._on_open = on_open
        self._by_fd: dict[int, Try] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._sink: ProbeSink | None = None
        self._epoll: select.epoll | None = None

    def open(self, loop: asyncio.AbstractEventLoop, sink: ProbeSink) -> None:
        self._loop, self._sink = loop, sink
        if hasattr(select, "epoll"):
            self._epoll = select.epoll()
            loop.add_reader(self._epoll.fileno(), self._on_epoll)

    def send(self, tries: Sequence[Try]) -> int:
        sink = self._sink
        assert sink is not None
        new_socket, icmp, epoll = self._new_socket, self._icmp, self._epoll
        for i, tr in enumerate(tries):
            family = tr.target.family
            try:
                sock = new_socket(_socket.AF_INET6 if family == 6 else _socket.AF_INET, _NONBLOCK)
            except OSError as exc:
                if exc.errno in _FD_SHORTAGE:
                    sink.short_of(exc.errno, None)
                    return i
                raise
            if not _HAS_NONBLOCK:
                sock.setblocking(False)
            if icmp:
                enable_icmp_details(sock, family)
            tr.sent = time.monotonic()
            err = sock.connect_ex(tr.sockaddr())
            if err == errno.EINPROGRESS:
                tr.handle = sock
                fd = sock.fileno()
                self._by_fd[fd] = tr
                if epoll is not None:
                    epoll.register(fd, select.EPOLLOUT | select.EPOLLONESHOT)
                else:
                    assert self._loop is not None
                    self._loop.add_writer(fd, self._on_writer, fd)
                continue
            if err in _PORT_SHORTAGE:
                sock.close()
                sink.short_of(err, None)
                return i
            sink.answered(tr, self._settle(tr, sock, err), time.monotonic() - tr.sent)
        return len(tries)

    def expire(self, attempt: Try) -> Answer | None:
        sock = attempt.handle
        assert isinstance(sock, _socket.socket)
        fd = sock.fileno()
        self._by_fd.pop(fd, None)
        if self._epoll is None and self._loop is not None:
            self._loop.remove_writer(fd)
        err = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if err or _is_connected(sock):
            return self._settle(attempt, sock, err)
        sock.close()
        return None

    def close(self) -> None:
        release_watched(self._by_fd, self._epoll, self._loop, writer=True)
        self._epoll = None

    # ------------------------------------------------------------ events

    def _on_epoll(self) -> None:
        if self._epoll is None:
            return
        by_fd = self._by_fd
        now = time.monotonic()
        for fd, _events in self._epoll.poll(0, _EPOLL_BATCH):
            tr = by_fd.pop(fd, None)
            if tr is not None:
                self._done(tr, now)

    def _on_writer(self, fd: int) -> None:
        assert self._loop is not None
        self._loop.remove_writer(fd)
        tr = self._by_fd.pop(fd, None)
        if tr is not None:
            self._done(tr, time.monotonic())

    def _done(self, tr: Try, now: float) -> None:
        sink = self._sink
        assert sink is not None
        sock = tr.handle
        assert isinstance(sock, _socket.socket)
        err = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if err in _LATE_SHORTAGE:
            sock.close()
            sink.short_of(err, tr)
            return
        sink.answered(tr, self._settle(tr, sock, err), now - tr.sent)

    def _settle(self, tr: Try, sock: _socket.socket, err: int) -> Answer:
        """The answer of a connect that ended with ``err``; the socket is closed (or handed
        to ``on_open``)."""
        state, reason = classify(err)
        if err in _ICMP_ERRNOS and self._icmp:
            reason = icmp_reason(sock) or reason
        elif err == 0 and is_self_connect(sock):
            err, state, reason = errno.ECONNREFUSED, PortState.CLOSED, "self-connect"
        if err == 0 and self._on_open is not None:
            self._on_open(tr, sock)
            return Answer(state, reason)
        if err == 0:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_ABORT)
        sock.close()
        return Answer(state, reason, err or None)


def is_self_connect(sock: _socket.socket) -> bool:
    """True when a connect reached its own socket (TCP simultaneous open, RFC 9293 3.5).

    Connecting to a loopback port in the ephemeral range can pick that very port as the
    source port; the SYN then meets its own socket and "connects" although nothing
    listens. Such a port is closed.
    """
    try:
        return bool(sock.getsockname() == sock.getpeername())
    except OSError:
        return False


def _is_connected(sock: _socket.socket) -> bool:
    try:
        sock.getpeername()
    except OSError:
        return False
    return True
