"""The detection loss on a few fixed training images: what gradient importances (taylor,
hessian) differentiate when a channel space scores a detector's channels."""
from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from evaluators.data import DataConfig, DetectionDataset, collate_detections
from evaluators.training.loss import DetectionLoss


def detection_calibration_loss(data: DataConfig, imgsz: int, images: int = 16) -> Callable[[nn.Module], list[torch.Tensor]]:
    """Per-image detection losses of the first ``images`` training images.

    The model stays in eval mode (BatchNorm statistics are read, never updated); only the Detect
    head is switched to return raw feature maps, which the loss needs.
    """
    dataset = DetectionDataset(data.images("train")[:images], imgsz, nc=data.nc)
    samples = [collate_detections([dataset[i]]) for i in range(len(dataset))]

    def losses(model: nn.Module) -> list[torch.Tensor]:
        model.eval()
        head = model.head
        loss_fn = DetectionLoss(head)
        head.training = True  # the Detect module alone: its BatchNorms stay in eval mode
        try:
            out = []
            for batch in samples:
                loss, _ = loss_fn(model(batch["img"]), batch["batch_idx"], batch["cls"], batch["boxes"])
                out.append(loss)
            return out
        finally:
            head.training = False

    return losses
