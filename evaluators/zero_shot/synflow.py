"""synflow (Tanaka et al. 2020; as a zero-cost proxy, Abdelfattah et al., ICLR 2021): data-free path strength.

On a private double-precision copy with BN removed (identity) and every parameter replaced by its
absolute value, an all-ones input gives R = sum of the outputs (a detector's maps, flattened and
concatenated); score = sum over the weights of conv and linear layers of dR/dw * w. Double
precision keeps deep nets from overflowing. Paths cut by a zero op (an all-``none`` NB201 cell)
carry nothing, so such a net scores lower.

With ``reinit`` (default) the copy's layers are re-drawn with their own default initialisation under
``seed``, so the score depends on the architecture and the seed only; ``reinit=False`` scores the
model's own weights (e.g. a pruned pretrained detector).
"""
from __future__ import annotations

import torch
from torch import nn

from evaluators.zero_shot._base import (
    BATCHNORMS, ImgSize, device_of, flat_output, replace_modules, reset_weights, scoring_copy, seeded, size_hw,
    weighted_layers)


def synflow_score(model: nn.Module, imgsz: ImgSize, *, batch: int = 1, seed: int = 0, channels: int = 3,
                  reinit: bool = True) -> float:
    """Sum of dR/dw * w over |weights|, R = sum of the outputs for an all-ones input (``batch`` is unused but
    accepted, like every score)."""
    net = scoring_copy(model)
    replace_modules(net, BATCHNORMS, lambda m: nn.Identity())
    layers = weighted_layers(net)
    with seeded(seed):
        if reinit:
            reset_weights(net)
        net.double()
        with torch.no_grad():
            for p in net.parameters():
                p.abs_()
        out = net(torch.ones(1, channels, *size_hw(imgsz), dtype=torch.float64, device=device_of(net)))
        flat_output(out).sum().backward()
    return float(sum((m.weight.grad * m.weight.detach()).sum() for m in layers if m.weight.grad is not None))
