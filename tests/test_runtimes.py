"""The runtimes latency is measured in (onnxruntime, OpenVINO, torch) and the deployment harness
(issue 16). Nothing here asserts a time: only that the figures exist, are positive and consistent."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from evaluators.choice_names import RUNTIME_NAMES
from evaluators.latency_harness import harness
from evaluators.runtimes import RUNTIMES, make_runtime, scratch_folder
from search.cli import main
from spaces.channel_space import ChannelSpace
from spaces.models import load_model


def _pruned() -> nn.Module:
    space = ChannelSpace(load_model("yolov8n-digits"))
    return space.build(dict(space.baselines())["uniform-0.5"])


def test_openvino_computes_what_onnxruntime_computes_for_a_pruned_candidate() -> None:
    model = _pruned()
    with scratch_folder() as tmp:  # the runtimes' own one-inference callables, on the same input
        onnx = make_runtime("ort").prepare(model, 64, Path(tmp))
        expected = make_runtime("ort", threads=1).load(onnx, 64)()[0]
        got = make_runtime("openvino", threads=1).load(onnx, 64)()[0]
    with torch.no_grad():
        eager = make_runtime("torch").load(model, 64)()
    eager = (eager[0] if isinstance(eager, (list, tuple)) else eager).numpy()
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected, rtol=1e-3, atol=1e-3)
    np.testing.assert_allclose(eager, expected, rtol=1e-3, atol=1e-3)


def test_the_command_line_offers_every_runtime() -> None:
    assert tuple(RUNTIMES) == RUNTIME_NAMES, "name a new runtime in evaluators.choice_names.RUNTIME_NAMES"


@pytest.mark.parametrize("runtime", RUNTIME_NAMES)  # every runtime `archprune latency --runtime` offers
def test_the_harness_gives_every_metric_positive_and_consistent(runtime: str) -> None:
    model = _pruned()
    result = harness(model, 32, runtime, threads=1, runs=100, warmup=3, throughput_batch=4)
    for key in ("latency_ms", "latency_p90_ms", "latency_p95_ms", "latency_p99_ms", "latency_std_ms",
                "throughput_ips", "peak_mem_mb", "model_mb", "load_ms"):
        assert result[key] > 0, key
    assert result["latency_ms"] <= result["latency_p90_ms"] <= result["latency_p95_ms"] <= result["latency_p99_ms"]
    assert result["threads"] == 1 and result["runtime"].split()[0] in ("onnxruntime", "openvino", "torch")
    few = harness(model, 32, runtime, threads=1, runs=15, warmup=1, memory=False)
    assert "latency_p90_ms" in few and "latency_p95_ms" not in few and "latency_p99_ms" not in few


def test_the_latency_command_prints_the_harness(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["latency", "--model", "yolov8n-digits", "--imgsz", "64", "--runtime", "openvino", "--threads", "1",
                 "--runs", "20", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["runtime"].startswith("openvino") and result["hint"] == "LATENCY" and result["imgsz"] == 64
    assert result["peak_mem_mb"] > 0 and result["model_mb"] > 1 and "latency_p95_ms" in result


def test_a_search_measures_on_openvino_and_exports_an_ir_openvino_loads(tmp_path: Path) -> None:
    import openvino as ov

    run = ["--model", "yolov8n-digits", "--imgsz", "64", "--objectives", "latency_ms:min,params_m:min",
           "--latency", "openvino", "--threads", "1", "--latency-runs", "10", "--trials", "3", "--executor", "inline",
           "--run", "ov", "--results", str(tmp_path), "--no-progress"]
    assert main(["search", *run]) == 0
    from search.runs import open_run

    records = open_run("ov", results=str(tmp_path)).store.records()
    assert len(records) == 3 and all(r.metrics["runtime"].startswith("openvino") for r in records)
    out = tmp_path / "export"
    assert main(["export", str(tmp_path / "ov"), "--trial", "1", "--out", str(out), "--openvino"]) == 0
    compiled = ov.Core().compile_model(str(out / "model.xml"), "CPU")
    result = compiled.create_infer_request().infer({0: np.zeros((1, 3, 64, 64), dtype=np.float32)})[0]
    assert (out / "model.bin").is_file() and result.shape[0] == 1
