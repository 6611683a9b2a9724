"""Where evaluations run; every driver goes through ``make_executor``'s result.

- ``auto`` (default): ``inline`` when no evaluator builds the candidate, else ``process``.
- ``inline``: in the search process (debugging; cheap analytic scores).
- ``process``: one worker process, killed past the candidate timeout.
- ``workers=N``: a pool of N such worker processes on this machine.
- ``dask="local:N" | "tcp://HOST:8786"``: a Dask cluster, latency optionally pinned to a resource.
"""
from __future__ import annotations

from typing import Sequence

from evaluators._base import Evaluator
from search.executors._base import Executor
from search.executors.inline import InlineExecutor
from search.executors.process import PoolExecutor, ProcessExecutor
from search.pipeline import EvaluationPipeline
from spaces.errors import ArchpruneError

__all__ = ["EXECUTORS", "Executor", "check_executor_options", "InlineExecutor", "PoolExecutor", "ProcessExecutor", "make_executor",
           "resolve_executor"]

EXECUTORS = ("auto", "process", "inline")


def check_executor_options(kind: str, workers: int, dask: str | None, latency_resource: str | None) -> None:
    """Where-to-evaluate options no executor can honour, each a one-line error (checked by the
    settings before any model loads, and by ``make_executor`` for Python callers, where ``workers``
    > 1 takes precedence over the one-at-a-time ``kind``)."""
    if kind not in EXECUTORS:
        raise ArchpruneError(f"unknown executor {kind!r}; use 'auto' (default), 'process' or 'inline'")
    if int(workers) < 1:
        raise ArchpruneError(f"--workers {workers}: give at least 1 worker process")
    if latency_resource and not dask:
        raise ArchpruneError("--latency-resource pins latency to Dask workers: use it with --dask")


def resolve_executor(kind: str, evaluators: Sequence[Evaluator]) -> str:
    """``auto`` is ``inline`` when no evaluator builds the candidate (analytic scores, a table lookup:
    nothing a worker's timeout could save, and handing each candidate to a worker halved a zero-shot
    search's rate, 346 -> 173 structures/s), else ``process``."""
    if kind != "auto":
        return kind
    return "inline" if not any(e.needs_model for e in evaluators) else "process"


def make_executor(kind: str, pipeline: EvaluationPipeline, timeout_s: float | None = None, *, workers: int = 1,
                  dask: str | None = None, latency_resource: str | None = None) -> Executor:
    check_executor_options(kind, workers, dask, latency_resource)
    if dask:
        from search.executors.dask_cluster import DaskExecutor

        return DaskExecutor(pipeline, dask, timeout_s=timeout_s, latency_resource=latency_resource)
    if workers != 1:  # N > 1 candidates at once means N worker processes, whatever the one-at-a-time kind
        return PoolExecutor(pipeline, workers, timeout_s=timeout_s)
    if resolve_executor(kind, pipeline.evaluators) == "inline":
        return InlineExecutor(pipeline)
    return ProcessExecutor(pipeline, timeout_s=timeout_s)
