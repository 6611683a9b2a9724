"""YOLOv8 / YOLO11 detectors in plain PyTorch, and the ways to load them."""
from __future__ import annotations

from .architecture import architecture_of, build_from_architecture, channel_layout
from .checkpoint import save_checkpoint
from .families import model_names
from .loader import build_model, load_model
from .yolo import YOLODetector

__all__ = [
    "YOLODetector",
    "architecture_of",
    "build_from_architecture",
    "build_model",
    "channel_layout",
    "load_model",
    "model_names",
    "save_checkpoint",
]
