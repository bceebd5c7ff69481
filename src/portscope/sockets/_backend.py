"""The socket-table backend seam and the primary backend (NETLINK_SOCK_DIAG).

A backend yields *batches* of rows (``_diag_codec.Row``), deduplicated, with the
requested transports, families and states; it also maps rows to owning processes.
"""

from __future__ import annotations

import errno
import socket
from collections.abc import Collection, Iterator
from typing import Protocol

from portscope.errors import BackendUnavailable
from portscope.models import Proto, TcpState
from portscope.sockets._diag_codec import Row, decode_chunk
from portscope.sockets._filters import kernel_state_mask
from portscope.sockets._owners import OwnerMap

_AF = {4: socket.AF_INET, 6: getattr(socket, "AF_INET6", 10)}
_IPPROTO = {Proto.TCP: socket.IPPROTO_TCP, Proto.UDP: socket.IPPROTO_UDP}


class Backend(Protocol):
    """What every socket-table backend provides.

    Attributes:
        name: ``netlink``, ``procfs`` or ``psutil``.
        notes: notes gathered while dumping (fallbacks used), for ``SocketTable.notes``.
    """

    name: str
    notes: list[str]

    def batches(
        self,
        protos: tuple[Proto, ...],
        families: tuple[int, ...],
        states: frozenset[TcpState] | None,
    ) -> Iterator[list[Row]]:
        """Yield the sockets as lists of rows, without duplicates.

        Args:
            protos: transports to dump.
            families: 4 and/or 6.
            states: states to keep (``None``: every state).
        """
        ...

    def owner_map(self, wanted: Collection[int] | None = None) -> OwnerMap:
        """Map sockets to the processes holding them."""
        ...


class NetlinkBackend:
    """Linux NETLINK_SOCK_DIAG (``man 7 sock_diag``): one dump per (transport, family)."""

    name = "netlink"

    def __init__(self, proc: str = "/proc") -> None:
        from portscope.sockets._netlink import open_diag_socket

        open_diag_socket().close()  # fail early (BackendUnavailable) if it cannot run
        self._proc = proc
        self.notes: list[str] = []

    def batches(
        self,
        protos: tuple[Proto, ...],
        families: tuple[int, ...],
        states: frozenset[TcpState] | None,
    ) -> Iterator[list[Row]]:
        from portscope.sockets._netlink import dump, open_diag_socket

        sock = open_diag_socket()
        try:
            for proto in protos:
                mask = kernel_state_mask(states, proto)
                if not mask:
                    continue
                for family in families:
                    seen: set[int] = set()
                    try:
                        for chunk in dump(sock, _AF[family], _IPPROTO[proto], mask):
                            rows: list[Row] = []
                            done = decode_chunk(chunk, family, proto, rows, seen)
                            if rows:
                                yield rows
                            if done:
                                break
                    except BackendUnavailable as err:
                        if err.errno not in (errno.ENOENT, errno.EAFNOSUPPORT):
                            raise
                        # e.g. udp_diag not loaded: read this one from /proc/net instead
                        yield from self._fallback(proto, family, states)
                        sock.close()
                        sock = open_diag_socket()
        finally:
            sock.close()

    def _fallback(
        self, proto: Proto, family: int, states: frozenset[TcpState] | None
    ) -> Iterator[list[Row]]:
        from portscope.sockets._procfs import ProcfsBackend

        self.notes.append(
            f"the kernel has no sock_diag for {proto.value}/IPv{family}; read /proc/net instead"
        )
        yield from ProcfsBackend(self._proc).batches((proto,), (family,), states)

    def owner_map(self, wanted: Collection[int] | None = None) -> OwnerMap:
        return OwnerMap.scan(wanted, self._proc)
