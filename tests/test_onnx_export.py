"""ONNX export: onnxruntime gives the same output as torch."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

from evaluators.onnx_export import export_onnx, onnx_session
from spaces.errors import ArchpruneError
from spaces.models import build_model


@pytest.mark.parametrize("name", ["yolov8n", "yolo11n"])
def test_onnxruntime_matches_torch(tmp_path: Path, name: str) -> None:
    model = build_model(name, nc=10)
    path = export_onnx(model, tmp_path / "m.onnx", imgsz=128)
    graph = onnx.load(str(path))
    assert graph.opset_import[0].version == 17
    dims = [d.dim_value for d in graph.graph.input[0].type.tensor_type.shape.dim]
    assert dims == [1, 3, 128, 128]  # fixed batch 1
    x = torch.rand(1, 3, 128, 128)
    with torch.no_grad():
        expected = model(x).numpy()
    got = onnx_session(path, threads=2).run(None, {"images": x.numpy()})[0]
    assert got.shape == expected.shape == (1, 14, 336)
    np.testing.assert_allclose(got[:, :4], expected[:, :4], atol=1e-3)  # pixels
    np.testing.assert_allclose(got[:, 4:], expected[:, 4:], atol=1e-5)  # scores
    assert not model.training


def test_unknown_provider_is_a_clear_error(tmp_path: Path) -> None:
    path = export_onnx(build_model("yolov8n", nc=2), tmp_path / "m.onnx", imgsz=64)
    with pytest.raises(ArchpruneError, match="NoSuchExecutionProvider"):
        onnx_session(path, providers=["NoSuchExecutionProvider"])
