"""FLOPs in Ultralytics' units, and the Torch-Pruning baselines the search is measured against."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from evaluators.flops import count_flops_params
from search.baseline_pruning import prune_to_flops
from spaces.errors import ArchpruneError
from spaces.models import build_model, load_model, save_checkpoint
from tests.conftest import shared_path


@pytest.mark.parametrize("stem", ["yolov8n", "yolo11n"])
def test_flops_match_ultralytics_reports(stem: str) -> None:
    folder = shared_path("ultralytics")
    info = json.loads((folder / "models.json").read_text())["models"][stem]
    model = load_model(folder / info["file"])
    assert count_flops_params(model, 640)["flops_g"] == pytest.approx(info["gflops_640"], rel=1e-6)
    assert count_flops_params(model, 320)["flops_g"] == pytest.approx(info["gflops_320"], rel=1e-6)
    assert count_flops_params(model, 320)["params_m"] == pytest.approx(info["params"] / 1e6)


@pytest.mark.parametrize("importance,global_pruning", [("l1", False), ("lamp", True)])
def test_prune_to_half_the_flops_keeps_the_head_and_round_trips(tmp_path: Path, importance: str,
                                                                 global_pruning: bool) -> None:
    model = build_model("yolov8n", nc=10)
    base = count_flops_params(model, 96)
    pruned, ratio = prune_to_flops(model, 96, 0.5, importance=importance, global_pruning=global_pruning)
    cost = count_flops_params(pruned, 96)
    assert 0.45 * base["flops_g"] <= cost["flops_g"] <= 0.5 * base["flops_g"] and 0 < ratio < 1
    assert cost["params_m"] < base["params_m"]
    assert count_flops_params(model, 96) == base  # the original is untouched
    head, pruned_head = model.head, pruned.head
    for a, b in zip(list(head.cv2) + list(head.cv3), list(pruned_head.cv2) + list(pruned_head.cv3)):
        assert a[-1].out_channels == b[-1].out_channels  # prediction convs keep every output
    x = torch.rand(1, 3, 96, 96)
    reloaded = load_model(save_checkpoint(pruned, tmp_path / "p.pt"))
    with torch.no_grad():
        assert torch.equal(reloaded(x), pruned(x))


def test_unknown_importance_is_named() -> None:
    with pytest.raises(ArchpruneError, match="unknown importance 'l3'"):
        prune_to_flops(build_model("yolov8n", nc=2), 64, 0.5, importance="l3")
