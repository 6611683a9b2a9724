"""The slower, more faithful proxy: a short fine-tune (a few hundred steps), then mAP.

Adaptive-BN recalibration ranks lightly pruned candidates well but collapses on heavily pruned
nano models; a few hundred fine-tuning steps from the pruned weights track the full fine-tune
better, at roughly a minute per candidate on a CPU. The data order is fixed by the seed, so
every candidate sees exactly the same batches.
"""
from __future__ import annotations

import copy
import itertools
from typing import TYPE_CHECKING, Any

from evaluators._base import Candidate, Evaluator, RunContext
from evaluators.proxy_accuracy import MAP50, MAP50_95

if TYPE_CHECKING:  # torch and the data pipeline load when the proxy is built, not for the metric table
    from evaluators.data import DataConfig


class FinetuneMapEvaluator(Evaluator):
    metrics = (MAP50_95, MAP50)
    needs_data = True
    cost = 50
    name = "proxy"

    @classmethod
    def for_run(cls, run: RunContext) -> "FinetuneMapEvaluator | None":
        settings = run.settings
        if settings.proxy != "finetune":
            return None
        return cls(run.data, run.imgsz, steps=settings.finetune_steps, val_images=settings.val_images,
                   seed=settings.seed)

    def __init__(self, data: DataConfig | str, imgsz: int, steps: int = 200, batch_size: int = 16, lr: float = 5e-4,
                 val_images: int = 200, seed: int = 0) -> None:
        import torch

        from evaluators.data import DataConfig, DetectionDataset, collate_detections, load_data_config

        self.data = data if isinstance(data, DataConfig) else load_data_config(data)
        self.imgsz, self.steps, self.lr, self.val_images = imgsz, steps, lr, val_images
        dataset = DetectionDataset(self.data.images("train"), imgsz, nc=self.data.nc)
        order = torch.randperm(len(dataset), generator=torch.Generator().manual_seed(seed)).tolist()
        self._loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, sampler=order,
                                                   collate_fn=collate_detections)

    def _batches(self) -> Any:
        while True:  # re-read the data each pass (itertools.cycle would hold every batch in memory)
            yield from self._loader

    def evaluate(self, candidate: Candidate) -> dict[str, Any]:
        import torch
        from torch import nn

        from evaluators.detection_eval import evaluate_detector
        from evaluators.training.loss import DetectionLoss

        model = copy.deepcopy(candidate.model).train()
        loss_fn = DetectionLoss(model.head)
        optimizer = torch.optim.AdamW(model.parameters(), lr=self.lr, weight_decay=5e-4)
        for batch in itertools.islice(self._batches(), self.steps):
            loss, _ = loss_fn(model(batch["img"]), batch["batch_idx"], batch["cls"], batch["boxes"])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), max_norm=10.0)
            optimizer.step()
        result = evaluate_detector(model.eval(), self.data, imgsz=self.imgsz, split="val", max_images=self.val_images)
        return {"map50_95": result["map50_95"], "map50": result["map50"]}
