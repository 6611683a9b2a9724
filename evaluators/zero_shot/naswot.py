"""NASWOT (Mellor et al., ICML 2021): how differently the network's activations partition a batch.

Each sample's binary code is (pre-activation > 0) at the input of every activation module,
concatenated over layers; K = c c^T + (1 - c)(1 - c)^T counts, for each pair of samples, the units
on which they agree. Score = log|det K|: high when samples land in distinct linear regions. BN
runs in train mode (batch statistics) on default-initialised weights. Any activation module counts
(ReLU in NB201, SiLU in YOLO): its sign gate is the analogue of ReLU's on/off. A model without
activation modules cannot be scored (error); identical codes give det 0, i.e. -inf.

With ``reinit`` (default) the copy's layers are re-drawn with their own default initialisation under
``seed``, so the score depends on the architecture and the seed only; ``reinit=False`` scores the
model's own weights (e.g. a pruned pretrained detector).
"""
from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from evaluators.zero_shot._base import (
    ACTIVATIONS, DEFAULT_BATCH, ImgSize, device_of, model_inputs, reset_weights, scoring_copy, seeded)
from evaluators.zero_shot.batches import Minibatch
from spaces.errors import ArchpruneError

_CHUNK = 1 << 20  # columns per float32 matmul: partial sums stay exact integers (< 2**24)


def naswot_score(model: nn.Module, imgsz: ImgSize, *, batch: int = DEFAULT_BATCH, seed: int = 0,
                 data: Minibatch | None = None, channels: int = 3, reinit: bool = True) -> float:
    """log|det K| of the activation-pattern kernel over one batch (``data``, or Gaussian input)."""
    net = scoring_copy(model)
    acts = [m for m in net.modules() if isinstance(m, ACTIVATIONS)]
    if not acts:
        raise ArchpruneError(f"naswot needs activation modules (ReLU, SiLU, ...); {type(model).__name__} has none")
    with seeded(seed), torch.no_grad():
        if reinit:
            reset_weights(net)
        x, _ = model_inputs(data, imgsz, batch, seed, channels, device_of(net))
        kernel = torch.zeros(x.shape[0], x.shape[0], dtype=torch.float64, device=x.device)

        def accumulate(module: nn.Module, inputs: tuple[Any, ...]) -> None:
            # computed in the pre-hook: an in-place activation would overwrite its input
            codes = (inputs[0] > 0).reshape(inputs[0].shape[0], -1).float()
            for start in range(0, codes.shape[1], _CHUNK):
                c = codes[:, start:start + _CHUNK]
                kernel.add_((c @ c.T + (1 - c) @ (1 - c).T).double())

        handles = [m.register_forward_pre_hook(accumulate) for m in acts]
        try:
            net(x)
        finally:
            for h in handles:
                h.remove()
    sign, logdet = torch.linalg.slogdet(kernel)
    return float(logdet) if float(sign) != 0 else -math.inf
