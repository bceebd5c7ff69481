"""Shards of a scan: which (address, port) pairs shard I of N probes, with no coordination.

The scan space is the pairs ``(a, p)`` with ``a`` the index of an address in the target
set's order and ``p`` the index of a (transport, port) item in the port spec's order; its
size is ``addresses x ports``. A keyed bijection of that space::

    P(a, p) = a * nports + (sigma(p) + h(a)) mod nports

where ``sigma`` is a pseudo-random permutation of ``[0, nports)`` keyed by the seed (a
4-round Feistel network over the smallest even number of bits that holds ``nports``,
walked until it lands inside the range: Black and Rogaway's cycle-walking cipher, as
masscan's ``blackrock``) and ``h`` a keyed hash of the address index (splitmix64), puts
pair ``(a, p)`` in shard
``P(a, p) mod N``. Because ``P`` is a bijection onto ``[0, addresses x ports)``, the N
shards are disjoint, cover every pair exactly once, and hold ``floor`` or ``ceil`` of
``pairs / N`` pairs each; two machines given the same targets, ports, seed and N agree
on every pair without talking. (masscan's ``--shards I/N --seed S`` is the same idea:
shard I takes the permuted indices ``I-1, I-1+N, ...``.)

A shard is enumerated per address, not pair by pair: the ports of address ``a`` in shard
``I`` are ``sigma^-1((r - h(a)) mod nports)`` for ``r = (I-1 - a*nports) mod N, r+N,
r+2N ...``; ``sigma^-1`` is tabled once per scan (``nports`` Feistel steps), so a shard costs
a table look-up per pair it holds, not per pair of the scan, and the scheduler keeps its per-host
window (RTT estimate, give-up, one summary per address). Within a shard, addresses come in
the target set's order and each address's ports in ascending order.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from portscope.errors import InvalidInput
from portscope.models import Proto

__all__ = ["MAX_SEED", "MAX_SHARDS", "Shard", "parse_seed", "parse_shard", "shard_ports"]

MAX_SHARDS = 65_536
"""The most shards a scan is cut into (``--shard I/N``: N at most this)."""
MAX_SEED = (1 << 64) - 1
"""Seeds are 0 .. 2**64 - 1."""

_M64 = (1 << 64) - 1
_ROUNDS = 4


@dataclass(frozen=True, slots=True)
class Shard:
    """Shard ``index`` of ``count`` (1-based, as masscan's ``--shards 1/4``), keyed by ``seed``.

    Attributes:
        index: 1 .. count.
        count: the number of shards, 1 .. ``MAX_SHARDS``.
        seed: the permutation's key, 0 .. ``MAX_SEED``; every shard of one scan needs the
            same seed.
    """

    index: int
    count: int
    seed: int = 0

    def __post_init__(self) -> None:
        if not 1 <= self.count <= MAX_SHARDS:
            raise InvalidInput(f"shard count {self.count}: expected 1 to {MAX_SHARDS:,}")
        if not 1 <= self.index <= self.count:
            raise InvalidInput(f"shard {self.index}/{self.count}: expected I from 1 to N")
        if not 0 <= self.seed <= MAX_SEED:
            raise InvalidInput(f"seed {self.seed}: expected a whole number from 0 to 2**64-1")

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"

    def port_indices(self, address_index: int, nports: int) -> list[int]:
        """The indices of the port items of address ``address_index`` in this shard, sorted.

        Args:
            address_index: the address's position in the target set (0-based).
            nports: the number of (transport, port) items in the port spec.
        """
        n = self.count
        if n == 1:
            return list(range(nports))
        first = (self.index - 1 - address_index * nports) % n
        if first >= nports:
            return []
        inverse = self._inverse(nports)
        shift = _mix(self._key ^ address_index) % nports
        return sorted([inverse[(r - shift) % nports] for r in range(first, nports, n)])

    @property
    def _key(self) -> int:
        digest = hashlib.blake2b(self.seed.to_bytes(8, "big"), digest_size=8, person=b"ps-shard")
        return int.from_bytes(digest.digest(), "big")

    def _inverse(self, nports: int) -> list[int]:
        """``sigma^-1`` as a table, made once per (seed, nports)."""
        return _inverse_table(self._key, nports)


@functools.lru_cache(maxsize=4)
def _inverse_table(key: int, nports: int) -> list[int]:
    perm = _Permutation(nports, key)
    table = [0] * nports
    for x in range(nports):
        table[perm.forward(x)] = x
    return table


def _mix(x: int) -> int:
    """splitmix64's finalizer: a 64-bit mixing bijection."""
    x = (x + 0x9E3779B97F4A7C15) & _M64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _M64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _M64
    return x ^ (x >> 31)


class _Permutation:
    """A keyed permutation of ``range(size)``: a balanced Feistel network, cycle-walked."""

    __slots__ = ("_bits", "_keys", "_mask", "_size")

    def __init__(self, size: int, key: int) -> None:
        bits = max(1, (max(size - 1, 1).bit_length() + 1) // 2)
        self._bits = bits
        self._mask = (1 << bits) - 1
        self._size = size
        self._keys = tuple(_mix(key + i) for i in range(_ROUNDS))

    def _round(self, x: int, k: int) -> int:
        return (_mix(x ^ k) >> 7) & self._mask

    def forward(self, x: int) -> int:
        """The image of ``x`` (``0 <= x < size``)."""
        bits, mask = self._bits, self._mask
        while True:
            left, right = x >> bits, x & mask
            for k in self._keys:
                left, right = right, left ^ self._round(right, k)
            x = (left << bits) | right
            if x < self._size:
                return x

    def inverse(self, y: int) -> int:
        """The ``x`` with ``forward(x) == y``."""
        bits, mask = self._bits, self._mask
        while True:
            left, right = y >> bits, y & mask
            for k in reversed(self._keys):
                left, right = right ^ self._round(left, k), left
            y = (left << bits) | right
            if y < self._size:
                return y


def shard_ports(
    shard: Shard, address_index: int, items: Sequence[tuple[Proto, int]]
) -> Iterator[tuple[Proto, int]]:
    """The (transport, port) items of one address that ``shard`` probes, in order."""
    if shard.count == 1:
        return iter(items)
    return (items[i] for i in shard.port_indices(address_index, len(items)))


def parse_shard(text: str) -> tuple[int, int]:
    """``I/N`` as ``(I, N)``; ``InvalidInput`` unless ``1 <= I <= N <= MAX_SHARDS``."""
    head, sep, tail = text.partition("/")
    if not sep or not head.strip().isdigit() or not tail.strip().isdigit():
        raise InvalidInput(f"--shard {text!r}: expected I/N, e.g. 1/4 (shard I of N)")
    index, count = int(head), int(tail)
    if not 1 <= count <= MAX_SHARDS or not 1 <= index <= count:
        raise InvalidInput(
            f"--shard {text!r}: expected I/N with 1 <= I <= N <= {MAX_SHARDS:,}, e.g. 1/4"
        )
    return index, count


def parse_seed(text: str) -> int:
    """A seed: a whole number 0 .. 2**64-1 (decimal or 0x hex); ``InvalidInput`` otherwise."""
    t = text.strip().lower()
    try:
        value = int(t, 16) if t.startswith("0x") else int(t, 10) if t.isdigit() else -1
    except ValueError:
        value = -1
    if not 0 <= value <= MAX_SEED:
        raise InvalidInput(f"--seed {text!r}: expected a whole number from 0 to 2**64-1")
    return value
