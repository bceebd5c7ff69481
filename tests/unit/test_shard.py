"""Shards of a scan (``scan --shard I/N --seed S``): a partition of the (address x port) pairs."""

from __future__ import annotations

import pytest
from hypothesis import given, settings, strategies as st

from portscope.errors import InvalidInput
from portscope.models import Proto
from portscope.scanner._shard import (
    MAX_SHARDS,
    Shard,
    _Permutation,
    parse_seed,
    parse_shard,
    shard_ports,
)


@settings(max_examples=60, deadline=None)
@given(
    addresses=st.integers(1, 40),
    ports=st.integers(1, 300),
    count=st.integers(1, 12),
    seed=st.integers(0, (1 << 64) - 1),
)
def test_shards_are_disjoint_and_cover_every_pair(
    addresses: int, ports: int, count: int, seed: int
) -> None:
    seen: dict[tuple[int, int], int] = {}
    sizes = []
    for index in range(1, count + 1):
        shard = Shard(index, count, seed)
        mine = [(a, p) for a in range(addresses) for p in shard.port_indices(a, ports)]
        sizes.append(len(mine))
        for pair in mine:
            assert pair not in seen, f"{pair} in shards {seen[pair]} and {index}"
            seen[pair] = index
    assert len(seen) == addresses * ports  # the union is the whole scan
    # a bijection onto [0, pairs) split by residue: sizes differ by one at most
    assert max(sizes) - min(sizes) <= 1
    total = addresses * ports
    assert sizes == [(total - i + count) // count for i in range(1, count + 1)]


@settings(max_examples=40, deadline=None)
@given(size=st.integers(1, 2000), key=st.integers(0, (1 << 64) - 1))
def test_permutation_is_a_bijection_with_its_inverse(size: int, key: int) -> None:
    perm = _Permutation(size, key)
    image = [perm.forward(x) for x in range(size)]
    assert sorted(image) == list(range(size))
    assert all(perm.inverse(y) == x for x, y in enumerate(image))


def test_same_seed_same_split_other_seed_other_split() -> None:
    a = [Shard(1, 4, 7).port_indices(i, 100) for i in range(8)]
    assert a == [Shard(1, 4, 7).port_indices(i, 100) for i in range(8)]
    assert a != [Shard(1, 4, 8).port_indices(i, 100) for i in range(8)]
    assert all(ports == sorted(ports) for ports in a)  # ascending per address


def test_shard_ports_maps_indices_to_items() -> None:
    items = [(Proto.TCP, p) for p in (22, 80, 443)] + [(Proto.UDP, 53)]
    got = [it for i in range(1, 3) for it in shard_ports(Shard(i, 2, 1), 0, items)]
    assert sorted(got) == sorted(items)
    assert list(shard_ports(Shard(1, 1), 5, items)) == items


@pytest.mark.parametrize(
    "text", ["0/4", "5/4", "1/0", "a/b", "1", "", "-1/4", f"1/{MAX_SHARDS + 1}", "1/4/2"]
)
def test_bad_shard_is_refused(text: str) -> None:
    with pytest.raises(InvalidInput, match="I/N"):
        parse_shard(text)


@pytest.mark.parametrize("text", ["-1", "x", "", "1.5", str(1 << 64), "0x"])
def test_bad_seed_is_refused(text: str) -> None:
    with pytest.raises(InvalidInput, match="seed"):
        parse_seed(text)


def test_seeds_and_shards_parse() -> None:
    assert parse_shard("2/4") == (2, 4)
    assert parse_seed("0x10") == 16 and parse_seed(str((1 << 64) - 1)) == (1 << 64) - 1
    with pytest.raises(InvalidInput):
        Shard(3, 2)
