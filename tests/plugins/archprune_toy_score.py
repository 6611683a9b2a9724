"""A toy evaluator as a plugin: this one module plus one entry point (``archprune.evaluators``) is
all it takes. tests/test_plugins.py registers it and searches with it through the CLI."""
from __future__ import annotations

from typing import Any

from evaluators._base import Candidate, Evaluator, Metric, RunContext


class ToyScoreEvaluator(Evaluator):
    """``toy_score``: the genome's mean choice over the largest, in [0, 1] (higher is better)."""

    metrics = (Metric("toy_score", "max", "toy points", 0.0, 1.0),)
    cost = 1
    name = "toy_score"
    needs_model = False

    @classmethod
    def for_run(cls, run: RunContext) -> "ToyScoreEvaluator":
        return cls()

    def evaluate(self, candidate: Candidate) -> dict[str, Any]:
        genome = candidate.genome
        return {"toy_score": sum(genome) / (3.0 * len(genome))}
