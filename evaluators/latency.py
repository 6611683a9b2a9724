"""Latency of an exported model in onnxruntime, with the provenance that makes it readable later."""
from __future__ import annotations

import contextlib
import fcntl
import os
import platform
import socket
import tempfile
import time
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch
from torch import nn

from evaluators._base import Candidate, Evaluator, Metric, RunContext
from evaluators.onnx_export import export_onnx, onnx_session
from spaces.errors import ArchpruneError


def cpu_model() -> str:
    """The CPU's marketing name where Linux exposes it, else what platform knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _timed(run: Any, warmup: int, runs: int) -> dict[str, float]:
    """Median and p90 wall time of ``run()`` in ms, after ``warmup`` untimed calls."""
    for _ in range(warmup):
        run()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        run()
        times.append((time.perf_counter() - start) * 1e3)
    return {"latency_ms": float(np.median(times)), "latency_p90_ms": float(np.percentile(times, 90))}


def _provenance(runtime: str, provider: str, threads: int, runs: int) -> dict[str, Any]:
    return {"host": socket.gethostname(), "cpu": cpu_model(), "onnxruntime": runtime, "provider": provider,
            "threads": threads, "runs": runs}


def measure_onnx_latency(path: str | Path, imgsz: int, threads: int | None = None,
                         providers: list[str] | None = None, warmup: int = 5, runs: int = 30) -> dict[str, Any]:
    """Median and p90 wall time of batch-1 inference, in ms, plus host/CPU/runtime provenance."""
    import onnxruntime as ort

    session = onnx_session(path, providers=providers, threads=threads)
    x = np.random.default_rng(0).random((1, 3, imgsz, imgsz), dtype=np.float32)
    feed = {session.get_inputs()[0].name: x}
    result = _timed(lambda: session.run(None, feed), warmup, runs)
    # threads 0 = onnxruntime's default (all cores)
    return {**result, **_provenance(ort.__version__, session.get_providers()[0], threads or 0, runs)}


def best_of_rounds(models: list[nn.Module], imgsz: int, threads: int | None = None, rounds: int = 3,
                   warmup: int = 5, runs: int = 30) -> list[float]:
    """Median ms of each model, exported once, measured in ``rounds`` that interleave the models, the
    best round kept: a burst of load (or a slow spell of a shared VM) then lands on no model alone."""
    with tempfile.TemporaryDirectory(prefix="archprune-rounds-") as tmp:
        paths = [export_onnx(m, Path(tmp) / f"m{i}.onnx", imgsz=imgsz) for i, m in enumerate(models)]
        best = [float("inf")] * len(models)
        for _ in range(rounds):
            for i, path in enumerate(paths):
                ms = measure_onnx_latency(path, imgsz, threads, warmup=warmup, runs=runs)["latency_ms"]
                best[i] = min(best[i], ms)
    return best


@contextlib.contextmanager
def measurement_lock(path: Path | None = None) -> Iterator[None]:
    """One latency measurement at a time on this machine: two at once distort each other."""
    path = path or Path(os.environ.get("ARCHPRUNE_CACHE") or Path.home() / ".cache" / "archprune") / "latency.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def measure_torch_latency(model: nn.Module, imgsz: int, threads: int | None = None, warmup: int = 5,
                          runs: int = 30) -> dict[str, Any]:
    """Median and p90 of eager PyTorch inference, batch 1, in ms."""
    previous = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    x = torch.rand(1, 3, imgsz, imgsz, generator=torch.Generator().manual_seed(0))
    model.eval()
    try:
        with torch.no_grad():
            result = _timed(lambda: model(x), warmup, runs)
    finally:
        torch.set_num_threads(previous)
    return {**result, **_provenance("", f"torch {torch.__version__}", threads or previous, runs)}


BACKENDS = ("ort", "torch")  # onnxruntime on the exported ONNX model, or torch eager


def check_backend(backend: str, or_else: str = "") -> None:
    if backend not in BACKENDS:
        raise ArchpruneError(f"unknown latency backend {backend!r}; use {', '.join(map(repr, BACKENDS))}{or_else}")


LATENCY = Metric("latency_ms", "min", "ms", 0.0)
LATENCY_P90 = Metric("latency_p90_ms", "min", "ms", 0.0)


class LatencyEvaluator(Evaluator):
    """Latency measured on this machine: ONNX + onnxruntime (default) or torch eager."""

    metrics = (LATENCY, LATENCY_P90)
    on_target = True  # it times this machine: on a cluster, the worker marked as the target device
    cost = 5
    name = "latency"

    def __init__(self, backend: str = "ort", threads: int | None = None, runs: int = 30, warmup: int = 5,
                 providers: list[str] | None = None) -> None:
        check_backend(backend)
        self.backend, self.threads, self.runs, self.warmup, self.providers = backend, threads, runs, warmup, providers

    @classmethod
    def for_run(cls, run: RunContext) -> "LatencyEvaluator | None":
        if run.settings.latency.startswith("predict:"):
            return None  # predicted from a table (PredictedLatencyEvaluator)
        return cls.measuring(run.settings)

    @classmethod
    def measuring(cls, settings: Any) -> "LatencyEvaluator":
        """Measured on this machine with a run's settings (with --latency predict:, by onnxruntime)."""
        backend = "ort" if settings.latency.startswith("predict:") else settings.latency
        return cls(backend, threads=settings.threads, runs=settings.latency_runs, warmup=settings.latency_warmup,
                   providers=settings.providers)

    def evaluate(self, candidate: Candidate) -> dict[str, Any]:
        with measurement_lock():
            if self.backend == "torch":
                return measure_torch_latency(candidate.model, candidate.imgsz, self.threads, self.warmup, self.runs)
            with tempfile.TemporaryDirectory(prefix="archprune-onnx-") as tmp:
                start = time.perf_counter()
                path = export_onnx(candidate.model, Path(tmp) / "candidate.onnx", imgsz=candidate.imgsz)
                exported = time.perf_counter()
                result = measure_onnx_latency(path, candidate.imgsz, self.threads, self.providers, self.warmup,
                                              self.runs)
                self.last_timings = {"export_s": exported - start, "latency_runs_s": time.perf_counter() - exported}
                return result
