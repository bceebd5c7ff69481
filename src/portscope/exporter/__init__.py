"""Prometheus metrics of this host's sockets, read at scrape time (``portscope exporter``).

A ``prometheus_client`` custom collector: every scrape dumps the socket table once (netlink
``sock_diag``, the same rows ``portscope ls`` streams), maps only the listeners to their
processes (a scan of ``/proc/*/fd`` limited to their inodes), and reads TcpExt counters
from ``/proc/net/netstat``. No background thread, no cache: what Prometheus stores is what
the kernel said at that scrape.

Cardinality is bounded by design: listener series carry the listener's own address and
port (a host has few), never a remote address or port; connection counts are per
(transport, family, state); the only per-destination series are the ephemeral-port ones,
for the ``top_destinations`` busiest destinations only (default 10, 0 for none).
docs/exporter.md lists every metric with its labels.

Needs the ``exporter`` extra (``pip install 'portscope[exporter]'``). Owners of other
users' listeners need root (CAP_SYS_PTRACE): without it their ``process`` label is ``""``
and ``portscope_owners_complete`` is 0.
"""

from __future__ import annotations

import os
import time
from collections import Counter
from collections.abc import Collection, Iterator
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from prometheus_client.metrics_core import Metric

    from portscope.models import Owner
    from portscope.registry import KernelPorts
    from portscope.sockets import Row, Tally

#: The default listen address: loopback, port 9105 (docs/exporter.md says why this port).
DEFAULT_LISTEN: Final = ("127.0.0.1", 9105)
#: Default number of destinations with their own ephemeral-port series.
DEFAULT_TOP_DESTINATIONS: Final = 10
#: The most destinations one may ask for (series stay bounded).
MAX_TOP_DESTINATIONS: Final = 1000

_LISTENER_LABELS: Final = ("proto", "address", "port", "netns")
_INFO_LABELS: Final = (*_LISTENER_LABELS, "scope", "process", "user")


def read_tcpext(path: str = "/proc/net/netstat") -> dict[str, int]:
    """The ``TcpExt`` counters of ``/proc/net/netstat`` (name -> value); empty when
    unreadable. ListenOverflows: SYNs dropped because an accept queue was full;
    ListenDrops: every SYN dropped at a listener (overflows included)."""
    try:
        with open(path, encoding="ascii") as f:
            lines = f.read().splitlines()
    except (OSError, UnicodeDecodeError):
        return {}
    for names, values in zip(lines[::2], lines[1::2], strict=False):
        if names.startswith("TcpExt:") and values.startswith("TcpExt:"):
            keys, nums = names.split()[1:], values.split()[1:]
            return {k: int(v) for k, v in zip(keys, nums, strict=False) if v.isdigit()}
    return {}


def _label(row: Row, own: str) -> str:
    """A socket's namespace as a label value: its name (``host``, an ``ip netns`` name),
    else ``net:[INODE]``; this process's own when the dump was of one namespace."""
    ns = row.netns
    if ns is None:
        return own
    return ns.name or f"net:[{ns.inode}]"


def _netns_label() -> str:
    """This process's network namespace as a label value: ``net:[INODE]``."""
    try:
        return os.readlink("/proc/thread-self/ns/net")
    except OSError:
        return ""


def _holds(pid: int, fd: int, inode: int) -> bool:
    """Whether process ``pid`` still holds socket ``inode`` at descriptor ``fd``."""
    try:
        return os.readlink(f"/proc/{pid}/fd/{fd}") == f"socket:[{inode}]"
    except OSError:
        return False


def _user_name(uid: int | None) -> str:
    """The name of ``uid`` (the socket's owner, known even when its process is not)."""
    if uid is None:
        return ""
    import pwd

    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


class SocketCollector:
    """The collector ``portscope exporter`` registers (``prometheus_client`` protocol:
    ``collect()`` yields metric families; ``describe()`` returns none, so registering
    does no scrape).

    Args:
        top_destinations: how many destinations get their own ephemeral-port series
            (0-``MAX_TOP_DESTINATIONS``; the busiest by sockets).
        port_allowlist: only listeners on these ports get listener series (``None``:
            all); connection counts and host totals are not affected.
        backend: socket-table backend (``None``: the best available).
        netns: the network namespaces to report (``list_sockets``: ``all``, a name, a
            pid, an nsfs path; ``None``: this process's). Entering others needs root.

    Raises:
        InvalidInput: ``top_destinations`` out of range.
    """

    def __init__(
        self,
        *,
        top_destinations: int = DEFAULT_TOP_DESTINATIONS,
        port_allowlist: Collection[int] | None = None,
        backend: str | None = None,
        netns: str | int | None = None,
    ) -> None:
        from portscope.errors import InvalidInput

        if not 0 <= top_destinations <= MAX_TOP_DESTINATIONS:
            raise InvalidInput(
                f"--top-destinations {top_destinations}: give 0 to {MAX_TOP_DESTINATIONS}"
            )
        self.top_destinations = top_destinations
        self.port_allowlist = None if port_allowlist is None else frozenset(port_allowlist)
        self.backend = backend
        self.netns = netns
        self.errors = 0
        # listener inode -> ((pid, fd) holders, owners): re-checked each scrape with one
        # readlink per holder; /proc is scanned only for listeners not seen before
        self._owner_cache: dict[int, tuple[list[tuple[int, int]], tuple[Owner, ...]]] = {}
        self._owners_complete: bool | None = None
        self.scrapes = 0

    def describe(self) -> list[Metric]:
        return []

    def collect(self) -> Iterator[Metric]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        started = time.perf_counter()
        self.scrapes += 1
        families: list[Metric] = []
        try:
            families = list(self._sockets())
        except Exception as err:  # a scrape reports its failure; it never crashes the server
            from portscope.errors import PortscopeError

            if not isinstance(err, (PortscopeError, OSError)):
                raise
            self.errors += 1
        yield from families
        tcpext = read_tcpext()
        for name, key, doc in (
            (
                "portscope_listen_overflows",
                "ListenOverflows",
                "SYNs dropped because a listener's accept queue was full (TcpExt "
                "ListenOverflows, /proc/net/netstat)",
            ),
            (
                "portscope_listen_drops",
                "ListenDrops",
                "SYNs dropped at a listener for any reason, overflows included (TcpExt "
                "ListenDrops)",
            ),
        ):
            if key in tcpext:
                counter = CounterMetricFamily(name, doc)
                counter.add_metric([], tcpext[key])
                yield counter
        errors = CounterMetricFamily(
            "portscope_scrape_errors", "scrapes whose socket-table dump failed"
        )
        errors.add_metric([], self.errors)
        yield errors
        duration = GaugeMetricFamily(
            "portscope_scrape_duration_seconds", "time this scrape took, in seconds"
        )
        duration.add_metric([], time.perf_counter() - started)
        yield duration

    def _sockets(self) -> Iterator[Metric]:
        from prometheus_client.core import GaugeMetricFamily

        from portscope.models import Proto, TcpState
        from portscope.registry import kernel_ports
        from portscope.sockets import scope_words, tally

        kernel = kernel_ports()
        # listeners as rows, every other socket only counted (sockets.tally)
        counted = tally(kernel.ephemeral, backend=self.backend, netns=self.netns)
        own = _netns_label()
        listening = (TcpState.LISTEN, TcpState.UNCONN)
        listeners = [
            r
            for r in counted.rows
            if r.state in listening
            and (self.port_allowlist is None or r.local_port in self.port_allowlist)
        ]
        owners = self._listener_owners(counted, listeners)

        info = GaugeMetricFamily(
            "portscope_listener_info",
            "a listening socket (TCP LISTEN or unconnected UDP) and its owner; value 1",
            labels=_INFO_LABELS,
        )
        queue = GaugeMetricFamily(
            "portscope_listener_queue_length",
            "connections waiting in a TCP listener's accept queue (Recv-Q of LISTEN)",
            labels=_LISTENER_LABELS,
        )
        backlog = GaugeMetricFamily(
            "portscope_listener_backlog",
            "a TCP listener's backlog: the most connections its accept queue holds (Send-Q "
            "of LISTEN)",
            labels=_LISTENER_LABELS,
        )
        udp_queue = GaugeMetricFamily(
            "portscope_udp_receive_queue_bytes",
            "bytes received and not yet read by an unconnected UDP socket (Recv-Q)",
            labels=_LISTENER_LABELS,
        )
        seen: set[tuple[str, ...]] = set()
        for r in listeners:
            key = (r.proto.value, r.local_address, str(r.local_port), _label(r, own))
            if key in seen:  # SO_REUSEPORT groups: one series per address and port
                continue
            seen.add(key)
            found = sorted(owners.get(r.inode or 0, ()), key=lambda o: o.pid)
            process = found[0].name if found else ""
            user = (found[0].user or "") if found else _user_name(r.uid)
            scope = scope_words(r.family, r.local_address, r.v6only, r.interface)
            info.add_metric([*key, scope, process, user], 1)
            if r.proto is Proto.TCP:
                if r.recv_q is not None:
                    queue.add_metric(list(key), r.recv_q)
                if r.send_q is not None:
                    backlog.add_metric(list(key), r.send_q)
            elif r.recv_q is not None:
                udp_queue.add_metric(list(key), r.recv_q)
        yield from (info, queue, backlog, udp_queue)

        owners_complete = GaugeMetricFamily(
            "portscope_owners_complete",
            "1 when every process could be inspected for listener owners, 0 when some "
            'could not (not root: their listeners have process="")',
        )
        owners_complete.add_metric([], 1 if self._owners_complete in (None, True) else 0)
        yield owners_complete

        counts: Counter[tuple[str, str, str]] = Counter()
        for (transport, family, state), n in counted.counts.items():
            counts[(transport.value, str(family), state.value)] += n
        sockets = GaugeMetricFamily(
            "portscope_sockets",
            "sockets by transport, address family (4, 6) and state",
            labels=("proto", "family", "state"),
        )
        for (proto_name, family_name, state_name), n in sorted(counts.items()):
            sockets.add_metric([proto_name, family_name, state_name], n)
        yield sockets

        yield from self._ephemeral(counted, kernel)

    def _listener_owners(
        self, counted: Tally, listeners: list[Row]
    ) -> dict[int, tuple[Owner, ...]]:
        """The owners of each listener by inode. A listener seen at an earlier scrape keeps
        its owners while every holder still has it (``/proc/PID/fd/N`` still links to
        ``socket:[INODE]``: one readlink each, so a reused PID is caught); only new or
        changed listeners cost a scan of ``/proc/*/fd`` (limited to their inodes)."""
        found: dict[int, tuple[Owner, ...]] = {}
        missing: list[Row] = []
        for r in listeners:
            inode = r.inode
            if inode is None:
                continue
            cached = self._owner_cache.get(inode)
            if cached is not None and all(_holds(pid, fd, inode) for pid, fd in cached[0]):
                found[inode] = cached[1]
            else:
                missing.append(r)
        if missing and counted.owner_scan is not None:
            omap = counted.owner_scan(missing)
            self._owners_complete = omap.complete
            for r in missing:
                assert r.inode is not None
                owners = omap.owners(r)
                found[r.inode] = owners
                self._owner_cache[r.inode] = (list(omap.holders(r.inode)), owners)
        live = {r.inode for r in listeners}
        for inode in [i for i in self._owner_cache if i not in live]:
            del self._owner_cache[inode]
        return found

    def _ephemeral(self, counted: Tally, kernel: KernelPorts) -> Iterator[Metric]:
        from prometheus_client.core import GaugeMetricFamily

        lo, hi = kernel.ephemeral
        reserved = sum(1 for p in kernel.reserved if lo <= p <= hi)
        size = hi - lo + 1 - reserved
        used = counted.ephemeral_ports
        # in the order first met, as the dump lists them (ties keep that order)
        counted_by = Counter(counted.destinations)
        per_destination: dict[str, int] = {}
        for (address, port), n in counted_by.most_common(self.top_destinations):
            host = f"[{address}]" if address and ":" in address else (address or "")
            per_destination[f"{host}:{port}"] = n
        in_use = GaugeMetricFamily(
            "portscope_ephemeral_ports_in_use",
            "ephemeral ports held by TCP sockets with a peer: distinct local ports for the "
            'host (destination=""), sockets per destination for the busiest destinations',
            labels=("destination",),
        )
        available = GaugeMetricFamily(
            "portscope_ephemeral_ports_available",
            "ephemeral ports a new outgoing TCP connection could still take: for the host, "
            "ports no socket holds; per destination, ports not used toward it "
            "(net.ipv4.ip_local_port_range minus ip_local_reserved_ports)",
            labels=("destination",),
        )
        in_use.add_metric([""], len(used))
        available.add_metric([""], max(size - len(used), 0))
        for destination, n in sorted(per_destination.items(), key=lambda kv: (-kv[1], kv[0]))[
            : self.top_destinations
        ]:
            in_use.add_metric([destination], n)
            available.add_metric([destination], max(size - n, 0))
        yield in_use
        yield available
