"""Baseline pruning with Torch-Pruning directly: one ratio for every layer (uniform) or one
global threshold (e.g. LAMP), tuned by bisection to a FLOPs target. The search is measured
against these.
"""
from __future__ import annotations

import copy

import torch
from torch import nn

from evaluators.flops import count_flops_params
from spaces.channel_groups import protected_layers
from spaces.errors import ArchpruneError
from spaces.models.blocks import Attention
from spaces.importances import make_importance
from spaces.tp_compat import customized_pruners


def prune_with_ratio(model: nn.Module, imgsz: int, ratio: float, importance: str = "l1",
                     global_pruning: bool = False, round_to: int | None = None) -> nn.Module:
    """A pruned copy of ``model`` (the original is untouched)."""
    import torch_pruning as tp

    pruned = copy.deepcopy(model).eval()
    example = torch.zeros(1, 3, imgsz, imgsz)
    attention = [m for m in pruned.modules() if isinstance(m, Attention)]
    pruner = tp.pruner.MetaPruner(pruned, example, importance=make_importance(importance), pruning_ratio=ratio,
                                  global_pruning=global_pruning, ignored_layers=protected_layers(pruned) + attention,
                                  round_to=round_to, customized_pruners=customized_pruners())
    pruner.step()
    return pruned


def prune_to_flops(model: nn.Module, imgsz: int, flops_ratio: float, importance: str = "l1",
                   global_pruning: bool = False, round_to: int | None = None, tolerance: float = 0.01
                   ) -> tuple[nn.Module, float]:
    """Prune to at most ``flops_ratio`` of the model's FLOPs; returns the model and the ratio used.

    ``round_to`` defaults to None: on a nano model rounding kept channels to 8 moves FLOPs in
    coarse steps (a 50% target lands at 39% with round_to=8, at 49.7% without).
    """
    if not 0 < flops_ratio < 1:
        raise ArchpruneError(f"flops_ratio must be in (0, 1), got {flops_ratio}")
    target = count_flops_params(model, imgsz)["flops_g"] * flops_ratio
    low, high, best = 0.0, 0.95, None
    for _ in range(20):  # bisection on the channel ratio; FLOPs fall monotonically with it
        ratio = (low + high) / 2
        candidate = prune_with_ratio(model, imgsz, ratio, importance, global_pruning, round_to)
        flops = count_flops_params(candidate, imgsz)["flops_g"]
        if flops <= target:
            best, high = (candidate, ratio), ratio
            if flops >= target * (1 - tolerance):
                break
        else:
            low = ratio
    if best is None:
        raise ArchpruneError(f"could not reach {flops_ratio:.0%} of the FLOPs with {importance} pruning")
    return best
