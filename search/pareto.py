"""The product of a search: the non-dominated set, its hypervolume and its knee.

Non-dominance and hypervolume come from moocore (a maintained C library with Python bindings);
only feasible trials take part. This module is backend-free data: the plots and the CLI read it
and never recompute the front.
"""
from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from typing import Mapping, Sequence

import moocore
import numpy as np

from search.objectives import Objective, metric_unit
from search.store import Store, TrialRecord
from spaces.errors import ArchpruneError


@dataclass
class ParetoFront:
    objectives: list[Objective]
    front: list[TrialRecord]  # sorted by the first objective, best first
    feasible: list[TrialRecord]
    n_trials: int
    reference_point: list[float] | None
    hypervolume: float | None
    knee: TrialRecord | None
    failed: list[TrialRecord] = field(default_factory=list)  # trials whose evaluation raised
    units: Mapping[str, str] | None = None  # metric -> unit as the run stored them (None: ask the registry)
    # a front read from a store's columns builds no feasible record but the front's: their count
    n_feasible_stored: int | None = None

    @property
    def n_feasible(self) -> int:
        return len(self.feasible) if self.n_feasible_stored is None else self.n_feasible_stored

    def unit(self, name: str) -> str:
        return metric_unit(name, self.units)

    def failure_reasons(self) -> dict[str, int]:
        """How many trials failed for each reason (the first line of the error), most common first."""
        return dict(Counter(r.reason or "unknown" for r in self.failed).most_common())


def _minimised(records: Sequence[TrialRecord], objectives: Sequence[Objective]) -> np.ndarray:
    """Objective values with maximised ones negated, so everything is minimised."""
    sign = np.array([1.0 if o.direction == "min" else -1.0 for o in objectives])
    return np.array([r.values for r in records], dtype=float).reshape(len(records), len(objectives)) * sign


def non_dominated(records: Sequence[TrialRecord], objectives: Sequence[Objective]) -> list[TrialRecord]:
    """The feasible records no other feasible record dominates (exact duplicates all kept)."""
    return _non_dominated_of_feasible([r for r in records if r.feasible], objectives)


def _non_dominated_of_feasible(feasible: Sequence[TrialRecord], objectives: Sequence[Objective]) -> list[TrialRecord]:
    if not feasible:
        return []
    keep = moocore.is_nondominated(_minimised(feasible, objectives), keep_weakly=True)
    return _by_first_objective([r for r, k in zip(feasible, keep) if k], objectives)


def _by_first_objective(front: list[TrialRecord], objectives: Sequence[Objective]) -> list[TrialRecord]:
    sign = 1 if objectives[0].direction == "min" else -1
    return sorted(front, key=lambda r: (r.values[0] * sign, r.number))


def stored_front(store: Store, feasible: tuple[np.ndarray, np.ndarray] | None = None) -> list[TrialRecord]:
    """``non_dominated(store.records(), store.objectives)`` from the store's columns: only the
    front's records are built (a search asks this at every progress update, at 500,000 trials).
    ``feasible``: ``store.feasible_values()`` when the caller has it already."""
    rows, values = feasible if feasible is not None else store.feasible_values()
    if not len(rows):
        return []
    sign = np.array([1.0 if o.direction == "min" else -1.0 for o in store.objectives])
    keep = moocore.is_nondominated(values * sign, keep_weakly=True)
    return _by_first_objective(store.records_of(rows[keep]), store.objectives)


def default_reference(feasible: Sequence[TrialRecord], objectives: Sequence[Objective]) -> list[float]:
    """The worst feasible value of each objective, widened by 10% of that objective's range
    (or of its magnitude when every candidate has the same value)."""
    return _reference_of(np.array([r.values for r in feasible], dtype=float), objectives)


def _reference_of(values: np.ndarray, objectives: Sequence[Objective]) -> list[float]:
    ref = []
    for i, o in enumerate(objectives):
        column = values[:, i]
        worst = column.max() if o.direction == "min" else column.min()
        span = column.max() - column.min() or abs(worst) or 1.0
        ref.append(float(worst + 0.1 * span if o.direction == "min" else worst - 0.1 * span))
    return ref


def hypervolume(front: Sequence[TrialRecord], objectives: Sequence[Objective], reference: Sequence[float]) -> float:
    """Volume dominated by the front up to ``reference`` (in the objectives' own units)."""
    if not front:
        return 0.0
    sign = np.array([1.0 if o.direction == "min" else -1.0 for o in objectives])
    points = _minimised(front, objectives)
    ref = np.asarray(reference, dtype=float) * sign
    inside = np.all(points < ref, axis=1)  # points beyond the reference add nothing
    if not inside.any():
        return 0.0
    return float(moocore.hypervolume(points[inside], ref=ref))


def knee_point(front: Sequence[TrialRecord], objectives: Sequence[Objective]) -> TrialRecord | None:
    """The front point nearest the ideal point after scaling each objective to [0, 1] over the front."""
    if not front:
        return None
    points = _minimised(front, objectives)
    low, high = points.min(axis=0), points.max(axis=0)
    scaled = (points - low) / np.where(high > low, high - low, 1.0)
    return front[int(np.argmin(np.linalg.norm(scaled, axis=1)))]


def _checked_reference(reference: Sequence[float] | None, objectives: Sequence[Objective]) -> list[float] | None:
    if reference is not None and len(reference) != len(objectives):
        raise ArchpruneError(f"--hv-ref has {len(reference)} values; the run has {len(objectives)} objectives "
                             f"({','.join(o.name for o in objectives)})")
    return list(reference) if reference is not None else None


def _volume(front: Sequence[TrialRecord], objectives: Sequence[Objective], ref: list[float] | None) -> float | None:
    volume = hypervolume(front, objectives, ref) if ref is not None else None
    return volume if volume is not None and math.isfinite(volume) else None


def pareto_front(records: Sequence[TrialRecord], objectives: Sequence[Objective],
                 reference: Sequence[float] | None = None, units: Mapping[str, str] | None = None) -> ParetoFront:
    feasible = [r for r in records if r.feasible]
    front = _non_dominated_of_feasible(feasible, objectives)
    ref = _checked_reference(reference, objectives)
    if ref is None and feasible:
        ref = default_reference(feasible, objectives)
    return ParetoFront(objectives=list(objectives), front=front, feasible=feasible, n_trials=len(records),
                       reference_point=ref, hypervolume=_volume(front, objectives, ref),
                       knee=knee_point(front, objectives), failed=[r for r in records if r.failed], units=units)


def stored_pareto_front(store: Store, reference: Sequence[float] | None = None) -> ParetoFront:
    """``pareto_front(store.records(), ...)`` from the store's columns, building only the front's and
    the failed trials' records (``feasible`` is left empty, ``n_feasible`` counts them): what a report
    without plots needs (at 500,000 trials: ~300 MB instead of ~550 MB)."""
    objectives = store.objectives
    rows, values = store.feasible_values()
    front = stored_front(store, (rows, values))
    ref = _checked_reference(reference, objectives)
    if ref is None and len(rows):
        ref = _reference_of(values, objectives)
    return ParetoFront(objectives=list(objectives), front=front, feasible=[], n_trials=len(store), reference_point=ref,
                       hypervolume=_volume(front, objectives, ref), knee=knee_point(front, objectives),
                       failed=store.failed_records(), units=store.metric_units(), n_feasible_stored=len(rows))
