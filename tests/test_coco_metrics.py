"""DetectionMetrics must equal an independent file-based pycocotools run."""
from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from evaluators.coco_metrics import DetectionMetrics
from spaces.errors import ArchpruneError

NC = 4


def _random_boxes(rng: np.random.Generator, n: int, size: float = 200.0) -> np.ndarray:
    xy = rng.uniform(0, size, (n, 2))
    wh = rng.uniform(5, 80, (n, 2))
    return np.concatenate([xy, xy + wh], 1)


def _make_dataset(seed: int = 0, n_images: int = 6):
    """Per image: GT boxes/classes and noisy predictions with misses and false positives."""
    rng = np.random.default_rng(seed)
    data = []
    for img in range(n_images):
        n_gt = int(rng.integers(0, 7))  # includes images without GT
        gt = _random_boxes(rng, n_gt)
        gcls = rng.integers(0, NC, n_gt)
        preds = []
        for b, c in zip(gt, gcls):
            if rng.random() < 0.25:  # miss
                continue
            jitter = rng.normal(0, 4.0, 4)
            pc = c if rng.random() > 0.15 else (c + 1) % NC  # occasional wrong class
            preds.append([*(b + jitter), rng.uniform(0.05, 1.0), pc])
        for b in _random_boxes(rng, int(rng.integers(0, 4))):  # false positives
            preds.append([*b, rng.uniform(0.01, 0.6), rng.integers(0, NC)])
        pred = np.array(preds, dtype=np.float64).reshape(-1, 6)
        data.append((img + 1, pred, gt, gcls))
    return data


def _pycocotools_reference(data, tmp_path: Path) -> tuple[float, float]:
    """Independent COCOeval from JSON files (GT file + results file)."""
    images, anns, dets = [], [], []
    for img_id, pred, gt, gcls in data:
        images.append({"id": img_id, "width": 400, "height": 400, "file_name": f"{img_id}.jpg"})
        for b, c in zip(gt, gcls):
            w, h = float(b[2] - b[0]), float(b[3] - b[1])
            anns.append({"id": len(anns) + 1, "image_id": img_id, "category_id": int(c) + 1,
                         "bbox": [float(b[0]), float(b[1]), w, h], "area": w * h, "iscrowd": 0})
        for p in pred:
            dets.append({"image_id": img_id, "category_id": int(p[5]) + 1, "score": float(p[4]),
                         "bbox": [float(p[0]), float(p[1]), float(p[2] - p[0]), float(p[3] - p[1])]})
    gt_file, dt_file = tmp_path / "gt.json", tmp_path / "dt.json"
    gt_file.write_text(json.dumps({"images": images, "annotations": anns,
                                   "categories": [{"id": c + 1, "name": f"c{c}"} for c in range(NC)]}))
    dt_file.write_text(json.dumps(dets))
    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO(str(gt_file))
        ev = COCOeval(coco, coco.loadRes(str(dt_file)), "bbox")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return float(ev.stats[0]), float(ev.stats[1])


def _metrics(data) -> DetectionMetrics:
    m = DetectionMetrics(NC)
    for img_id, pred, gt, gcls in data:
        m.update(img_id, torch.from_numpy(pred), gt, gcls)
    return m


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_matches_independent_pycocotools(seed: int, tmp_path: Path) -> None:
    data = _make_dataset(seed)
    res = _metrics(data).compute()
    ref50_95, ref50 = _pycocotools_reference(data, tmp_path)
    assert 0.05 < ref50_95 < 0.95  # the fixture is non-trivial
    assert res["map50_95"] == pytest.approx(ref50_95, abs=1e-6)
    assert res["map50"] == pytest.approx(ref50, abs=1e-6)


def test_images_count_and_numpy_input() -> None:
    data = _make_dataset(3)
    m = DetectionMetrics(NC)
    for img_id, pred, gt, gcls in data:
        m.update(img_id, pred, gt.tolist(), gcls.tolist())  # ndarray pred, list GT
    assert m.images == len(data)
    assert m.compute() == _metrics(data).compute()


def test_perfect_predictions_score_one() -> None:
    m = DetectionMetrics(NC)
    rng = np.random.default_rng(5)
    for img in range(4):
        gt = _random_boxes(rng, 5)
        gcls = rng.integers(0, NC, 5)
        pred = np.concatenate([gt, np.full((5, 1), 0.9), gcls[:, None]], 1)
        m.update(img, pred, gt, gcls)
    res = m.compute()
    assert res["map50_95"] == pytest.approx(1.0)
    assert res["map50"] == pytest.approx(1.0)


def test_no_predictions_is_zero() -> None:
    m = DetectionMetrics(NC)
    m.update(0, torch.zeros(0, 6), [[10, 10, 50, 50]], [1])
    m.update(1, np.zeros((0, 6)), np.zeros((0, 4)), np.zeros(0))
    assert m.compute() == {"map50_95": 0.0, "map50": 0.0}
    assert m.images == 2


def test_no_ground_truth_is_zero() -> None:
    m = DetectionMetrics(NC)
    m.update(0, np.array([[10, 10, 50, 50, 0.8, 2]]), np.zeros((0, 4)), [])
    assert m.compute() == {"map50_95": 0.0, "map50": 0.0}


def test_empty_metrics_is_zero() -> None:
    assert DetectionMetrics(NC).compute() == {"map50_95": 0.0, "map50": 0.0}


def test_prediction_for_class_without_gt_is_fine() -> None:
    m = DetectionMetrics(NC)
    m.update(0, np.array([[10, 10, 50, 50, 0.9, 0], [100, 100, 150, 150, 0.8, 3]]), [[10, 10, 50, 50]], [0])
    res = m.compute()
    assert res["map50_95"] == pytest.approx(1.0) and res["map50"] == pytest.approx(1.0)


def test_shifted_box_iou_about_0p6() -> None:
    # 100x100 box shifted by 23 px in x: IoU = 7700 / 12300 ~ 0.626 (clear of the 0.60 / 0.65 thresholds)
    m = DetectionMetrics(NC)
    m.update(0, np.array([[123.0, 100.0, 223.0, 200.0, 0.9, 1]]), [[100.0, 100.0, 200.0, 200.0]], [1])
    res = m.compute()
    assert res["map50"] == pytest.approx(1.0)
    # matches at IoU thresholds .50 and .55 and .60 only: 3 of 10
    assert res["map50_95"] == pytest.approx(0.3)


def test_bad_input_raises() -> None:
    m = DetectionMetrics(NC)
    with pytest.raises(ArchpruneError):
        m.update(0, np.zeros((2, 5)), np.zeros((0, 4)), [])
    with pytest.raises(ArchpruneError):
        m.update(0, np.zeros((0, 6)), np.zeros((2, 4)), [1])
    with pytest.raises(ArchpruneError):
        m.update(0, np.zeros((0, 6)), np.zeros((1, 4)), [NC])
    m.update(0, np.zeros((0, 6)), np.zeros((0, 4)), [])
    with pytest.raises(ArchpruneError):
        m.update(0, np.zeros((0, 6)), np.zeros((0, 4)), [])
    with pytest.raises(ArchpruneError):
        DetectionMetrics(0)
