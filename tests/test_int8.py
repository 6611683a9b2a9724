"""INT8 candidates (issue 18, item 1): a quantized candidate's ONNX runs and is scored, its metrics
reach the store and the front, a failing quantization is a failed trial, and bad settings are one line."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

from evaluators._base import Candidate
from evaluators.int8 import Int8Evaluator
from evaluators.latency import LatencyEvaluator
from evaluators.onnx_detector import OnnxDetector
from evaluators.onnx_export import export_onnx
from evaluators.proxy_accuracy import AdaptiveBNMapEvaluator
from evaluators.quantization import quantize_onnx
from search.cli import main
from spaces.errors import ArchpruneError
from spaces.models import load_model


def test_a_quantized_candidate_runs_in_onnxruntime_and_scores_near_its_float_model() -> None:
    model = load_model("yolov8n-digits")
    latency = LatencyEvaluator("ort", threads=1, runs=10, warmup=1)
    evaluator = Int8Evaluator("digits-det", 160, latency, calib_batches=1, val_images=24)
    result = evaluator.evaluate(Candidate(model, imgsz=160))
    float_map = AdaptiveBNMapEvaluator("digits-det", 160, calib_batches=1, val_images=24).evaluate(
        Candidate(model, imgsz=160))["map50_95"]
    # the decode stays in float: with one INT8 scale for pixels and probabilities every score was 0
    assert result["map50_95_int8"] == pytest.approx(float_map, abs=0.05) and float_map > 0.5
    assert 0 < result["latency_int8_ms"] <= result["latency_int8_p90_ms"]
    assert set(evaluator.directions) >= {"latency_int8_ms", "map50_95_int8", "model_int8_mb"}
    assert result["model_int8_mb"] < 0.5 * 12.0  # YOLOv8n's float ONNX is ~12 MB: INT8 weights are a quarter


def test_the_quantized_file_is_int8_and_its_decode_float(tmp_path: Path) -> None:
    model = load_model("yolov8n-digits")
    free = export_onnx(model, tmp_path / "float.onnx", imgsz=64, dynamic=True)
    images = [np.random.default_rng(0).random((2, 3, 64, 64), dtype=np.float32)]
    int8 = onnx.load(str(quantize_onnx(free, tmp_path / "int8.onnx", images, head="model.22")))
    ops = [n.op_type for n in int8.graph.node]
    assert ops.count("QuantizeLinear") > 50 and "DequantizeLinear" in ops
    final = int8.graph.node[-1]  # the decode's last Concat, not followed by a quantize
    assert final.op_type == "Concat" and not any(n.op_type == "QuantizeLinear" and final.output[0] in n.input
                                                 for n in int8.graph.node)
    assert not list(tmp_path.glob("*.data")) and not list(Path.cwd().glob("*-*-*-*-*.data"))  # no scratch left


def test_an_onnx_file_scores_like_its_model_on_rect_and_fixed_inputs(tmp_path: Path) -> None:
    model = load_model("yolov8n-digits").eval()
    x = torch.rand(2, 3, 96, 128, generator=torch.Generator().manual_seed(0))
    free = OnnxDetector(export_onnx(model, tmp_path / "free.onnx", imgsz=64, dynamic=True))
    assert free.fixed is None and free.nc == 10
    with torch.no_grad():
        torch.testing.assert_close(free(x), model(x), rtol=1e-3, atol=1e-3)
        fixed = OnnxDetector(export_onnx(model, tmp_path / "fixed.onnx", imgsz=64))
        square = torch.rand(3, 3, 64, 64, generator=torch.Generator().manual_seed(1))
        assert fixed.fixed == (1, 64, 64) and fixed.imgsz == 64
        torch.testing.assert_close(fixed(square), model(square), rtol=1e-3, atol=1e-3)  # batch 3 through batch 1
    with pytest.raises(ArchpruneError, match="takes 64x64 images"):
        fixed(x)
    (tmp_path / "junk.onnx").write_bytes(b"not a model")
    with pytest.raises(ArchpruneError, match="does not load in onnxruntime"):
        OnnxDetector(tmp_path / "junk.onnx")


def test_a_failing_quantization_is_a_failed_trial_and_the_search_goes_on(tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    from search.job import run_search
    from search.settings import RunSettings

    def broken(*args: object, **kwargs: object) -> None:
        raise ArchpruneError("INT8 quantization (minmax calibration) failed: no kernel for this op")

    monkeypatch.setattr("evaluators.int8.quantize_onnx", broken)
    settings = RunSettings(model="yolov8n-digits", data="digits-det", imgsz=64,
                           objectives="flops_g:min,map50_95_int8:max", trials=3, latency_runs=10, latency_warmup=1, val_images=8, calib_batches=1, executor="inline",
                           results=str(tmp_path))
    result = run_search(settings, progress=False, say=lambda line: None)
    records = result.store.records()
    assert len(records) == 3 and all(r.failed for r in records)
    assert all("INT8 quantization (minmax calibration) failed" in r.error for r in records)


@pytest.mark.parametrize("flags,message", [
    (["--precision", "int4"], "unknown precision int4: use fp32, int8 or fp32,int8"),
    (["--int8-calibration", "kl"], "unknown INT8 calibration method 'kl'"),
])
def test_bad_precision_settings_are_one_line(flags: list[str], message: str, capsys: pytest.CaptureFixture[str],
                                             tmp_path: Path) -> None:
    assert main(["search", "--model", "yolov8n-digits", "--results", str(tmp_path), *flags]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


@pytest.fixture(scope="module")
def int8_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One small search with --precision fp32,int8 that the tests below read, export and evaluate."""
    results = tmp_path_factory.mktemp("int8")
    run = ["--model", "yolov8n-digits", "--data", "digits-det", "--imgsz", "64", "--precision", "fp32,int8",
           "--int8-calibration", "percentile", "--objectives", "latency_int8_ms:min,map50_95:max", "--trials", "2",
           "--latency-runs", "10", "--val-images", "8", "--calib-batches", "1", "--executor", "inline",
           "--run", "q", "--results", str(results), "--no-progress"]
    assert main(["search", *run]) == 0
    return results / "q"


def test_a_search_with_precision_int8_records_int8_metrics_and_puts_them_on_the_front(int8_run: Path) -> None:
    from search.runs import open_run

    records = open_run(str(int8_run)).store.records()
    assert len(records) == 2 and not any(r.failed for r in records)
    for record in records:  # --precision int8 records every INT8 metric, objective or not
        assert {"latency_int8_ms", "map50_95_int8", "map50_int8", "model_int8_mb", "map50_95"} <= set(record.metrics)
        assert record.metrics["int8_calibration"] == "percentile"
    assert main(["pareto", str(int8_run), "--json", "--no-plots"]) == 0
    assert "latency_int8_ms" in (int8_run / "pareto.json").read_text()


def test_export_writes_the_int8_model_and_eval_scores_the_shipped_file(int8_run: Path, tmp_path: Path,
                                                                       capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "export"
    assert main(["export", str(int8_run), "--trial", "0", "--out", str(out)]) == 0  # INT8: the run's precision
    int8 = json.loads((out / "summary.json").read_text())["int8"]
    assert int8["file"] == "model-int8.onnx" and int8["calibration"] == "percentile" and int8["bn_recalibrated"]
    assert int8["as_searched"]["map50_95_int8"] >= 0 and int8["calibration_images"] == 16
    capsys.readouterr()
    assert main(["eval", "--model", str(out / "model-int8.onnx"), "--data", "digits-det", "--max-images", "8",
                 "--json"]) == 0
    scored = json.loads(capsys.readouterr().out)
    assert 0 <= scored["map50_95"] <= 1 and scored["images"] == 8
    assert main(["eval", "--model", str(out / "model-int8.onnx"), "--data", "digits-det", "--imgsz", "128"]) == 2
    assert "takes 64x64 images: drop --imgsz 128" in capsys.readouterr().err
    plain = tmp_path / "plain"
    assert main(["export", str(int8_run), "--trial", "0", "--out", str(plain), "--no-int8"]) == 0
    assert not (plain / "model-int8.onnx").exists() and "int8" not in json.loads((plain / "summary.json").read_text())
