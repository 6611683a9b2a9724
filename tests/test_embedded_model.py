"""The shipped models (yolov8n-digits and its sparse and two elastic bases): load by name, are small,
and are clearly trained; the elastic base carries the channel order it was trained in."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from search.cli import main
from spaces.errors import ArchpruneError
from spaces.models import load_model
from spaces.models import zoo


@pytest.mark.parametrize("name", sorted(zoo.EMBEDDED))
def test_loads_by_name_with_its_training_size_and_classes(name: str) -> None:
    model = load_model(name)
    assert model.imgsz == 160 and model.nc == 10 and model.names == [str(i) for i in range(10)]
    assert next(model.parameters()).dtype == torch.float32 and not model.training
    assert zoo.embedded_path(name).stat().st_size <= 8 * 1024 * 1024
    meta = torch.load(zoo.embedded_path(name), weights_only=True)["meta"]
    assert meta["reproduce"] == zoo.EMBEDDED[name].reproduce  # the file says how to rebuild it


def test_the_elastic_base_makes_a_space_that_keeps_its_trained_prefixes() -> None:
    from spaces.channel_space import ChannelSpace

    model = load_model("yolov8n-digits-elastic")
    space = ChannelSpace(model, importance="lamp")  # --importance cannot reorder an elastic base
    assert space.order_source == "recorded" and set(model.channel_order) == {g.name for g in space.genes}
    genome = space.uniform(0.5)
    for name, kept in space.kept_indices(genome).items():
        assert kept == sorted(model.channel_order[name][:len(kept)])
    assert load_model("yolov8n-digits").channel_order is None


@pytest.mark.slow
def test_eval_from_the_cli_reports_at_least_half_map(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["eval", "--model", "yolov8n-digits", "--data", "digits-det", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["images"] == 500 and result["map50_95"] >= 0.50


def test_missing_weights_name_the_command_that_rebuilds_them(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(zoo, "WEIGHTS", tmp_path)
    with pytest.raises(ArchpruneError, match="archprune train --model yolov8n --data digits-det"):
        load_model("yolov8n-digits")


@pytest.mark.slow
def test_the_elastic_depth_base_keeps_depth_pruned_candidates_working() -> None:
    """Trained with --elastic-depth, the second elastic base scores a candidate with every C2f
    bottleneck dropped far above the width-only elastic base (0.39 against 0.05 on 200 images)."""
    from evaluators._base import Candidate
    from evaluators.proxy_accuracy import AdaptiveBNMapEvaluator
    from spaces.channel_space import ChannelSpace

    proxy = AdaptiveBNMapEvaluator("digits-det", 160, calib_batches=4, val_images=64)
    scores = {}
    for name in ("yolov8n-digits-elastic", "yolov8n-digits-elastic-depth"):
        space = ChannelSpace(load_model(name), depth=True)
        genome = dict(space.baselines())["depth-0"]
        assert set(space.depth(genome).values()) == {0}
        scores[name] = proxy.evaluate(Candidate(model=space.build(genome), imgsz=160, genome=genome,
                                                config={}))["map50_95"]
    assert scores["yolov8n-digits-elastic-depth"] > scores["yolov8n-digits-elastic"] + 0.15, scores
