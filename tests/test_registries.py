"""The family suites (issue 15): every registered evaluator and every registered space passes these,
with no test written for it by name. (The driver family's suite is in test_search_runner.py.)"""
from __future__ import annotations

import math
from pathlib import Path

import pytest

from evaluators._base import Candidate, Evaluator, RunContext
from evaluators.registry import EVALUATORS, evaluators_for, metric_table
from search.job import run_search
from search.objectives import known_metrics, parse_constraint
from search.settings import RunSettings
from search.space_recipes import SPACES, space_recipe
from spaces.errors import ArchpruneError
from spaces.plugin_registry import Registry

ROOT = Path(__file__).resolve().parents[1]
# small but real: what each for_run builds under these settings runs on the unpruned digits model
SMALL = dict(model="yolov8n-digits", data="digits-det", val_images=4, calib_batches=1, finetune_steps=1,
             latency_runs=3, latency_warmup=1)


@pytest.mark.parametrize("name", EVALUATORS.names())
def test_an_evaluator_declares_what_it_yields(name: str) -> None:
    kind = EVALUATORS.get(name)
    assert issubclass(kind, Evaluator) and kind.name and kind.metrics
    names = [m.name for m in kind.metrics]
    assert len(set(names)) == len(names)
    for metric in kind.metrics:
        assert metric.direction in ("min", "max") and metric.low < metric.high
        assert metric_table()[metric.name].direction == metric.direction  # one name, one meaning
    assert set(kind.directions) <= set(names)


@pytest.mark.parametrize("name", EVALUATORS.names())
def test_an_evaluator_built_for_a_run_yields_declared_metrics_in_range(name: str) -> None:
    from evaluators.data import load_data_config
    from spaces.models import load_model

    kind = EVALUATORS.get(name)
    settings = RunSettings(**SMALL)
    wanted = frozenset(m.name for m in kind.metrics)
    evaluator = kind.for_run(RunContext(settings, load_data_config("digits-det"), 64, wanted))
    if evaluator is None:  # the default settings choose another evaluator (or a space's recipe builds it)
        assert not kind.needs_data or settings.proxy not in name
        return
    assert set(evaluator.metric_names) <= wanted
    model = load_model("yolov8n-digits") if evaluator.needs_model else None
    values = evaluator.evaluate(Candidate(model=model, imgsz=64))
    declared = {m.name: m for m in kind.metrics}
    for metric in evaluator.metric_names:
        value = values[metric]
        assert declared[metric].low <= value <= declared[metric].high or value == -math.inf, (metric, value)


def test_the_settings_choose_one_evaluator_per_metric() -> None:
    measured = evaluators_for(["latency_ms", "map50_95"], RunSettings(**SMALL), _data(), 64)
    assert [type(e).__name__ for e in measured] == ["LatencyEvaluator", "AdaptiveBNMapEvaluator"]
    finetune = evaluators_for(["map50_95"], RunSettings(**{**SMALL, "proxy": "finetune"}), _data(), 64)
    assert [type(e).__name__ for e in finetune] == ["FinetuneMapEvaluator"]


def _data():
    from evaluators.data import load_data_config

    return load_data_config("digits-det")


def test_objectives_know_every_declared_metric_and_its_range() -> None:
    assert set(metric_table()) == set(known_metrics())
    with pytest.raises(ArchpruneError, match=r"can never be met: map50_95 lies in \[0, 1\]"):
        parse_constraint("map50_95>=1.5")


def test_a_registry_refuses_unknown_names_and_bad_paths() -> None:
    registry: Registry[object] = Registry("widget", "archprune.no-such-group", {"gear": "math:pi"})
    assert registry.get("gear") == math.pi
    with pytest.raises(ArchpruneError, match=r"unknown widget 'geer' \(did you mean 'gear'\?\); choose one of gear"):
        registry.get("geer")
    registry.register("cog", "math:no_such_name")
    with pytest.raises(ArchpruneError, match="widget 'cog' is registered as 'math:no_such_name', which does not import"):
        registry.get("cog")
    with pytest.raises(ArchpruneError, match="import path as 'module:attribute'"):
        registry.register("bad", "math.pi")


@pytest.mark.parametrize("name", SPACES.names())
def test_a_space_searches_resumes_and_exports(name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from search.export import export_trial
    from search.runs import open_run

    monkeypatch.chdir(ROOT)  # the examples name ../shared data relative to the repository
    recipe = space_recipe(name)
    assert recipe.example, f"space {name!r} gives no example search"
    settings = RunSettings(**{"space": name, **recipe.example, "trials": 6, "results": str(tmp_path),
                              "executor": "inline"}).check()
    for path in (settings.table,):
        if path and not Path(path).exists():
            pytest.skip(f"shared test data not found: {path}")
    parts = recipe.build(settings)
    space = parts.space
    for _, genome in space.baselines():  # the space's contract, as the drivers use it
        assert space.validate(genome) == genome and space.from_config(space.to_config(genome)) == genome
    provided = {m for e in parts.evaluators for m in e.metric_names}
    assert set(settings.metric_names()) <= provided
    result = run_search(settings, progress=False, say=lambda line: None)
    assert len(result.store) == 6 and not any(r.failed for r in result.store.records())
    again = run_search(RunSettings(**{**settings.to_dict(), "trials": 8}), progress=False, say=lambda line: None)
    assert len(again.store) == 8  # the same settings resume the run
    handle = open_run(settings.run_name(), results=str(tmp_path))
    trial = again.front[0].number
    try:
        recipe.check_export(handle)
    except ArchpruneError as refused:  # a space without files to export says so in one line
        assert "\n" not in str(refused)
        return
    export_trial(handle, trial, tmp_path / "export", say=lambda line: None)
    assert any((tmp_path / "export").iterdir())


def test_a_cluster_pins_exactly_the_evaluators_that_declare_on_target() -> None:
    from search.objectives import Objective
    from search.pipeline import EvaluationPipeline
    from tests.search_toys import QualityEvaluator, SizeEvaluator, ToySpace

    class Timed(SizeEvaluator):
        name, cost, on_target, directions = "timed", 5, True, {"timed": "min"}

    pipeline = EvaluationPipeline(ToySpace(), [QualityEvaluator(), Timed(), SizeEvaluator()],
                                  [Objective("size", "min")], [], 32)
    assert pipeline.stages() == [(["size"], False), (["timed"], True), (["proxy"], False)]
    # a measured latency times the target; one predicted from a table runs anywhere
    assert EVALUATORS.get("latency").on_target and not EVALUATORS.get("latency-predicted").on_target
