"""grad_norm (Abdelfattah et al., ICLR 2021): how large the first gradient step would be.

One minibatch, default-initialised weights, BN in train mode; score = sum over conv and linear layers
of the L2 norm of dL/dw. L as in snip: cross-entropy for classifier logits, the seeded
random-target regression surrogate of ``_base.task_loss`` for a detector.
``reinit``: see ``_base.loss_gradients``.
"""
from __future__ import annotations

from torch import nn

from evaluators.zero_shot._base import DEFAULT_BATCH, ImgSize, loss_gradients
from evaluators.zero_shot.batches import Minibatch


def grad_norm_score(model: nn.Module, imgsz: ImgSize, *, batch: int = DEFAULT_BATCH, seed: int = 0,
                    data: Minibatch | None = None, channels: int = 3, reinit: bool = True) -> float:
    """sum over layers of ||dL/dw||_2 over one batch (``data``, or a seeded Gaussian batch)."""
    layers = loss_gradients(model, imgsz, batch, seed, data, channels, reinit)
    return float(sum(m.weight.grad.norm() for m in layers))
