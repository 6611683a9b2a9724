"""The genomes a search has proposed or heard of, held as their hashes.

A set of 500,000 genome tuples cost ~100 MB in each search process; their hashes (ints, equal in
every process for tuples of ints) a third of that. Two genomes with one 64-bit hash make the second
count as seen: one candidate skipped, never a wrong score. Written here because no library keeps
a hash-only membership set.
"""
from __future__ import annotations

from typing import Iterable, Sequence


class SeenGenomes:
    def __init__(self) -> None:
        self._hashes: set[int] = set()

    def __contains__(self, genome: Sequence[int]) -> bool:
        return hash(tuple(genome)) in self._hashes

    def add(self, genome: Sequence[int]) -> bool:
        """Note ``genome``; True when it was not seen before."""
        key = hash(tuple(genome))
        if key in self._hashes:
            return False
        self._hashes.add(key)
        return True

    def update(self, genomes: Iterable[Sequence[int]]) -> None:
        self._hashes.update(hash(tuple(g)) for g in genomes)
