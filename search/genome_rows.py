"""Rows of a run's table by genome, in flat memory: what lets a search hold 500,000 genomes in ~35 MB.

``RecordTable`` keyed a dict by each genome's bytes (~47-byte object, ~100 bytes of dict entry and a
list slot: ~200 bytes a trial with its columns, in every search process). Here a genome of the
run's width is a slice of one ``bytearray`` (one byte a gene), and the index is its hash: a sorted
array of (hash, row) pairs plus a small dict of the latest, merged into the arrays as it fills, so a
genome costs ~32 bytes. A lookup finds the hash and compares the stored bytes, so two genomes with
one hash are still told apart. A key of another shape (a tuple: a gene with 256 or more choices, or
an odd genome) is kept in a plain dict. Written here because no library keeps a compact,
growable hash index of fixed-width byte strings with rows.
"""
from __future__ import annotations

from array import array
from bisect import bisect_left
from typing import Hashable

import numpy as np

from search.hash_bits import HashBits

#: rows held in the dict before they join the sorted arrays (~5 MB of dict at most; fewer merges, each
#: a copy of the arrays, keep opening a 500,000-trial run within ~0.5 s of a plain dict)
MERGE_AT = 1 << 15


class GenomeRows:
    """``key -> row`` for rows numbered 0, 1, ... in the order they are added; ``key_of(row)`` back."""

    def __init__(self, merge_at: int = MERGE_AT) -> None:
        self._width: int | None = None  # the byte length of the first bytes key: the run's genome width
        self._flat = bytearray()  # row r's key at [r * width, (r + 1) * width) (zeros for an odd row)
        self._odd: dict[Hashable, int] = {}  # keys not of the width: key -> row
        self._odd_key: dict[int, Hashable] = {}  # and back
        self._hashes, self._rows = array("q"), array("q")  # merged keys' hashes, sorted, and their rows
        self._recent: dict[bytes, int] = {}  # the latest keys, not merged yet (a plain dict: exact, fast)
        self._filter = HashBits()  # the merged hashes: opening a run looks every genome up before it holds it
        self._n, self._merge_at = 0, merge_at

    def __len__(self) -> int:
        return self._n

    def _flat_key(self, key: Hashable) -> bool:
        if type(key) is not bytes:
            return False
        if self._width is None:  # the first key of the width: rows before it were odd, zero-filled now
            self._width = len(key)
            self._flat = bytearray(self._n * self._width)
        return len(key) == self._width

    def _stored(self, row: int) -> bytes:
        w = self._width or 0
        return bytes(self._flat[row * w:(row + 1) * w])

    def get(self, key: Hashable) -> int | None:
        # the width test inline: this runs once a trial when a run is opened
        if not (type(key) is bytes and len(key) == self._width) and not self._flat_key(key):
            return self._odd.get(key)
        row = self._recent.get(key)  # type: ignore[arg-type]
        if row is not None:
            return row
        h = hash(key)
        if not self._filter.may_hold(h):
            return None
        i = bisect_left(self._hashes, h)
        while i < len(self._hashes) and self._hashes[i] == h:  # keys of one hash: compare the bytes
            if self._stored(self._rows[i]) == key:
                return self._rows[i]
            i += 1
        return None

    def add(self, key: Hashable) -> int:
        """Hold ``key`` (not held yet: ``get`` first) as the next row; its row number."""
        row = self._n
        flat = (type(key) is bytes and len(key) == self._width) or self._flat_key(key)  # pads rows before it
        self._n += 1
        if flat:
            self._flat += key  # type: ignore[operator]
            self._recent[key] = row  # type: ignore[index]
            if len(self._recent) >= self._merge_at:
                self._merge()
        else:
            self._flat += bytes(self._width or 0)
            self._odd[key], self._odd_key[row] = row, key
        return row

    def key_of(self, row: int) -> Hashable:
        if row in self._odd_key:
            return self._odd_key[row]
        return self._stored(row)

    def _merge(self) -> None:
        count = len(self._recent)
        fresh_hashes = np.fromiter(map(hash, self._recent), np.int64, count)
        fresh_rows = np.fromiter(self._recent.values(), np.int64, count)
        self._filter.add_many(fresh_hashes)
        hashes = np.concatenate((np.frombuffer(self._hashes, dtype=np.int64), fresh_hashes))
        rows = np.concatenate((np.frombuffer(self._rows, dtype=np.int64), fresh_rows))
        order = np.argsort(hashes, kind="stable")  # a radix sort for int64: linear in the rows
        self._hashes, self._rows = array("q", hashes[order].tobytes()), array("q", rows[order].tobytes())
        self._recent = {}
