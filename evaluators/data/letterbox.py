"""Letterbox geometry as Ultralytics 8.4 builds it, so that our mAP is the one `yolo val` prints.

Two steps, as there (``data/base.py`` ``load_image``, then ``data/augment.py`` ``LetterBox``):

1. resize by ``r = imgsz / max(h, w)`` to ``(min(ceil(w r), imgsz), min(ceil(h r), imgsz))`` with
   bilinear interpolation *without* antialiasing (``cv2.INTER_LINEAR``);
2. centre the result on a canvas, never scaling up again: an ``imgsz`` square in training, at
   validation the shape of the image's rectangular batch (``rect_batch_shapes``).

A box maps per axis, ``x * gain_x + pad_x``: after ``ceil`` the two axes' gains differ slightly.
The resize runs through torch's ``interpolate`` (same half-pixel bilinear arithmetic as OpenCV,
in float where OpenCV uses 11-bit fixed point, so a pixel may differ by one grey level) because
OpenCV is not a dependency.
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from evaluators.image_size import STRIDE  # the detector's largest stride: one definition

PAD_VALUE = 114  # Ultralytics' grey
RECT_PAD = 0.5  # Ultralytics' val-time rect padding, in strides: the long side becomes imgsz + 32


def resize_long_side(img: np.ndarray, imgsz: int) -> np.ndarray:
    """HWC uint8 image with its long side resized to ``imgsz`` (up or down), aspect kept."""
    h, w = img.shape[:2]
    r = imgsz / max(h, w)
    if r == 1:
        return img
    new_w, new_h = min(math.ceil(w * r), imgsz), min(math.ceil(h * r), imgsz)
    return _bilinear(img, max(new_h, 1), max(new_w, 1))


def _bilinear(img: np.ndarray, new_h: int, new_w: int) -> np.ndarray:
    import torch  # here, not at the top: the data package's config is read by runs that never load an image

    x = torch.from_numpy(np.array(img, dtype=np.float32)).permute(2, 0, 1)[None]  # a copy: img may be read-only
    y = torch.nn.functional.interpolate(x, size=(new_h, new_w), mode="bilinear", align_corners=False,
                                        antialias=False)
    return y[0].permute(1, 2, 0).round_().clamp_(0, 255).to(torch.uint8).numpy()


def letterbox(img: np.ndarray, imgsz: int, canvas: tuple[int, int] | None = None, color: int = PAD_VALUE
              ) -> tuple[np.ndarray, tuple[float, float], tuple[float, float]]:
    """Fit an HWC uint8 image into ``canvas`` (h, w; default ``imgsz`` square) as Ultralytics does.

    Returns ``(image, (gain_x, gain_y), (pad_w, pad_h))``: a box maps as ``box * gain + pad``.
    """
    h0, w0 = img.shape[:2]
    img = resize_long_side(img, imgsz)
    canvas_h, canvas_w = canvas or (imgsz, imgsz)
    h, w = img.shape[:2]
    r = min(canvas_h / h, canvas_w / w, 1.0)  # LetterBox(scaleup=False): the canvas only ever pads
    if r < 1:
        img = _bilinear(img, max(round(h * r), 1), max(round(w * r), 1))
        h, w = img.shape[:2]
    # round(d / 2 - 0.1) of Ultralytics equals d // 2 for whole-pixel d
    pad_w, pad_h = (canvas_w - w) // 2, (canvas_h - h) // 2
    out = np.full((canvas_h, canvas_w, 3), color, dtype=np.uint8)
    out[pad_h: pad_h + h, pad_w: pad_w + w] = img
    return out, (w / w0, h / h0), (float(pad_w), float(pad_h))


def rect_batch_shapes(sizes: Sequence[tuple[int, int]], imgsz: int, batch_size: int, stride: int = STRIDE,
                      pad: float = RECT_PAD) -> tuple[list[int], list[tuple[int, int]]]:
    """Ultralytics' val batching (``BaseDataset.set_rectangle``) for images of ``sizes`` (h, w).

    Returns the image order (sorted by aspect h/w) and, in that order, each image's canvas (h, w):
    per batch of ``batch_size``, the smallest stride multiple holding its widest (or tallest) aspect
    at ``imgsz`` plus ``pad`` strides.
    """
    if not sizes:
        return [], []
    ar = np.array([h / w for h, w in sizes])
    order = np.argsort(ar, kind="stable")
    ar = ar[order]
    canvases: list[tuple[int, int]] = []
    for start in range(0, len(ar), batch_size):
        chunk = ar[start: start + batch_size]
        shape = [1.0, 1.0]
        if chunk.max() < 1:
            shape = [chunk.max(), 1.0]
        elif chunk.min() > 1:
            shape = [1.0, 1 / chunk.min()]
        h, w = (int(math.ceil(s * imgsz / stride + pad)) * stride for s in shape)
        canvases += [(h, w)] * len(chunk)
    return [int(i) for i in order], canvases
