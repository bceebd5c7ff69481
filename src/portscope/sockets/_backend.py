"""The socket-table backend seam and the primary backend (NETLINK_SOCK_DIAG).

A backend yields *batches* of rows (``_diag_codec.Row``), deduplicated, with the
requested transports, families and states; it also maps rows to owning processes.
"""

from __future__ import annotations

import errno
import socket
from collections.abc import Collection, Iterator
from dataclasses import dataclass
from typing import Any, Protocol

from portscope.errors import BackendUnavailable
from portscope.models import Netns, Proto, TcpState
from portscope.sockets._diag_codec import (
    IfNames,
    JsonRows,
    Row,
    decode_chunk,
    decode_chunk_json,
)
from portscope.sockets._filters import SocketFilter, kernel_state_mask
from portscope.sockets._owners import OwnerMap, usable_cpus

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
        where: SocketFilter | None = None,
    ) -> Iterator[list[Row]]:
        """Yield the sockets as lists of rows, without duplicates.

        Args:
            protos: transports to dump.
            families: 4 and/or 6.
            states: states to keep (``None``: every state).
            where: the whole filter, for a backend that can apply part of it early (the
                caller still checks every row).
        """
        ...

    def owner_map(self, wanted: Collection[int] | None = None) -> OwnerMap:
        """Map sockets to the processes holding them."""
        ...


@dataclass(frozen=True)
class Extras:
    """Which extended attributes a dump asks for (``ss -o``, ``-i``, ``-m``).

    Attributes:
        timers: the pending timer of each TCP socket (in every message: no request bit).
        info: ``tcp_info`` and the congestion control algorithm.
        memory: socket memory (``INET_DIAG_SKMEMINFO``).
        as_json: keep each socket's extras as the JSON keys the CLI writes
            (``_diag_ext.extra_json``, made straight from the bytes), not as a
            ``SocketExtra``.
    """

    timers: bool = False
    info: bool = False
    memory: bool = False
    as_json: bool = False

    @property
    def ext(self) -> int:
        """The ``idiag_ext`` request bits."""
        from portscope.sockets._diag_ext import EXT_CONG, EXT_INFO, EXT_SKMEMINFO

        return (EXT_INFO | EXT_CONG if self.info else 0) | (EXT_SKMEMINFO if self.memory else 0)

    def __bool__(self) -> bool:
        return self.timers or self.info or self.memory


@dataclass
class Started:
    """A netlink dump under way: what was asked (plan) and the chunks coming back;
    ``extras`` fills (cookie -> ``_diag_ext.SocketExtra``) as the chunks are decoded."""

    plan: list[tuple[Proto, int, int]]
    chunks: Iterator[tuple[int, bytes]]
    states: frozenset[TcpState] | None
    want: Extras | None = None
    extras: dict[int, Any] | None = None


class NetlinkBackend:
    """Linux NETLINK_SOCK_DIAG (``man 7 sock_diag``): one dump per (transport, family)."""

    name = "netlink"

    def __init__(self, proc: str = "/proc") -> None:
        from portscope.sockets._netlink import open_diag_socket

        open_diag_socket().close()  # fail early (BackendUnavailable) if it cannot run
        self._proc = proc
        self.notes: list[str] = []
        self.prefetch: bool | None = None  # None: when there is a second CPU

    def batches(
        self,
        protos: tuple[Proto, ...],
        families: tuple[int, ...],
        states: frozenset[TcpState] | None,
        where: SocketFilter | None = None,
    ) -> Iterator[list[Row]]:
        # a generator: the dump starts at the first ``next``, not at this call
        yield from self.decode(self.start(protos, families, states, where), None)

    def json_batches(
        self,
        protos: tuple[Proto, ...],
        families: tuple[int, ...],
        states: frozenset[TcpState] | None,
        where: SocketFilter | None = None,
        formatter: JsonRows | None = None,
    ) -> Iterator[list[str]]:
        """Like ``batches``, but each socket as its JSON object (``render.sockets``
        schema, no service names), decoded and formatted in one pass by ``formatter``."""
        yield from self.decode(self.start(protos, families, states, where), formatter)

    def start(
        self,
        protos: tuple[Proto, ...],
        families: tuple[int, ...],
        states: frozenset[TcpState] | None,
        where: SocketFilter | None = None,
        extras: Extras | None = None,
    ) -> Started:
        """Send the requests; with prefetch the kernel starts answering right away (so
        the caller can do other work, such as the owner scan, meanwhile). With
        ``extras`` the requests ask for those attributes and ``Started.extras`` fills
        while decoding."""
        from portscope.sockets._netlink import dump_many

        plan, requests, bytecode = self.plan(protos, families, states, where)
        prefetch = self.prefetch
        if prefetch is None:
            # receiving is kernel work with the GIL released: it overlaps the decoding
            # whenever a second CPU exists (measured: a quarter off the wall time)
            prefetch = usable_cpus() >= 2
        ext = extras.ext if extras else 0
        chunks = dump_many(requests, prefetch=prefetch, bytecode=bytecode, ext=ext)
        if not extras:
            return Started(plan, chunks, states)
        return Started(plan, chunks, states, extras, {})

    @staticmethod
    def plan(
        protos: tuple[Proto, ...],
        families: tuple[int, ...],
        states: frozenset[TcpState] | None,
        where: SocketFilter | None = None,
    ) -> tuple[list[tuple[Proto, int, int]], list[tuple[int, int, int]], bytes]:
        """The dumps to run: (transport, family, kernel state mask) each, the requests
        for ``_netlink.dump`` (address family, protocol, mask) and the port filter."""
        from portscope.sockets._netlink import port_filter

        plan = [
            (proto, family, mask)
            for proto in protos
            if (mask := kernel_state_mask(states, proto))
            for family in families
        ]
        requests = [(_AF[family], _IPPROTO[proto], mask) for proto, family, mask in plan]
        bytecode = port_filter(_port_clauses(where)) if where is not None else b""
        return plan, requests, bytecode

    def decode(
        self,
        started: Started,
        json: JsonRows | None,
        *,
        netns: Netns | None = None,
        ifnames: IfNames | None = None,
        proc: str | None = None,
    ) -> Iterator[list[Any]]:
        """Decode a started dump: rows, or with ``json`` the sockets' JSON objects.

        ``netns``, ``ifnames`` and ``proc`` describe another namespace's dump: its
        record (set in every row), its interface names, and the ``/proc/PID`` of a
        process in it for a transport that has no sock_diag (``None``: none known).
        """
        seen: set[int] = set()
        seen_by: dict[int, set[int]] = {}
        current = -1
        failed: set[int] = set()
        owners = None if json is None else json.owners_json()
        if ifnames is None:
            ifnames = IfNames()  # names are valid for this dump only (renames, index reuse)
        plan, states = started.plan, started.states
        want, extras = started.want, started.extras
        for i, chunk in started.chunks:
            if i in failed:
                continue
            proto, family, _ = plan[i]
            if i != current:
                # per request: a namespace's TCP dump in one walk interleaves two (_netns)
                current = i
                seen = seen_by.setdefault(i, set())
            out: list[Any] = []
            try:
                if json is not None:
                    decode_chunk_json(chunk, family, proto, out, seen, owners, ifnames, netns)
                else:
                    decode_chunk(chunk, family, proto, out, seen, ifnames, netns)
                if want is not None and extras is not None:
                    from portscope.sockets._diag_ext import decode_extras

                    decode_extras(
                        chunk,
                        extras,
                        timers=want.timers,
                        info=want.info,
                        memory=want.memory,
                        as_json=want.as_json,
                    )
            except BackendUnavailable as err:
                if err.errno not in (errno.ENOENT, errno.EAFNOSUPPORT):
                    raise
                # e.g. udp_diag not loaded: read this one from /proc/net instead
                failed.add(i)
                for rows in self._fallback(proto, family, states, netns, proc):
                    yield rows if json is None else json.lines(rows)
                continue
            if out:
                yield out

    def _fallback(
        self,
        proto: Proto,
        family: int,
        states: frozenset[TcpState] | None,
        netns: Netns | None = None,
        proc: str | None = None,
    ) -> Iterator[list[Row]]:
        from portscope.sockets._procfs import ProcfsBackend

        note = f"the kernel has no sock_diag for {proto.value}/IPv{family}; read /proc/net instead"
        if note not in self.notes:
            self.notes.append(note)
        if netns is None:
            yield from ProcfsBackend(self._proc).batches((proto,), (family,), states)
            return
        if proc is None:
            return  # a namespace with no process: no /proc/PID/net to read
        for rows in ProcfsBackend(proc).batches((proto,), (family,), states):
            yield [r._replace(netns=netns) for r in rows]

    def owner_map(self, wanted: Collection[int] | None = None) -> OwnerMap:
        return OwnerMap.scan(wanted, self._proc)


def _port_clauses(where: SocketFilter) -> list[list[tuple[str, int]]]:
    """The port conditions of ``where`` for the kernel's filter (one clause each)."""
    clauses = []
    if where.sports is not None:
        clauses.append([("s", p) for p in sorted(where.sports)])
    if where.dports is not None:
        clauses.append([("d", p) for p in sorted(where.dports)])
    if where.ports is not None:
        clauses.append([(side, p) for p in sorted(where.ports) for side in ("s", "d")])
    if sum(len(c) for c in clauses) > 1000:
        return []  # too long for the kernel's 16-bit jumps: filter in Python only
    return clauses
