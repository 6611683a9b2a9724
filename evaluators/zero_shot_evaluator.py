"""Training-free scores of a candidate as evaluator metrics (all higher-is-better).

Cheaper than a latency measurement, dearer than counting FLOPs: a few forward/backward passes on a
small batch. ``params_m`` / ``flops_g`` baselines come from :class:`evaluators.flops.FlopsEvaluator`.
"""
from __future__ import annotations

import math
import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Union

from evaluators._base import Candidate, Evaluator, Metric, RunContext
from evaluators.choice_names import ZERO_SHOT_SCORES
from spaces.errors import ArchpruneError

if TYPE_CHECKING:  # the scores import torch: loaded when a candidate is scored, not for the metric table
    from evaluators.zero_shot import Minibatch

DataSpec = Union["Minibatch", str, os.PathLike, None]
ENTROPY = Metric("entropy", "max")  # MAE-DET's; the block space also computes it analytically


class ZeroShotEvaluator(Evaluator):
    """The chosen training-free scores (``entropy``, ``zen``, ``naswot``, ``synflow``, ``snip``,
    ``grad_norm``, ``jacob_cov``) of the candidate at its image size.

    ``data``: None (a seeded Gaussian batch with random labels), ``"cifar10"`` (the shared CIFAR-10
    sample, falling back to Gaussian when missing), a path to such an ``.npz``, or a ready
    :class:`Minibatch`. Only naswot, snip, grad_norm and jacob_cov look at it. A NaN score (a
    degenerate network) is stored as -inf with the reason in ``zero_shot_notes``.
    """

    metrics = tuple(ENTROPY if name == "entropy" else Metric(name, "max") for name in ZERO_SHOT_SCORES)  # higher is better
    cost = 2  # between flops (0) and latency (5)
    name = "zero_shot"

    @classmethod
    def for_run(cls, run: RunContext) -> "ZeroShotEvaluator":
        return cls(sorted(run.wanted), seed=run.settings.seed, entropy_weights=run.settings.entropy_weights)

    def __init__(self, scores: Sequence[str] | str = ZERO_SHOT_SCORES, batch: int | None = None, seed: int = 0,
                 data: DataSpec = None, entropy_weights: str | Sequence[float] = "maedet",
                 entropy_repeats: int = 4) -> None:
        from evaluators.zero_shot import DEFAULT_BATCH, resolve_scores

        self.scores = resolve_scores(scores)
        self.batch = DEFAULT_BATCH if batch is None else batch
        self.seed, self.data = seed, data
        self.entropy_kwargs = {"weights": entropy_weights, "repeats": entropy_repeats}
        self.directions = {s: "max" for s in self.scores}
        self._batches: dict[int, Minibatch] = {}

    def minibatch(self, imgsz: int) -> Minibatch | None:
        """The data batch at ``imgsz`` (built once per size), or None for the scores' own Gaussian input."""
        from evaluators.zero_shot import Minibatch, cifar10_batch

        if self.data is None or isinstance(self.data, Minibatch):
            return self.data
        if imgsz not in self._batches:
            path = None if str(self.data) == "cifar10" else self.data
            self._batches[imgsz] = cifar10_batch(self.batch, self.seed, path, imgsz=imgsz)
        return self._batches[imgsz]

    def evaluate(self, candidate: Candidate) -> dict[str, Any]:
        from evaluators.zero_shot import SCORES

        if candidate.model is None:
            raise ArchpruneError("the zero-shot evaluator needs the built model")
        data = self.minibatch(candidate.imgsz)
        metrics: dict[str, Any] = {}
        notes = []
        for name in self.scores:
            spec = SCORES[name]
            kwargs: dict[str, Any] = {"batch": self.batch, "seed": self.seed}
            if spec.uses_data:
                kwargs["data"] = data
            if name == "entropy":
                kwargs.update(self.entropy_kwargs)
            value = float(spec.fn(candidate.model, candidate.imgsz, **kwargs))
            if math.isnan(value):
                notes.append(f"{name}: NaN (degenerate network, e.g. an output that ignores the input) stored as -inf")
                value = -math.inf
            metrics[name] = value
        if any(SCORES[s].uses_data for s in self.scores):
            metrics["zero_shot_data"] = data.source if data is not None else f"gaussian N(0,1), seed {self.seed}"
        if notes:
            metrics["zero_shot_notes"] = "; ".join(notes)
        return metrics
