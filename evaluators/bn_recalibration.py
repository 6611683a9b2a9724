"""Adaptive batch-norm recalibration (EagleEye): fresh BN statistics for a pruned network.

Pruning removes channels whose contributions the remaining BatchNorm statistics still assume;
re-estimating them from a few calibration batches (train-mode forwards, no gradients, no weight
change) makes a pruned candidate's accuracy a fair proxy for how it will fine-tune.
"""
from __future__ import annotations

import contextlib
from typing import Iterable, Iterator

import torch
from torch import Tensor, nn


@contextlib.contextmanager
def bn_momentum(model: nn.Module, momentum: float | None) -> Iterator[list[nn.Module]]:
    """Every BatchNorm of ``model`` at ``momentum`` inside the block (None: a cumulative average,
    0.0: running statistics frozen), restored after; yields the BatchNorms."""
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    saved = [m.momentum for m in norms]
    for m in norms:
        m.momentum = momentum
    try:
        yield norms
    finally:
        for m, value in zip(norms, saved):
            m.momentum = value


@torch.no_grad()
def recalibrate_bn(model: nn.Module, batches: Iterable[Tensor]) -> int:
    """Reset every BatchNorm's running statistics and re-estimate them as a plain average over
    ``batches``; the model is left in eval mode. Returns the number of batches used."""
    used = 0
    with bn_momentum(model, None) as norms:  # cumulative moving average: every batch counts equally
        for m in norms:
            m.reset_running_stats()
        model.train()
        try:
            for images in batches:
                model(images)
                used += 1
        finally:
            model.eval()
    return used
