"""Knowledge distillation from an unpruned teacher into a pruned student.

Head distillation matches the student's class scores (BCE towards the teacher's sigmoid scores)
and box distributions (KL divergence between the DFL bin distributions, weighted by the
teacher's confidence so background anchors do not dominate). Optional feature distillation
maps each neck level of the student through a 1x1 adapter onto the teacher's and takes the MSE,
as distillation-assisted pruning does when channel counts differ.
"""
from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from spaces.errors import ArchpruneError
from spaces.models import YOLODetector

from .loss import flatten_head_outputs


def check_same_layout(student: YOLODetector, teacher: YOLODetector) -> None:
    """Distillation compares outputs anchor by anchor: class count, bins and strides must agree."""
    s, t = student.head, teacher.head
    pairs = {"classes": (s.nc, t.nc), "DFL bins": (s.reg_max, t.reg_max), "pyramid levels": (s.nl, t.nl),
             "strides": (s.stride.tolist(), t.stride.tolist())}
    for what, (a, b) in pairs.items():
        if a != b:
            raise ArchpruneError(f"the teacher's output layout differs from the student's: {what} {b} vs {a}; "
                                 "distil from the unpruned model the student was pruned from")


def head_kd_loss(student_feats: list[Tensor], teacher_feats: list[Tensor], nc: int, reg_max: int,
                 temperature: float = 1.0) -> Tensor:
    """Per-image head distillation: BCE of class logits towards the teacher's sigmoid scores plus
    KL between DFL bin distributions, both weighted by the teacher's confidence per anchor."""
    s_dist, s_cls = flatten_head_outputs(student_feats, nc, reg_max)
    t_dist, t_cls = flatten_head_outputs(teacher_feats, nc, reg_max)
    temp = temperature
    t_prob = (t_cls / temp).sigmoid()
    confidence = t_prob.amax(-1)  # (B, A): where the teacher sees an object
    norm = confidence.sum().clamp(min=1.0)
    cls_kd = F.binary_cross_entropy_with_logits(s_cls / temp, t_prob, reduction="none").sum() / norm
    b, a, _ = s_dist.shape
    s_log = F.log_softmax(s_dist.view(b, a, 4, reg_max) / temp, -1)
    t_log = F.log_softmax(t_dist.view(b, a, 4, reg_max) / temp, -1)
    box_kd = (F.kl_div(s_log, t_log, reduction="none", log_target=True).sum(-1).mean(-1) * confidence).sum() / norm
    return (cls_kd + box_kd) * temp**2


class _InputCatcher:
    """Keeps the last inputs of a module (the neck features a Detect head receives)."""

    def __init__(self, module: nn.Module) -> None:
        self.value: list[Tensor] = []
        self.handle = module.register_forward_pre_hook(self._catch)

    def _catch(self, module: nn.Module, args: tuple[Any, ...]) -> None:
        self.value = list(args[0])


class HeadDistiller(nn.Module):
    def __init__(self, student: YOLODetector, teacher: YOLODetector, weight: float = 1.0,
                 feature_weight: float = 0.0, temperature: float = 1.0) -> None:
        super().__init__()
        check_same_layout(student, teacher)
        self.weight, self.feature_weight, self.temperature = weight, feature_weight, temperature
        self.nc, self.reg_max = student.head.nc, student.head.reg_max
        self.teacher = teacher.eval()
        for p in self.teacher.parameters():
            p.requires_grad_(False)
        # Only the Detect module's own flag: it then returns raw per-level maps while every
        # BatchNorm of the teacher stays in eval mode (running statistics, no updates).
        self.teacher.head.training = True
        self.adapters = nn.ModuleList()
        if feature_weight > 0:
            s_ch = [seq[0].conv.in_channels for seq in student.head.cv2]
            t_ch = [seq[0].conv.in_channels for seq in teacher.head.cv2]
            self.adapters.extend(nn.Conv2d(a, b, 1) for a, b in zip(s_ch, t_ch))
            self._student_neck = _InputCatcher(student.head)
            self._teacher_neck = _InputCatcher(self.teacher.head)

    def loss(self, images: Tensor, student_feats: list[Tensor]) -> Tensor:
        with torch.no_grad():
            teacher_feats = self.teacher(images)
        total = self.weight * head_kd_loss(student_feats, teacher_feats, self.nc, self.reg_max, self.temperature)
        if self.feature_weight > 0:
            feats = [F.mse_loss(adapt(s), t) for adapt, s, t in
                     zip(self.adapters, self._student_neck.value, self._teacher_neck.value)]
            total = total + self.feature_weight * torch.stack(feats).mean()
        return total

    def trainable_parameters(self) -> list[nn.Parameter]:
        return list(self.adapters.parameters())  # the teacher is frozen: only adapters train

    def adapter_state(self) -> dict[str, Any]:
        """What a checkpoint must keep to resume (the teacher is reloaded from its source)."""
        return self.adapters.state_dict()

    def load_adapter_state(self, state: dict[str, Any]) -> None:
        self.adapters.load_state_dict(state)
