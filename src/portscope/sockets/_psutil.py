"""Backend for macOS, Windows and the BSDs: ``psutil.net_connections`` (imported lazily).

psutil reports no queue sizes, uid, inode, bound interface or IPV6_V6ONLY: they are
``None`` (unknown), with a note. Owners come from the pid psutil attaches to each connection.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator
from typing import Any

from portscope.errors import BackendUnavailable, PermissionDenied
from portscope.models import Owner, Proto, TcpState
from portscope.sockets._diag_codec import Row
from portscope.sockets._filters import SocketFilter
from portscope.sockets._owners import OwnerMap, ProcessInfo

_STATUS = {
    "ESTABLISHED": TcpState.ESTABLISHED,
    "SYN_SENT": TcpState.SYN_SENT,
    "SYN_RECV": TcpState.SYN_RECV,
    "FIN_WAIT1": TcpState.FIN_WAIT_1,
    "FIN_WAIT2": TcpState.FIN_WAIT_2,
    "TIME_WAIT": TcpState.TIME_WAIT,
    "CLOSE": TcpState.CLOSE,
    "CLOSE_WAIT": TcpState.CLOSE_WAIT,
    "LAST_ACK": TcpState.LAST_ACK,
    "LISTEN": TcpState.LISTEN,
    "CLOSING": TcpState.CLOSING,
}


def _key(row: Row) -> tuple[Any, ...]:
    """The connection's identity: its 5-tuple (and family), not its state.

    psutil reads the table per process and per file, so a connection that changes state
    meanwhile (ESTABLISHED, then CLOSE-WAIT) can come twice: one row, the later state.
    """
    return (
        row.proto,
        row.family,
        row.local_address,
        row.local_port,
        row.remote_address,
        row.remote_port,
    )


class _PsutilOwners(OwnerMap):
    """Owners keyed by the connection (psutil gives a pid, not an inode)."""

    by_inode = False

    def __init__(self, holders: dict[tuple[Any, ...], list[tuple[int, int]]]) -> None:
        super().__init__()
        self._by_row = holders

    def pids(self, row: Row) -> list[int]:
        return [pid for pid, _ in self._by_row.get(_key(row), [])]

    def process(self, pid: int) -> ProcessInfo | None:
        try:
            return self._info[pid]
        except KeyError:
            pass
        import psutil  # type: ignore[import-untyped]

        info: ProcessInfo | None
        try:
            proc = psutil.Process(pid)
            with proc.oneshot():
                try:
                    user: str | None = proc.username()
                except (psutil.AccessDenied, KeyError):
                    user = None
                try:
                    cmdline: tuple[str, ...] | None = tuple(proc.cmdline()) or None
                except psutil.AccessDenied:
                    cmdline = None
                info = ProcessInfo(proc.name(), user, cmdline, proc.create_time())
        except psutil.NoSuchProcess:
            info = None
        except psutil.AccessDenied:
            info = ProcessInfo(str(pid), None, None, None)
        self._info[pid] = info
        return info

    def owners(self, row: Row) -> tuple[Owner, ...]:
        result = []
        for pid, fd in self._by_row.get(_key(row), []):
            info = self.process(pid)
            if info is not None:
                result.append(Owner(pid, info.name, info.user, info.cmdline, info.start_time, fd))
        return tuple(result)


class PsutilBackend:
    """Any platform psutil supports; slower and with fewer details than netlink."""

    name = "psutil"

    def __init__(self) -> None:
        try:
            import psutil  # noqa: F401
        except ImportError as err:
            raise BackendUnavailable("psutil is not installed") from err
        self.notes: list[str] = [
            "psutil backend: no queue sizes, uid, inode or interface (shown as unknown, '?')"
        ]
        self._holders: dict[tuple[Any, ...], list[tuple[int, int]]] = {}

    def batches(
        self,
        protos: tuple[Proto, ...],
        families: tuple[int, ...],
        states: frozenset[TcpState] | None,
        where: SocketFilter | None = None,
    ) -> Iterator[list[Row]]:
        import psutil

        for proto in protos:
            for family in families:
                kind = f"{proto.value}{family}"
                try:
                    conns = psutil.net_connections(kind=kind)
                except psutil.AccessDenied as err:
                    raise PermissionDenied(
                        "psutil needs more privilege to list connections here"
                    ) from err
                rows: list[Row] = []
                seen: dict[tuple[Any, ...], int] = {}  # 5-tuple -> index in rows
                for c in conns:
                    if proto is Proto.UDP:
                        state = TcpState.ESTABLISHED if c.raddr else TcpState.UNCONN
                    else:
                        state = _STATUS.get(c.status, TcpState.CLOSE)
                    if states is not None and state not in states:
                        continue
                    laddr, lport = (c.laddr[0], c.laddr[1]) if c.laddr else ("", 0)
                    raddr, rport = (c.raddr[0], c.raddr[1]) if c.raddr else (None, None)
                    row = Row(proto, family, state, laddr, lport, raddr, rport, None, None,
                              None, None, None, None)  # fmt: skip
                    key = _key(row)
                    if c.pid is not None:
                        held = self._holders.setdefault(key, [])
                        if (c.pid, max(c.fd, 0)) not in held:
                            held.append((c.pid, max(c.fd, 0)))
                    at = seen.get(key)
                    if at is not None:
                        rows[at] = row  # the same connection again: keep the later state
                        continue
                    seen[key] = len(rows)
                    rows.append(row)
                if rows:
                    yield rows

    def owner_map(self, wanted: Collection[int] | None = None) -> OwnerMap:
        return _PsutilOwners(self._holders)
