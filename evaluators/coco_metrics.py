"""COCO box mAP through pycocotools (never a hand-written AP).

Detections and ground truth are accumulated per image in pixel xyxy, then turned into an
in-memory COCO ground-truth dict and a result list for ``COCOeval(iouType="bbox")`` with its
default parameters. Category ids are ``cls + 1`` for both GT and detections (COCO ids are
conventionally 1-based; the mapping only has to be consistent).
"""
from __future__ import annotations

import contextlib
import io
from typing import Any

import numpy as np
from torch import Tensor

from spaces.errors import ArchpruneError


def _rows(x: Any, name: str, cols: int, layout: str, image_id: int) -> np.ndarray:
    """``x`` as a float64 (n, cols) array; an empty input becomes (0, cols)."""
    a = _to_numpy(x, name).astype(np.float64)
    if a.size == 0:
        a = np.zeros((0, cols))
    if a.ndim != 2 or a.shape[1] != cols:
        raise ArchpruneError(f"DetectionMetrics.update: {name} must be (n, {cols}) {layout}, got shape {a.shape} "
                             f"for image {image_id}")
    return a


def _to_numpy(x: Any, name: str) -> np.ndarray:
    if isinstance(x, Tensor):
        return x.detach().cpu().numpy()
    try:
        return np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError) as e:
        raise ArchpruneError(f"DetectionMetrics.update: {name} is not numeric array-like ({e})") from e


def _xyxy_to_xywh(b: np.ndarray) -> np.ndarray:
    return np.stack([b[:, 0], b[:, 1], b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]], axis=1)


class DetectionMetrics:
    """Accumulates predictions and ground truth per image; ``compute`` runs COCOeval."""

    def __init__(self, nc: int):
        if int(nc) < 1:
            raise ArchpruneError(f"DetectionMetrics needs nc >= 1 classes, got {nc}")
        self.nc = int(nc)
        self._images: list[dict[str, Any]] = []
        self._annotations: list[dict[str, Any]] = []
        self._detections: list[dict[str, Any]] = []
        self._seen: set[int] = set()

    @property
    def images(self) -> int:
        """Number of images seen (one per ``update`` call)."""
        return len(self._images)

    def _check_cls(self, cls: np.ndarray, what: str) -> np.ndarray:
        if cls.size and (np.any(cls < 0) or np.any(cls >= self.nc) or np.any(cls != np.round(cls))):
            raise ArchpruneError(f"DetectionMetrics.update: {what} class ids must be integers in [0, {self.nc}), "
                                 f"got values in [{cls.min()}, {cls.max()}]")
        return cls.astype(np.int64)

    def update(self, image_id: int, pred: Tensor | np.ndarray, gt_boxes: Any, gt_cls: Any) -> None:
        """Add one image. pred (K, 6) [x1, y1, x2, y2, conf, cls]; gt_boxes (n, 4) xyxy; gt_cls (n,).

        All coordinates must be in the same pixel frame; image ids must be unique.
        """
        image_id = int(image_id)
        if image_id in self._seen:
            raise ArchpruneError(f"DetectionMetrics.update: image_id {image_id} was already added")
        p = _rows(pred, "pred", 6, "[x1, y1, x2, y2, conf, cls]", image_id)
        g = _rows(gt_boxes, "gt_boxes", 4, "xyxy", image_id)
        gc = _to_numpy(gt_cls, "gt_cls").astype(np.float64).reshape(-1)
        if len(g) != len(gc):
            raise ArchpruneError(f"DetectionMetrics.update: {len(g)} gt boxes but {len(gc)} gt classes "
                                 f"for image {image_id}")
        gc = self._check_cls(gc, "gt")
        pc = self._check_cls(p[:, 5], "predicted")
        self._seen.add(image_id)
        self._images.append({"id": image_id})
        self._add_gt(image_id, g, gc)
        self._add_dets(image_id, p, pc)

    def _add_gt(self, image_id: int, boxes: np.ndarray, cls: np.ndarray) -> None:
        for (x, y, w, h), c in zip(_xyxy_to_xywh(boxes).tolist(), cls.tolist()):
            self._annotations.append({
                "id": len(self._annotations) + 1,  # COCO ann ids start at 1 (0 is treated as unmatched)
                "image_id": image_id, "category_id": c + 1,
                "bbox": [x, y, w, h], "area": w * h, "iscrowd": 0,
            })

    def _add_dets(self, image_id: int, pred: np.ndarray, cls: np.ndarray) -> None:
        for (x, y, w, h), s, c in zip(_xyxy_to_xywh(pred[:, :4]).tolist(), pred[:, 4].tolist(), cls.tolist()):
            self._detections.append({"image_id": image_id, "category_id": c + 1,
                                     "bbox": [x, y, w, h], "score": s})

    def _gt_dict(self) -> dict[str, Any]:
        return {
            "images": list(self._images),
            "annotations": list(self._annotations),
            "categories": [{"id": c + 1, "name": str(c)} for c in range(self.nc)],
        }

    def compute(self) -> dict[str, float]:
        """{"map50_95": AP@[.5:.95], "map50": AP@.5} from COCOeval; 0.0 when undefined."""
        # loadRes cannot take an empty list, and with no GT COCOeval reports -1: both mean 0 here.
        if not self._detections or not self._annotations:
            return {"map50_95": 0.0, "map50": 0.0}
        from pycocotools.coco import COCO  # local import: heavy, only needed here
        from pycocotools.cocoeval import COCOeval

        with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints progress and tables
            gt = COCO()
            gt.dataset = self._gt_dict()
            gt.createIndex()
            dt = gt.loadRes([dict(d) for d in self._detections])  # loadRes mutates its input
            ev = COCOeval(gt, dt, iouType="bbox")
            ev.evaluate()
            ev.accumulate()
            ev.summarize()
        return {"map50_95": max(float(ev.stats[0]), 0.0), "map50": max(float(ev.stats[1]), 0.0)}
