"""Training augmentation: horizontal flip, HSV jitter, random scale and translation.

Each item's randomness comes from ``(seed, epoch, index)`` alone, so an interrupted and resumed
run sees exactly the same images as an uninterrupted one.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from PIL import Image

from evaluators.data.dataset import DetectionDataset, to_tensors

PAD_VALUE = 114  # the letterbox grey


@dataclass(frozen=True)
class AugmentConfig:
    fliplr: float = 0.5
    hsv_h: float = 0.015  # fractions of the full range, as Ultralytics' defaults
    hsv_s: float = 0.7
    hsv_v: float = 0.4
    scale: float = 0.5  # zoom drawn from [1 - scale, 1 + scale]
    translate: float = 0.1  # shift drawn from +-translate of the image side
    min_box_px: float = 2.0  # boxes narrower than this after the affine are dropped
    min_area_kept: float = 0.1  # ... and boxes that lost more than 90% of their area to the border


def hsv_jitter(img: np.ndarray, rng: np.random.Generator, cfg: AugmentConfig) -> np.ndarray:
    """Random gains on hue, saturation and value through lookup tables (PIL's HSV mode)."""
    gains = rng.uniform(-1, 1, 3) * np.array([cfg.hsv_h, cfg.hsv_s, cfg.hsv_v]) + 1
    hsv = np.asarray(Image.fromarray(img).convert("HSV")).copy()
    x = np.arange(256, dtype=np.float32)
    luts = [((x * gains[0]) % 256).astype(np.uint8), np.clip(x * gains[1], 0, 255).astype(np.uint8),
            np.clip(x * gains[2], 0, 255).astype(np.uint8)]
    for c in range(3):
        hsv[..., c] = luts[c][hsv[..., c]]
    return np.asarray(Image.fromarray(hsv, "HSV").convert("RGB"))


def random_affine(img: np.ndarray, boxes: np.ndarray, cls: np.ndarray, rng: np.random.Generator,
                  cfg: AugmentConfig) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Zoom about the centre and shift; boxes follow, are clipped, and mostly-lost ones dropped."""
    h, w = img.shape[:2]
    s = rng.uniform(1 - cfg.scale, 1 + cfg.scale)
    tx, ty = rng.uniform(-cfg.translate, cfg.translate, 2) * np.array([w, h])
    cx, cy = w / 2, h / 2
    # forward map: x' = s * (x - cx) + cx + tx; PIL wants the inverse (output -> input) coefficients
    inverse = (1 / s, 0, cx - (cx + tx) / s, 0, 1 / s, cy - (cy + ty) / s)
    out = np.asarray(Image.fromarray(img).transform((w, h), Image.AFFINE, inverse, resample=Image.BILINEAR,
                                                    fillcolor=(PAD_VALUE,) * 3))
    if len(boxes) == 0:
        return out, boxes, cls
    moved = boxes.copy()
    moved[:, [0, 2]] = s * (boxes[:, [0, 2]] - cx) + cx + tx
    moved[:, [1, 3]] = s * (boxes[:, [1, 3]] - cy) + cy + ty
    area_before = (moved[:, 2] - moved[:, 0]) * (moved[:, 3] - moved[:, 1])
    moved[:, [0, 2]] = moved[:, [0, 2]].clip(0, w)
    moved[:, [1, 3]] = moved[:, [1, 3]].clip(0, h)
    bw, bh = moved[:, 2] - moved[:, 0], moved[:, 3] - moved[:, 1]
    keep = (bw > cfg.min_box_px) & (bh > cfg.min_box_px) & (bw * bh > cfg.min_area_kept * area_before)
    return out, moved[keep], cls[keep]


def flip_lr(img: np.ndarray, boxes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    w = img.shape[1]
    flipped = boxes.copy()
    flipped[:, [0, 2]] = w - boxes[:, [2, 0]]
    return img[:, ::-1].copy(), flipped


class AugmentedDataset(torch.utils.data.Dataset):
    """A ``DetectionDataset`` with seeded per-epoch augmentation; call ``set_epoch`` each epoch."""

    def __init__(self, base: DetectionDataset, seed: int, cfg: AugmentConfig = AugmentConfig()) -> None:
        self.base, self.seed, self.cfg, self.epoch = base, seed, cfg, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, i: int) -> dict[str, Any]:
        rng = np.random.default_rng([self.seed, self.epoch, i])
        item = self.base.letterboxed(i)
        img, boxes, cls = item["img"], item["boxes"], item["cls"]
        if self.cfg.scale or self.cfg.translate:
            img, boxes, cls = random_affine(img, boxes, cls, rng, self.cfg)
        if any((self.cfg.hsv_h, self.cfg.hsv_s, self.cfg.hsv_v)):
            img = hsv_jitter(img, rng, self.cfg)
        if rng.random() < self.cfg.fliplr:
            img, boxes = flip_lr(img, boxes)
        # orig_boxes describe the un-augmented image; training never reads them
        return to_tensors({**item, "img": img, "boxes": boxes, "cls": cls})
