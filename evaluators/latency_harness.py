"""The deployment harness: what a model costs on a runtime beyond its median latency.

``harness`` measures, for one model: the latency percentiles and spread at batch 1, the throughput
at a larger batch, the session's load time, the exported file's size, and the runtime's peak
resident memory for the model. Memory is read in a fresh process (``python -m
evaluators.latency_harness``): after importing the runtime and making the input, the process resets
its resident-set high-water mark (Linux's ``/proc/self/clear_refs``, value 5), loads the model and
runs it; the peak is the new high-water mark (``VmHWM``) less the resident set before loading. A
process that has already run other models would report their peak, not this model's; a
``ru_maxrss`` difference would hide a load that stays below an earlier import's transient peak.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from evaluators._base import Candidate, Evaluator, Metric, RunContext
from evaluators.latency import measurement_lock, timed_runs
from evaluators.latency_paired import PERCENTILE_RUNS
from spaces.errors import ArchpruneError

if TYPE_CHECKING:  # torch and the runtimes load when a model is measured, not for the metric table
    from torch import nn

THROUGHPUT_BATCH = 8


def percentiles(times_ms: list[float]) -> dict[str, float]:
    """p50 as ``latency_ms``, and p90/p95/p99 where there are enough runs (``PERCENTILE_RUNS``)."""
    out = {"latency_ms": float(np.median(times_ms)), "latency_std_ms": float(np.std(times_ms))}
    for p, needed in PERCENTILE_RUNS.items():
        if len(times_ms) >= needed:
            out[f"latency_p{p}_ms"] = float(np.percentile(times_ms, p))
    return out


def harness(model: nn.Module, imgsz: int, runtime: str = "ort", threads: int | None = None, runs: int = 100,
            warmup: int = 10, throughput_batch: int = THROUGHPUT_BATCH, memory: bool = True) -> dict[str, Any]:
    """Every deployment metric of ``model`` on ``runtime`` (see the module's docstring)."""
    from evaluators.runtimes import make_runtime, scratch_folder, torch_threads

    engine = make_runtime(runtime, threads)
    with measurement_lock(), torch_threads(engine.threads), scratch_folder() as tmp:
        source = engine.prepare(model, imgsz, Path(tmp))
        start = time.perf_counter()
        run = engine.load(source, imgsz)
        load_ms = (time.perf_counter() - start) * 1e3
        out: dict[str, Any] = {**percentiles(timed_runs(run, warmup, runs)), "load_ms": load_ms,
                               "model_mb": _size_mb(source, model)}
        batched = engine.load(engine.prepare(model, imgsz, Path(tmp), "batched", batch=throughput_batch), imgsz,
                              batch=throughput_batch)
        seconds = float(np.median(timed_runs(batched, 2, max(5, runs // 10)))) / 1e3
        out.update(throughput_ips=throughput_batch / seconds, throughput_batch=throughput_batch)
        if memory:
            out["peak_mem_mb"] = peak_memory_mb(source, model, imgsz, runtime, engine.threads, Path(tmp))
    return {**out, **engine.provenance(), "runs": runs, "imgsz": imgsz}


def _size_mb(source: nn.Module | Path, model: nn.Module) -> float:
    if isinstance(source, Path):
        return source.stat().st_size / 1e6
    return sum(t.numel() * t.element_size() for t in model.state_dict().values()) / 1e6


def peak_memory_mb(source: nn.Module | Path, model: nn.Module, imgsz: int, runtime: str, threads: int | None,
                   folder: Path) -> float:
    """The runtime's peak resident memory for the model, in a fresh process (see the module docstring)."""
    if not isinstance(source, Path):  # torch eager: the fresh process loads the weights from a checkpoint
        from spaces.models import save_checkpoint

        try:
            source = save_checkpoint(model, folder / "memory.pt")
        except AttributeError:  # not one of our detectors: no weights-only checkpoint to load it from
            raise ArchpruneError("peak memory in torch eager is measured for archprune detectors only; "
                                 "use the ort or openvino runtime for this model") from None
    command = [sys.executable, "-m", "evaluators.latency_harness", str(source), str(imgsz), runtime, str(threads or 0)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600)
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise ArchpruneError(f"measuring the {runtime} runtime's memory failed: {last}")
    return float(json.loads(done.stdout)["peak_mem_mb"])


def _memory_probe(argv: list[str]) -> None:
    """The fresh process of ``peak_memory_mb``: prints {"peak_mem_mb": ...} on stdout."""
    parser = argparse.ArgumentParser()
    for name in ("source", "imgsz", "runtime", "threads"):
        parser.add_argument(name)
    args = parser.parse_args(argv)
    import torch

    from evaluators.runtimes import make_runtime

    engine = make_runtime(args.runtime, int(args.threads) or None)
    torch.set_num_threads(engine.threads)
    imgsz = int(args.imgsz)
    if engine.from_onnx:
        engine.provenance()  # imports the runtime before the baseline
        source: Any = Path(args.source)
    else:
        from spaces.models import load_model

        source = None
    np.random.default_rng(0).random((1, 3, imgsz, imgsz), dtype=np.float32)
    Path("/proc/self/clear_refs").write_text("5")  # the high-water mark restarts from the current size
    before = _status_kib("VmRSS")
    if source is None:
        source = load_model(args.source)
    run = engine.load(source, imgsz)
    for _ in range(5):
        run()
    print(json.dumps({"peak_mem_mb": max(_status_kib("VmHWM") - before, 0) * 1024 / 1e6}))


def _status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise ArchpruneError(f"/proc/self/status has no {field}: peak memory is measured on Linux only")


class DeploymentEvaluator(Evaluator):
    """The harness's metrics beyond latency, on the run's runtime (``--latency``), as search metrics."""

    metrics = (Metric("throughput_ips", "max", "images/s", 0.0), Metric("peak_mem_mb", "min", "MB", 0.0),
               Metric("model_mb", "min", "MB", 0.0), Metric("load_ms", "min", "ms", 0.0))
    on_target = True
    cost = 6  # after the latency (5): a candidate over a latency budget never pays for this
    name = "deployment"

    def __init__(self, runtime: str = "ort", threads: int | None = None, runs: int = 30,
                 throughput_batch: int = THROUGHPUT_BATCH, wanted: frozenset[str] | None = None) -> None:
        self.runtime, self.threads, self.runs, self.throughput_batch = runtime, threads, runs, throughput_batch
        self.directions = {m.name: m.direction for m in self.metrics if wanted is None or m.name in wanted}

    @classmethod
    def for_run(cls, run: RunContext) -> "DeploymentEvaluator":
        latency = run.settings.latency
        return cls("ort" if latency.startswith("predict:") else latency, run.settings.threads,
                   run.settings.latency_runs, run.settings.throughput_batch, run.wanted)

    def evaluate(self, candidate: Candidate) -> dict[str, Any]:
        result = harness(candidate.model, candidate.imgsz, self.runtime, self.threads, runs=self.runs,
                         warmup=2, throughput_batch=self.throughput_batch, memory="peak_mem_mb" in self.directions)
        return {k: result[k] for k in self.directions}


if __name__ == "__main__":
    _memory_probe(sys.argv[1:])
