"""Zen-score (Zen-NAS, ICCV 2021): how strongly the last feature map reacts to a small input perturbation.

Weights N(0,1) (BN affine 1/0), BN in train mode, input x and noise e both N(0,1), gamma = 0.01:
Delta = mean over the batch of sum |f(x) - f(x + gamma * e)|; Zen = log(Delta) + sum over BN
layers of log(sqrt(mean(running_var))). BN momentum is set to 1 on the private copy, so each
running_var is exactly the batch variance seen on the clean input (the BN layer's input scale,
which the Zen-score adds back because BN removed it).

f is the last feature map before global pooling: the last 4-D module output with more than one
pixel when the model returns classifier logits; a model that returns maps (a detector's list of
per-scale maps, a dense net) uses all of its output, flattened and concatenated.
"""
from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor, nn

from evaluators.zero_shot._base import (
    BATCHNORMS, DEFAULT_BATCH, ImgSize, device_of, flat_output, gaussian_init, scoring_copy, seeded, size_hw)

MIXUP_GAMMA = 1e-2


def zen_score(model: nn.Module, imgsz: ImgSize, *, batch: int = DEFAULT_BATCH, seed: int = 0,
              repeats: int = 1, gamma: float = MIXUP_GAMMA, channels: int = 3) -> float:
    """Zen-score of ``model`` at ``imgsz``, averaged over ``repeats`` fresh draws of weights and inputs."""
    net = scoring_copy(model)
    bns = [m for m in net.modules() if isinstance(m, BATCHNORMS)]
    for bn in bns:
        bn.momentum = 1.0
    scores = []
    with seeded(seed), torch.no_grad():
        for _ in range(repeats):
            gaussian_init(net)
            x = torch.randn(batch, channels, *size_hw(imgsz), device=device_of(net))
            noise = torch.randn_like(x)
            f_clean = _pre_pool_features(net, x)
            # a BN on a dead branch (a cell edge fed only zeros) saw variance 0: it carries no signal,
            # so it adds no term (its log would make every such network -inf)
            bn_term = sum(_log(bn.running_var.mean().sqrt()) for bn in bns
                          if bn.track_running_stats and float(bn.running_var.mean()) > 0)
            f_mixed = _pre_pool_features(net, x + gamma * noise)
            delta = (f_clean - f_mixed).abs().sum(dim=1).mean()
            scores.append(_log(delta) + bn_term)
    return float(sum(scores) / len(scores))


def _log(value: Tensor) -> float:
    v = float(value)
    return math.log(v) if v > 0 else -math.inf


def _pre_pool_features(net: nn.Module, x: Tensor) -> Tensor:
    """(batch, D): the last spatial feature map for a classifier, else the whole output."""
    last: list[Tensor] = []

    def keep(module: nn.Module, inputs: Any, out: Any) -> None:
        if isinstance(out, Tensor) and out.dim() == 4 and out.shape[2] * out.shape[3] > 1:
            last[:] = [out]

    handles = [m.register_forward_hook(keep) for m in net.modules()]
    try:
        out = net(x)
    finally:
        for h in handles:
            h.remove()
    if isinstance(out, Tensor) and out.dim() == 2 and last:
        return flat_output(last[0])
    return flat_output(out)
