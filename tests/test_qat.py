"""Quantization-aware fine-tuning (issue 18, item 3): NNCF's fake-quantizers on our detector, the
decode left float, INT8 ONNX out, and --resume ending with the weights of an uninterrupted run."""
from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import onnx
import pytest
import torch

from evaluators.data import build_digits_det
from evaluators.onnx_detector import OnnxDetector
from evaluators.training.trainer import TrainSettings, train
from spaces.errors import ArchpruneError
from spaces.models import load_model, save_checkpoint

pytest.importorskip("nncf", reason="--qat needs NNCF (pip install nncf torchao; installed by make test)")


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_digits_det(tmp_path_factory.mktemp("tiny") / "dd", seed=1, n_train=16, n_val=8, imgsz=64)


@pytest.fixture(scope="module")
def student(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small trained-looking start: the embedded base at 64 px (as an exported pick would be)."""
    return save_checkpoint(load_model("yolov8n-digits"), tmp_path_factory.mktemp("s") / "pick.pt")


def settings(data: Path, model: Path, out: Path, **changes) -> TrainSettings:
    base = TrainSettings(model=str(model), data=str(data), imgsz=64, epochs=2, out=str(out), batch=8, seed=1,
                         lr0=5e-4, warmup_epochs=0.5, qat=True)
    return replace(base, **changes)


def test_the_decode_stays_float_and_the_rest_is_quantized(tiny_data: Path) -> None:
    from evaluators.data import load_data_config
    from evaluators.proxy_accuracy import calibration_images
    from evaluators.training.qat import decode_nodes, quantize_for_training, quantizer_config

    model = load_model("yolov8n-digits")
    decode = set(decode_nodes(model, 64))
    assert any("softmax" in n for n in decode) and any("sigmoid" in n for n in decode)
    quantized = quantize_for_training(model, calibration_images(load_data_config(str(tiny_data)), 64, 1, 8), 64)
    hooks = [h for q in json.loads(quantizer_config(quantized))["compression_state"] for h in q["hook_names_in_model"]]
    assert len(hooks) > 100
    assert not [h for h in hooks if h.split(".", 1)[1].rsplit("__", 1)[0] in decode]


def test_qat_writes_int8_onnx_and_a_resume_matches_an_uninterrupted_run(tiny_data: Path, student: Path,
                                                                        tmp_path: Path) -> None:
    whole = tmp_path / "whole"
    train(settings(tiny_data, student, whole), log=lambda _: None)
    int8 = onnx.load(str(whole / "last-int8.onnx"))
    assert sum(n.op_type == "QuantizeLinear" for n in int8.graph.node) > 50
    with torch.no_grad():
        out = OnnxDetector(whole / "last-int8.onnx")(torch.rand(1, 3, 64, 64))
    assert out.shape[1] == 4 + 10
    float_model = load_model(whole / "last.pt")  # the checkpoint is the float model: no quantizer keys
    assert not any(k.startswith("__nncf") for k in float_model.state_dict())

    class Stopped(Exception):
        pass

    def stop_after_the_first_epoch(line: str) -> None:  # a crash once epoch 1 is saved
        if line.startswith("epoch 1/"):
            raise Stopped

    split = tmp_path / "split"
    with pytest.raises(Stopped):
        train(settings(tiny_data, student, split), log=stop_after_the_first_epoch)
    train(settings(tiny_data, student, split), resume=True, log=lambda _: None)
    a = torch.load(whole / "last.pt", weights_only=True)["meta"]["train_state"]["model"]
    b = torch.load(split / "last.pt", weights_only=True)["meta"]["train_state"]["model"]
    assert any(k.startswith("__nncf") for k in a) and set(a) == set(b)
    for key in a:  # the quantizers' scales included
        torch.testing.assert_close(b[key], a[key], rtol=1e-4, atol=1e-5, msg=f"{key} differs after resume")


def test_qat_is_not_a_way_to_make_a_prunable_base(tiny_data: Path, student: Path, tmp_path: Path) -> None:
    with pytest.raises(ArchpruneError, match="--qat fine-tunes the model you will ship"):
        train(settings(tiny_data, student, tmp_path / "x", elastic=True), log=lambda _: None)
