"""jacob_cov (Mellor et al. 2020, v1 of NASWOT; Abdelfattah et al., ICLR 2021): input-Jacobian diversity.

The per-sample Jacobian is the gradient of the sum of the sample's outputs (a detector's maps
flattened and concatenated) with respect to its input, all samples in one backward pass (BN in
train mode couples samples slightly, as in the reference code). With C the correlation matrix of
those Jacobians and eig its eigenvalues, score = -sum(log(eig + k) + 1/(eig + k)), k = 1e-5: high
when samples get uncorrelated Jacobians. A Jacobian that is all zero (output independent of the
input) has no correlation: the score is NaN, which the evaluator stores as -inf.

With ``reinit`` (default) the copy's layers are re-drawn with their own default initialisation under
``seed``, so the score depends on the architecture and the seed only; ``reinit=False`` scores the
model's own weights (e.g. a pruned pretrained detector).
"""
from __future__ import annotations

import math

import torch
from torch import nn

from evaluators.zero_shot._base import (
    DEFAULT_BATCH, ImgSize, device_of, flat_output, model_inputs, reset_weights, scoring_copy, seeded)
from evaluators.zero_shot.batches import Minibatch

EIG_OFFSET = 1e-5


def jacob_cov_score(model: nn.Module, imgsz: ImgSize, *, batch: int = DEFAULT_BATCH, seed: int = 0,
                    data: Minibatch | None = None, channels: int = 3, reinit: bool = True) -> float:
    """-sum(log(eig + k) + 1/(eig + k)) of the correlation matrix of per-sample input Jacobians."""
    net = scoring_copy(model)
    with seeded(seed):
        if reinit:
            reset_weights(net)
        x, _ = model_inputs(data, imgsz, batch, seed, channels, device_of(net))
        x = x.clone().requires_grad_(True)
        flat_output(net(x)).sum().backward()
    jacobians = x.grad.reshape(x.shape[0], -1).double()
    corr = torch.corrcoef(jacobians)
    if not bool(torch.isfinite(corr).all()):
        return math.nan
    eig = torch.linalg.eigvalsh(corr)
    return float(-(torch.log(eig + EIG_OFFSET) + 1.0 / (eig + EIG_OFFSET)).sum())
