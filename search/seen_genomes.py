"""The genomes a search has proposed or heard of, held as their hashes in a sorted array.

A set of 500,000 genome tuples cost ~100 MB in each search process; a set of their hashes (ints,
equal in every process for tuples of ints) ~70 bytes an entry, and the zero-shot driver notes every
child it makes, stored or dropped by the budget (about two a stored trial), the runner every
proposal. Here the hashes live in a
sorted int64 array (8 bytes each) plus a small set of the latest, merged into the array when it
fills, so the cost no longer grows by a Python object per genome. Two genomes with one 64-bit hash
make the second count as seen: one candidate skipped, never a wrong score. Written here because no
library keeps a compact membership set of 64-bit integers (a roaring bitmap does not compress
random 64-bit values).
"""
from __future__ import annotations

from array import array
from bisect import bisect_left
from typing import Iterable, Sequence

import numpy as np

from search.hash_bits import HashBits

#: the latest hashes kept in a Python set before they join the sorted array (~0.6 MB of set at most)
MERGE_AT = 1 << 13


class SeenGenomes:
    def __init__(self, merge_at: int = MERGE_AT) -> None:
        self._sorted = array("q")  # bisect on an array: a third of np.searchsorted's per-call cost
        self._recent: set[int] = set()
        self._merge_at = merge_at
        self._filter = HashBits()  # answers most "not seen" without a search

    def __len__(self) -> int:
        return len(self._sorted) + len(self._recent)

    def __contains__(self, genome: Sequence[int]) -> bool:
        return self._has(hash(tuple(genome)))

    def add(self, genome: Sequence[int]) -> bool:
        """Note ``genome``; True when it was not seen before."""
        key = hash(tuple(genome))
        if self._has(key):
            return False
        self._note(key)
        self._maybe_merge()
        return True

    def update(self, genomes: Iterable[Sequence[int]]) -> None:
        for genome in genomes:  # a resume hears of every stored trial at once: merge as the set fills
            key = hash(tuple(genome))
            if not self._has(key):
                self._note(key)
                self._maybe_merge()

    def _note(self, key: int) -> None:
        self._recent.add(key)
        self._filter.add(key)

    def _has(self, key: int) -> bool:
        if not self._filter.may_hold(key):
            return False
        if key in self._recent:
            return True
        i = bisect_left(self._sorted, key)
        return i < len(self._sorted) and self._sorted[i] == key

    def _maybe_merge(self) -> None:
        if len(self._recent) >= self._merge_at:
            fresh = np.fromiter(self._recent, dtype=np.int64, count=len(self._recent))
            merged = np.sort(np.concatenate((np.frombuffer(self._sorted, dtype=np.int64), fresh)), kind="stable")
            self._sorted = array("q", merged.tobytes())  # no duplicates: add and update checked _has
            self._recent = set()
