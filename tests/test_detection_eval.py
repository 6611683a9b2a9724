"""The evaluation pipeline end to end: letterbox, model, NMS, un-letterbox, pycocotools."""
from __future__ import annotations

import torch
from torch import nn

from evaluators.data import DetectionDataset, load_data_config
from evaluators.detection_eval import evaluate_detector
from spaces.errors import ArchpruneError
from spaces.models import build_model
from tests.conftest import shared_path

import pytest


class OracleDetector(nn.Module):
    """Answers each batch with its ground truth, in the raw (B, 4 + nc, A) model layout."""

    def __init__(self, dataset: DetectionDataset, nc: int, batch_size: int, shift_px: float = 0.0,
                 confusion: float = 0.0) -> None:
        super().__init__()
        self.items = [dataset[i] for i in range(len(dataset))]
        self.nc, self.batch_size, self.shift, self.calls = nc, batch_size, shift_px, 0
        self.confusion = confusion  # > 0: each box also scores the next class this much (above its own 0.9)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch = self.items[self.calls * self.batch_size: self.calls * self.batch_size + x.shape[0]]
        self.calls += 1
        out = torch.zeros(x.shape[0], 4 + self.nc, 64)
        for b, item in enumerate(batch):
            boxes = item["boxes"]
            n = len(boxes)
            out[b, 0, :n] = (boxes[:, 0] + boxes[:, 2]) / 2 + self.shift
            out[b, 1, :n] = (boxes[:, 1] + boxes[:, 3]) / 2
            out[b, 2, :n] = boxes[:, 2] - boxes[:, 0]
            out[b, 3, :n] = boxes[:, 3] - boxes[:, 1]
            out[b, 4 + item["cls"], torch.arange(n)] = 0.9
            if self.confusion:
                out[b, 4 + (item["cls"] + 1) % self.nc, torch.arange(n)] = self.confusion
        return out


def test_oracle_scores_one_through_letterbox_on_real_images() -> None:
    data = load_data_config(shared_path("coco128", "coco128.yaml"))
    files = data.images("train")[:12]
    imgsz, batch = 320, 5
    oracle = OracleDetector(DetectionDataset(files, imgsz, nc=80, rect_batch=batch), 80, batch)
    result = evaluate_detector(oracle, data, imgsz=imgsz, split="train", batch_size=batch, max_images=12)
    assert result["images"] == 12 and result["images_per_s"] > 0
    assert result["map50_95"] == pytest.approx(1.0, abs=1e-6)
    assert result["map50"] == pytest.approx(1.0, abs=1e-6)


def test_map_follows_ultralytics_validator_multi_label_rule() -> None:
    """Every box of this oracle also scores a wrong class higher than its right one. Single-label NMS
    keeps only the wrong label (mAP 0); multi-label, `yolo val`'s rule and our default, keeps both
    as separate boxes, so every object is found, behind false positives."""
    data = load_data_config(shared_path("coco128", "coco128.yaml"))
    files = data.images("train")[:12]

    def scored(**kwargs: str) -> dict:
        oracle = OracleDetector(DetectionDataset(files, 320, nc=80, rect_batch=4), 80, 4, confusion=0.95)
        return evaluate_detector(oracle, data, imgsz=320, split="train", batch_size=4, max_images=12, **kwargs)

    default, single = scored(), scored(nms="single-label")
    assert default["nms"] == "multi-label" and single["nms"] == "single-label"
    assert single["map50_95"] == pytest.approx(0.0, abs=1e-6)
    assert 0.3 < default["map50_95"] < 1.0
    assert scored(nms="multi-label")["map50_95"] == default["map50_95"]
    with pytest.raises(ArchpruneError, match="unknown NMS rule 'multi'"):
        scored(nms="multi")


def test_a_shifted_oracle_scores_less() -> None:
    data = load_data_config(shared_path("coco128", "coco128.yaml"))
    files = data.images("train")[:12]
    oracle = OracleDetector(DetectionDataset(files, 320, nc=80, rect_batch=4), 80, 4, shift_px=6.0)
    result = evaluate_detector(oracle, data, imgsz=320, split="train", batch_size=4, max_images=12)
    assert 0.0 < result["map50_95"] < 0.9


def test_first_image_scores_a_later_slice_of_the_split() -> None:
    data = load_data_config(shared_path("coco128", "coco128.yaml"))
    files = data.images("train")
    imgsz, batch = 320, 4
    # an oracle of images 4..11 is perfect on exactly that slice, and misaligned on the first 8
    oracle = OracleDetector(DetectionDataset(files[4:12], imgsz, nc=80, rect_batch=batch), 80, batch)
    held_out = evaluate_detector(oracle, data, imgsz=imgsz, split="train", batch_size=batch, max_images=8,
                                 first_image=4)
    assert held_out["images"] == 8 and held_out["map50_95"] == pytest.approx(1.0, abs=1e-6)
    oracle.calls = 0
    assert evaluate_detector(oracle, data, imgsz=imgsz, split="train", batch_size=batch, max_images=8)["map50_95"] < 0.9
    rest = OracleDetector(DetectionDataset(files[120:], imgsz, nc=80, rect_batch=batch), 80, batch)
    tail = evaluate_detector(rest, data, imgsz=imgsz, split="train", batch_size=batch, first_image=120)
    assert tail["images"] == len(files) - 120 and tail["map50_95"] == pytest.approx(1.0, abs=1e-6)
    with pytest.raises(ArchpruneError, match="no train images from index"):
        evaluate_detector(rest, data, imgsz=imgsz, split="train", first_image=len(files))


def test_class_count_mismatch_and_bad_size_are_errors() -> None:
    data = load_data_config(shared_path("coco8", "coco8.yaml"))
    with pytest.raises(ArchpruneError, match="predicts 3 classes but .* has 80"):
        evaluate_detector(build_model("yolov8n", nc=3), data, imgsz=64)
    with pytest.raises(ArchpruneError, match="not a multiple of 32"):
        evaluate_detector(build_model("yolov8n", nc=80), data, imgsz=100)


def test_default_size_is_the_checkpoints_then_640() -> None:
    data = load_data_config(shared_path("coco8", "coco8.yaml"))
    model = build_model("yolov8n", nc=80)
    model.imgsz = 96
    assert evaluate_detector(model, data, max_images=2)["imgsz"] == 96
    model.imgsz = None
    assert evaluate_detector(model, data, max_images=1)["imgsz"] == 640
