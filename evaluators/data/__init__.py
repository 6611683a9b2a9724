"""Detection data: data.yaml configs, the YOLO-format dataset and the embedded digits-det set."""
from __future__ import annotations

from evaluators.data.config import DataConfig, label_path_for, load_data_config
from evaluators.data.dataset import DetectionDataset, collate_detections
from evaluators.data.letterbox import letterbox
from evaluators.data.digits_det import build_digits_det, default_digits_det

__all__ = [
    "DataConfig",
    "DetectionDataset",
    "build_digits_det",
    "collate_detections",
    "default_digits_det",
    "label_path_for",
    "letterbox",
    "load_data_config",
]
