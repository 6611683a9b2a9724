"""Re-parameterizable conv (RepVGG; DAMO-YOLO's RepGFPN): trains as three branches, deploys as one.

Training sees a k x k conv-BN, a 1 x 1 conv-BN and, where the shapes allow (same width, stride
1), an identity BN, summed before the activation: the extra branches ease optimisation. In eval
mode the three are linear, so they fold into one k x k conv with bias (the 1 x 1 kernel padded to
the centre, the identity as a centred unit kernel, each BN folded into its branch), which is what
FLOPs, latency, export and a deployed checkpoint see. Folding a conv and its BN is
``torch.nn.utils.fusion.fuse_conv_bn_weights`` (torch's own); summing the branches is ours, as
torch has no RepVGG block.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn.utils.fusion import fuse_conv_bn_weights

from spaces.errors import ArchpruneError

from .blocks import BN_EPS, BN_MOMENTUM, Conv


class RepConv(nn.Module):
    """``act(BN(conv_kxk(x)) + BN(conv_1x1(x)) [+ BN(x)])``; ``fuse()`` turns it into ``act(conv_kxk'(x))``."""

    def __init__(self, c1: int, c2: int, k: int = 3, s: int = 1, act: bool = True) -> None:
        super().__init__()
        if k < 3 or k % 2 == 0:
            raise ArchpruneError(f"a RepConv kernel must be odd and at least 3, got {k}")
        self.c1, self.c2, self.k, self.s = c1, c2, k, s
        self.dense = Conv(c1, c2, k, s, act=False)
        self.point = Conv(c1, c2, 1, s, act=False)
        self.identity = nn.BatchNorm2d(c1, eps=BN_EPS, momentum=BN_MOMENTUM) if c1 == c2 and s == 1 else None
        self.act = nn.SiLU() if act else nn.Identity()
        self.fused: nn.Conv2d | None = None

    def forward(self, x: Tensor) -> Tensor:
        if self.fused is not None:
            return self.act(self.fused(x))
        y = self.dense(x) + self.point(x)
        if self.identity is not None:
            y = y + self.identity(x)
        return self.act(y)

    @torch.no_grad()
    def fused_conv(self) -> nn.Conv2d:
        """The one k x k conv (with bias) equal to the three branches with their BNs in eval mode."""
        k, pad = self.k, self.k // 2
        dense_w, dense_b = _folded(self.dense.conv.weight, self.dense.bn)
        point_w, point_b = _folded(self.point.conv.weight, self.point.bn)
        weight = dense_w + nn.functional.pad(point_w, [pad, pad, pad, pad])
        bias = dense_b + point_b
        if self.identity is not None:
            unit = torch.zeros(self.c2, self.c1, k, k, dtype=weight.dtype)
            unit[torch.arange(self.c1), torch.arange(self.c1), pad, pad] = 1.0
            id_w, id_b = _folded(unit, self.identity)
            weight, bias = weight + id_w, bias + id_b
        conv = nn.Conv2d(self.c1, self.c2, k, self.s, pad, bias=True)
        conv.weight.copy_(weight)
        conv.bias.copy_(bias)
        return conv

    def fuse(self) -> None:
        """Replace the branches by their fused conv, in place (the deployed form; no way back)."""
        if self.fused is None:
            self.fused = self.fused_conv()
            del self.dense, self.point, self.identity
            self.identity = None


def _folded(weight: Tensor, bn: nn.BatchNorm2d) -> tuple[Tensor, Tensor]:
    return fuse_conv_bn_weights(weight, None, bn.running_mean, bn.running_var, bn.eps, bn.weight, bn.bias)


def has_branches(model: nn.Module) -> bool:
    """Whether ``model`` has a RepConv still in its training form."""
    return any(isinstance(m, RepConv) and m.fused is None for m in model.modules())


def is_deployed(model: nn.Module) -> bool:
    """Whether ``model``'s RepConvs are fused (its checkpoint records the deployed form)."""
    return any(isinstance(m, RepConv) and m.fused is not None for m in model.modules())


def deployed(model: nn.Module) -> nn.Module:
    """``model`` as it is deployed: a fused copy when it has RepConv branches, else itself. FLOPs,
    latency and export measure this form; training keeps the branches."""
    if not has_branches(model):
        return model
    import copy

    return fuse_repconvs(copy.deepcopy(model).eval())


def fuse_repconvs(model: nn.Module) -> nn.Module:
    """Fuse every RepConv of ``model`` in place (eval statistics); returns the model."""
    for module in model.modules():
        if isinstance(module, RepConv):
            module.fuse()
    return model
