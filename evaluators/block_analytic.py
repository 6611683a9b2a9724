"""Block-space candidates scored from their structure alone: detector FLOPs and params, the backbone's
FLOPs, params and layers, and MAE-DET's analytic entropy. Nothing is built, which is what lets a zero-shot search
score tens of thousands of structures on a CPU; the counts match thop's (tests/test_block_space.py)."""
from __future__ import annotations

from typing import Any

from evaluators._base import Candidate, Evaluator, Metric
from evaluators.flops import FLOPS, PARAMS
from evaluators.zero_shot_evaluator import ENTROPY


class BlockAnalyticEvaluator(Evaluator):
    # the backbone alone (the searched part); flops_g / params_m are the whole detector's
    metrics = (FLOPS, PARAMS, Metric("backbone_flops_g", "min", "GFLOPs", 0.0),
               Metric("backbone_params_m", "min", "M params", 0.0), Metric("layers", "min", "layers", 1.0),
               ENTROPY)
    cost = 0
    name = "analytic"
    needs_model = False

    def __init__(self, space: Any, entropy_weights: str = "maedet") -> None:
        self.space, self.entropy_weights = space, entropy_weights

    def evaluate(self, candidate: Candidate) -> dict[str, Any]:
        return self.space.analytic_metrics(candidate.genome, candidate.imgsz, self.entropy_weights)
