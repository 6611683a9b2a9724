"""The store's genome -> row index: exact lookups, odd keys beside flat ones, bytes not objects."""
from __future__ import annotations

import numpy as np

from search.genome_rows import GenomeRows
from tests.conftest import traced_growth


def test_rows_are_found_by_key_and_keys_by_row_across_merges() -> None:
    index = GenomeRows(merge_at=4)
    odd_first = (300, 1, 2)  # a tuple key before any flat one: its row is padded once the width is known
    assert index.add(odd_first) == 0
    keys = [bytes([i % 251, i // 251, 7]) for i in range(40)]
    for row, key in enumerate(keys, start=1):
        assert index.get(key) is None
        assert index.add(key) == row
    assert index.add(b"\x01\x02") == 41  # bytes of another width: kept as an odd key
    assert len(index) == 42
    assert all(index.get(key) == row for row, key in enumerate(keys, start=1))
    assert all(index.key_of(row) == key for row, key in enumerate(keys, start=1))
    assert index.get(odd_first) == 0 and index.key_of(0) == odd_first
    assert index.get(b"\x01\x02") == 41 and index.key_of(41) == b"\x01\x02"
    assert index.get(bytes([9, 9, 9])) is None and index.get((1, 2)) is None


def test_keys_with_one_hash_are_told_apart(monkeypatch) -> None:
    """Every key hashes alike here: the index must compare the stored bytes, not trust the hash."""
    import search.genome_rows as module

    monkeypatch.setattr(module, "hash", lambda key: 42, raising=False)
    index = GenomeRows(merge_at=3)
    keys = [bytes([i, 0]) for i in range(10)]
    for key in keys:
        index.add(key)
    assert [index.get(key) for key in keys] == list(range(10))
    assert index.get(bytes([99, 0])) is None


def test_a_genome_costs_bytes_not_python_objects() -> None:
    rng = np.random.default_rng(0)
    keys = list({bytes(row) for row in rng.integers(0, 64, size=(100_000, 16), dtype=np.uint8).tolist()})
    index, grown_bytes = traced_growth(GenomeRows, keys, GenomeRows.add)
    grown = grown_bytes / len(keys)
    assert grown < 48, f"{grown:.1f} bytes a genome"  # a dict of bytes keys: ~150
    assert all(index.get(key) == row for row, key in list(enumerate(keys))[::101])
