"""Listings of this host for the store: the socket dump turned into stored rows.

The network namespace of a row is the one its record carries (``Row.netns``, a
``models.Netns``, with ``-N``), else the caller's (the inode of ``/proc/self/ns/net``):
``_row_netns`` is the one place that reads it.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from portscope.history._store import StoredSocket
from portscope.models import Netns, TcpState
from portscope.sockets import Row, SocketFilter

__all__ = ["LISTEN_STATES", "Capture", "capture", "current_netns", "stored_sockets"]

#: What a listing holds: TCP LISTEN and bound, unconnected UDP (as ``portscope listen``).
LISTEN_STATES: Final = frozenset({TcpState.LISTEN, TcpState.UNCONN})


def current_netns() -> int | None:
    """The inode of this process's network namespace, or ``None`` off Linux."""
    try:
        return os.stat("/proc/self/ns/net").st_ino
    except OSError:
        return None


def _row_netns(row: Row, default: int | None) -> int | None:
    value = getattr(row, "netns", None)  # issue 9 adds it to the record
    if isinstance(value, int):
        return value
    inode = getattr(value, "inode", None)
    return inode if isinstance(inode, int) else default


@dataclass(frozen=True, slots=True)
class Capture:
    """One listing of this host.

    Attributes:
        sockets: the rows to store.
        netns: the namespace listed (inode); ``None`` when several were (``-N all``).
        complete: False when some processes could not be inspected (not root).
        notes: notes for the user (partial owners, backend fallbacks).
    """

    sockets: list[StoredSocket]
    netns: int | None
    complete: bool
    notes: tuple[str, ...]
    namespaces: tuple[Netns, ...] = ()

    def names(self) -> dict[int, str | None]:
        """inode -> name of the namespaces listed (``-N``)."""
        return {ns.inode: ns.name for ns in self.namespaces}


def stored_sockets(rows: Sequence[Row], owners: object, netns: int | None) -> list[StoredSocket]:
    """Rows with their owners (an ``OwnerMap``, or ``None``) as stored sockets."""
    lookup = getattr(owners, "owners", None)
    out = []
    for r in rows:
        out.append(
            StoredSocket(
                _row_netns(r, netns), r.proto, r.family, r.state, r.local_address,
                r.local_port, r.remote_address, r.remote_port, r.recv_q, r.send_q, r.uid,
                r.inode, r.interface, r.v6only, None if lookup is None else lookup(r),
            )
        )  # fmt: skip
    return out


def capture(
    *, all_sockets: bool = False, backend: str | None = None, netns: str | None = None
) -> Capture:
    """List this host's listeners (or every TCP/UDP socket) with their processes.

    One dump with the states filtered by the kernel, then one scan of ``/proc/*/fd`` for
    the inodes found (with ``netns``, each namespace's processes for its own sockets).

    Args:
        all_sockets: every state, not only listeners.
        backend: the socket backend (``None``: the best one).
        netns: the network namespaces (``-N``: ``all``, an ``ip netns`` name, a pid, an
            nsfs path; ``sockets.dump(netns=...)``); ``None``: the caller's own.

    Raises:
        BackendUnavailable, PermissionDenied: the socket table cannot be read.
        InvalidFilter: a bad or unknown namespace.
    """
    from portscope.sockets import dump

    where = SocketFilter(states=None if all_sockets else LISTEN_STATES)
    d = dump(where, owners=True, backend=backend, owners_first=False, netns=netns)
    rows = [r for batch in d.batches for r in batch]
    omap = d.scan_owners(rows)
    namespaces = d.netns or ()
    if netns is None:
        inode = current_netns()
    else:  # the one namespace listed; several have no single one
        inode = namespaces[0].inode if len(namespaces) == 1 else None
    return Capture(
        stored_sockets(rows, omap, inode),
        inode,
        bool(d.owners_complete),
        tuple(d.notes),
        tuple(namespaces),
    )
