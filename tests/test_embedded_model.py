"""The shipped yolov8n-digits model: loads by name, is small, and is clearly trained."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from search.cli import main
from spaces.errors import ArchpruneError
from spaces.models import load_model
from spaces.models import zoo


def test_loads_by_name_with_its_training_size_and_classes() -> None:
    model = load_model("yolov8n-digits")
    assert model.imgsz == 160 and model.nc == 10 and model.names == [str(i) for i in range(10)]
    assert next(model.parameters()).dtype == torch.float32 and not model.training
    assert zoo.embedded_path("yolov8n-digits").stat().st_size <= 8 * 1024 * 1024


@pytest.mark.slow
def test_eval_from_the_cli_reports_at_least_half_map(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["eval", "--model", "yolov8n-digits", "--data", "digits-det", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["images"] == 500 and result["map50_95"] >= 0.50


def test_missing_weights_name_the_command_that_rebuilds_them(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(zoo, "WEIGHTS", tmp_path)
    with pytest.raises(ArchpruneError, match="archprune train --model yolov8n --data digits-det"):
        load_model("yolov8n-digits")
