"""The backbone a structure describes, as a plain ``nn.Module``.

Convs are ``spaces.models.blocks.Conv`` (Conv2d + BatchNorm (eps 1e-3) + SiLU), the same as the
YOLOv8 neck and head, so one activation runs through the whole detector: SiLU, not TinyNAS's
ReLU. A residual unit's last conv has no activation; the SiLU follows the residual add (ResNet
order). The stride sits on the unit's k x k (or depth-wise) conv.
"""
from __future__ import annotations

from typing import Sequence

from torch import Tensor, nn

from spaces.errors import ArchpruneError
from spaces.models.blocks import BN_EPS, BN_MOMENTUM, Conv
from spaces.models.repconv import RepConv

from .skeleton import stage_outputs
from .structure import Block, Structure, stage_of_blocks


def unit_convs(cls: str, cin: int, cout: int, s: int, k: int, btn: int) -> list[nn.Module]:
    """The main-path convs of one residual unit, in execution order."""
    if cls == "repkxkx":  # trains as k x k + 1 x 1 (+ identity) branches, deploys as one k x k conv each
        return [RepConv(cin, btn, k, s), RepConv(btn, cout, k, act=False)]
    if cls == "k1kx":
        return [Conv(cin, btn, 1), Conv(btn, cout, k, s, act=False)]
    if cls == "kxkx":
        return [Conv(cin, btn, k, s), Conv(btn, cout, k, act=False)]
    if cls == "k1kxk1":
        return [Conv(cin, btn, 1), Conv(btn, btn, k, s), Conv(btn, cout, 1, act=False)]
    if cls == "k1dwk1":
        return [Conv(cin, btn, 1), Conv(btn, btn, k, s, g=btn), Conv(btn, cout, 1, act=False)]
    raise ArchpruneError(f"no residual unit for class {cls!r}")


class Projection(nn.Module):
    """Shortcut for a unit that changes stride or width: avg-pool (stride 2), then 1x1 conv + BN."""

    def __init__(self, cin: int, cout: int, s: int) -> None:
        super().__init__()
        # ceil_mode: the same output size as a padded stride-2 conv, odd sizes included
        self.pool = nn.AvgPool2d(2, 2, ceil_mode=True, count_include_pad=False) if s == 2 else nn.Identity()
        self.conv = nn.Conv2d(cin, cout, 1, bias=False)
        self.bn = nn.BatchNorm2d(cout, eps=BN_EPS, momentum=BN_MOMENTUM)

    def forward(self, x: Tensor) -> Tensor:
        return self.bn(self.conv(self.pool(x)))


class ResUnit(nn.Module):
    def __init__(self, cls: str, cin: int, cout: int, s: int, k: int, btn: int) -> None:
        super().__init__()
        self.main = nn.Sequential(*unit_convs(cls, cin, cout, s, k, btn))
        self.shortcut = Projection(cin, cout, s) if s != 1 or cin != cout else nn.Identity()
        self.act = nn.SiLU()

    def main_convs(self) -> list[nn.Conv2d]:
        """What the entropy runs: a RepConv counts as its deployed k x k conv (its k x k branch, which
        has the fused conv's fan-in; the 1 x 1 and identity branches fold into it), as TinyNAS scores
        the deployed network."""
        return [_deployed_conv(c) for c in self.main]

    def forward(self, x: Tensor) -> Tensor:
        return self.act(self.main(x) + self.shortcut(x))


def _deployed_conv(module: nn.Module) -> nn.Conv2d:
    if isinstance(module, RepConv):
        return module.fused if module.fused is not None else module.dense.conv
    return module.conv


def block_units(b: Block) -> nn.Sequential:
    """Unit 0 maps in -> out with stride s; units 1..L-1 map out -> out with stride 1."""
    return nn.Sequential(*(ResUnit(b.cls, b.cin if u == 0 else b.cout, b.cout, b.s if u == 0 else 1, b.k, b.btn)
                           for u in range(b.L)))


class BlockBackbone(nn.Module):
    """Stem + blocks; ``forward`` returns the output of every stage (a stage ends before each stride-2 block)."""

    def __init__(self, structure: Sequence[Block]) -> None:
        super().__init__()
        self.structure: Structure = tuple(structure)
        stem = self.structure[0]
        self.stem = Conv(stem.cin, stem.cout, stem.k, stem.s)
        self.blocks = nn.ModuleList(block_units(b) for b in self.structure[1:])
        self._stage_of = stage_of_blocks(self.structure)
        outputs = stage_outputs(self.structure)
        self.stage_ends = [o.end for o in outputs]
        self.out_channels = [o.channels for o in outputs]
        self.strides = [o.stride for o in outputs]

    def forward(self, x: Tensor) -> list[Tensor]:
        outs = []
        x = self.stem(x)
        if 0 in self.stage_ends:
            outs.append(x)
        for i, block in enumerate(self.blocks, start=1):
            x = block(x)
            if i in self.stage_ends:
                outs.append(x)
        return outs

    def entropy_layout(self) -> list[list[list[nn.Conv2d]]]:
        """Stages -> residual units -> the unit's main-path convs in execution order (stem: its own unit)."""
        layout: list[list[list[nn.Conv2d]]] = [[[self.stem.conv]]]
        for i, block in enumerate(self.blocks, start=1):
            if self._stage_of[i] != self._stage_of[i - 1]:
                layout.append([])
            layout[-1].extend(unit.main_convs() for unit in block)
        return layout
