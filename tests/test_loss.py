"""Detection loss on small hand-made cases: assigner, CIoU, DFL, and the whole loss."""
from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch

from evaluators.training.assigner import TaskAlignedAssigner, bbox_ciou
from evaluators.training.loss import DetectionLoss, distribution_focal_loss
from spaces.models import build_model

REG_MAX = 16


def test_ciou_is_one_for_identical_boxes_and_falls_with_distance() -> None:
    box = torch.tensor([[10.0, 10.0, 30.0, 40.0]])
    assert bbox_ciou(box, box).item() == pytest.approx(1.0, abs=1e-5)
    near = bbox_ciou(box, box + torch.tensor([2.0, 0, 2.0, 0])).item()
    far = bbox_ciou(box, box + torch.tensor([8.0, 0, 8.0, 0])).item()
    disjoint = bbox_ciou(box, box + torch.tensor([50.0, 0, 50.0, 0])).item()
    assert 1.0 > near > far > 0 > disjoint


def test_dfl_prefers_the_bins_around_the_target() -> None:
    target = torch.tensor([[3.25]])
    good = torch.full((1, REG_MAX), -10.0)
    good[0, 3], good[0, 4] = math.log(0.75), math.log(0.25)  # exactly the two-bin target
    bad = torch.full((1, REG_MAX), -10.0)
    bad[0, 9] = 0.0
    assert distribution_focal_loss(good, target).item() < distribution_focal_loss(bad, target).item()


def _grid_anchors(size: int, stride: int) -> torch.Tensor:
    n = size // stride
    ys, xs = torch.meshgrid(torch.arange(n) + 0.5, torch.arange(n) + 0.5, indexing="ij")
    return torch.stack((xs, ys), -1).view(-1, 2) * stride


def test_assigner_picks_anchors_inside_the_box_of_its_class() -> None:
    anchors = _grid_anchors(64, 8)  # 64 anchors
    gt_box = torch.tensor([[[8.0, 8.0, 40.0, 40.0]]])
    pd_boxes = gt_box.expand(1, 64, 4).clone()  # every anchor predicts the box exactly
    scores = torch.full((1, 64, 3), 0.1)
    scores[..., 2] = 0.9
    assigner = TaskAlignedAssigner(num_classes=3, topk=5)
    labels, boxes, target_scores, fg = assigner(scores, pd_boxes, anchors, torch.tensor([[[2.0]]]), gt_box,
                                                torch.ones(1, 1, 1))
    inside = ((anchors > 8) & (anchors < 40)).all(-1)
    assert fg[0].sum() == 5  # top-k
    assert inside[fg[0]].all()  # never an anchor outside the box
    assert (labels[0][fg[0]] == 2).all() and torch.equal(boxes[0][fg[0]], gt_box[0].expand(5, 4))
    assert target_scores[0][fg[0]][:, 2].gt(0).all() and target_scores[0][~fg[0]].sum() == 0


def test_assigner_with_no_targets_has_no_foreground() -> None:
    assigner = TaskAlignedAssigner(num_classes=3)
    _, _, scores, fg = assigner(torch.rand(2, 16, 3), torch.rand(2, 16, 4), _grid_anchors(32, 8),
                                torch.zeros(2, 0, 1), torch.zeros(2, 0, 4), torch.zeros(2, 0, 1))
    assert not fg.any() and scores.sum() == 0


def _head_maps(box: torch.Tensor, cls: int, nc: int = 2, size: int = 64, stride: int = 8) -> list[torch.Tensor]:
    """Raw head outputs that predict ``box`` (xyxy px) with class ``cls`` at the anchors inside it."""
    n = size // stride
    anchors = _grid_anchors(size, stride) / stride
    target = box / stride
    dist = torch.cat((anchors - target[:2], target[2:] - anchors), -1).clamp(0, REG_MAX - 1.01)  # (A, 4)
    logits = torch.full((n * n, 4, REG_MAX), -20.0)
    left = dist.floor().long()
    frac = dist - left
    logits.scatter_(2, left.unsqueeze(-1), torch.log(1 - frac + 1e-6).unsqueeze(-1))
    logits.scatter_(2, (left + 1).unsqueeze(-1), torch.log(frac + 1e-6).unsqueeze(-1))
    inside = ((anchors * stride > box[:2]) & (anchors * stride < box[2:])).all(-1)
    cls_logits = torch.full((n * n, nc), -8.0)
    cls_logits[inside, cls] = 6.0
    maps = torch.cat((logits.view(n * n, -1), cls_logits), 1)  # (A, 4*reg_max + nc)
    return [maps.T.reshape(1, -1, n, n)]


def test_a_perfect_prediction_scores_lower_than_a_shifted_one() -> None:
    head = SimpleNamespace(nc=2, reg_max=REG_MAX, stride=torch.tensor([8.0]))
    loss_fn = DetectionLoss(head)
    gt = torch.tensor([[12.0, 10.0, 44.0, 50.0]])
    args = (torch.tensor([0]), torch.tensor([1]), gt)
    perfect, perfect_parts = loss_fn(_head_maps(gt[0], 1), *args)
    shifted, shifted_parts = loss_fn(_head_maps(gt[0] + torch.tensor([9.0, 6.0, 9.0, 6.0]), 1), *args)
    wrong_class, _ = loss_fn(_head_maps(gt[0], 0), *args)
    assert perfect < shifted and perfect < wrong_class
    assert perfect_parts[0] < 0.05 < shifted_parts[0]  # box (CIoU) term
    assert perfect_parts[2] < shifted_parts[2]  # DFL term


def test_empty_targets_give_a_finite_classification_only_loss() -> None:
    model = build_model("yolov8n", nc=3).train()
    loss, parts = DetectionLoss(model.head)(model(torch.rand(2, 3, 64, 64)), torch.zeros(0, dtype=torch.long),
                                            torch.zeros(0, dtype=torch.long), torch.zeros(0, 4))
    assert torch.isfinite(loss) and parts[0] == 0 and parts[2] == 0 and parts[1] > 0
    loss.backward()  # gradients flow through the class branch alone


def test_loss_falls_when_fitting_one_batch() -> None:
    torch.manual_seed(0)
    model = build_model("yolov8n", nc=3).train()
    loss_fn = DetectionLoss(model.head)
    x = torch.rand(2, 3, 96, 96)
    targets = (torch.tensor([0, 0, 1]), torch.tensor([0, 2, 1]),
               torch.tensor([[10.0, 10.0, 50.0, 60.0], [55.0, 40.0, 90.0, 90.0], [20.0, 30.0, 70.0, 80.0]]))
    optimizer = torch.optim.AdamW(model.parameters(), lr=2e-3)
    losses = []
    for _ in range(12):
        loss, _ = loss_fn(model(x), *targets)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]
