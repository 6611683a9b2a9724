"""The NAS-Bench-201 network in PyTorch (Dong & Yang, ICLR 2020), for any cell of its space.

Stem (3x3 conv, 16 channels, BN), three stages of ``cells_per_stage`` identical cells at 16, 32
and 64 channels joined by residual reduction blocks, then BN-ReLU, global pooling and a linear
classifier. Cell ops use ReLU-Conv-BN ordering as in the benchmark's paper. Written from the
paper's definition: the benchmark's own code (AutoDL-Projects) is not a dependency worth taking
for ~100 lines.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

OPS = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
# node i (1..3) sums an op applied to every earlier node j; this is the arch-string order
EDGES = ((1, 0), (2, 0), (2, 1), (3, 0), (3, 1), (3, 2))


class ReLUConvBN(nn.Sequential):
    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int, padding: int) -> None:
        super().__init__(nn.ReLU(inplace=False), nn.Conv2d(c_in, c_out, kernel, stride, padding, bias=False),
                         nn.BatchNorm2d(c_out))


class Zero(nn.Module):
    """The ``none`` op: contributes nothing (kept as an op so every node has a well-shaped input)."""

    def forward(self, x: Tensor) -> Tensor:
        return x.mul(0.0)


def make_op(name: str, channels: int) -> nn.Module:
    if name == "none":
        return Zero()
    if name == "skip_connect":
        return nn.Identity()
    if name == "nor_conv_1x1":
        return ReLUConvBN(channels, channels, 1, 1, 0)
    if name == "nor_conv_3x3":
        return ReLUConvBN(channels, channels, 3, 1, 1)
    if name == "avg_pool_3x3":
        return nn.AvgPool2d(3, stride=1, padding=1, count_include_pad=False)
    raise ValueError(f"unknown NAS-Bench-201 op {name!r}; ops are {', '.join(OPS)}")


class Cell(nn.Module):
    def __init__(self, ops: tuple[str, ...], channels: int) -> None:
        super().__init__()
        self.edges = nn.ModuleList(make_op(op, channels) for op in ops)

    def forward(self, x: Tensor) -> Tensor:
        nodes = [x]
        for i in (1, 2, 3):
            nodes.append(sum(self.edges[k](nodes[j]) for k, (to, j) in enumerate(EDGES) if to == i))
        return nodes[3]


class ResidualReduction(nn.Module):
    """Between stages: two ReLU-Conv-BN 3x3 (the first with stride 2), plus an avg-pool + 1x1 shortcut."""

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.conv_a = ReLUConvBN(c_in, c_out, 3, 2, 1)
        self.conv_b = ReLUConvBN(c_out, c_out, 3, 1, 1)
        self.shortcut = nn.Sequential(nn.AvgPool2d(2, 2), nn.Conv2d(c_in, c_out, 1, bias=False))

    def forward(self, x: Tensor) -> Tensor:
        return self.shortcut(x) + self.conv_b(self.conv_a(x))


class NB201Network(nn.Module):
    def __init__(self, ops: tuple[str, ...], num_classes: int = 10, channels: int = 16,
                 cells_per_stage: int = 5) -> None:
        super().__init__()
        if len(ops) != len(EDGES):
            raise ValueError(f"a cell has {len(EDGES)} edges, got {len(ops)} ops")
        self.stem = nn.Sequential(nn.Conv2d(3, channels, 3, padding=1, bias=False), nn.BatchNorm2d(channels))
        layers: list[nn.Module] = []
        c = channels
        for stage in range(3):
            if stage:
                layers.append(ResidualReduction(c, 2 * c))
                c *= 2
            layers.extend(Cell(ops, c) for _ in range(cells_per_stage))
        self.cells = nn.Sequential(*layers)
        self.lastact = nn.Sequential(nn.BatchNorm2d(c), nn.ReLU(inplace=False))
        self.classifier = nn.Linear(c, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        x = self.lastact(self.cells(self.stem(x)))
        return self.classifier(torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1))
