"""A fixed bitmap of 64-bit hashes' low bits: "never added" for most hashes, without a search.

``SeenGenomes`` and ``GenomeRows`` keep their hashes in sorted arrays; most lookups are for a genome
never seen, and a bit test answers those before a bisect. 2 MB at the default 24 bits; with a
million hashes added ~6% of the bits are set, so ~94% of the new genomes stop at the bitmap.
"""
from __future__ import annotations

import numpy as np

FILTER_BITS = 24


class HashBits:
    def __init__(self, bits: int = FILTER_BITS) -> None:
        self._bits = bytearray(1 << (bits - 3))
        self._mask = (1 << bits) - 1

    def add(self, h: int) -> None:
        low = h & self._mask
        self._bits[low >> 3] |= 1 << (low & 7)

    def add_many(self, hashes: np.ndarray) -> None:
        low = hashes & self._mask
        np.bitwise_or.at(np.frombuffer(self._bits, dtype=np.uint8), low >> 3, (1 << (low & 7)).astype(np.uint8))

    def may_hold(self, h: int) -> bool:
        """False: ``h`` was never added. True: it may have been (another hash shares its low bits)."""
        low = h & self._mask
        return bool(self._bits[low >> 3] & (1 << (low & 7)))
