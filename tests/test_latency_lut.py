"""Latency lookup tables: the file, the conv list, interpolation, measuring, and the prediction itself."""
from __future__ import annotations

import argparse
import pickle
from pathlib import Path

import numpy as np
import pytest
from torch import nn

from evaluators._base import Candidate
from evaluators.flops import FlopsEvaluator
from evaluators.latency import LatencyEvaluator
from evaluators.latency_lut import (ConvKey, ConvSpec, LatencyPredictor, LatencyTable, calibrate, conv_list,
                                    default_grid, load_table, measure_for, measure_table, new_table)
from evaluators.latency_lut import measure as measure_module
from evaluators.latency_predicted import PredictedLatencyEvaluator
from evaluators.latency_lut.calibration_models import calibration_models
from search.space_recipes import calibration_space_for
from search.cli_latency_table import add_latency_table_parser, provider_name
from spaces.blocks import DEFAULT_STRUCTURE, BlockDetector, BlockSpace, parse_structure, structure_to_dicts
from spaces.errors import ArchpruneError
from spaces.models import build_model

CHANNELS = (8, 16, 32, 64)
SIDES = (10, 20, 40)


def power_law_ms(c_in: int, c_out: int, k: int, h: int) -> float:
    return 1e-6 * c_in * c_out * k * k * h * h


def synthetic_table() -> LatencyTable:
    """A table whose entries follow MACs exactly (no measuring): what interpolation must reproduce."""
    entries = {ConvKey("regular", k, 1, ci, co, h): power_law_ms(ci, co, k, h)
               for k in (1, 3) for ci in CHANNELS for co in CHANNELS for h in SIDES}
    entries.update({ConvKey("depthwise", 3, 1, c, c, h): power_law_ms(1, c, 3, h) for c in CHANNELS for h in SIDES})
    return LatencyTable(target="synthetic", provenance={"host": "h", "cpu": "c", "onnxruntime": "1", "provider": "CPU",
                                                        "threads": 1, "batch": 1}, entries=entries)


def spec(c_in: int, c_out: int, h: float, k: int = 3, kind: str = "regular", stride: int = 1) -> ConvSpec:
    groups = c_in if kind == "depthwise" else 1
    return ConvSpec("x", kind, k, stride, c_in, c_out, int(h), int(h), groups)


# -- the file ------------------------------------------------------------------------------------
def test_table_round_trip(tmp_path: Path) -> None:
    table = synthetic_table()
    table.corrections = {320: {"a": 1.2, "b": 0.5, "n": 3.0}}
    table.call_overhead_ms, table.complete = 0.01, True
    loaded = load_table(table.save(tmp_path / "lut.json"))
    assert loaded.entries == pytest.approx(table.entries, rel=1e-4)
    assert (loaded.target, loaded.provenance, loaded.corrections, loaded.call_overhead_ms, loaded.complete) == \
        (table.target, table.provenance, table.corrections, table.call_overhead_ms, True)
    lines = (tmp_path / "lut.json").read_text().splitlines()
    assert len(lines) == len(table.entries) + 2  # header, "entries": [, then one entry per line


@pytest.mark.parametrize("content, message", [
    (None, "not found"),
    ("{not json", "not valid JSON"),
    ('{"format": "something-else", "version": 1}', "not an archprune latency table"),
    ('{"format": "archprune-latency-lut", "version": 99}', "format version 99"),
    ('{"format": "archprune-latency-lut", "version": 1, "target": "t", "provenance": {}, '
     '"entries": [{"kind": "regular", "k": 3}]}', "malformed"),
    ('{"format": "archprune-latency-lut", "version": 1, "target": "t", "provenance": {}, '
     '"entries": [{"kind": "dilated", "k": 3, "s": 1, "c_in": 8, "c_out": 8, "h": 8, "ms": 1}]}', "malformed"),
])
def test_bad_table_files_are_one_line_errors(tmp_path: Path, content: str | None, message: str) -> None:
    path = tmp_path / "lut.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(ArchpruneError, match=message):
        load_table(path)
    with pytest.raises(ArchpruneError, match=message):
        PredictedLatencyEvaluator(path)


# -- the conv list -------------------------------------------------------------------------------
def test_conv_list_of_yolov8n_matches_its_conv_modules() -> None:
    model = build_model("yolov8n", nc=10)
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    listed = conv_list(model, 160)
    assert len(listed) == len(convs) == 72
    by_name = dict(model.named_modules())
    for item in listed:
        module = by_name[item.name]
        assert (item.c_in, item.c_out, item.k, item.stride, item.groups) == \
            (module.in_channels, module.out_channels, module.kernel_size[0], module.stride[0], module.groups)
        assert item.kind == "regular"
    assert listed[0] == ConvSpec("model.0.conv", "regular", 3, 2, 3, 16, 160, 160, 1)
    assert {(s.h, s.w) for s in listed if s.name.startswith("model.8.")} == {(5, 5)}  # stride 32
    # tracing small and scaling gives the convs and pixel counts of a full-size trace
    exact = conv_list(model, 160, exact=True)
    def pixels(specs: list[ConvSpec]) -> list[tuple[str, int, int, int]]:
        return [(s.name, s.c_in, s.c_out, s.h * s.w) for s in specs]

    assert pixels(listed) == pixels(exact)
    assert model.training is False and not model._forward_hooks  # hooks removed, mode kept


def test_depthwise_and_grouped_convs_are_told_apart() -> None:
    model = nn.Sequential(nn.Conv2d(8, 8, 3, padding=1, groups=8), nn.Conv2d(8, 16, 3, padding=1, groups=2))
    dw, grouped = conv_list(model, 40, in_channels=8)
    assert (dw.kind, grouped.kind, grouped.groups) == ("depthwise", "grouped", 2)
    assert measure_module.table_key(dw) == ConvKey("depthwise", 3, 1, 8, 8, 40)
    assert measure_module.table_key(grouped) == ConvKey("regular", 3, 1, 4, 16, 40)  # same MACs


# -- interpolation -------------------------------------------------------------------------------
def test_interpolation_is_exact_at_entries_and_monotone_between() -> None:
    table = synthetic_table()
    predictor = LatencyPredictor(table)
    at_grid = [spec(ci, co, h, k) for k in (1, 3) for ci in CHANNELS for co in CHANNELS for h in SIDES]
    expected = [table.entries[ConvKey("regular", s.k, 1, s.c_in, s.c_out, s.h)] for s in at_grid]
    assert predictor.conv_times(at_grid) == pytest.approx(expected, rel=1e-9)

    widths = np.arange(8, 65)
    along_c_out = predictor.conv_times([spec(16, int(c), 20) for c in widths])
    along_side = predictor.conv_times([spec(16, 32, int(h)) for h in range(10, 41)])
    assert np.all(np.diff(along_c_out) > 0) and np.all(np.diff(along_side) > 0)
    # log-log interpolation reproduces a power law between entries too
    assert along_c_out == pytest.approx([power_law_ms(16, int(c), 3, 20) for c in widths], rel=1e-6)
    depthwise = predictor.conv_times([spec(c, c, 30, kind="depthwise") for c in (8, 12, 24, 64)])
    assert depthwise == pytest.approx([power_law_ms(1, c, 3, 30) for c in (8, 12, 24, 64)], rel=1e-6)


def test_outside_the_grid_falls_back_to_the_nearest_entry() -> None:
    predictor = LatencyPredictor(synthetic_table())
    outside, nearest = predictor.conv_times([spec(16, 256, 20), spec(16, 64, 20)])
    assert outside == pytest.approx(nearest)
    # a kernel the table lacks: the nearest kernel, scaled by MACs
    k5, k3 = predictor.conv_times([spec(16, 32, 20, k=5), spec(16, 32, 20, k=3)])
    assert k5 == pytest.approx(k3 * 25 / 9)


def test_correction_fit_and_its_use_at_other_sizes() -> None:
    predictor = LatencyPredictor(synthetic_table())
    models = [nn.Sequential(nn.Conv2d(3, c, 3, padding=1), nn.Conv2d(c, c, 3, padding=1)) for c in (8, 16, 32)]
    sums = [predictor.conv_sum(m, 20) for m in models]
    fit = predictor.fit(models, [2 * s + 1 for s in sums], 20)
    assert (fit["a"], fit["b"], fit["n"]) == pytest.approx((2, 1, 3))
    assert predictor.predict(models[1], 20) == pytest.approx(2 * sums[1] + 1)
    assert predictor.correction(40) == pytest.approx((2, 4))  # b grows with the pixels
    with pytest.raises(ArchpruneError, match="one measured latency per model"):
        predictor.fit(models, [1.0], 20)


# -- measuring -----------------------------------------------------------------------------------
def test_quick_grid_and_sides() -> None:
    assert measure_module.sides([320]) == [5, 10, 20, 40, 80, 160, 320]
    quick, full = default_grid([160], quick=True), default_grid([320, 640])
    assert 50 < len(quick) < 150 < 3000 < len(full) < 5000
    assert ConvKey("regular", 3, 2, 3, 16, 640) in full  # the stem at 640
    assert all(k.c_in == k.c_out for k in full if k.kind == "depthwise")


def test_an_interrupted_measurement_resumes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    keys = [ConvKey("regular", 1, 1, c, c, 8) for c in (8, 16, 24, 32)] + [ConvKey("depthwise", 3, 1, 8, 8, 8)]
    out, real = tmp_path / "lut.json", measure_module.measure_key
    calls: list[ConvKey] = []

    def flaky(key: ConvKey, *args, **kwargs) -> float:
        if len(calls) == 3:
            raise KeyboardInterrupt
        calls.append(key)
        return real(key, *args, **kwargs)

    monkeypatch.setattr(measure_module, "measure_key", flaky)
    with pytest.raises(KeyboardInterrupt):
        measure_table(keys, new_table("t", threads=1), out, threads=1, progress=False)
    partial = load_table(out)
    assert len(partial.entries) == 2 and not partial.complete  # overhead graph + 2 entries, then stopped
    monkeypatch.setattr(measure_module, "measure_key", real)
    done = measure_table(keys, partial, out, threads=1, progress=False)
    assert set(done.entries) == set(keys) and all(ms > 0 for ms in done.entries.values())
    assert set(load_table(out).entries) == set(keys)


def test_calibrate_measures_whole_models_and_stores_the_fit(tmp_path: Path) -> None:
    models = [nn.Sequential(nn.Conv2d(3, c, 3, 2, 1), nn.SiLU(), nn.Conv2d(c, c, 3, 1, 1)) for c in (8, 16, 32)]
    table = measure_for(models, 64, new_table("t", threads=1), threads=1, progress=False)
    fit = calibrate(table, models, 64, threads=1)
    assert table.corrections[64] == fit and fit["n"] == 3 and fit["a"] > 0
    assert load_table(table.save(tmp_path / "lut.json")).corrections[64] == pytest.approx(fit)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="archprune")
    add_latency_table_parser(parser.add_subparsers(dest="command", required=True))
    return parser


def test_cli_measures_resumes_and_refuses_another_machines_file(tmp_path: Path, capsys) -> None:
    out = tmp_path / "lut.json"
    argv = ["latency-table", "--target", "box", "--out", str(out), "--quick", "--imgsz", "64", "--threads", "1"]
    args = _parser().parse_args(argv)
    assert args.func(args) == 0
    table = load_table(out)
    assert table.complete and table.target == "box" and len(table.entries) == len(default_grid([64], quick=True))
    assert table.provenance["provider"] == "CPUExecutionProvider" and table.provenance["threads"] == 1
    assert {"host", "cpu", "onnxruntime", "batch", "created"} <= set(table.provenance)
    args = _parser().parse_args(argv)
    assert args.func(args) == 0 and "(0 new" in capsys.readouterr().out
    args = _parser().parse_args(argv[:2] + ["other"] + argv[3:])
    with pytest.raises(ArchpruneError, match="measured elsewhere.*target 'box'"):
        args.func(args)
    assert provider_name("cpu") == "CPUExecutionProvider"
    with pytest.raises(ArchpruneError, match="provider"):
        provider_name("no-such-device")
    with pytest.raises(SystemExit):
        _parser().parse_args(["latency-table", "--out", str(out)])  # --target is required


def test_calibrate_blocks_fits_on_block_space_detectors(tmp_path: Path, capsys) -> None:
    models = calibration_models(calibration_space_for("blocks", nc=10)[0], 3)
    space = BlockSpace(DEFAULT_STRUCTURE, nc=10)
    genomes = [space.genome_of(m.structure) for m in models]
    assert all(isinstance(m, BlockDetector) for m in models) and len(set(genomes)) == 3
    assert genomes[0] == space.baselines()[0][1]  # the initial structure first
    custom = tmp_path / "backbone.yaml"
    custom.write_text("- {class: conv, in: 3, out: 8, s: 2, k: 3}\n" + "".join(
        f"- {{class: k1kx, in: {i}, out: {o}, s: 2, k: 3, L: 1, btn: 8}}\n"
        for i, o in ((8, 16), (16, 24), (24, 32), (32, 40))))
    assert calibration_models(calibration_space_for(f"blocks:{custom}")[0], 1)[0].structure == structure_to_dicts(parse_structure(custom))

    def argv(out: Path, calibrate: str) -> list[str]:
        return ["latency-table", "--target", "box", "--out", str(out), "--quick", "--imgsz", "64", "--threads", "1",
                "--calibrate", calibrate, "--calibrate-candidates", "2", "--nc", "10"]

    out = tmp_path / "lut.json"
    args = _parser().parse_args(argv(out, f"blocks:{custom}"))
    assert args.func(args) == 0
    fit = load_table(out).corrections[64]
    assert fit["on"] == f"blocks:{custom}" and fit["n"] == 2 and fit["a"] > 0
    assert "random block-space detectors" in capsys.readouterr().out
    fresh = tmp_path / "fresh.json"
    args = _parser().parse_args(argv(fresh, "blocks:no-such.yaml"))
    with pytest.raises(ArchpruneError, match="no-such.yaml not found"):
        args.func(args)
    assert not fresh.exists()  # refused before the grid was measured


# -- the prediction ------------------------------------------------------------------------------
def test_predicted_evaluator_is_cheap_picklable_and_says_where_from(tmp_path: Path) -> None:
    path = synthetic_table().save(tmp_path / "lut.json")
    evaluator = pickle.loads(pickle.dumps(PredictedLatencyEvaluator(path)))
    model = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.Conv2d(16, 32, 3, padding=1))
    result = evaluator.evaluate(Candidate(model, imgsz=20))
    assert result["latency_ms"] == pytest.approx(power_law_ms(3, 16, 3, 20) + power_law_ms(16, 32, 3, 20), rel=0.2)
    assert (result["latency_source"], result["host"], result["target"]) == ("predicted:lut.json", "h", "synthetic")
    assert FlopsEvaluator.cost < evaluator.cost < LatencyEvaluator.cost and evaluator.name == "latency"
    assert evaluator.metric_names == ["latency_ms"]
