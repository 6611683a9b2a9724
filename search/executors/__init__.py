"""Where evaluations run; every driver goes through ``make_executor``'s result.

- ``inline``: in the search process (debugging).
- ``process`` (default): one worker process, killed past the candidate timeout.
- ``workers=N``: a pool of N such worker processes on this machine.
- ``dask="local:N" | "tcp://HOST:8786"``: a Dask cluster, latency optionally pinned to a resource.
"""
from __future__ import annotations

from search.executors._base import Executor
from search.executors.inline import InlineExecutor
from search.executors.process import PoolExecutor, ProcessExecutor
from search.pipeline import EvaluationPipeline
from spaces.errors import ArchpruneError

__all__ = ["EXECUTORS", "Executor", "InlineExecutor", "PoolExecutor", "ProcessExecutor", "make_executor"]

EXECUTORS = ("process", "inline")


def make_executor(kind: str, pipeline: EvaluationPipeline, timeout_s: float | None = None, *, workers: int = 1,
                  dask: str | None = None, latency_resource: str | None = None) -> Executor:
    if dask:
        from search.executors.dask_cluster import DaskExecutor

        return DaskExecutor(pipeline, dask, timeout_s=timeout_s, latency_resource=latency_resource)
    if latency_resource:
        raise ArchpruneError("--latency-resource pins latency to Dask workers: use it with --dask")
    if workers != 1:  # N > 1 candidates at once means N worker processes, whatever the one-at-a-time kind
        return PoolExecutor(pipeline, workers, timeout_s=timeout_s)
    if kind == "inline":
        return InlineExecutor(pipeline)
    if kind == "process":
        return ProcessExecutor(pipeline, timeout_s=timeout_s)
    raise ArchpruneError(f"unknown executor {kind!r}; choose one of {', '.join(EXECUTORS)}")
