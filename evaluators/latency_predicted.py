"""Latency predicted from a lookup table measured on the target (``--latency predict:lut.json``).

Cheaper than measuring (cost 1 vs 5: no export, no timed runs, no lock), so a search can score
thousands of candidates for a device it is not running on. Predictions are only as good as the
table and its correction, so the front is meant to be re-measured: after the search, rebuild each
candidate of the predicted Pareto front, measure it on the target (``archprune search`` does this
with the ``LatencyEvaluator``, under the machine's measurement lock) and store the measured values
beside the predicted ones. The re-measured candidates can also refit the
table's correction (``LatencyPredictor.fit``) for the next run.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from evaluators._base import Candidate, Evaluator, RunContext
from evaluators.latency import LATENCY

if TYPE_CHECKING:  # the table's module imports torch: loaded when a run predicts, not for the metric table
    from evaluators.latency_lut import LatencyPredictor, LatencyTable

PROVENANCE = ("host", "cpu", "onnxruntime", "provider", "threads")


class PredictedLatencyEvaluator(Evaluator):
    """``latency_ms`` from a latency table, with the table's provenance (where it was measured)."""

    metrics = (LATENCY,)
    cost = 1
    name = "latency"

    @classmethod
    def for_run(cls, run: RunContext) -> "PredictedLatencyEvaluator | None":
        latency = run.settings.latency
        return cls(latency[len("predict:"):]) if latency.startswith("predict:") else None

    def __init__(self, lut_path: str | os.PathLike) -> None:
        from evaluators.latency_lut import load_table

        self.path = Path(lut_path)
        self.table: LatencyTable = load_table(self.path)  # read once; travels to workers with the evaluator
        self._predictor: LatencyPredictor | None = None

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_predictor": None}  # interpolators are rebuilt where they are used

    @property
    def predictor(self) -> LatencyPredictor:
        if self._predictor is None:
            from evaluators.latency_lut import LatencyPredictor

            self._predictor = LatencyPredictor(self.table)
        return self._predictor

    def evaluate(self, candidate: Candidate) -> dict[str, Any]:
        ms = self.predictor.predict(candidate.model, candidate.imgsz)
        provenance = {k: self.table.provenance.get(k) for k in PROVENANCE}
        return {"latency_ms": ms, "latency_source": f"predicted:{self.path.name}", "target": self.table.target,
                **provenance}
