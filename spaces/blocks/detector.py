"""A searched backbone under YOLOv8's SPPF + PAN neck and Detect head.

The neck is YOLOv8's (C2f without shortcuts, depth ``neck_depth``; n scale = 1) with widths taken
from the backbone's last three stages (c3, c4, c5), so a backbone with YOLOv8n's stage widths
(64, 128, 256) gives exactly YOLOv8n's neck and head. ``neck="rep"`` makes each C2f block's two
3 x 3 convs re-parameterizable (RepConv: trained with branches, deployed fused), in the manner of
DAMO-YOLO's RepGFPN. The outputs follow ``YOLODetector``: train
mode returns the per-level maps, eval mode the decoded (B, 4 + nc, anchors) predictions, so the
training loss, ONNX export and latency code take it unchanged.
"""
from __future__ import annotations

from typing import Any, Sequence

import torch
from torch import Tensor, nn

from spaces.errors import ArchpruneError
from spaces.models.blocks import SPPF, C2f, Conv, _SplitCSP
from spaces.models.head import Detect
from spaces.models.repconv import RepConv

from .analytic import as_blocks
from .backbone import BlockBackbone
from .skeleton import NECKS, check_detector_skeleton
from .structure import structure_to_dicts


class RepC2f(_SplitCSP):
    """C2f whose blocks are two RepConvs (no shortcut, as in the neck): RepGFPN's re-parameterizable CSP."""

    def __init__(self, c1: int, c2: int, n: int = 1, e: float = 0.5) -> None:
        super().__init__(c1, c2, n, e)
        self.m.extend(nn.Sequential(RepConv(self.c, self.c, 3), RepConv(self.c, self.c, 3)) for _ in range(n))


class PAN(nn.Module):
    """SPPF on the deepest map, then YOLOv8's top-down and bottom-up paths."""

    def __init__(self, c3: int, c4: int, c5: int, n: int = 1, neck: str = "c2f") -> None:
        super().__init__()
        if neck not in NECKS:
            raise ArchpruneError(f"unknown neck {neck!r}; use {' or '.join(NECKS)}")
        csp = RepC2f if neck == "rep" else C2f
        self.sppf = SPPF(c5, c5, 5)
        self.up = nn.Upsample(scale_factor=2, mode="nearest")
        self.td4 = csp(c5 + c4, c4, n)
        self.td3 = csp(c4 + c3, c3, n)
        self.down3 = Conv(c3, c3, 3, 2)
        self.bu4 = csp(c3 + c4, c4, n)
        self.down4 = Conv(c4, c4, 3, 2)
        self.bu5 = csp(c4 + c5, c5, n)

    def forward(self, feats: Sequence[Tensor]) -> list[Tensor]:
        x3, x4, x5 = feats
        p5 = self.sppf(x5)
        t4 = self.td4(torch.cat((self.up(p5), x4), 1))
        p3 = self.td3(torch.cat((self.up(t4), x3), 1))
        p4 = self.bu4(torch.cat((self.down3(p3), t4), 1))
        return [p3, p4, self.bu5(torch.cat((self.down4(p4), p5), 1))]


class BlockDetector(nn.Module):
    """Backbone from a structure + PAN neck + Detect head; ``.backbone`` is the searched part."""

    def __init__(self, structure: Any, nc: int = 80, names: list[str] | None = None, neck_depth: int = 1,
                 neck: str = "c2f") -> None:
        super().__init__()
        blocks = as_blocks(structure)
        check_detector_skeleton(blocks, nc, names, neck)
        self.backbone = BlockBackbone(blocks)
        strides = self.backbone.strides[-3:]
        c3, c4, c5 = self.backbone.out_channels[-3:]
        self.neck = PAN(c3, c4, c5, neck_depth, neck)
        self.detect = Detect(nc, [c3, c4, c5], legacy=True, strides=tuple(float(s) for s in strides))
        self.detect.bias_init()
        self.nc, self.neck_depth, self.neck_kind = nc, neck_depth, neck
        self.names = list(names) if names is not None else [str(i) for i in range(nc)]
        self.imgsz: int | None = None  # the size the weights were trained at, when known

    @property
    def head(self) -> Detect:
        return self.detect

    @property
    def stride(self) -> Tensor:
        return self.detect.stride

    @property
    def structure(self) -> list[dict[str, Any]]:
        return structure_to_dicts(self.backbone.structure)

    def forward(self, x: Tensor) -> Tensor | list[Tensor]:
        return self.detect(self.neck(self.backbone(x)[-3:]))


def build_block_detector(arch: dict[str, Any]) -> BlockDetector:
    """A block-space detector from a checkpoint's architecture (``kind: blocks``)."""
    model = BlockDetector(arch["structure"], nc=arch["nc"], names=arch.get("names"),
                          neck_depth=arch.get("neck_depth", 1), neck=arch.get("neck", "c2f"))
    model.imgsz = arch.get("imgsz")
    if arch.get("deployed"):  # its RepConvs were saved fused: fuse these (the weights load after)
        from spaces.models.repconv import fuse_repconvs

        fuse_repconvs(model.eval())
    return model
