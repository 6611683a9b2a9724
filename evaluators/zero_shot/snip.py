"""snip (Lee et al., ICLR 2019; as a zero-cost proxy, Abdelfattah et al., ICLR 2021): loss sensitivity.

One minibatch, default-initialised weights, BN in train mode; score = sum over the weights of conv and
linear layers of |dL/dw * w|. L is cross-entropy for a classifier and, for a detector or any
model whose output is not (batch, classes) logits, the surrogate regression to a seeded random
target described in ``_base.task_loss`` (no boxes needed).
``reinit``: see ``_base.loss_gradients``.
"""
from __future__ import annotations

from torch import nn

from evaluators.zero_shot._base import DEFAULT_BATCH, ImgSize, loss_gradients
from evaluators.zero_shot.batches import Minibatch


def snip_score(model: nn.Module, imgsz: ImgSize, *, batch: int = DEFAULT_BATCH, seed: int = 0,
               data: Minibatch | None = None, channels: int = 3, reinit: bool = True) -> float:
    """sum |dL/dw * w| over one batch (``data``, or a seeded Gaussian batch with random labels)."""
    layers = loss_gradients(model, imgsz, batch, seed, data, channels, reinit)
    return float(sum((m.weight.grad * m.weight.detach()).abs().sum() for m in layers))
