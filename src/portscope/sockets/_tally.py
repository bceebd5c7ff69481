"""Counting the socket table instead of listing it: what a metrics scrape needs.

A scrape wants every listener in full (address, queues, owner) but of the other sockets
only numbers: sockets per (transport, family, state), the distinct ephemeral local ports
held by TCP sockets with a peer, and how many of those sockets go to each destination.
``tally`` asks the kernel for the two kinds apart (``idiag_states``, ``man 7 sock_diag``):
TCP LISTEN and every UDP socket decoded into rows (``_diag_codec.decode_chunk``), every
other TCP state only counted by ``tally_chunk``, which reads four fields of each message
(state, ports, destination address, cookie) and builds nothing per socket. At 200,000
sockets it takes the scrape from 1.2 s to about the kernel's own time (docs/exporter.md).

Without netlink, or for other namespaces, the same ``Tally`` is filled from rows
(``Tally.add_rows``): the numbers are the same either way (a test compares them).
"""

from __future__ import annotations

import struct
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

from portscope.models import Proto, TcpState

if TYPE_CHECKING:
    from portscope.sockets._owners import OwnerMap
    from portscope.sockets._record import Row

#: kernel TCP states (``include/net/tcp_states.h``) of sockets that hold no peer: CLOSE,
#: LISTEN, BOUND_INACTIVE; every other state counts toward ephemeral-port use
PEERLESS_KERNEL_STATES: Final = frozenset({7, 10, 13})
_PEERLESS: Final = frozenset(
    {TcpState.LISTEN, TcpState.CLOSE, TcpState.UNCONN, TcpState.BOUND_INACTIVE}
)

# nlmsghdr (len, type) + inet_diag_msg: state, sport, dport, the destination address
# (cut to the family's size) and the cookie; the rest of the message is skipped. Ports,
# addresses and cookies are kept as read (native 32-bit words, ports unswapped): the
# same keys as ``_uniform_chunk`` reads in C, converted once per distinct value.
_T4 = struct.Struct("=IH10x xBxx HH 16x I12x 4x II")
_T6 = struct.Struct("=IH10x xBxx HH 16x 4I 4x II")
_V4 = struct.Struct("=I")
_V6 = struct.Struct("=4I")
_MSG = 88  # nlmsghdr (16) + inet_diag_msg (72); offsets below are within a message
_OFF_STATE, _OFF_SPORT, _OFF_DPORT, _OFF_DST, _OFF_COOKIE = 17, 20, 22, 40, 60

# (ephemeral range) -> 65,536 bytes: 1 where the raw (unswapped) port is inside it
_IN_RANGE: dict[tuple[int, int], bytes] = {}


def _in_range(ephemeral: tuple[int, int]) -> bytes:
    table = _IN_RANGE.get(ephemeral)
    if table is None:
        from portscope.sockets._diag_codec import _PORT

        lo, hi = ephemeral
        table = bytes(1 if lo <= p <= hi else 0 for p in _PORT)
        _IN_RANGE.clear()
        _IN_RANGE[ephemeral] = table
    return table


# kernel state number -> 1 for a valid TCP state that holds a peer
_PEERED: Final = bytes(
    1 if 1 <= n <= 13 and n not in PEERLESS_KERNEL_STATES else 0 for n in range(256)
)


@dataclass
class Tally:
    """The socket table counted (``tally``).

    Attributes:
        rows: the sockets decoded in full: TCP LISTEN and every UDP socket.
        counts: (transport, family, state) -> sockets, every socket included.
        ephemeral_ports: distinct local ports inside the ephemeral range held by TCP
            sockets with a peer (any state but LISTEN, CLOSE, BOUND-INACTIVE).
        destinations: (remote address, remote port) -> how many of those sockets go
            there, in the order first met.
        notes: notes for the user (a backend fallback).
        owner_scan: maps some of ``rows`` to their processes (a scan of ``/proc/*/fd``
            limited to their inodes).
    """

    rows: list[Row] = field(default_factory=list)
    counts: Counter[tuple[Proto, int, TcpState]] = field(default_factory=Counter)
    ephemeral_ports: set[int] = field(default_factory=set)
    destinations: dict[tuple[str | None, int | None], int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    owner_scan: Callable[[list[Row]], OwnerMap] | None = None

    def add_rows(self, rows: Iterable[Row], ephemeral: tuple[int, int]) -> None:
        """Count ``rows``; keep the TCP LISTEN and UDP ones in ``rows``."""
        lo, hi = ephemeral
        counts = self.counts
        ports = self.ephemeral_ports
        dests = self.destinations
        kept = self.rows
        tcp = Proto.TCP
        listen = TcpState.LISTEN
        for r in rows:
            counts[(r.proto, r.family, r.state)] += 1
            if r.proto is not tcp or r.state is listen:
                kept.append(r)
            elif r.remote_port and lo <= r.local_port <= hi and r.state not in _PEERLESS:
                ports.add(r.local_port)
                key = (r.remote_address, r.remote_port)
                dests[key] = dests.get(key, 0) + 1


#: a destination as counted: (address as native 32-bit words, raw port)
RawDestination = tuple[int | tuple[int, int, int, int], int]


def _uniform_chunk(
    chunk: bytes,
    family: int,
    seen: set[tuple[int, int]],
    states: list[int],
    ports: set[int],
    dests: dict[RawDestination, int],
    ephemeral: tuple[int, int],
) -> bool | None:
    """``tally_chunk`` for a chunk whose messages all have one length, in C loops.

    The kernel writes every socket of a dump with the same attributes, so a chunk is
    usually a run of equal messages (a time-wait or request socket, which carries none,
    or an IPv6 CLOSE socket with its V6ONLY flag, breaks the run). Then each field is a
    strided view of the chunk (``memoryview.cast``), counted with ``collections.Counter``
    and ``itertools.compress``: no Python code per socket.

    Returns:
        As ``tally_chunk``, or ``None`` when the chunk is not such a run (nothing counted).
    """
    from itertools import compress

    end = len(chunk)
    done = False
    if end >= 20 and chunk[end - 20 : end - 12] == _DONE_HEAD:
        end -= 20
        done = True
    if end == 0:
        return done
    (size,) = struct.unpack_from("=I", chunk, 0)
    if size < _MSG or size % 4 or end % size:
        return None
    n = end // size
    words = memoryview(chunk)[:end].cast("I")
    halves = memoryview(chunk)[:end].cast("H")
    w, h = size // 4, size // 2
    if words[0::w].tolist().count(size) != n or halves[2::h].tolist().count(_BY_FAMILY) != n:
        return None
    cookies = set(zip(words[_OFF_COOKIE // 4 :: w], words[_OFF_COOKIE // 4 + 1 :: w], strict=True))
    if len(cookies) != n or not seen.isdisjoint(cookies):
        return None  # a socket reported twice: the loop keeps the first
    kinds = chunk[_OFF_STATE:end:size]
    found = Counter(kinds)
    if any(not 1 <= st <= 13 for st in found):
        return None  # the loop says where
    seen.update(cookies)
    for st, count in found.items():
        states[st] += count
    sports = halves[_OFF_SPORT // 2 :: h]
    dports = halves[_OFF_DPORT // 2 :: h]
    # a socket counts toward a destination when its local port is ephemeral, it has a
    # peer port and a state with a peer: min(...) of three flags is 1
    in_range = _in_range(ephemeral)
    mask = list(
        map(min, map(in_range.__getitem__, sports), map(_PEERED.__getitem__, kinds), dports)
    )
    ports.update(compress(sports, mask))
    first = _OFF_DST // 4
    if family == 4:
        keys: Iterable[RawDestination] = zip(words[first::w], dports, strict=True)
    else:
        address = zip(*(words[first + i :: w] for i in range(4)), strict=True)
        keys = zip(address, dports, strict=True)
    for key, count in Counter(compress(keys, mask)).items():
        dests[key] = dests.get(key, 0) + count
    return done


_DONE_HEAD: Final = struct.pack("=IHH", 20, 3, 2)  # NLMSG_DONE, NLM_F_MULTI
_BY_FAMILY: Final = 20


def tally_chunk(
    chunk: bytes,
    family: int,
    seen: set[tuple[int, int]],
    states: list[int],
    ports: set[int],
    dests: dict[RawDestination, int],
    ephemeral: tuple[int, int],
    *,
    uniform: bool = True,
) -> bool:
    """Count the TCP sockets of one received chunk of an inet_diag dump.

    Args:
        chunk: whole netlink messages as received (a TCP dump).
        family: 4 or 6.
        seen: socket cookies (as two 32-bit words) already counted: a socket the kernel
            reports twice counts once, as in ``decode_chunk``.
        states: per kernel state number (0-255), sockets counted; added to.
        ports: ephemeral local ports (raw: network byte order read natively) of sockets
            with a peer; added to.
        dests: (destination address as native 32-bit words, raw destination port) ->
            sockets, in the order first met; added to.
        ephemeral: the ephemeral port range, both ends included.
        uniform: try ``_uniform_chunk`` first (False: the per-message loop only).

    Returns:
        True when the chunk ends the dump (``NLMSG_DONE``).

    Raises:
        PermissionDenied, BackendUnavailable: the kernel answered an error.
        BackendError: a malformed message, with its offset; never a hang.
    """
    if uniform:
        done = _uniform_chunk(chunk, family, seen, states, ports, dests, ephemeral)
        if done is not None:
            return done
    from portscope.sockets._diag_codec import (
        _ERR,
        _HDR,
        _NLMSG_HDRLEN,
        _PORT,
        _STATES,
        NLMSG_DONE,
        NLMSG_ERROR,
        SOCK_DIAG_BY_FAMILY,
        _bad_state,
        _malformed,
        raise_netlink_error,
    )

    v4 = family == 4
    unpack = (_T4 if v4 else _T6).unpack_from
    least = _NLMSG_HDRLEN + 72
    valid = _STATES[Proto.TCP]
    peerless = PEERLESS_KERNEL_STATES
    port = _PORT
    lo, hi = ephemeral
    seen_add = seen.add
    seen_len = len(seen)
    ports_add = ports.add
    dests_get = dests.get
    view = memoryview(chunk)
    end = len(chunk)
    off = 0
    while off < end:
        try:
            if v4:
                length, kind, st, sport, dport, dst, c0, c1 = unpack(view, off)
            else:
                length, kind, st, sport, dport, d0, d1, d2, d3, c0, c1 = unpack(view, off)
                dst = (d0, d1, d2, d3)
        except struct.error:  # fewer bytes left than a socket message
            length, kind = _HDR.unpack_from(view, off) if end - off >= _NLMSG_HDRLEN else (0, 0)
        if kind != SOCK_DIAG_BY_FAMILY or length < least or length > end - off:
            if kind == SOCK_DIAG_BY_FAMILY or length < _NLMSG_HDRLEN or length > end - off:
                _malformed(off, length, kind, end)
            if kind == NLMSG_DONE:
                return True
            if kind == NLMSG_ERROR:
                if length < _NLMSG_HDRLEN + 4:
                    _malformed(off, length, kind, end)
                (code,) = _ERR.unpack_from(view, off + _NLMSG_HDRLEN)
                if code:
                    raise_netlink_error(code)
                return True
            off += (length + 3) & ~3
            continue
        seen_add((c0, c1))
        if len(seen) != seen_len:
            seen_len += 1
            if valid[st] is None:
                _bad_state(off, st)
            states[st] += 1
            if dport and st not in peerless and lo <= port[sport] <= hi:
                ports_add(sport)
                key = (dst, dport)
                dests[key] = dests_get(key, 0) + 1
        off += (length + 3) & ~3
    return False


def netlink_tally(proc: str, ephemeral: tuple[int, int], prefetch: bool) -> Tally:
    """``tally`` over netlink in this process's namespace.

    Raises:
        BackendUnavailable: a dump failed (ENOENT: no sock_diag for a transport).
        PermissionDenied: the kernel refused a dump.
    """
    import socket

    from portscope.sockets._diag_codec import _NTOP, _PORT, _STATES, _ntop, decode_chunk
    from portscope.sockets._filters import ALL_STATES, kernel_state_mask
    from portscope.sockets._netlink import dump_many
    from portscope.sockets._owners import OwnerMap

    af: dict[int, int] = {4: socket.AF_INET, 6: socket.AF_INET6}
    # the states of a plain dump (``ALL_STATES``), LISTEN apart
    listen = kernel_state_mask(frozenset({TcpState.LISTEN}), Proto.TCP)
    others = kernel_state_mask(ALL_STATES, Proto.TCP) & ~listen
    udp = kernel_state_mask(ALL_STATES, Proto.UDP)
    plan: list[tuple[Proto, int, int]] = [
        (Proto.TCP, 4, listen),
        (Proto.TCP, 6, listen),
        (Proto.UDP, 4, udp),
        (Proto.UDP, 6, udp),
        (Proto.TCP, 4, others),
        (Proto.TCP, 6, others),
    ]
    proto_numbers = {Proto.TCP: socket.IPPROTO_TCP, Proto.UDP: socket.IPPROTO_UDP}
    requests = [(af[fam], proto_numbers[proto], mask) for proto, fam, mask in plan]

    def owner_scan(rows: list[Row]) -> OwnerMap:
        return OwnerMap.scan({r.inode for r in rows if r.inode is not None}, proc)

    result = Tally(owner_scan=owner_scan)
    rows: list[Row] = []
    states = {4: [0] * 256, 6: [0] * 256}
    dests: dict[RawDestination, int] = {}
    raw_ports: set[int] = set()
    seen_by: dict[int, set[Any]] = {}
    for i, chunk in dump_many(requests, prefetch=prefetch):
        proto, family, mask = plan[i]
        seen = seen_by.setdefault(i, set())
        if mask == others:
            tally_chunk(chunk, family, seen, states[family], raw_ports, dests, ephemeral)
        else:
            decode_chunk(chunk, family, proto, rows, seen)
    result.ephemeral_ports.update(_PORT[p] for p in raw_ports)
    result.add_rows(rows, ephemeral)
    names = _STATES[Proto.TCP]
    for family, numbers in states.items():
        for st, n in enumerate(numbers):
            if n:
                state = names[st]
                assert state is not None  # tally_chunk refused unknown states
                result.counts[(Proto.TCP, family, state)] += n
    # the rows (TCP LISTEN, UDP) add no destination: the order first met is the dump's
    counted: dict[tuple[str | None, int | None], int] = {}
    for (address, dport), n in dests.items():
        raw = _V4.pack(address) if isinstance(address, int) else _V6.pack(*address)
        counted[(_NTOP.get(raw) or _ntop(raw), _PORT[dport])] = n
    counted.update(result.destinations)
    result.destinations = counted
    return result
