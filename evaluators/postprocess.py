"""Post-processing of raw YOLOv8/YOLO11 eval outputs: class-aware NMS and letterbox undo.

The NMS reproduces Ultralytics 8.4 ``non_max_suppression`` (class offset trick, greedy NMS
keeping IoU <= threshold) in torch and numpy, because torchvision is not a dependency. Every float
op mirrors the reference so that float32 rounding, which matters at the ``cls * 7680`` offset,
is bit-identical. Two label rules, as there: single-label keeps each anchor's best class only
(``predict``'s and deployment's rule), multi-label keeps every class whose score passes
``conf_thres`` as its own box (``DetectionValidator``'s rule, i.e. the mAP ``yolo val`` prints).
"""
from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from evaluators.choice_names import NMS_RULES
from spaces.errors import ArchpruneError

# Ultralytics' max box width/height; boxes of class c are shifted by c * MAX_WH so that
# boxes of different classes never overlap during one class-agnostic NMS pass.
MAX_WH = 7680



def check_nms_rule(rule: str) -> bool:
    """True for multi-label; a clear error for anything but the two rules."""
    if rule not in NMS_RULES:
        raise ArchpruneError(f"unknown NMS rule {rule!r}: use one of {', '.join(NMS_RULES)}")
    return rule == "multi-label"


def xywh2xyxy(x: Tensor) -> Tensor:
    """Convert (..., 4) centre-xywh boxes to corner-xyxy (same ops as Ultralytics)."""
    if x.shape[-1] != 4:
        raise ArchpruneError(f"xywh2xyxy expects boxes with last dimension 4, got shape {tuple(x.shape)}")
    y = torch.empty_like(x)
    xy = x[..., :2]
    wh = x[..., 2:] / 2
    y[..., :2] = xy - wh
    y[..., 2:] = xy + wh
    return y


def _greedy_nms(boxes: Tensor, scores: Tensor, iou_thres: float, max_det: int) -> Tensor:
    """Greedy NMS; returns kept row indices in descending score order.

    Same arithmetic as Ultralytics' ``TorchNMS.nms``; stops once ``max_det`` boxes are kept,
    which gives the same first ``max_det`` indices since greedy keeps are final. The loop runs in
    numpy float32 (the same IEEE operations as torch's, so the same result): one step per kept box,
    and a numpy step costs a fraction of a torch one (multi-label NMS keeps up to ``max_det`` boxes
    per image, so this loop is a large part of an evaluation).
    """
    if boxes.numel() == 0 or max_det <= 0:
        return torch.empty((0,), dtype=torch.int64, device=boxes.device)
    b = boxes.detach().cpu().numpy().astype(np.float32, copy=False)
    x1, y1, x2, y2 = b[:, 0], b[:, 1], b[:, 2], b[:, 3]
    areas = (x2 - x1) * (y2 - y1)
    order = scores.argsort(0, descending=True).cpu().numpy()
    keep: list[int] = []
    thres = np.float32(iou_thres)
    while order.size > 0 and len(keep) < max_det:
        i = order[0]
        keep.append(int(i))
        rest = order[1:]
        if rest.size == 0:
            break
        w = np.maximum(np.minimum(x2[i], x2[rest]) - np.maximum(x1[i], x1[rest]), np.float32(0))
        h = np.maximum(np.minimum(y2[i], y2[rest]) - np.maximum(y1[i], y1[rest]), np.float32(0))
        inter = w * h
        with np.errstate(invalid="ignore", divide="ignore"):
            iou = inter / (areas[i] + areas[rest] - inter)
        # NaN IoU (0/0 for degenerate boxes) compares False, i.e. suppressed, as in the reference.
        order = rest[iou <= thres]
    return torch.tensor(keep, dtype=torch.int64, device=boxes.device)


def _check_args(pred: Tensor, conf_thres: float, iou_thres: float, max_det: int) -> None:
    if not isinstance(pred, Tensor) or pred.dim() != 3 or pred.shape[1] < 5:
        shape = tuple(pred.shape) if isinstance(pred, Tensor) else type(pred).__name__
        raise ArchpruneError(f"non_max_suppression expects a (B, 4 + nc, anchors) tensor, got {shape}")
    if not 0.0 <= conf_thres <= 1.0:
        raise ArchpruneError(f"conf_thres must be in [0, 1], got {conf_thres}")
    if not 0.0 <= iou_thres <= 1.0:
        raise ArchpruneError(f"iou_thres must be in [0, 1], got {iou_thres}")
    if max_det < 0:
        raise ArchpruneError(f"max_det must be >= 0, got {max_det}")


def _candidates(x: Tensor, conf_thres: float, multi_label: bool) -> tuple[Tensor, Tensor]:
    """(N, 6) [x1, y1, x2, y2, conf, cls] candidates of one image and the anchor of each."""
    idx = torch.arange(x.shape[0], device=x.device)
    # Ultralytics first drops anchors whose best score fails the threshold; same result, less work.
    passing = x[:, 4:].amax(1) > conf_thres
    x, idx = x[passing], idx[passing]
    box, cls = x[:, :4], x[:, 4:]
    if multi_label:  # one row per (anchor, class) above the threshold, anchor-major as torch.where gives
        i, j = torch.where(cls > conf_thres)
        return torch.cat((box[i], cls[i, j, None], j[:, None].to(x.dtype)), 1), idx[i]
    conf, j = cls.max(1, keepdim=True)
    return torch.cat((box, conf, j.to(x.dtype)), 1), idx


def _nms_one(x: Tensor, conf_thres: float, iou_thres: float, max_det: int, agnostic: bool,
             max_nms: int, multi_label: bool = False) -> tuple[Tensor, Tensor]:
    """NMS for one image; x is (A, 4 + nc) with xyxy boxes. Returns (K, 6) dets and anchor idx."""
    det, idx = _candidates(x, conf_thres, multi_label)
    if det.shape[0] > max_nms:  # keep the most confident candidates only
        top = det[:, 4].argsort(descending=True)[:max_nms]
        det, idx = det[top], idx[top]
    offset = det[:, 5:6] * (0 if agnostic else MAX_WH)
    keep = _greedy_nms(det[:, :4] + offset, det[:, 4], iou_thres, max_det)
    return det[keep], idx[keep]


def non_max_suppression(pred: Tensor, conf_thres: float = 0.001, iou_thres: float = 0.7, max_det: int = 300,
                        agnostic: bool = False, max_nms: int = 30000, return_indices: bool = False,
                        multi_label: bool = False) -> list[Tensor] | tuple[list[Tensor], list[Tensor]]:
    """Class-aware NMS on raw (B, 4 + nc, A) outputs (xywh pixels, sigmoid class scores).

    Returns per image a (K, 6) tensor [x1, y1, x2, y2, conf, cls] sorted by conf descending,
    and with ``return_indices`` also the kept anchor indices (int64) per image (with
    ``multi_label`` an anchor can appear once per class it is kept for).
    The input tensor is not modified (Ultralytics converts boxes in place; we do not).
    """
    _check_args(pred, conf_thres, iou_thres, max_det)
    x_all = pred.detach().transpose(-1, -2)  # (B, A, 4 + nc)
    x_all = torch.cat((xywh2xyxy(x_all[..., :4]), x_all[..., 4:]), dim=-1)
    outputs: list[Tensor] = []
    indices: list[Tensor] = []
    for x in x_all:
        det, idx = _nms_one(x, conf_thres, iou_thres, max_det, agnostic, max_nms, multi_label)
        outputs.append(det)
        indices.append(idx)
    return (outputs, indices) if return_indices else outputs


def scale_boxes_to_original(boxes: Tensor, ratio: float | tuple[float, float], pad: tuple[float, float],
                            orig_shape: tuple[int, int]) -> Tensor:
    """Undo a letterbox on (..., 4+) xyxy boxes: (b - pad) / ratio, clipped to the original image.

    ``ratio`` is one gain or the (x, y) gains (Ultralytics' per-axis ``ratio_pad``), ``pad`` is
    (left, top) in letterboxed pixels, ``orig_shape`` is (height, width).
    Columns after the first four (e.g. conf, cls of NMS output) are passed through unchanged.
    Returns a new tensor; the input is untouched.
    """
    if boxes.shape[-1] < 4:
        raise ArchpruneError(f"scale_boxes_to_original expects (..., 4) boxes, got shape {tuple(boxes.shape)}")
    gain_x, gain_y = (ratio, ratio) if isinstance(ratio, (int, float)) else ratio
    if gain_x <= 0 or gain_y <= 0:
        raise ArchpruneError(f"letterbox ratio must be > 0, got {ratio}")
    h, w = orig_shape
    out = boxes.clone()
    out[..., [0, 2]] = ((out[..., [0, 2]] - pad[0]) / gain_x).clamp(0, w)
    out[..., [1, 3]] = ((out[..., [1, 3]] - pad[1]) / gain_y).clamp(0, h)
    return out
