"""A run's finished candidates in columns: what a Store holds of 500,000 trials.

Held as one ``TrialRecord`` each (genome tuple, value tuple, metric and constraint mappings, a
config stub, a dict entry), a zero-shot run cost ~1.7 KB a trial in every process that read it:
2.3 GB over two islands at 500,000 trials, growing all night. A search, its duplicates, the front
and a resume need of each trial only its genome, number, values, failure and total constraint
violation; those live here in flat arrays, the genomes and their index in ``GenomeRows`` (~75
bytes a trial, sources shared). The metrics, constraints and
config of the few records a report, a plot or an export looks at stay in the store's index and are
read when first looked at (``load``); a row not yet written (a batch held for one transaction, a
store without an index) keeps them here until it is. Records are built when asked for.

Written for the store alone: no library keeps a growable, genome-keyed table of mixed columns
cheaper than this (a pandas frame costs a copy per append; numpy arrays cannot grow in place).
"""
from __future__ import annotations

import math
import sys
from array import array
from typing import Any, Callable, Iterable, Iterator, Mapping, Sequence

import numpy as np

from search.genome_rows import GenomeRows
from search.shared_keys import LazyMapping

Genome = tuple[int, ...]
Extras = tuple[Mapping[str, Any], Mapping[str, float], Mapping[str, Any]]  # metrics, constraints, config
NOT_WRITTEN = -1  # the trial id of a row whose trial is not in the database yet


class StoredPart(LazyMapping):
    """One part (metrics, constraints or config) of a written trial, read from the store when first
    looked at."""

    __slots__ = ("_read", "_trial_id", "_part")

    def __init__(self, read: Callable[[int, str], Mapping[str, Any]], trial_id: int, part: str) -> None:
        # LazyMapping's state set here, not through super(): records() builds three of these a trial
        self._loaded, self._read, self._trial_id, self._part = None, read, trial_id, part

    def _load(self) -> Mapping[str, Any]:
        return self._read(self._trial_id, self._part)


def violation_of(constraints: Mapping[str, float]) -> float:
    """Total constraint violation: the sum of the positive ones (TrialRecord.violation's rule)."""
    total = 0.0
    for v in constraints.values():
        if v > 0:
            total += v
    return total


class RecordTable:
    """Finished candidates by genome, first trial kept; records built on demand.

    ``read(trial_id, part)`` reads a written trial's metrics, constraints or config; without it
    (a store with no index) every row keeps them in memory.
    """

    def __init__(self, n_values: int, narrow: bool, read: Callable[[int, str], Mapping[str, Any]] | None,
                 make: Callable[..., Any]) -> None:
        # narrow: every gene has < 256 choices, so a genome is held as bytes (47 bytes, not 168)
        self._n, self._narrow, self._read, self._make = n_values, narrow, read, make
        self._index = GenomeRows()  # genome key -> row, and back, in flat memory
        self._number = array("q")
        self._trial_id = array("q")
        self._failed = bytearray()
        self._values = array("d")
        self._violation = array("d")
        self._source: list[str] = []
        self._error: dict[int, str] = {}
        self._odd_values: dict[int, tuple[float, ...]] = {}  # rows whose values are not n_values long
        self._extras: dict[int, Extras] = {}  # rows whose parts are not (yet) readable from the store

    def _key(self, genome: Sequence[int]) -> bytes | Genome:
        if self._narrow:
            try:
                return bytes(genome)
            except (ValueError, TypeError):  # not a genome of this space (e.g. a -1 or a float)
                return tuple(genome)
        return tuple(int(c) for c in genome)

    def __len__(self) -> int:
        return len(self._index)

    def __contains__(self, genome: Sequence[int]) -> bool:
        return self._index.get(self._key(genome)) is not None

    def number_of(self, genome: Sequence[int]) -> int | None:
        row = self._index.get(self._key(genome))
        return None if row is None else self._number[row]

    # -- writing ---------------------------------------------------------------------------
    def put(self, number: int, genome: Sequence[int], failed: bool, values: Sequence[float],
            metrics: Mapping[str, Any], constraints: Mapping[str, float], config: Mapping[str, Any],
            source: str, error: str | None, trial_id: int = NOT_WRITTEN) -> bool:
        """Hold a finished candidate, unless its genome is held already by an earlier trial (a
        genome finished twice: the first trial is the record, as Optuna's tables read in trial
        order); a later trial replaces it only when ``number`` is earlier. True when held."""
        key = self._key(genome)
        row = self._index.get(key)
        if row is not None and not (0 <= number < self._number[row]):
            return False
        fitted = values if len(values) == self._n else (math.nan,) * self._n
        if row is None:
            row = self._index.add(key)
            self._number.append(number)
            self._trial_id.append(trial_id)
            self._failed.append(bool(failed))
            self._values.extend(fitted)
            self._violation.append(math.inf if failed else violation_of(constraints))
            self._source.append(sys.intern(source))  # one string for a generation's trials, not one each
        else:  # an earlier trial of the same genome, read after the later one
            self._number[row], self._trial_id[row], self._failed[row] = number, trial_id, bool(failed)
            self._values[row * self._n:(row + 1) * self._n] = array("d", fitted)
            self._violation[row] = math.inf if failed else violation_of(constraints)
            self._source[row] = sys.intern(source)
            for held in (self._error, self._odd_values, self._extras):
                held.pop(row, None)
        if error is not None:
            self._error[row] = error
        if len(values) != self._n:
            self._odd_values[row] = tuple(float(v) for v in values)
        if trial_id == NOT_WRITTEN or self._read is None:
            self._extras[row] = (metrics, constraints, config)
        return True

    def written(self, genome: Sequence[int], number: int, trial_id: int) -> None:
        """A held row's trial is in the database now: its number, and its parts are read from there."""
        row = self._index.get(self._key(genome))
        if row is None:
            raise KeyError(tuple(genome))
        self._number[row], self._trial_id[row] = number, trial_id
        if self._read is not None:
            self._extras.pop(row, None)

    # -- reading ---------------------------------------------------------------------------
    def _record(self, row: int) -> Any:
        key = self._index.key_of(row)
        genome = tuple(key) if self._narrow and isinstance(key, bytes) else key
        failed = bool(self._failed[row])
        values = self._odd_values.get(row)
        if values is None:
            values = () if failed else tuple(self._values[row * self._n:(row + 1) * self._n])
        extras = self._extras.get(row)
        if extras is None:
            read, trial_id = self._read, self._trial_id[row]
            metrics, constraints, config = (StoredPart(read, trial_id, "metrics"),  # type: ignore[arg-type]
                                            StoredPart(read, trial_id, "constraints"),
                                            StoredPart(read, trial_id, "config"))
        else:
            metrics, constraints, config = extras
        return self._make(self._number[row], genome, failed, values, metrics, constraints, config,
                          self._source[row], self._error.get(row), self._violation[row])

    def get(self, genome: Sequence[int]) -> Any:
        row = self._index.get(self._key(genome))
        return None if row is None else self._record(row)

    def by_number(self, number: int) -> Any:
        try:
            return self._record(self._number.index(number))
        except ValueError:
            return None

    def rows_by_number(self) -> list[int]:
        return sorted(range(len(self._index)), key=self._number.__getitem__)

    def records(self, rows: Iterable[int] | None = None) -> Iterator[Any]:
        for row in (self.rows_by_number() if rows is None else rows):
            yield self._record(row)

    # -- whole-run questions, answered from the columns --------------------------------------
    def failed_count(self) -> int:
        return self._failed.count(1)

    def failed_rows(self) -> list[int]:
        return sorted((row for row, failed in enumerate(self._failed) if failed), key=self._number.__getitem__)

    def rows_from(self, sources: Sequence[str]) -> list[int]:
        prefixes = tuple(sources)
        return sorted((row for row, source in enumerate(self._source) if source.startswith(prefixes)),
                      key=self._number.__getitem__)

    # copies, not views: an array cannot grow while numpy holds a view of its buffer
    def _violations(self) -> np.ndarray:
        return np.array(self._violation, dtype=float)

    def _value_table(self) -> np.ndarray:
        return np.array(self._values, dtype=float).reshape(-1, self._n)

    def feasible_rows(self) -> np.ndarray:
        """Rows of records ``TrialRecord.feasible`` would call feasible: not failed, no constraint
        broken, every value finite."""
        finite = np.isfinite(self._value_table()).all(axis=1)
        for row, values in self._odd_values.items():
            finite[row] = all(math.isfinite(v) for v in values)
        return np.flatnonzero((self._violations() == 0) & finite)

    def values_of(self, rows: np.ndarray) -> np.ndarray:
        return self._value_table()[rows]

