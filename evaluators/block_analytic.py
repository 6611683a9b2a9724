"""Block-space candidates scored from their structure alone: detector FLOPs and params, the backbone's
FLOPs, params and layers, and MAE-DET's analytic entropy. Nothing is built, which is what lets a zero-shot search
score tens of thousands of structures on a CPU; the counts match thop's (tests/test_block_space.py)."""
from __future__ import annotations

from typing import Any

from evaluators._base import Candidate, Evaluator


class BlockAnalyticEvaluator(Evaluator):
    directions = {"flops_g": "min", "params_m": "min", "backbone_flops_g": "min", "backbone_params_m": "min",
                  "layers": "min", "entropy": "max"}
    cost = 0
    name = "analytic"
    needs_model = False

    def __init__(self, space: Any, entropy_weights: str = "maedet") -> None:
        self.space, self.entropy_weights = space, entropy_weights

    def evaluate(self, candidate: Candidate) -> dict[str, Any]:
        return self.space.analytic_metrics(candidate.genome, candidate.imgsz, self.entropy_weights)
