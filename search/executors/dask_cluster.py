"""Evaluations on a Dask cluster: ``--dask local:N`` (a LocalCluster on this machine) or
``--dask tcp://HOST:8786`` (a cluster started with ``dask scheduler`` / ``dask worker``).

The pipeline (space + evaluators) reaches every worker once, as a worker plugin: the scheduler
hands it to workers that join or restart later too. Each candidate is one task, or with
``latency_resource`` stages in cost order — the cheap evaluators anywhere, those that declare
``on_target`` (a measured latency) on a worker that advertises the resource (``dask worker ... --resources "TARGET=1"``, so one candidate
at a time per device), the proxies anywhere — each stage only after the previous one met every
budget. A worker lost mid-task is Dask's to handle: the scheduler re-runs the task on another
worker, so the candidate is not lost (after ``distributed.scheduler.allowed-failures`` losses it is
recorded as failed).
"""
from __future__ import annotations

import hashlib
import logging
import os
import time
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from distributed import WorkerPlugin

from search.executors._base import Executor
from search.executors.process import pickled_pipeline
from search.pipeline import EvaluationPipeline, Outcome
from spaces._base import Genome
from spaces.errors import ArchpruneError

class PipelinePlugin(WorkerPlugin):
    """Holds the pickled pipeline on each worker; unpickled on first use (workers import torch lazily)."""

    def __init__(self, payload: bytes) -> None:
        self.payload = payload
        self._pipeline: EvaluationPipeline | None = None

    def setup(self, worker: Any) -> None:  # WorkerPlugin hook: nothing to do before the first task
        pass

    def teardown(self, worker: Any) -> None:
        self._pipeline = None

    def pipeline(self) -> EvaluationPipeline:
        if self._pipeline is None:
            import pickle

            self._pipeline = pickle.loads(self.payload)
        return self._pipeline


def evaluate_on_worker(plugin_name: str, genome: Genome, only: list[str] | None) -> Outcome:
    """The task a worker runs: one candidate, all evaluators or one stage of them."""
    from distributed import get_worker

    plugin: PipelinePlugin = get_worker().plugins[plugin_name]
    return plugin.pipeline().evaluate(genome, only)


def connect(address: str, resources: dict[str, float] | None = None) -> Any:
    """A ``distributed.Client`` for ``local:N`` or a scheduler address; one-line errors otherwise."""
    from distributed import Client, LocalCluster

    if address.startswith("local:"):
        try:
            workers = int(address.split(":", 1)[1])
        except ValueError:
            workers = 0
        if workers < 1:
            raise ArchpruneError(f"--dask {address}: give the number of local workers, e.g. local:2")
        # one thread per worker process: two evaluations in one process would share torch's threads
        environ = dict(os.environ)
        try:
            cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None,
                                   silence_logs=logging.ERROR, resources=resources)
        finally:
            # Dask's nanny writes OMP/MKL_NUM_THREADS=1 (and more) into this process's environment for
            # its workers; left there, every later subprocess of the search would run single-threaded
            os.environ.clear()
            os.environ.update(environ)
        return Client(cluster)
    if "://" not in address:
        raise ArchpruneError(f"--dask {address!r}: give local:N or a scheduler address such as tcp://HOST:8786")
    try:
        return Client(address, timeout=10)
    except Exception as err:  # OSError / TimeoutError from the comm layer: the user needs the address and why
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ArchpruneError(f"cannot reach the Dask scheduler at {address}: {reason} "
                             "(start one with `dask scheduler` and workers with `dask worker ADDRESS`)") from None


class DaskExecutor(Executor):
    def __init__(self, pipeline: EvaluationPipeline, address: str, timeout_s: float | None = 600.0,
                 latency_resource: str | None = None) -> None:
        payload = pickled_pipeline(pipeline, "use --executor inline without --dask")
        self.timeout_s, self.resource = timeout_s, latency_resource
        self._environ = dict(os.environ)  # a LocalCluster's nanny rewrites it whenever it (re)starts a worker
        local_resources = {latency_resource: 1} if latency_resource and address.startswith("local:") else None
        self.client = connect(address, local_resources)
        self.plugin_name = "archprune-" + hashlib.sha256(payload).hexdigest()[:16]
        self.client.register_plugin(PipelinePlugin(payload), name=self.plugin_name)
        # without a target resource: one task per candidate, every evaluator on one worker
        self.stages: list[tuple[list[str] | None, bool]] = pipeline.stages() if latency_resource else [(None, False)]
        if latency_resource:
            self._check_resource()
        self.capacity = max(1, sum(self.client.nthreads().values()))
        self._threads = ThreadPoolExecutor(max_workers=self.capacity, thread_name_prefix="archprune-dask")

    def _check_resource(self) -> None:
        info = self.client.scheduler_info().get("workers", {})
        if not any(self.resource in w.get("resources", {}) for w in info.values()):
            raise ArchpruneError(f"no Dask worker advertises the resource {self.resource!r}; start one on the "
                                 f"target device with `dask worker ADDRESS --resources \"{self.resource}=1\"`")

    def submit(self, genome: Genome) -> Future[Outcome]:
        return self._threads.submit(self._run, tuple(genome))

    def _run(self, genome: Genome) -> Outcome:
        start, outcome = time.monotonic(), None
        for stage, pinned in self.stages:
            left = None if self.timeout_s is None else max(1.0, self.timeout_s - (time.monotonic() - start))
            part = self._stage(genome, stage, {self.resource: 1} if pinned else None, left)
            outcome = part if outcome is None else outcome.then(part)
            if outcome.error or any(v > 0 for v in outcome.constraints.values()):
                break  # a broken budget stops the dearer stages, as in one process
        assert outcome is not None
        return outcome

    def _stage(self, genome: Genome, only: list[str] | None, resources: dict[str, int] | None,
               timeout_s: float | None) -> Outcome:
        from distributed import KilledWorker

        future = self.client.submit(evaluate_on_worker, self.plugin_name, genome, only, resources=resources,
                                    pure=False, key=f"archprune-{'-'.join(map(str, genome))}-{time.monotonic_ns()}")
        try:
            return future.result(timeout=timeout_s)
        except KilledWorker as err:
            return Outcome(error=f"WorkerDied: Dask lost every worker that tried this candidate ({err})")
        except TimeoutError:
            self._stop_hung(future)
            return Outcome(error=f"TimeoutError: the candidate took longer than {self.timeout_s:g} s "
                                 "(--candidate-timeout); its Dask worker was restarted")
        except Exception as err:  # the task itself never raises (the pipeline returns errors); this is the cluster
            return Outcome(error=f"{type(err).__name__}: {err}")

    def _stop_hung(self, future: Any) -> None:
        """A running task cannot be cancelled in its thread: restart the worker that holds it."""
        key = future.key
        try:
            where = self.client.run_on_scheduler(_processing_on, key=key)
            future.cancel()
            if where:
                self.client.restart_workers([where], raise_for_error=False)
        except Exception:  # best effort: the candidate is already recorded as failed
            pass

    def close(self) -> None:
        self._threads.shutdown(wait=False, cancel_futures=True)
        cluster = getattr(self.client, "cluster", None)
        try:
            self.client.close()
            if cluster is not None:
                cluster.close()
        except Exception:  # closing a cluster that is already gone
            pass
        os.environ.clear()
        os.environ.update(self._environ)


def _processing_on(dask_scheduler: Any, key: str) -> str | None:
    task = dask_scheduler.tasks.get(key)
    return task.processing_on.address if task is not None and task.processing_on is not None else None
