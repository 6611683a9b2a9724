"""Exponential moving average of model weights (what gets validated and shipped)."""
from __future__ import annotations

import copy
import math

import torch
from torch import nn


class ModelEMA:
    """EMA whose decay ramps up as ``decay * (1 - exp(-updates / tau))``, so early, fast-changing
    weights are not frozen in by a decay of 0.9999 from the first step."""

    def __init__(self, model: nn.Module, decay: float = 0.9999, tau: float = 2000.0, updates: int = 0) -> None:
        self.ema = copy.deepcopy(model).eval()
        for p in self.ema.parameters():
            p.requires_grad_(False)
        self.decay, self.tau, self.updates = decay, tau, updates

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        self.updates += 1
        d = self.decay * (1 - math.exp(-self.updates / self.tau))
        current = model.state_dict()
        for key, value in self.ema.state_dict().items():
            if value.dtype.is_floating_point:
                value.mul_(d).add_(current[key].detach(), alpha=1 - d)
            else:
                value.copy_(current[key])
