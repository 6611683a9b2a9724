"""The evaluators by name, and the metric table built from what each one declares.

An evaluator is one module: an ``Evaluator`` subclass that declares its ``metrics`` and builds
itself for a run in ``for_run``. Register it here (built-ins) or through an entry point of the group
``archprune.evaluators`` (``my-score = "my_pkg.score:MyScoreEvaluator"``). Objectives, constraints,
plot axes and table units then know its metrics, and a search that wants one of them builds it.
"""
from __future__ import annotations

from typing import Any, Iterable

from evaluators._base import Evaluator, Metric, RunContext
from spaces.errors import ArchpruneError
from spaces.plugin_registry import Registry

#: in the order a search considers them for a metric (the first whose ``for_run`` builds one wins),
#: which is also the order the metric table lists metrics in
EVALUATORS: Registry[type[Evaluator]] = Registry("evaluator", "archprune.evaluators", {
    "latency": "evaluators.latency:LatencyEvaluator",
    "latency-predicted": "evaluators.latency_predicted:PredictedLatencyEvaluator",
    "deployment": "evaluators.latency_harness:DeploymentEvaluator",
    "flops": "evaluators.flops:FlopsEvaluator",
    "proxy-adaptive-bn": "evaluators.proxy_accuracy:AdaptiveBNMapEvaluator",
    "proxy-finetune": "evaluators.proxy_finetune:FinetuneMapEvaluator",
    "int8": "evaluators.int8:Int8Evaluator",
    "table": "evaluators.table_lookup:TableEvaluator",
    "block-analytic": "evaluators.block_analytic:BlockAnalyticEvaluator",
    "zero-shot": "evaluators.zero_shot_evaluator:ZeroShotEvaluator",
})


def metric_table() -> dict[str, Metric]:
    """Every registered evaluator's metrics, by name; two declarations of one name must agree."""
    table: dict[str, Metric] = {}
    for name, evaluator in EVALUATORS.items():
        for metric in evaluator.metrics:
            known = table.setdefault(metric.name, metric)
            if known.direction != metric.direction:
                raise ArchpruneError(f"evaluator {name!r} declares {metric.name} as {metric.direction}, another "
                                     f"as {known.direction}: one metric name must mean one thing")
    return table


def metrics_of(name: str) -> list[str]:
    return [m.name for m in EVALUATORS.get(name).metrics]


def needs_data(metrics: Iterable[str]) -> bool:
    """Whether scoring any of ``metrics`` needs the run's images (an accuracy proxy)."""
    wanted = set(metrics)
    return any(e.needs_data and wanted & {m.name for m in e.metrics} for _, e in EVALUATORS.items())


def evaluators_for(metrics: Iterable[str], settings: Any, data: Any, imgsz: int, space: Any = None) -> list[Evaluator]:
    """The evaluators that compute ``metrics`` for a run: for each registered one that declares some
    still uncovered, in registry order, ``for_run`` builds it (or declines: another is chosen by the
    settings, e.g. predicted instead of measured latency)."""
    left, built = set(metrics), []
    for _, kind in EVALUATORS.items():
        wanted = left & {m.name for m in kind.metrics}
        if not wanted:
            continue
        evaluator = kind.for_run(RunContext(settings, data, imgsz, frozenset(wanted), space))
        if evaluator is not None:
            built.append(evaluator)
            left -= set(evaluator.metric_names)
    return built
