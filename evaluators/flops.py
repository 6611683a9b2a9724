"""FLOPs and parameter counts through thop, in Ultralytics' units."""
from __future__ import annotations

import copy
from typing import TYPE_CHECKING

from evaluators._base import Candidate, Evaluator, Metric, RunContext

if TYPE_CHECKING:  # torch loads when a model is counted, not for the metric table (a torch-free block search)
    from torch import nn

COUNT_SIZE = 64  # conv FLOPs scale with pixels: counting small and scaling is exact for sizes divisible by 32


def count_flops_params(model: nn.Module, imgsz: int) -> dict[str, float]:
    """``flops_g`` = 2 x the multiply-adds thop counts, in billions, at ``imgsz``; ``params_m`` in millions."""
    import torch
    from thop import profile

    from spaces.models.blocks import Attention
    from spaces.models.repconv import deployed

    # thop attaches counters to modules: never to the caller's model; RepConvs count as deployed (fused)
    probe = deployed(copy.deepcopy(model).eval())
    # Attention's matmuls (counted by thop) grow with tokens squared, not with pixels: count those at full size.
    scalable = imgsz % 32 == 0 and not any(isinstance(m, Attention) for m in model.modules())
    base = COUNT_SIZE if scalable else imgsz
    with torch.no_grad():
        macs, _ = profile(probe, inputs=(torch.zeros(1, 3, base, base),), verbose=False)
    return {"flops_g": 2 * macs * (imgsz / base) ** 2 / 1e9,
            "params_m": sum(p.numel() for p in probe.parameters()) / 1e6}


FLOPS = Metric("flops_g", "min", "GFLOPs", 0.0)
PARAMS = Metric("params_m", "min", "M params", 0.0)


class FlopsEvaluator(Evaluator):
    """``flops_g`` and ``params_m`` of the candidate at its image size (cheap: runs first)."""

    metrics = (FLOPS, PARAMS)
    cost = 0
    name = "flops"

    @classmethod
    def for_run(cls, run: RunContext) -> "FlopsEvaluator":
        return cls()

    def evaluate(self, candidate: Candidate) -> dict[str, float]:
        return count_flops_params(candidate.model, candidate.imgsz)
