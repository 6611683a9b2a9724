"""Proxy accuracy of a pruned detector: adaptive-BN recalibration, then mAP on a fixed subset."""
from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Any

from evaluators._base import Candidate, Evaluator, Metric, RunContext

if TYPE_CHECKING:  # torch and the data pipeline load when the proxy is built, not for the metric table
    import torch

    from evaluators.data import DataConfig


def calibration_images(data: DataConfig, imgsz: int, batches: int = 8, batch_size: int = 16) -> list[torch.Tensor]:
    """The first ``batches * batch_size`` training images, letterboxed, as fixed batches."""
    import torch

    from evaluators.data import DetectionDataset, collate_detections

    files = data.images("train")[: batches * batch_size]
    loader = torch.utils.data.DataLoader(DetectionDataset(files, imgsz, nc=data.nc), batch_size=batch_size,
                                         shuffle=False, collate_fn=collate_detections)
    return [batch["img"] for batch in loader]


MAP50_95 = Metric("map50_95", "max", "mAP50-95", 0.0, 1.0)
MAP50 = Metric("map50", "max", "mAP50", 0.0, 1.0)


class AdaptiveBNMapEvaluator(Evaluator):
    """mAP50-95 / mAP50 after BN recalibration on ``calib_batches`` training batches.

    The calibration images and the validation subset are fixed when the evaluator is created,
    so every candidate is scored on exactly the same data.
    """

    metrics = (MAP50_95, MAP50)
    needs_data = True
    cost = 10
    name = "proxy"

    @classmethod
    def for_run(cls, run: RunContext) -> "AdaptiveBNMapEvaluator | None":
        settings = run.settings
        if settings.proxy != "adaptive-bn":
            return None
        return cls(run.data, run.imgsz, calib_batches=settings.calib_batches, val_images=settings.val_images)

    def __init__(self, data: DataConfig | str, imgsz: int, calib_batches: int = 8, batch_size: int = 16,
                 val_images: int = 200, recalibrate: bool = True) -> None:
        from evaluators.data import DataConfig, load_data_config

        self.data = data if isinstance(data, DataConfig) else load_data_config(data)
        self.imgsz, self.val_images, self.recalibrate = imgsz, val_images, recalibrate
        self._calibration = calibration_images(self.data, imgsz, calib_batches, batch_size)  # decoded once

    def evaluate(self, candidate: Candidate) -> dict[str, Any]:
        from evaluators.bn_recalibration import recalibrate_bn
        from evaluators.detection_eval import evaluate_detector

        model = candidate.model
        if self.recalibrate:
            model = copy.deepcopy(model)  # the candidate itself keeps the base model's statistics
            recalibrate_bn(model, self._calibration)
        result = evaluate_detector(model, self.data, imgsz=self.imgsz, split="val", max_images=self.val_images)
        return {"map50_95": result["map50_95"], "map50": result["map50"]}
