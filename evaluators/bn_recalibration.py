"""Adaptive batch-norm recalibration (EagleEye): fresh BN statistics for a pruned network.

Pruning removes channels whose contributions the remaining BatchNorm statistics still assume;
re-estimating them from a few calibration batches (train-mode forwards, no gradients, no weight
change) makes a pruned candidate's accuracy a fair proxy for how it will fine-tune.
"""
from __future__ import annotations

from typing import Iterable

import torch
from torch import Tensor, nn


@torch.no_grad()
def recalibrate_bn(model: nn.Module, batches: Iterable[Tensor]) -> int:
    """Reset every BatchNorm's running statistics and re-estimate them as a plain average over
    ``batches``; the model is left in eval mode. Returns the number of batches used."""
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    saved = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative moving average: every batch counts equally
    model.train()
    used = 0
    try:
        for images in batches:
            model(images)
            used += 1
    finally:
        for m, momentum in zip(norms, saved):
            m.momentum = momentum
        model.eval()
    return used
