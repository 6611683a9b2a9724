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
}


def embedded_path(name: str) -> Path | None:
    """The shipped file for an embedded model name; None if ``name`` is not one."""
    entry = EMBEDDED.get(name.lower())
    return WEIGHTS / entry.file if entry else None
