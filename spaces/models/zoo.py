"""Models shipped inside archprune (no download at run time: the weights are in the package)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

WEIGHTS = Path(__file__).with_name("weights")


@dataclass(frozen=True)
class EmbeddedModel:
    name: str
    file: str
    description: str
    reproduce: str  # the exact command (and seed) that trains it again


EMBEDDED: dict[str, EmbeddedModel] = {
    "yolov8n-digits": EmbeddedModel(
        name="yolov8n-digits",
        file="yolov8n-digits.pt",
        description="YOLOv8n trained on digits-det (10 classes, 160 px), stored in fp16",
        reproduce="archprune train --model yolov8n --data digits-det --imgsz 160 --epochs 100 --batch 32 "
                  "--seed 0 --out results/yolov8n-digits",
    ),
    "yolov8n-digits-sparse": EmbeddedModel(
        name="yolov8n-digits-sparse",
        file="yolov8n-digits-sparse.pt",
        description="yolov8n-digits after Network Slimming sparse training (L1 on the channel groups' BN "
                    "scales), a base to prune by a criterion; fp16",
        reproduce="archprune finetune --model yolov8n-digits --teacher yolov8n-digits --data digits-det "
                  "--epochs 20 --sparsity slim --sparsity-weight 1e-4 --lr0 0.002 --seed 0 "
                  "--out results/yolov8n-digits-sparse",
    ),
    "yolov8n-digits-elastic": EmbeddedModel(
        name="yolov8n-digits-elastic",
        file="yolov8n-digits-elastic.pt",
        description="yolov8n-digits after elastic-width training over its own channel space: every genome "
                    "is a trained sub-network (channel order recorded); fp16",
        reproduce="archprune finetune --model yolov8n-digits --teacher yolov8n-digits --data digits-det "
                  "--epochs 10 --elastic --elastic-samples 2 --elastic-weight 0.5 --importance l1 --seed 0 "
                  "--out results/yolov8n-digits-elastic",
    ),
    "yolov8n-digits-elastic-depth": EmbeddedModel(
        name="yolov8n-digits-elastic-depth",
        file="yolov8n-digits-elastic-depth.pt",
        description="yolov8n-digits after elastic width-and-depth training: every genome of a `--depth` "
                    "channel space, trailing C2f bottlenecks dropped or not, is a trained sub-network "
                    "(channel order recorded); fp16",
        reproduce="archprune finetune --model yolov8n-digits --teacher yolov8n-digits --data digits-det "
                  "--epochs 10 --elastic --elastic-depth --elastic-samples 2 --elastic-weight 0.5 "
                  "--importance l1 --seed 0 --out results/yolov8n-digits-elastic-depth",
    ),
}


def embedded_path(name: str) -> Path | None:
    """The shipped file for an embedded model name; None if ``name`` is not one."""
    entry = EMBEDDED.get(name.lower())
    return WEIGHTS / entry.file if entry else None
