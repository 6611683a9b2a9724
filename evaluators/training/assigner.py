"""Task-aligned label assignment (TOOD), as YOLOv8/YOLO11 train with it.

For every ground-truth box, anchors whose centre lies inside it are ranked by the alignment
metric ``score^alpha * IoU^beta`` (the predicted score of the box's class and the predicted
box's CIoU with it); the top-k become positives. An anchor claimed by several boxes keeps the
one it overlaps most. Target scores are the one-hot class scaled by the normalised alignment.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor


def bbox_ciou(box1: Tensor, box2: Tensor, eps: float = 1e-7) -> Tensor:
    """Complete IoU of xyxy boxes (..., 4) -> (..., 1): IoU minus centre-distance and aspect terms."""
    b1_x1, b1_y1, b1_x2, b1_y2 = box1.chunk(4, -1)
    b2_x1, b2_y1, b2_x2, b2_y2 = box2.chunk(4, -1)
    w1, h1 = b1_x2 - b1_x1, b1_y2 - b1_y1 + eps
    w2, h2 = b2_x2 - b2_x1, b2_y2 - b2_y1 + eps
    inter = (b1_x2.minimum(b2_x2) - b1_x1.maximum(b2_x1)).clamp(0) * (b1_y2.minimum(b2_y2) - b1_y1.maximum(b2_y1)).clamp(0)
    union = w1 * h1 + w2 * h2 - inter + eps
    iou = inter / union
    cw = b1_x2.maximum(b2_x2) - b1_x1.minimum(b2_x1)  # enclosing box
    ch = b1_y2.maximum(b2_y2) - b1_y1.minimum(b2_y1)
    c2 = cw.pow(2) + ch.pow(2) + eps
    rho2 = ((b2_x1 + b2_x2 - b1_x1 - b1_x2).pow(2) + (b2_y1 + b2_y2 - b1_y1 - b1_y2).pow(2)) / 4
    v = (4 / math.pi**2) * ((w2 / h2).atan() - (w1 / h1).atan()).pow(2)
    with torch.no_grad():
        alpha = v / (v - iou + (1 + eps))
    return iou - (rho2 / c2 + v * alpha)


class TaskAlignedAssigner:
    def __init__(self, num_classes: int, topk: int = 10, alpha: float = 0.5, beta: float = 6.0, eps: float = 1e-9) -> None:
        self.num_classes, self.topk, self.alpha, self.beta, self.eps = num_classes, topk, alpha, beta, eps

    @torch.no_grad()
    def __call__(self, pd_scores: Tensor, pd_bboxes: Tensor, anchors: Tensor, gt_labels: Tensor,
                 gt_bboxes: Tensor, mask_gt: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """Shapes: pd_scores (B, A, C) after sigmoid; pd_bboxes (B, A, 4) xyxy px; anchors (A, 2) px;
        gt_labels (B, M, 1); gt_bboxes (B, M, 4) xyxy px; mask_gt (B, M, 1) real boxes.

        Returns target labels (B, A), target boxes (B, A, 4), target scores (B, A, C), fg mask (B, A).
        """
        b, a, _ = pd_scores.shape
        m = gt_bboxes.shape[1]
        if m == 0:
            return (torch.full((b, a), self.num_classes, dtype=torch.long), torch.zeros_like(pd_bboxes),
                    torch.zeros_like(pd_scores), torch.zeros((b, a), dtype=torch.bool))
        in_gts = self._anchors_inside(anchors, gt_bboxes) * mask_gt  # (B, M, A)
        align, overlaps = self._metrics(pd_scores, pd_bboxes, gt_labels, gt_bboxes, in_gts.bool())
        topk = self._topk(align, mask_gt.expand(-1, -1, self.topk).bool())
        mask_pos = topk * in_gts * mask_gt
        gt_idx, fg, mask_pos = self._resolve_conflicts(mask_pos, overlaps, m)

        flat_idx = gt_idx + torch.arange(b)[:, None] * m
        labels = gt_labels.long().flatten()[flat_idx].clamp(0)
        boxes = gt_bboxes.view(-1, 4)[flat_idx]
        scores = F.one_hot(labels, self.num_classes) * (fg[:, :, None] > 0)
        align = align * mask_pos
        best_align = align.amax(-1, keepdim=True)
        best_iou = (overlaps * mask_pos).amax(-1, keepdim=True)
        norm = (align * best_iou / (best_align + self.eps)).amax(-2).unsqueeze(-1)
        return labels, boxes, scores * norm, fg.bool()

    @staticmethod
    def _anchors_inside(anchors: Tensor, gt_bboxes: Tensor, eps: float = 1e-9) -> Tensor:
        b, m, _ = gt_bboxes.shape
        lt, rb = gt_bboxes.view(-1, 1, 4).chunk(2, 2)
        deltas = torch.cat((anchors[None] - lt, rb - anchors[None]), 2).view(b, m, anchors.shape[0], 4)
        return deltas.amin(3).gt(eps).to(gt_bboxes.dtype)

    def _metrics(self, pd_scores: Tensor, pd_bboxes: Tensor, gt_labels: Tensor, gt_bboxes: Tensor,
                 mask: Tensor) -> tuple[Tensor, Tensor]:
        b, a, _ = pd_scores.shape
        m = gt_bboxes.shape[1]
        overlaps = torch.zeros((b, m, a), dtype=pd_bboxes.dtype)
        box_scores = torch.zeros((b, m, a), dtype=pd_scores.dtype)
        batch_ind = torch.arange(b).view(-1, 1).expand(-1, m)
        box_scores[mask] = pd_scores[batch_ind, :, gt_labels.squeeze(-1).long()][mask]
        pd = pd_bboxes.unsqueeze(1).expand(-1, m, -1, -1)[mask]
        gt = gt_bboxes.unsqueeze(2).expand(-1, -1, a, -1)[mask]
        overlaps[mask] = bbox_ciou(gt, pd).squeeze(-1).clamp(0)
        return box_scores.pow(self.alpha) * overlaps.pow(self.beta), overlaps

    def _topk(self, metrics: Tensor, topk_mask: Tensor) -> Tensor:
        k = min(self.topk, metrics.shape[-1])
        _, idx = torch.topk(metrics, k, dim=-1, largest=True)
        idx = idx.masked_fill(~topk_mask[..., :k], 0)
        count = torch.zeros(metrics.shape, dtype=torch.int8)
        ones = torch.ones_like(idx[:, :, :1], dtype=torch.int8)
        for j in range(k):
            count.scatter_add_(-1, idx[:, :, j: j + 1], ones)
        count.masked_fill_(count > 1, 0)  # padded rows all point at anchor 0: drop them
        return count.to(metrics.dtype)

    @staticmethod
    def _resolve_conflicts(mask_pos: Tensor, overlaps: Tensor, m: int) -> tuple[Tensor, Tensor, Tensor]:
        fg = mask_pos.sum(-2)
        if fg.max() > 1:  # an anchor claimed by several boxes keeps the one it overlaps most
            multi = (fg.unsqueeze(1) > 1).expand(-1, m, -1)
            best = torch.zeros(mask_pos.shape, dtype=mask_pos.dtype)
            best.scatter_(1, overlaps.argmax(1).unsqueeze(1), 1)
            mask_pos = torch.where(multi, best, mask_pos).float()
            fg = mask_pos.sum(-2)
        return mask_pos.argmax(-2), fg, mask_pos
