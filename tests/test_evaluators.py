"""Evaluators: FLOPs, latency (onnxruntime and torch), adaptive-BN proxy accuracy."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from evaluators._base import Candidate
from evaluators.bn_recalibration import recalibrate_bn
from evaluators.data import build_digits_det
from evaluators.flops import FlopsEvaluator, count_flops_params
from evaluators.latency import LatencyEvaluator
from evaluators.proxy_accuracy import AdaptiveBNMapEvaluator
from spaces.errors import ArchpruneError
from spaces.models import build_model, load_model


def test_evaluators_declare_directions_and_run_cheapest_first() -> None:
    evaluators = [AdaptiveBNMapEvaluator.__new__(AdaptiveBNMapEvaluator), LatencyEvaluator(), FlopsEvaluator()]
    ordered = sorted(evaluators, key=lambda e: e.cost)
    assert [type(e).__name__ for e in ordered] == ["FlopsEvaluator", "LatencyEvaluator", "AdaptiveBNMapEvaluator"]
    assert FlopsEvaluator().directions == {"flops_g": "min", "params_m": "min"}
    assert AdaptiveBNMapEvaluator.directions["map50_95"] == "max"


def test_flops_evaluator() -> None:
    model = build_model("yolov8n", nc=10)
    assert FlopsEvaluator().evaluate(Candidate(model, 160)) == count_flops_params(model, 160)


@pytest.mark.parametrize("backend", ["ort", "torch"])
def test_latency_is_measured_with_provenance(backend: str) -> None:
    result = LatencyEvaluator(backend=backend, threads=1, runs=5, warmup=1).evaluate(
        Candidate(build_model("yolov8n", nc=10), 64))
    assert 0 < result["latency_ms"] <= result["latency_p90_ms"]
    for key in ("host", "cpu", "provider", "threads"):
        assert result[key] not in ("", None)
    assert result["threads"] == 1
    with pytest.raises(ArchpruneError, match="unknown latency backend"):
        LatencyEvaluator(backend="tensorrt")


def test_bn_recalibration_estimates_the_plain_average_of_batch_statistics() -> None:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4))
    net[1].running_mean.fill_(100.0)  # stale statistics, as after pruning
    batches = [torch.randn(8, 3, 10, 10) + i for i in range(3)]
    assert recalibrate_bn(net, batches) == 3
    with torch.no_grad():
        expected = torch.stack([net[0](b).mean((0, 2, 3)) for b in batches]).mean(0)
    torch.testing.assert_close(net[1].running_mean, expected, rtol=1e-4, atol=1e-5)
    assert not net.training and net[1].momentum == 0.1  # momentum restored


def test_adaptive_bn_proxy_is_repeatable_and_leaves_the_candidate_alone(tmp_path: Path) -> None:
    data = build_digits_det(tmp_path / "dd", seed=2, n_train=32, n_val=8, imgsz=64)
    evaluator = AdaptiveBNMapEvaluator(str(data), imgsz=64, calib_batches=2, batch_size=8, val_images=8)
    model = build_model("yolov8n", nc=10)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    first = evaluator.evaluate(Candidate(model, 64))
    second = evaluator.evaluate(Candidate(model, 64))
    assert first == second and 0.0 <= first["map50_95"] <= first["map50"] <= 1.0
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_finetune_proxy_trains_a_copy_and_is_repeatable(tmp_path: Path) -> None:
    from evaluators.proxy_finetune import FinetuneMapEvaluator

    data = build_digits_det(tmp_path / "dd", seed=2, n_train=16, n_val=8, imgsz=64)
    evaluator = FinetuneMapEvaluator(str(data), imgsz=64, steps=3, batch_size=8, val_images=8)
    model = load_model("yolov8n-digits")
    before = {k: v.clone() for k, v in model.state_dict().items()}
    first = evaluator.evaluate(Candidate(model, 64))
    assert first == evaluator.evaluate(Candidate(model, 64))  # same batches, same steps: same score
    assert 0.0 <= first["map50_95"] <= first["map50"] <= 1.0
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # the candidate is not trained
