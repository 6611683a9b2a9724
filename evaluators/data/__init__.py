"""Detection data: data.yaml configs, the YOLO-format dataset and the embedded digits-det set.

Only the config and the letterbox are imported with the package; the dataset (torch) and the
digits-det generator load on first use (PEP 562), so reading a run's data config costs no torch
import. (``letterbox`` stays eager: its submodule has the function's name, and a lazy name would be
shadowed by the submodule once anything imports it.)"""
from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from evaluators.data.config import DataConfig, label_path_for, load_data_config
from evaluators.data.letterbox import letterbox

if TYPE_CHECKING:
    from evaluators.data.dataset import DetectionDataset, collate_detections
    from evaluators.data.digits_det import build_digits_det, default_digits_det

_LAZY = {"DetectionDataset": "dataset", "collate_detections": "dataset", "build_digits_det": "digits_det",
         "default_digits_det": "digits_det"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


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
