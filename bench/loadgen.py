#!/usr/bin/env python3
"""Loopback TCP load generator: hold N established connections (2N sockets) open.

Loopback only: servers listen on 127.10.0.x, clients connect from 127.20.x.y, both inside
127.0.0.0/8, so nothing leaves the machine. The work is split over several processes (one
process holding 200,000 descriptors is slow to start and to tear down): ``--servers``
processes each accept a share, ``--clients`` processes each open a share. Each client moves
to a new source address every ``SOURCE_SPAN`` connections and binds with
``IP_BIND_ADDRESS_NO_PORT`` (ip(7)), so the ephemeral port is picked per 4-tuple at connect
time and the port range (``net.ipv4.ip_local_port_range``) never runs out.

Two shapes (``--shape``):

* ``split`` (default): servers and clients are different processes, as above; a few
  listeners (one per server process), IPv4 only, every connection ESTABLISHED.
* ``few-big-processes``: about 11 processes at 100,000 connections, each holding *both* ends
  of about 9,000 connections to its own listeners (about 18,000 descriptors each): 20
  listeners per process (18 on 127.10.x.y, 2 on ``::1``; 220 at 11 processes), 10 % of the
  connections over ``::1``, 1 % half-closed (the client end shut down for writing: it sits
  in FIN-WAIT-2, the server end in CLOSE-WAIT, RFC 9293 3.3.2), and 1 % more connections
  opened among them and closed once all are up, which leaves holes in the fd table as
  connection churn does in a long-running server. A shape where a process's fd table is
  big and not dense, and each connection's two inodes sit in the same table.

Every socket gets ``SO_LINGER {on, 0}`` (socket(7)): when a holder exits, its sockets are
reset instead of lingering in TIME-WAIT, so the next measurement starts from a clean table.

Use from Python (the benchmark does)::

    with Load(100_000) as load:     # returns once all connections are established+accepted
        print(load.pids)            # every process it started
    # here every process is gone (waited for, SIGKILL by PID if it did not exit in time)

or from a shell::

    python3 bench/loadgen.py hold -n 10000 --hold-s 300    # prints "READY 10000", Ctrl-C stops

Holders exit by themselves when their stdin closes, when their parent dies
(``PR_SET_PDEATHSIG``) or after ``--hold-s`` seconds (at most ``MAX_HOLD_S``).
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import ctypes
import ipaddress
import os
import resource
import select
import signal
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Iterator
from types import TracebackType

MAX_HOLD_S = 3600.0  # hard upper bound on how long any holder lives
DEFAULT_HOLD_S = 600.0
SERVER_NET = "127.10.0.0"  # listeners: 127.10.0.1, 127.10.0.2, ...
CLIENT_NET = "127.20.0.0"  # sources: 127.20.0.1, ... one per SOURCE_SPAN connections
SOURCE_SPAN = 4096
PER_PROCESS = 25_000  # connections (descriptors) held by one process, at most
FD_SLACK = 256  # descriptors a holder needs besides its sockets
IP_BIND_ADDRESS_NO_PORT = 24  # linux/in.h
PR_SET_PDEATHSIG = 1  # linux/prctl.h
SHAPES = ("split", "few-big-processes")
BIG_PER_PROCESS = 9_100  # few-big-processes: connections (2 fds each) per process
BIG_LISTENERS = 20  # few-big-processes: listeners per process ...
BIG_LISTENERS_V6 = 2  # ... of which on ::1
BIG_V6_EVERY = 10  # one connection in 10 over ::1
BIG_HALF_CLOSED_EVERY = 100  # one connection in 100 half-closed
BIG_CHURN_EVERY = 100  # one more connection per 100, closed at the end: holes in the fd table
LINGER_RESET = struct.pack("ii", 1, 0)  # struct linger {l_onoff=1, l_linger=0}

_LOOPBACK = ipaddress.ip_network("127.0.0.0/8")
_LOOPBACK6 = ipaddress.ip_network("::1/128")


def _nth_address(base: str, n: int) -> str:
    """The n-th address after ``base`` (n >= 1), checked to stay inside 127.0.0.0/8."""
    addr = ipaddress.ip_address(base) + n
    if addr not in _LOOPBACK:
        raise ValueError(f"{addr} is outside 127.0.0.0/8; refusing (loopback only)")
    return str(addr)


def _check_loopback(address: str) -> None:
    ip = ipaddress.ip_address(address)
    if ip not in (_LOOPBACK if ip.version == 4 else _LOOPBACK6):
        raise SystemExit(f"loadgen: {address} is not in 127.0.0.0/8 or ::1; loopback only")


# --------------------------------------------------------------------------- child side


def _die_with_parent() -> None:
    """Ask the kernel to SIGKILL this process when its parent exits (prctl(2)).

    Ctrl-C is left to the parent, which stops its holders by PID.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):
        pass
    if os.getppid() == 1:  # the parent is already gone
        os._exit(1)


def _raise_nofile(need: int) -> None:
    """Raise RLIMIT_NOFILE to ``need`` descriptors (raising the hard limit needs root)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft >= need:
        return
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (need, max(hard, need)))
    except (ValueError, OSError) as err:
        raise SystemExit(
            f"loadgen: cannot raise RLIMIT_NOFILE to {need} (hard limit {hard}): {err}; "
            "run as root or lower --connections"
        ) from err


def _hold(hold_s: float) -> None:
    """Block until stdin reaches EOF or ``hold_s`` seconds pass, then exit at once."""
    deadline = time.monotonic() + min(hold_s, MAX_HOLD_S)
    fd = sys.stdin.fileno()
    while (left := deadline - time.monotonic()) > 0:
        ready, _, _ = select.select([fd], [], [], left)
        if ready and not os.read(fd, 4096):
            break
    # os._exit: the kernel closes (and, with SO_LINGER 0, resets) every socket at once;
    # closing 25,000 Python socket objects one by one would only be slower.
    os._exit(0)


def _say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def serve(address: str, expect: int, hold_s: float, timeout_s: float, port: int = 0) -> None:
    """Listen on ``address`` (``port``, or an ephemeral one), accept ``expect``
    connections, hold them.

    Prints ``LISTENING <address> <port>``, then ``ACCEPTED <n>`` when all are accepted.
    """
    _check_loopback(address)
    _die_with_parent()
    _raise_nofile(expect + FD_SLACK)
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind((address, port))
    listener.listen(socket.SOMAXCONN)
    _say(f"LISTENING {address} {listener.getsockname()[1]}")
    held: list[socket.socket] = []
    deadline = time.monotonic() + timeout_s
    while len(held) < expect:
        left = deadline - time.monotonic()
        if left <= 0:
            raise SystemExit(f"loadgen serve: accepted only {len(held)}/{expect} in time")
        listener.settimeout(left)
        try:
            conn, _ = listener.accept()
        except TimeoutError:
            continue
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, LINGER_RESET)
        held.append(conn)
    _say(f"ACCEPTED {len(held)}")
    _hold(hold_s)


def connect(
    source_index: int, targets: list[tuple[str, int]], count: int, hold_s: float, timeout_s: float
) -> None:
    """Open ``count`` connections round-robin over ``targets`` and hold them.

    Sources are 127.20.0.0 + ``source_index`` + k, one new address per ``SOURCE_SPAN``
    connections. Prints ``READY <n>`` when all are connected.
    """
    for host, _ in targets:
        _check_loopback(host)
    _die_with_parent()
    _raise_nofile(count + FD_SLACK)
    held: list[socket.socket] = []
    deadline = time.monotonic() + timeout_s
    for i in range(count):
        if time.monotonic() > deadline:
            raise SystemExit(f"loadgen connect: connected only {i}/{count} in time")
        source = _nth_address(CLIENT_NET, source_index + i // SOURCE_SPAN)
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_IP, IP_BIND_ADDRESS_NO_PORT, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, LINGER_RESET)
        sock.bind((source, 0))
        sock.settimeout(max(0.1, deadline - time.monotonic()))
        sock.connect(targets[i % len(targets)])
        held.append(sock)
    _say(f"READY {len(held)}")
    _hold(hold_s)


def pair(index: int, count: int, hold_s: float, timeout_s: float) -> None:
    """Hold both ends of ``count`` connections to this process's own listeners.

    ``index`` (0, 1, ...) picks this process's listener and source addresses, so that
    processes never share one. Listeners: ``BIG_LISTENERS`` (the last ``BIG_LISTENERS_V6``
    on ``::1``); connection ``i`` goes to listener ``i % BIG_LISTENERS`` (hence over ``::1``
    one time in ``BIG_V6_EVERY``), is accepted at once, and one in
    ``BIG_HALF_CLOSED_EVERY`` has its client end shut down for writing. One extra connection
    per ``BIG_CHURN_EVERY`` is made among them and closed (reset) once all are up, so the fd
    table has holes.

    Prints ``LISTENING host:port,...`` then ``READY <n>``.
    """
    _die_with_parent()
    churn = count // BIG_CHURN_EVERY
    _raise_nofile(2 * (count + churn) + BIG_LISTENERS + FD_SLACK)
    listeners: list[socket.socket] = []
    for j in range(BIG_LISTENERS):
        v6 = j >= BIG_LISTENERS - BIG_LISTENERS_V6
        host = "::1" if v6 else _nth_address(SERVER_NET, index * BIG_LISTENERS + j + 1)
        _check_loopback(host)
        ls = socket.socket(socket.AF_INET6 if v6 else socket.AF_INET, socket.SOCK_STREAM)
        ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        ls.bind((host, 0))
        ls.listen(socket.SOMAXCONN)
        ls.settimeout(timeout_s)
        listeners.append(ls)
    names = [ls.getsockname()[:2] for ls in listeners]
    _say("LISTENING " + ",".join(f"{h}:{p}" for h, p in names))
    held: list[socket.socket] = []
    doomed: list[socket.socket] = []
    deadline = time.monotonic() + timeout_s
    # sources: a block of 127.20.x.y addresses per process (IPv4 connections only)
    span = -(-count // SOURCE_SPAN) + 1
    for k in range(count + churn):
        if time.monotonic() > deadline:
            raise SystemExit(f"loadgen pair: connected only {k}/{count + churn} in time")
        extra = k % (BIG_CHURN_EVERY + 1) == BIG_CHURN_EVERY and len(doomed) < 2 * churn
        i = len(held) // 2
        j = i % BIG_LISTENERS
        listener = listeners[j]
        sock = socket.socket(listener.family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, LINGER_RESET)
        if listener.family == socket.AF_INET:
            sock.setsockopt(socket.SOL_IP, IP_BIND_ADDRESS_NO_PORT, 1)
            sock.bind((_nth_address(CLIENT_NET, index * span + i // SOURCE_SPAN + 1), 0))
        sock.settimeout(max(0.1, deadline - time.monotonic()))
        sock.connect(names[j])
        conn, _ = listener.accept()  # the one just made: the queue holds nothing else
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, LINGER_RESET)
        if extra:
            doomed += (sock, conn)
            continue
        if i % BIG_HALF_CLOSED_EVERY == BIG_HALF_CLOSED_EVERY - 1:
            sock.shutdown(socket.SHUT_WR)  # client FIN-WAIT-2, server CLOSE-WAIT
        held += (sock, conn)
    for sock in doomed:
        sock.close()  # SO_LINGER 0: reset, gone from the table at once
    if len(held) != 2 * count:
        raise SystemExit(f"loadgen pair: holds {len(held) // 2} connections, not {count}")
    _say(f"READY {count}")
    _hold(hold_s)


# --------------------------------------------------------------------------- parent side


def _shares(total: int, parts: int) -> list[int]:
    """Split ``total`` into ``parts`` near-equal non-negative integers."""
    base, extra = divmod(total, parts)
    return [base + (1 if i < extra else 0) for i in range(parts)]


def _ensure_file_max(need: int) -> None:
    """Raise fs.file-max / fs.nr_open if they are below ``need`` (root only; else a note)."""
    for name in ("file-max", "nr_open"):
        path = f"/proc/sys/fs/{name}"
        try:
            with open(path) as f:
                current = int(f.read().split()[0])
            if current < need:
                with open(path, "w") as f:
                    f.write(str(need))
        except (OSError, ValueError) as err:
            print(f"loadgen: note: could not check/raise fs.{name}: {err}", file=sys.stderr)


class Load:
    """Hold ``connections`` loopback TCP connections open while the ``with`` block runs.

    Args:
        connections: established connections to hold (each is two sockets).
        servers: server processes (default: enough to keep each under ``PER_PROCESS``
            descriptors and under the hard RLIMIT_NOFILE; at least 2).
        clients: client processes (default: as many as servers).
        shape: ``split`` (servers and clients apart) or ``few-big-processes`` (each
            process holds both ends of about ``BIG_PER_PROCESS`` connections; ``servers``
            is then the number of processes, ``clients`` is not used).
        hold_s: seconds after which every holder exits by itself (bounded by ``MAX_HOLD_S``).
        timeout_s: seconds allowed for setting up all connections.
        port: ``split`` shape: every server listens on this port (each on its own
            127.10.0.x address), so one port carries all connections (``who PORT`` at
            scale); 0: an ephemeral port each.

    Raises:
        RuntimeError: a holder failed or the set-up did not finish within ``timeout_s``.
    """

    def __init__(
        self,
        connections: int,
        *,
        servers: int | None = None,
        clients: int | None = None,
        shape: str = "split",
        hold_s: float = DEFAULT_HOLD_S,
        timeout_s: float = 300.0,
        port: int = 0,
    ) -> None:
        if connections < 0:
            raise ValueError("connections must be >= 0")
        if shape not in SHAPES:
            raise ValueError(f"shape must be one of {', '.join(SHAPES)}, not {shape!r}")
        # Without CAP_SYS_RESOURCE (even as root in a container) the hard RLIMIT_NOFILE
        # cannot be raised, so size the shares to fit under it.
        hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
        per_process = PER_PROCESS if hard == resource.RLIM_INFINITY else hard - FD_SLACK
        per_process = min(PER_PROCESS, per_process)
        parts = max(2, -(-connections // per_process))
        if shape == "few-big-processes":
            fits = (per_process - BIG_LISTENERS) // 2
            parts = max(1, -(-connections // min(BIG_PER_PROCESS, fits)))
        self.shape = shape
        self.connections = connections
        self.n_servers = servers or parts
        self.n_clients = clients or parts
        self.hold_s = min(hold_s, MAX_HOLD_S)
        self.timeout_s = timeout_s
        self.port = port
        self.procs: list[subprocess.Popen[str]] = []
        self.listeners: list[tuple[str, int]] = []
        self.half_closed = 0  # connections whose client end is shut down for writing
        self.setup_s = 0.0

    @property
    def pids(self) -> list[int]:
        """PIDs of every process this load started (servers first)."""
        return [p.pid for p in self.procs]

    def _spawn(self, *args: str) -> subprocess.Popen[str]:
        proc = subprocess.Popen(
            [sys.executable, os.path.abspath(__file__), *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        self.procs.append(proc)
        return proc

    def _expect(self, proc: subprocess.Popen[str], word: str) -> list[str]:
        assert proc.stdout is not None
        # A holder that fails exits, which closes stdout: readline returns "" and we stop.
        line = proc.stdout.readline()
        fields = line.split()
        if not fields or fields[0] != word:
            raise RuntimeError(
                f"loadgen pid {proc.pid}: expected {word}, got {line!r} (exit {proc.poll()})"
            )
        return fields[1:]

    def start(self) -> Load:
        """Start every process and return once all connections are established and accepted."""
        atexit.register(self.stop)
        started = time.monotonic()
        _ensure_file_max(2 * self.connections + 65536)
        hold = str(self.hold_s)
        timeout = str(self.timeout_s)
        if self.shape == "few-big-processes":
            return self._start_pairs(started, hold, timeout)
        client_share = _shares(self.connections, self.n_clients)
        server_share = list(_server_shares_for(self.n_servers, client_share))
        servers = [
            self._spawn(
                "serve",
                _nth_address(SERVER_NET, i + 1),
                "--expect",
                str(n),
                "--hold-s",
                hold,
                "--timeout-s",
                timeout,
                "--port",
                str(self.port),
            )
            for i, n in enumerate(server_share)
        ]
        for proc in servers:
            host, port = self._expect(proc, "LISTENING")
            self.listeners.append((host, int(port)))
        targets = ",".join(f"{h}:{p}" for h, p in self.listeners)
        clients = []
        source_index = 1
        for n in client_share:
            clients.append(
                self._spawn(
                    "connect",
                    "--source-index",
                    str(source_index),
                    "--targets",
                    targets,
                    "--count",
                    str(n),
                    "--hold-s",
                    hold,
                    "--timeout-s",
                    timeout,
                )
            )
            source_index += -(-n // SOURCE_SPAN) or 1
        for proc in clients:
            self._expect(proc, "READY")
        for proc in servers:
            self._expect(proc, "ACCEPTED")
        self.setup_s = time.monotonic() - started
        return self

    def _start_pairs(self, started: float, hold: str, timeout: str) -> Load:
        shares = _shares(self.connections, self.n_servers)
        procs = [
            self._spawn(
                "pair",
                "--index",
                str(i),
                "--count",
                str(n),
                "--hold-s",
                hold,
                "--timeout-s",
                timeout,
            )
            for i, n in enumerate(shares)
        ]
        for proc in procs:
            (names,) = self._expect(proc, "LISTENING")
            for item in names.split(","):
                host, _, port = item.rpartition(":")
                self.listeners.append((host, int(port)))
        for proc in procs:
            self._expect(proc, "READY")
        self.half_closed = sum(n // BIG_HALF_CLOSED_EVERY for n in shares)
        self.setup_s = time.monotonic() - started
        return self

    def stop(self) -> None:
        """Stop every process: close its stdin, wait, then SIGKILL by PID what is left."""
        for proc in self.procs:
            if proc.stdin is not None:
                with contextlib.suppress(OSError):
                    proc.stdin.close()
        deadline = time.monotonic() + 10.0
        for proc in self.procs:
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(proc.pid, signal.SIGKILL)
                proc.wait()
            if proc.stdout is not None:
                proc.stdout.close()
        self.procs.clear()
        atexit.unregister(self.stop)

    def __enter__(self) -> Load:
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def _server_shares_for(load_targets: int, clients: list[int]) -> Iterator[int]:
    """Connections each target receives when clients go round-robin from index 0 each."""
    for t in range(load_targets):
        yield sum(n // load_targets + (1 if t < n % load_targets else 0) for n in clients)


# --------------------------------------------------------------------------- command line


def _targets(text: str) -> list[tuple[str, int]]:
    out = []
    for item in text.split(","):
        host, _, port = item.rpartition(":")
        out.append((host, int(port)))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    sub = parser.add_subparsers(dest="cmd", required=True)
    hold = sub.add_parser("hold", help="hold N connections until Ctrl-C or --hold-s")
    hold.add_argument("-n", "--connections", type=int, required=True)
    hold.add_argument("--servers", type=int)
    hold.add_argument("--clients", type=int)
    hold.add_argument("--shape", choices=SHAPES, default="split")
    hold.add_argument("--hold-s", type=float, default=DEFAULT_HOLD_S)
    srv = sub.add_parser("serve", help="(internal) one server process")
    srv.add_argument("address")
    cli = sub.add_parser("connect", help="(internal) one client process")
    cli.add_argument("--source-index", type=int, required=True)
    cli.add_argument("--targets", type=_targets, required=True)
    cli.add_argument("--count", type=int, required=True)
    srv.add_argument("--expect", type=int, required=True)
    srv.add_argument("--port", type=int, default=0)
    par = sub.add_parser("pair", help="(internal) one few-big-processes process")
    par.add_argument("--index", type=int, required=True)
    par.add_argument("--count", type=int, required=True)
    for p in (srv, cli, par):
        p.add_argument("--hold-s", type=float, default=DEFAULT_HOLD_S)
        p.add_argument("--timeout-s", type=float, default=300.0)
    args = parser.parse_args(argv)
    if args.cmd == "serve":
        serve(args.address, args.expect, args.hold_s, args.timeout_s, args.port)
    elif args.cmd == "connect":
        connect(args.source_index, args.targets, args.count, args.hold_s, args.timeout_s)
    elif args.cmd == "pair":
        pair(args.index, args.count, args.hold_s, args.timeout_s)
    else:
        load = Load(
            args.connections,
            servers=args.servers,
            clients=args.clients,
            shape=args.shape,
            hold_s=args.hold_s,
        )
        # SIGTERM (and SIGINT, ignored in a shell's background jobs) stop the load cleanly
        signal.signal(signal.SIGTERM, signal.default_int_handler)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        with load:
            print(
                f"READY {args.connections} (setup {load.setup_s:.1f} s; pids "
                f"{' '.join(map(str, load.pids))}); Ctrl-C or wait {load.hold_s:.0f} s",
                flush=True,
            )
            with contextlib.suppress(KeyboardInterrupt):
                time.sleep(load.hold_s)
    return 0


if __name__ == "__main__":
    sys.exit(main())
