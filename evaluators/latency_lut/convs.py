"""A network reduced to its conv layers: what the latency table is looked up with.

Forward hooks on every ``nn.Conv2d`` record the shape each conv actually sees, so any module (a
channel-pruned YOLO, a block-space detector, a user's CNN) works without knowing its layout.
"""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import torch
from torch import nn

from spaces.models.blocks import Attention

PROBE_SIZES = (64, 32)  # conv shapes scale with the input by whole factors of these: trace small, scale up


@dataclass(frozen=True)
class ConvSpec:
    """One conv as the table sees it: input ``h`` x ``w`` (after any reshape the model does)."""

    name: str
    kind: str  # "regular" (groups 1), "depthwise" (groups == c_in) or "grouped"
    k: int
    stride: int
    c_in: int
    c_out: int
    h: int
    w: int
    groups: int

    @property
    def side(self) -> float:
        """Equivalent square input side: the table is square, and conv cost follows pixel count
        (DFL's 1x1 conv sees 4 x anchors, not a square)."""
        return math.sqrt(self.h * self.w)


def conv_kind(c_in: int, groups: int) -> str:
    if groups == 1:
        return "regular"
    return "depthwise" if groups == c_in else "grouped"


def conv_list(model: nn.Module, imgsz: int, in_channels: int = 3, exact: bool = False) -> list[ConvSpec]:
    """Every Conv2d call of one batch-1 forward pass at ``imgsz``, in execution order.

    Traces at 64 (or 32) px and scales sizes when ``imgsz`` is a multiple of it (the same convs for
    networks of stride <= 64 (32), ~10x cheaper at 320 px; a conv on a reshaped input, like DFL's
    4 x anchors, keeps its pixel count but not its aspect). ``exact``, attention blocks and other
    sizes trace at full size.
    """
    probes = [] if exact or any(isinstance(m, Attention) for m in model.modules()) else PROBE_SIZES
    probe = next((p for p in probes if imgsz % p == 0), imgsz)
    scale = imgsz // probe
    names = {module: name for name, module in model.named_modules()}
    found: list[ConvSpec] = []

    def hook(module: nn.Conv2d, inputs: tuple[torch.Tensor, ...], _output: torch.Tensor) -> None:
        _, c_in, h, w = inputs[0].shape
        found.append(ConvSpec(names[module], conv_kind(c_in, module.groups), max(module.kernel_size),
                              max(module.stride), int(c_in), module.out_channels, int(h) * scale, int(w) * scale,
                              module.groups))

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, nn.Conv2d)]
    was_training = model.training
    model.eval()
    try:
        # oneDNN sets up kernels for every new conv shape (~0.5 s per pruned candidate); shapes are all we need
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # mkldnn.flags() warns about Intel-GPU TF32 on every call
            with torch.backends.mkldnn.flags(enabled=False):
                model(torch.zeros(1, in_channels, probe, probe))
    finally:
        model.train(was_training)
        for handle in handles:
            handle.remove()
    return found
