"""Depth genes in the channel space (issue 17, item 1): one genome per model, configs and exports that
replay exactly, depth-only baselines, and a search with --depth through the CLI."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from search.cli import main
from spaces._base import InvalidGenome
from spaces.channel_space import ChannelSpace
from spaces.models import load_model
from spaces.models.checkpoint import state_dict_sha256


@pytest.fixture(scope="module")
def space() -> ChannelSpace:
    return ChannelSpace(load_model("yolov8n-digits"), depth=True)


def test_depth_genes_follow_the_width_genes_and_default_off(space: ChannelSpace) -> None:
    plain = ChannelSpace(load_model("yolov8n-digits"))
    assert [g.name for g in plain.genes] == [g.name for g in space.width_genes]  # runs written before: unchanged
    depth = space.genes[len(space.width_genes):]
    assert len(depth) == 8 and sum(len(g.choices) - 1 for g in depth) == 10  # YOLOv8n's 10 bottlenecks


def test_sampled_genomes_are_canonical_and_round_trip_through_their_config(space: ChannelSpace) -> None:
    rng = np.random.default_rng(0)
    for _ in range(20):
        genome = space.sample(rng)
        assert space.validate(genome) == genome == space.canonical(genome)
        assert space.from_config(json.loads(json.dumps(space.to_config(genome)))) == genome


def test_a_gene_inside_a_dropped_block_has_one_value(space: ChannelSpace) -> None:
    shallow = dict(space.baselines())["depth-0"]
    inner = next(i for i, g in enumerate(space.width_genes) if ".m.0.cv1" in g.name)
    other = list(shallow)
    other[inner] = 0  # narrower inside a block that is gone: the same model
    with pytest.raises(InvalidGenome, match="inside a dropped block"):
        space.validate(tuple(other))
    assert space.repair(tuple(other)) == shallow
    assert state_dict_sha256(space.build(space.repair(tuple(other)))) == state_dict_sha256(space.build(shallow))


def test_depth_only_baselines_keep_every_width_and_fewer_blocks(space: ChannelSpace) -> None:
    baselines = dict(space.baselines())
    assert {"depth-1", "depth-0"} <= set(baselines)
    params = {name: sum(p.numel() for p in space.build(baselines[name]).parameters())
              for name in ("unpruned", "depth-1", "depth-0")}
    assert params["unpruned"] > params["depth-1"] > params["depth-0"]
    assert space.counts(baselines["depth-0"]) == space.counts(baselines["unpruned"])
    with torch.no_grad():
        out = space.build(baselines["depth-0"])(torch.zeros(1, 3, 64, 64))
    assert (out[0] if isinstance(out, (list, tuple)) else out).shape[1] == 4 + 10


def test_a_depth_search_exports_a_config_that_applies_bit_exactly(tmp_path: Path) -> None:
    run = ["--model", "yolov8n-digits", "--imgsz", "64", "--depth", "--objectives", "flops_g:min,params_m:min",
           "--trials", "16", "--executor", "inline", "--run", "deep", "--results", str(tmp_path), "--no-progress"]
    assert main(["search", *run]) == 0
    from search.runs import open_run

    records = open_run("deep", results=str(tmp_path)).store.records()
    assert len(records) == 16 and not any(r.failed for r in records)
    shallow = next(r for r in records if r.source == "depth-0")
    assert shallow.metrics["params_m"] < records[0].metrics["params_m"]
    out = tmp_path / "export"
    assert main(["export", str(tmp_path / "deep"), "--trial", str(shallow.number), "--out", str(out)]) == 0
    config = json.loads((out / "config.json").read_text())
    assert config["depth"] and all(keep == 0 for keep in config["depth"].values())
    applied = tmp_path / "applied.pt"
    assert main(["apply", str(out / "config.json"), "--weights", "yolov8n-digits", "--out", str(applied)]) == 0
    exported, rebuilt = load_model(str(out / "pruned.pt")), load_model(str(applied))
    assert state_dict_sha256(exported) == state_dict_sha256(rebuilt)


def test_depth_is_a_setting_of_the_channel_space_only(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["search", "--space", "blocks", "--depth", "--objectives", "entropy:max", "--trials", "2"]) == 2
    assert "--depth is a setting of --space channels" in capsys.readouterr().err


def test_a_depth_pruned_yolo11_checkpoint_rebuilds_exactly(tmp_path: Path) -> None:
    from spaces.depth_pruning import depth_units, with_depth
    from spaces.models import build_model, save_checkpoint

    model = build_model("yolo11n", nc=10)
    pruned = with_depth(model, {u.name: u.minimum for u in depth_units(model)})  # C3k2 and C3k chains
    loaded = load_model(str(save_checkpoint(pruned, tmp_path / "shallow.pt")))
    assert state_dict_sha256(loaded) == state_dict_sha256(pruned)
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        got, expected = loaded.eval()(x), pruned.eval()(x)
    torch.testing.assert_close(got[0] if isinstance(got, (list, tuple)) else got,
                               expected[0] if isinstance(expected, (list, tuple)) else expected)


def test_the_latency_predictor_prices_a_depth_pruned_candidate(space: ChannelSpace) -> None:
    import math

    from evaluators.latency_lut import LatencyPredictor, measure_for, new_table

    shallow = space.build(dict(space.baselines())["depth-0"])  # the sliced cv2 convs are shapes of its own
    table = measure_for([shallow], 64, new_table("t", threads=1), threads=1, progress=False)
    predicted = LatencyPredictor(table).predict(shallow, 64)
    assert math.isfinite(predicted) and predicted > 0


def test_a_depth_search_under_a_flops_budget_starts_from_the_budget_allocations(tmp_path: Path) -> None:
    # the budget's checks build the smallest genome, which with depth genes must be made canonical first
    from evaluators.flops import count_flops_params

    bound = round(0.7 * count_flops_params(load_model("yolov8n-digits"), 64)["flops_g"], 6)
    run = ["--model", "yolov8n-digits", "--imgsz", "64", "--depth", "--objectives", "params_m:min",
           "--constraint", f"flops_g<={bound}", "--trials", "20", "--executor", "inline", "--run", "budget",
           "--results", str(tmp_path), "--no-progress"]
    assert main(["search", *run]) == 0
    from search.runs import open_run

    records = open_run("budget", results=str(tmp_path)).store.records()
    starts = {r.source: r for r in records if r.source in ("global-budget", "lamp-budget")}
    assert set(starts) == {"global-budget", "lamp-budget"} and not any(r.failed for r in records)
    assert all(r.feasible and r.metrics["flops_g"] <= bound for r in starts.values())
