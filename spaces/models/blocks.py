"""Building blocks of the YOLOv8 / YOLO11 detection families in plain PyTorch.

Module and attribute names follow Ultralytics (``cv1``, ``cv2``, ``m``, ``conv``, ``bn``, ``act``)
so their checkpoints map onto ours by name. One deliberate difference: C2f, C3k2 and C2PSA do not
``chunk``/``split`` the output of one conv. Their ``cv1`` is stored as two 1x1 convs (``cv1a``,
``cv1b``) holding the two halves of the original weights, because Torch-Pruning cannot trace
channel dependencies through ``chunk`` (see ../shared/DESIGN.md). Splitting is exact: each output
channel of a conv and its BN is computed independently of the others.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

BN_EPS = 1e-3  # Ultralytics' BatchNorm eps; changing it moves every output
BN_MOMENTUM = 0.03


def autopad(k: int, d: int = 1) -> int:
    """'same' padding for an odd kernel with dilation d."""
    return (d * (k - 1) + 1) // 2


class Conv(nn.Module):
    """Conv2d (no bias) + BatchNorm2d + SiLU (or no activation)."""

    def __init__(self, c1: int, c2: int, k: int = 1, s: int = 1, g: int = 1, act: bool = True) -> None:
        super().__init__()
        self.conv = nn.Conv2d(c1, c2, k, s, autopad(k), groups=g, bias=False)
        self.bn = nn.BatchNorm2d(c2, eps=BN_EPS, momentum=BN_MOMENTUM)
        self.act = nn.SiLU() if act else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        return self.act(self.bn(self.conv(x)))


class DWConv(Conv):
    """Depth-wise Conv (groups = gcd of the channel counts, as in Ultralytics)."""

    def __init__(self, c1: int, c2: int, k: int = 1, s: int = 1, act: bool = True) -> None:
        import math

        super().__init__(c1, c2, k, s, g=math.gcd(c1, c2), act=act)


class Bottleneck(nn.Module):
    """Two convs with an optional residual add."""

    def __init__(self, c1: int, c2: int, shortcut: bool = True, k: tuple[int, int] = (3, 3), e: float = 0.5) -> None:
        super().__init__()
        c_ = int(c2 * e)
        self.cv1 = Conv(c1, c_, k[0], 1)
        self.cv2 = Conv(c_, c2, k[1], 1)
        self.add = shortcut and c1 == c2

    def forward(self, x: Tensor) -> Tensor:
        y = self.cv2(self.cv1(x))
        return x + y if self.add else y


class _SplitCSP(nn.Module):
    """Shared shape of C2f and C3k2: two 1x1 input branches, a chain of blocks on the second,
    every intermediate output concatenated into ``cv2``."""

    def __init__(self, c1: int, c2: int, n: int, e: float) -> None:
        super().__init__()
        self.c = c = int(c2 * e)
        self.cv1a = Conv(c1, c, 1, 1)  # first half of Ultralytics' cv1
        self.cv1b = Conv(c1, c, 1, 1)  # second half of Ultralytics' cv1
        self.cv2 = Conv((2 + n) * c, c2, 1)
        self.m = nn.ModuleList()

    def forward(self, x: Tensor) -> Tensor:
        y = [self.cv1a(x), self.cv1b(x)]
        for block in self.m:
            y.append(block(y[-1]))
        return self.cv2(torch.cat(y, 1))


class C2f(_SplitCSP):
    """YOLOv8's CSP bottleneck with two convolutions, in pruning-friendly split form."""

    def __init__(self, c1: int, c2: int, n: int = 1, shortcut: bool = False, e: float = 0.5) -> None:
        super().__init__(c1, c2, n, e)
        self.m.extend(Bottleneck(self.c, self.c, shortcut, k=(3, 3), e=1.0) for _ in range(n))


class C3k(nn.Module):
    """CSP bottleneck with three convolutions and a configurable kernel (YOLO11)."""

    def __init__(self, c1: int, c2: int, n: int = 1, shortcut: bool = True, e: float = 0.5, k: int = 3) -> None:
        super().__init__()
        c_ = int(c2 * e)
        self.cv1 = Conv(c1, c_, 1, 1)
        self.cv2 = Conv(c1, c_, 1, 1)
        self.cv3 = Conv(2 * c_, c2, 1)
        self.m = nn.Sequential(*(Bottleneck(c_, c_, shortcut, k=(k, k), e=1.0) for _ in range(n)))

    def forward(self, x: Tensor) -> Tensor:
        return self.cv3(torch.cat((self.m(self.cv1(x)), self.cv2(x)), 1))


class C3k2(_SplitCSP):
    """YOLO11's C2f variant whose blocks are C3k (c3k=True) or plain Bottlenecks."""

    def __init__(self, c1: int, c2: int, n: int = 1, c3k: bool = False, e: float = 0.5, shortcut: bool = True) -> None:
        super().__init__(c1, c2, n, e)
        c = self.c
        self.m.extend(C3k(c, c, 2, shortcut) if c3k else Bottleneck(c, c, shortcut) for _ in range(n))


class SPPF(nn.Module):
    """Spatial pyramid pooling (fast): one max-pool applied ``n`` times in a chain."""

    def __init__(self, c1: int, c2: int, k: int = 5, n: int = 3) -> None:
        super().__init__()
        c_ = c1 // 2
        self.n = n
        self.cv1 = Conv(c1, c_, 1, 1)
        self.cv2 = Conv(c_ * (n + 1), c2, 1, 1)
        self.m = nn.MaxPool2d(kernel_size=k, stride=1, padding=k // 2)

    def forward(self, x: Tensor) -> Tensor:
        y = [self.cv1(x)]
        for _ in range(self.n):
            y.append(self.m(y[-1]))
        return self.cv2(torch.cat(y, 1))


class Attention(nn.Module):
    """Multi-head self-attention over a feature map (YOLO11's PSA).

    ``qkv`` stays one conv: its output is viewed per head, not split into separately
    computed tensors, which keeps Ultralytics' weight layout. Head sizes are attributes so a
    checkpoint can record them.
    """

    def __init__(self, dim: int, num_heads: int = 8, attn_ratio: float = 0.5) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.key_dim = int(self.head_dim * attn_ratio)
        self.scale = self.key_dim**-0.5
        h = dim + self.key_dim * num_heads * 2
        self.qkv = Conv(dim, h, 1, act=False)
        self.proj = Conv(dim, dim, 1, act=False)
        self.pe = Conv(dim, dim, 3, 1, g=dim, act=False)

    def forward(self, x: Tensor) -> Tensor:
        b, c, h, w = x.shape
        n = h * w
        q, k, v = self.qkv(x).view(b, self.num_heads, self.key_dim * 2 + self.head_dim, n).split(
            [self.key_dim, self.key_dim, self.head_dim], dim=2
        )
        attn = ((q.transpose(-2, -1) @ k) * self.scale).softmax(dim=-1)
        y = (v @ attn.transpose(-2, -1)).view(b, c, h, w) + self.pe(v.reshape(b, c, h, w))
        return self.proj(y)


class PSABlock(nn.Module):
    """Attention followed by a two-conv feed-forward, each with a residual add."""

    def __init__(self, c: int, attn_ratio: float = 0.5, num_heads: int = 4, shortcut: bool = True) -> None:
        super().__init__()
        self.attn = Attention(c, attn_ratio=attn_ratio, num_heads=num_heads)
        self.ffn = nn.Sequential(Conv(c, c * 2, 1), Conv(c * 2, c, 1, act=False))
        self.add = shortcut

    def forward(self, x: Tensor) -> Tensor:
        x = x + self.attn(x) if self.add else self.attn(x)
        return x + self.ffn(x) if self.add else self.ffn(x)


class C2PSA(nn.Module):
    """CSP block with position-sensitive attention (YOLO11), in split form."""

    def __init__(self, c1: int, c2: int, n: int = 1, e: float = 0.5) -> None:
        super().__init__()
        assert c1 == c2, "C2PSA keeps its width"
        self.c = c = int(c1 * e)
        self.cv1a = Conv(c1, c, 1, 1)  # passes through untouched
        self.cv1b = Conv(c1, c, 1, 1)  # goes through the attention blocks
        self.cv2 = Conv(2 * c, c1, 1)
        self.m = nn.Sequential(*(PSABlock(c, attn_ratio=0.5, num_heads=max(c // 64, 1)) for _ in range(n)))

    def forward(self, x: Tensor) -> Tensor:
        return self.cv2(torch.cat((self.cv1a(x), self.m(self.cv1b(x))), 1))


class Concat(nn.Module):
    """Concatenate a list of tensors along a dimension."""

    def __init__(self, dimension: int = 1) -> None:
        super().__init__()
        self.d = dimension

    def forward(self, x: list[Tensor]) -> Tensor:
        return torch.cat(x, self.d)


class DFL(nn.Module):
    """Distribution focal loss integral: expected value over ``c1`` bins (a fixed 1x1 conv)."""

    def __init__(self, c1: int = 16) -> None:
        super().__init__()
        self.conv = nn.Conv2d(c1, 1, 1, bias=False).requires_grad_(False)
        self.conv.weight.data[:] = torch.arange(c1, dtype=torch.float).view(1, c1, 1, 1)
        self.c1 = c1

    def forward(self, x: Tensor) -> Tensor:
        b, _, a = x.shape
        return self.conv(x.view(b, 4, self.c1, a).transpose(2, 1).softmax(1)).view(b, 4, a)
