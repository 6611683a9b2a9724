"""Evaluate a detector on a YOLO-format split: COCO mAP50-95 / mAP50 and throughput."""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import torch
from torch import nn
from tqdm import tqdm

from evaluators.coco_metrics import DetectionMetrics
from evaluators.data import DataConfig, DetectionDataset, collate_detections, load_data_config
from evaluators.image_size import DEFAULT_IMGSZ, check_imgsz  # re-exported: callers import them from here
from evaluators.choice_names import DEFAULT_EVAL_NMS
from evaluators.postprocess import check_nms_rule, non_max_suppression, scale_boxes_to_original
from spaces.errors import ArchpruneError

def evaluation_convention(nms: str = DEFAULT_EVAL_NMS) -> str:
    """How an mAP was computed, in words: results of different conventions must not be compared."""
    return f"{nms} NMS, rect val batches (Ultralytics 8.4 validator)"


def resolve_imgsz(model: nn.Module, imgsz: int | None) -> int:
    """The size to evaluate at: the one asked for, else the checkpoint's training size, else 640."""
    return check_imgsz(imgsz or getattr(model, "imgsz", None) or DEFAULT_IMGSZ)


def model_for_data(source: str, data: DataConfig, seed: int = 0) -> tuple[nn.Module, bool]:
    """Load ``source`` for use on ``data``; returns (model, whether it was built fresh by name).

    A model *name* (yolov8n ...) takes the data's class count and names; a checkpoint must
    already predict the data's classes.
    """
    from spaces.models import build_model, load_model
    from spaces.models.families import family_spec
    from spaces.models.loader import is_structure_file, structure_model

    if family_spec(source) is not None and not Path(source).exists():
        model = build_model(source, nc=data.nc, seed=seed)
        model.names = list(data.names)
        return model, True
    if is_structure_file(source):  # a searched block structure: built fresh for the data's classes
        torch.manual_seed(seed)
        return structure_model(source, nc=data.nc, names=list(data.names)), True
    model = load_model(source)
    check_classes(model, data)
    return model, False


def check_classes(model: nn.Module, data: DataConfig) -> None:
    nc = getattr(model, "nc", None)
    if nc is not None and nc != data.nc:
        raise ArchpruneError(f"the model predicts {nc} classes but {data.yaml_path} has {data.nc}; "
                             "evaluate on data with the same classes (a model named by name, e.g. yolov8n, "
                             "takes the data's class count)")


@torch.no_grad()
def evaluate_detector(model: nn.Module, data: DataConfig | str, imgsz: int | None = None, split: str = "val",
                      batch_size: int = 16, conf_thres: float = 0.001, iou_thres: float = 0.7,
                      max_det: int = 300, max_images: int | None = None, progress: bool = False,
                      first_image: int = 0, nms: str = DEFAULT_EVAL_NMS, rect: bool = True) -> dict[str, Any]:
    """mAP of ``model`` on one split, in original-image coordinates.

    ``nms``: "multi-label" (default; Ultralytics' ``DetectionValidator``, so the number matches
    ``yolo val``) or "single-label" (one class per anchor, as a deployed model predicts).
    Scores the split's images ``first_image`` up to ``first_image + max_images`` (all the rest when
    ``max_images`` is None), so a caller can hold part of a split out of what a proxy scores.
    ``rect=False``: every image letterboxed onto the square ``imgsz`` canvas (a model file of fixed
    input size sees images so when deployed; Ultralytics' rect batches change the canvas).
    Returns ``{"map50_95", "map50", "images", "images_per_s", "imgsz", "nms", "convention"}``; images/s counts the
    whole loop (decode, letterbox, forward, NMS) on this process's threads.
    """
    multi_label = check_nms_rule(nms)
    config = data if isinstance(data, DataConfig) else load_data_config(data)
    check_classes(model, config)
    size = resolve_imgsz(model, imgsz)
    if first_image < 0:
        raise ArchpruneError(f"first_image must be at least 0, got {first_image}")
    files = config.images(split)[first_image: first_image + max_images if max_images else None]
    if not files:
        raise ArchpruneError(f"no {split} images from index {first_image} on in {config.yaml_path}")
    # rect batches (sorted by aspect, each on its own padded canvas) as Ultralytics' validator builds them
    dataset = DetectionDataset(files, size, nc=config.nc, rect_batch=batch_size if rect else None)
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=False,
                                         collate_fn=collate_detections, num_workers=0)
    was_training = model.training
    model.eval()
    metrics = DetectionMetrics(config.nc)
    start = time.perf_counter()
    image_id = 0
    try:
        for batch in tqdm(loader, desc=f"eval {split}", unit="batch", disable=not progress, leave=False):
            detections = non_max_suppression(model(batch["img"]), conf_thres, iou_thres, max_det,
                                             multi_label=multi_label)
            for i, det in enumerate(detections):
                det = scale_boxes_to_original(det, batch["ratio"][i], batch["pad"][i], batch["orig_shape"][i])
                mine = batch["batch_idx"] == i
                metrics.update(image_id, det, batch["orig_boxes"][mine], batch["cls"][mine])
                image_id += 1
    finally:
        model.train(was_training)
    seconds = time.perf_counter() - start
    result = metrics.compute()
    return {"map50_95": result["map50_95"], "map50": result["map50"], "images": image_id,
            "images_per_s": image_id / seconds if seconds > 0 else float("nan"), "imgsz": size, "nms": nms,
            "convention": evaluation_convention(nms)}
