"""The YOLOv8 / YOLO11 detection loss: CIoU + distribution focal loss on boxes, BCE on classes.

Written from the published formulation (Generalized Focal Loss for the DFL term, TOOD for the
assignment) with Ultralytics' default gains (box 7.5, cls 0.5, dfl 1.5), because no library
outside Ultralytics implements it and Ultralytics cannot be a dependency here.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from spaces.models.head import Detect, make_anchors

from .assigner import TaskAlignedAssigner, bbox_ciou


@dataclass(frozen=True)
class LossGains:
    box: float = 7.5
    cls: float = 0.5
    dfl: float = 1.5


def decode_distances(pred_dist: Tensor, reg_max: int) -> Tensor:
    """(B, A, 4*reg_max) logits -> (B, A, 4) expected (l, t, r, b) distances in grid cells."""
    b, a, _ = pred_dist.shape
    proj = torch.arange(reg_max, dtype=pred_dist.dtype, device=pred_dist.device)
    return pred_dist.view(b, a, 4, reg_max).softmax(3).matmul(proj)


def distances_to_boxes(dist: Tensor, anchors: Tensor) -> Tensor:
    lt, rb = dist.chunk(2, -1)
    return torch.cat((anchors - lt, anchors + rb), -1)


def boxes_to_distances(anchors: Tensor, boxes: Tensor, reg_max: int) -> Tensor:
    """Target (l, t, r, b) in grid cells, clamped just inside the last DFL bin."""
    x1y1, x2y2 = boxes.chunk(2, -1)
    return torch.cat((anchors - x1y1, x2y2 - anchors), -1).clamp(0, reg_max - 1 - 0.01)


def distribution_focal_loss(pred_dist: Tensor, target: Tensor) -> Tensor:
    """Cross-entropy towards the two bins around a continuous target, weighted by proximity (GFL)."""
    left = target.long()
    right = left + 1
    w_left = right - target
    w_right = 1 - w_left
    return (F.cross_entropy(pred_dist, left.view(-1), reduction="none").view(left.shape) * w_left
            + F.cross_entropy(pred_dist, right.view(-1), reduction="none").view(left.shape) * w_right).mean(-1, keepdim=True)


def flatten_head_outputs(feats: list[Tensor], nc: int, reg_max: int) -> tuple[Tensor, Tensor]:
    """Per-level train-mode head maps -> box logits (B, A, 4*reg_max) and class logits (B, A, nc)."""
    b = feats[0].shape[0]
    no = nc + 4 * reg_max
    dist, cls = torch.cat([f.view(b, no, -1) for f in feats], 2).split((4 * reg_max, nc), 1)
    return dist.permute(0, 2, 1).contiguous(), cls.permute(0, 2, 1).contiguous()


def targets_per_image(batch_idx: Tensor, cls: Tensor, boxes: Tensor, batch_size: int) -> tuple[Tensor, Tensor, Tensor]:
    """Concatenated targets -> padded (B, M, 1) labels, (B, M, 4) xyxy boxes, (B, M, 1) validity."""
    counts = torch.bincount(batch_idx, minlength=batch_size) if len(batch_idx) else torch.zeros(batch_size, dtype=torch.long)
    m = int(counts.max()) if len(counts) else 0
    labels = torch.zeros(batch_size, m, 1)
    out_boxes = torch.zeros(batch_size, m, 4)
    valid = torch.zeros(batch_size, m, 1)
    for i in range(batch_size):
        mine = batch_idx == i
        n = int(mine.sum())
        labels[i, :n, 0] = cls[mine].float()
        out_boxes[i, :n] = boxes[mine]
        valid[i, :n] = 1.0
    return labels, out_boxes, valid


class DetectionLoss:
    """Loss of a YOLO detector's train-mode outputs against letterboxed pixel targets.

    ``__call__`` returns (total to back-propagate, detached [box, cls, dfl] for logging). The
    total is summed over the batch (Ultralytics' convention) so gradients scale with batch size.
    """

    def __init__(self, head: Detect, gains: LossGains = LossGains(), topk: int = 10) -> None:
        self.nc, self.reg_max = head.nc, head.reg_max
        self.strides = head.stride.detach().clone()
        self.gains = gains
        self.assigner = TaskAlignedAssigner(head.nc, topk=topk, alpha=0.5, beta=6.0)

    def __call__(self, feats: list[Tensor], batch_idx: Tensor, cls: Tensor, boxes: Tensor) -> tuple[Tensor, Tensor]:
        """feats: train-mode head outputs; targets: batch_idx (N,), cls (N,), boxes (N, 4) xyxy pixels."""
        pred_dist, pred_cls = flatten_head_outputs(feats, self.nc, self.reg_max)
        b = pred_cls.shape[0]
        anchors, stride_col = make_anchors(feats, self.strides, 0.5)
        gt_labels, gt_boxes, valid = targets_per_image(batch_idx, cls, boxes, b)
        pred_boxes = distances_to_boxes(decode_distances(pred_dist, self.reg_max), anchors)  # grid units

        _, target_boxes, target_scores, fg = self.assigner(
            pred_cls.detach().sigmoid(), (pred_boxes.detach() * stride_col).to(gt_boxes.dtype),
            anchors * stride_col, gt_labels, gt_boxes, valid)
        score_sum = max(target_scores.sum(), 1.0)
        loss_cls = F.binary_cross_entropy_with_logits(pred_cls, target_scores.to(pred_cls.dtype), reduction="none").sum() / score_sum
        loss_box = pred_cls.new_zeros(())
        loss_dfl = pred_cls.new_zeros(())
        if fg.any():
            target_boxes = target_boxes / stride_col
            weight = target_scores.sum(-1)[fg].unsqueeze(-1)
            ciou = bbox_ciou(pred_boxes[fg], target_boxes[fg])
            loss_box = ((1.0 - ciou) * weight).sum() / score_sum
            target_dist = boxes_to_distances(anchors, target_boxes, self.reg_max)
            dfl = distribution_focal_loss(pred_dist[fg].view(-1, self.reg_max), target_dist[fg])
            loss_dfl = (dfl * weight).sum() / score_sum
        parts = torch.stack((loss_box * self.gains.box, loss_cls * self.gains.cls, loss_dfl * self.gains.dfl))
        return parts.sum() * b, parts.detach()
