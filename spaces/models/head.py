"""The anchor-free YOLOv8 / YOLO11 detection head and its box decoding."""
from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from .blocks import DFL, Conv, DWConv


def make_anchors(feats: list[Tensor], strides: Tensor, offset: float = 0.5) -> tuple[Tensor, Tensor]:
    """Anchor points at cell centres, level by level, each level row-major: (A, 2) and (A, 1)."""
    points, stride_col = [], []
    dtype, device = feats[0].dtype, feats[0].device
    for feat, stride in zip(feats, strides):
        h, w = feat.shape[2:]
        sx = torch.arange(w, device=device, dtype=dtype) + offset
        sy = torch.arange(h, device=device, dtype=dtype) + offset
        sy, sx = torch.meshgrid(sy, sx, indexing="ij")
        points.append(torch.stack((sx, sy), -1).view(-1, 2))
        stride_col.append(torch.full((h * w, 1), float(stride), dtype=dtype, device=device))
    return torch.cat(points), torch.cat(stride_col)


def dist2bbox(distance: Tensor, anchor_points: Tensor, dim: int = 1) -> Tensor:
    """(left, top, right, bottom) distances from anchors -> boxes as (cx, cy, w, h)."""
    lt, rb = distance.chunk(2, dim)
    x1y1 = anchor_points - lt
    x2y2 = anchor_points + rb
    return torch.cat(((x1y1 + x2y2) / 2, x2y2 - x1y1), dim)


class Detect(nn.Module):
    """Decoupled box / class branches per pyramid level.

    ``legacy=True`` is YOLOv8's class branch (two 3x3 convs); ``False`` is YOLO11's
    (depth-wise 3x3 + 1x1, twice). Train mode returns the raw per-level maps; eval mode returns
    Ultralytics' layout: (B, 4 + nc, anchors), boxes xywh in input pixels, scores after sigmoid.
    """

    def __init__(self, nc: int, ch: list[int], legacy: bool = True, reg_max: int = 16,
                 strides: tuple[float, ...] = (8.0, 16.0, 32.0)) -> None:
        super().__init__()
        self.nc = nc
        self.nl = len(ch)
        self.reg_max = reg_max
        self.no = nc + reg_max * 4
        self.legacy = legacy
        # Not persistent: Ultralytics' state dicts do not hold it, and it is fixed by the layout.
        self.register_buffer("stride", torch.tensor(strides[: self.nl], dtype=torch.float32), persistent=False)
        c2 = max(16, ch[0] // 4, reg_max * 4)
        c3 = max(ch[0], min(nc, 100))
        self.cv2 = nn.ModuleList(
            nn.Sequential(Conv(x, c2, 3), Conv(c2, c2, 3), nn.Conv2d(c2, 4 * reg_max, 1)) for x in ch
        )
        if legacy:
            self.cv3 = nn.ModuleList(
                nn.Sequential(Conv(x, c3, 3), Conv(c3, c3, 3), nn.Conv2d(c3, nc, 1)) for x in ch
            )
        else:
            self.cv3 = nn.ModuleList(
                nn.Sequential(
                    nn.Sequential(DWConv(x, x, 3), Conv(x, c3, 1)),
                    nn.Sequential(DWConv(c3, c3, 3), Conv(c3, c3, 1)),
                    nn.Conv2d(c3, nc, 1),
                )
                for x in ch
            )
        self.dfl = DFL(reg_max) if reg_max > 1 else nn.Identity()

    def forward(self, xs: list[Tensor]) -> list[Tensor] | Tensor:
        feats = [torch.cat((self.cv2[i](x), self.cv3[i](x)), 1) for i, x in enumerate(xs)]
        if self.training:
            return feats
        return self.decode(feats)

    def decode(self, feats: list[Tensor]) -> Tensor:
        b = feats[0].shape[0]
        anchors, strides = (t.transpose(0, 1) for t in make_anchors(feats, self.stride, 0.5))
        x = torch.cat([f.view(b, self.no, -1) for f in feats], 2)
        box, cls = x.split((self.reg_max * 4, self.nc), 1)
        boxes = dist2bbox(self.dfl(box), anchors.unsqueeze(0), dim=1) * strides
        return torch.cat((boxes, cls.sigmoid()), 1)

    def bias_init(self, imgsz: int = 640) -> None:
        """Prior biases for training from scratch (box logits 1.0; ~5 objects per image)."""
        for a, b, s in zip(self.cv2, self.cv3, self.stride.tolist()):
            a[-1].bias.data[:] = 1.0
            b[-1].bias.data[: self.nc] = math.log(5 / self.nc / (imgsz / s) ** 2)
