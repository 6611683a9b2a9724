"""Latency of an exported model in onnxruntime, with the provenance that makes it readable later.

torch, the exporter and the runtimes are imported where a measurement needs them: the metric table
imports every evaluator module, and a search that measures no latency (a zero-shot block search, a
resume that only re-reads its store) must not pay ~2 s for torch."""
from __future__ import annotations

import contextlib
import os
import platform
import socket
import tempfile
import time
from pathlib import Path
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Iterator

import numpy as np

from evaluators._base import Candidate, Evaluator, Metric, RunContext
from evaluators.cache_folder import cache_folder, exclusive_lock
from evaluators.choice_names import check_backend
from evaluators.latency_paired import (DEFAULT_SCHEME, MIN_WINDOW_MS, PERCENTILE_RUNS, SCHEMES, WARM_SCHEME,
                                      WINDOW_SCHEME, PairedTimes, interleave, paired_metrics, reference_best_ms)
from evaluators.latency_machine_scale import settle_best_ms
from spaces.errors import ArchpruneError

if TYPE_CHECKING:
    from torch import nn

    from evaluators.runtimes import Runtime


def cpu_model() -> str:
    """The CPU's marketing name where Linux exposes it, else what platform knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def timed_runs(run: Any, warmup: int, runs: int) -> list[float]:
    """Wall time of each of ``runs`` calls of ``run()`` in ms, after ``warmup`` untimed calls."""
    for _ in range(warmup):
        run()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        run()
        times.append((time.perf_counter() - start) * 1e3)
    return times


def _timed(run: Any, warmup: int, runs: int) -> dict[str, float]:
    """Median and p90 wall time of ``run()`` in ms, after ``warmup`` untimed calls."""
    times = timed_runs(run, warmup, runs)
    return {"latency_ms": float(np.median(times)), "latency_p90_ms": float(np.percentile(times, 90))}


def _provenance(runtime: str, provider: str, threads: int, runs: int) -> dict[str, Any]:
    return {"host": socket.gethostname(), "cpu": cpu_model(), "onnxruntime": runtime, "provider": provider,
            "threads": threads, "runs": runs}


def measure_onnx_latency(path: str | Path, imgsz: int, threads: int | None = None,
                         providers: list[str] | None = None, warmup: int = 5, runs: int = 30) -> dict[str, Any]:
    """Median and p90 wall time of batch-1 inference, in ms, plus host/CPU/runtime provenance."""
    import onnxruntime as ort

    from evaluators.onnx_export import onnx_session

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
    from evaluators.onnx_export import export_onnx

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
    with exclusive_lock(path or cache_folder() / "latency.lock"):
        yield


def measure_torch_latency(model: nn.Module, imgsz: int, threads: int | None = None, warmup: int = 5,
                          runs: int = 30) -> dict[str, Any]:
    """Median and p90 of eager PyTorch inference, batch 1, in ms."""
    import torch

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


LATENCY = Metric("latency_ms", "min", "ms", 0.0)
LATENCY_P90 = Metric("latency_p90_ms", "min", "ms", 0.0)


class LatencyEvaluator(Evaluator):
    """Latency measured on this machine: ONNX in onnxruntime (default) or OpenVINO, or torch eager.

    With a ``reference`` model (a search passes its space's unpruned model or initial structure),
    each candidate is timed run by run against it (``evaluators.latency_paired``): ``latency_ms`` is
    the candidate's time in the reference's best conditions, ``latency_raw_ms`` what this window
    measured and ``latency_ratio`` the two's ratio. Without one, a plain median of ``runs`` runs.
    """

    metrics = (LATENCY, LATENCY_P90, Metric("latency_p95_ms", "min", "ms", 0.0),
               Metric("latency_p99_ms", "min", "ms", 0.0), Metric("latency_std_ms", "min", "ms", 0.0),
               Metric("latency_raw_ms", "min", "ms", 0.0), Metric("latency_ratio", "min", "× reference", 0.0))
    on_target = True  # it times this machine: on a cluster, the worker marked as the target device
    cost = 5
    name = "latency"

    def __init__(self, backend: str = "ort", threads: int | None = None, runs: int = 30, warmup: int = 5,
                 providers: list[str] | None = None, reference: nn.Module | None = None,
                 reference_rounds: int = 5, scheme: str | None = None) -> None:
        check_backend(backend)
        if scheme is not None and scheme not in SCHEMES:
            raise ArchpruneError(f"unknown latency scheme {scheme!r}; use {' or '.join(map(repr, SCHEMES))}")
        # without a scheme asked for, a resumed run keeps the one it was measured with (bind_run)
        self.scheme, self.scheme_given = scheme or DEFAULT_SCHEME, scheme is not None
        from evaluators.runtimes import DEFAULT_THREADS

        self.threads = threads or DEFAULT_THREADS  # a recorded choice, never the runtime's "all cores"
        self.backend, self.runs, self.warmup, self.providers = backend, runs, warmup, providers
        self.reference, self.reference_rounds = reference, reference_rounds
        self.reference_onnx: bytes | None = None  # exported once by bind_run; travels to the workers
        self.reference_scale: dict[str, Any] | None = None  # the run's stored scale (see bind_run)
        self.last_pairs: PairedTimes | None = None  # the last paired measurement's single runs
        # a percentile only where the run count supports it (latency_paired.PERCENTILE_RUNS)
        unsupported = {f"latency_p{p}_ms" for p, needed in PERCENTILE_RUNS.items() if runs < needed}
        paired = [m.name for m in self.metrics if m.name not in unsupported]
        self.directions = {name: "min" for name in (paired if reference is not None else
                                                    ["latency_ms", "latency_p90_ms"])}

    @classmethod
    def for_run(cls, run: RunContext) -> "LatencyEvaluator | None":
        if run.settings.latency.startswith("predict:"):
            return None  # predicted from a table (PredictedLatencyEvaluator)
        reference = run.space.build(run.space.baselines()[0][1]) if run.space is not None else None
        return cls.measuring(run.settings, reference)

    @classmethod
    def measuring(cls, settings: Any, reference: nn.Module | None = None) -> "LatencyEvaluator":
        """Measured on this machine with a run's settings (with --latency predict:, by onnxruntime)."""
        backend = "ort" if settings.latency.startswith("predict:") else settings.latency
        return cls(backend, threads=settings.threads, runs=settings.latency_runs, warmup=settings.latency_warmup,
                   providers=settings.providers, reference=reference)

    # -- the run's scale -------------------------------------------------------------------
    def _scale_key(self, imgsz: int) -> dict[str, Any]:
        """What must match for two measurements to share a scale."""
        from spaces.models.checkpoint import state_dict_sha256

        assert self.reference is not None
        return {"scheme": self.scheme, "backend": self.backend, "threads": self.threads, "imgsz": imgsz,
                "providers": list(self.providers or ["CPUExecutionProvider"]),
                "reference_sha256": state_dict_sha256(self.reference)}

    def bind_run(self, stored: dict[str, Any], resumed: bool, imgsz: int) -> dict[str, Any]:
        """Before the first candidate: export the reference and take the run's scale, the reference's
        best latency, from the run when it has one (a resume, another process), else measure it now
        and take the lower of that and this machine's best before (latency_machine_scale)."""
        if self.reference is None:
            return {}
        scale = stored.get(SCALE_ATTR)
        if scale is not None and not self.scheme_given and scale.get("scheme") in SCHEMES:
            self.scheme = scale["scheme"]  # a run keeps its scheme when the default changes
        from evaluators.onnx_export import export_onnx
        from evaluators.runtimes import scratch_folder

        key = self._scale_key(imgsz)
        if self._runtime().from_onnx:  # exported once: every candidate's window reloads the same file
            with scratch_folder() as tmp:
                self.reference_onnx = export_onnx(self.reference, Path(tmp) / "reference.onnx", imgsz=imgsz).read_bytes()
        if scale is None and resumed:
            raise ArchpruneError("this run's latencies were measured without a reference model (an older archprune): "
                                 "they cannot be mixed with paired ones; pass a new --run")
        if scale is not None:
            differs = [f"{k} {scale.get(k)!r} -> {v!r}" for k, v in key.items() if scale.get(k) != v]
            if differs:
                raise ArchpruneError(f"this run measured latency on another scale ({'; '.join(differs)}); "
                                     "rerun with its settings, or pass a new --run")
            self.reference_scale = scale
            return {}
        with measurement_lock(), self._session(imgsz) as run:
            measured = reference_best_ms(run.reference, self.reference_rounds, self.warmup, self.runs)
        provenance = self._provenance()
        # the lower of this reading and the machine's best before it: runs on one machine share one scale
        machine_key = {**key, "cpu": provenance["cpu"], "runtime": provenance["runtime"], "runs": self.runs}
        self.reference_scale = {**key, **settle_best_ms(machine_key, measured), **provenance}
        return {SCALE_ATTR: self.reference_scale}

    # -- measuring ---------------------------------------------------------------------------
    def _runtime(self) -> Runtime:
        from evaluators.runtimes import make_runtime

        return make_runtime(self.backend, self.threads, self.providers)

    def _provenance(self) -> dict[str, Any]:
        return {"host": socket.gethostname(), "cpu": cpu_model(), **self._runtime().provenance(), "runs": self.runs}

    @contextlib.contextmanager
    def _session(self, imgsz: int, candidate: nn.Module | Path | None = None) -> Iterator["_Runs"]:
        """One-inference callables for the reference (when the run has one) and the candidate (a
        module, or a model file the runtime loads as it is, e.g. an INT8 ONNX)."""
        from evaluators.runtimes import scratch_folder, torch_threads

        runtime = self._runtime()
        with torch_threads(self.threads), scratch_folder() as tmp:
            sources: list[nn.Module | Path] = []
            if self.reference is not None:
                if runtime.from_onnx:
                    assert self.reference_onnx is not None, "bind_run() first"
                    (Path(tmp) / "reference.onnx").write_bytes(self.reference_onnx)
                    sources.append(Path(tmp) / "reference.onnx")
                else:
                    sources.append(self.reference)
            if candidate is not None:
                sources.append(candidate if isinstance(candidate, Path) else
                               runtime.prepare(candidate, imgsz, Path(tmp), "candidate"))
            yield _Runs(*[runtime.load(source, imgsz) for source in sources])

    def evaluate(self, candidate: Candidate) -> dict[str, Any]:
        return self.measure(candidate.model, candidate.imgsz)

    def measure_file(self, path: str | os.PathLike, imgsz: int) -> dict[str, Any]:
        """The same measurement of a model file (an ONNX of fixed input size), e.g. a quantized candidate."""
        if not self._runtime().from_onnx:
            raise ArchpruneError(f"the {self.backend} runtime times modules, not model files: "
                                 "time an ONNX file with --latency ort or openvino")
        return self.measure(Path(path), imgsz)

    def measure(self, model: nn.Module | Path, imgsz: int) -> dict[str, Any]:
        if self.reference is not None and self.reference_scale is None:  # used outside a search: a scale of its own
            self.bind_run({}, resumed=False, imgsz=imgsz)
        with measurement_lock():
            start = time.perf_counter()
            if self.reference is None:  # no reference: a plain median
                with self._session_alone(imgsz, model) as run:
                    ready = time.perf_counter()
                    metrics = _timed(run, self.warmup, self.runs)
            else:
                with self._session(imgsz, model) as runs:
                    ready = time.perf_counter()
                    times = interleave(runs.reference, runs.candidate, self.runs, self.warmup,
                                       warm=self.scheme in (WARM_SCHEME, WINDOW_SCHEME),
                                       min_ms=MIN_WINDOW_MS if self.scheme == WINDOW_SCHEME else 0.0)
                self.last_pairs = times  # every timed run, for benchmarks of the estimator (bench/)
                metrics = {**paired_metrics(times, float(self.reference_scale["best_ms"])),
                           "latency_scheme": self.scheme}
            self.last_timings = {"export_s": ready - start, "latency_runs_s": time.perf_counter() - ready}
        return {**metrics, **self._provenance()}

    @contextlib.contextmanager
    def _session_alone(self, imgsz: int, model: nn.Module | Path) -> Iterator[Callable[[], Any]]:
        from evaluators.runtimes import scratch_folder, torch_threads

        runtime = self._runtime()
        with torch_threads(self.threads), scratch_folder() as tmp:
            source = model if isinstance(model, Path) else runtime.prepare(model, imgsz, Path(tmp), "candidate")
            yield runtime.load(source, imgsz)


@dataclass
class _Runs:
    reference: Callable[[], Any]
    candidate: Callable[[], Any] = lambda: None


SCALE_ATTR = "latency_scale"  # the study attribute that holds a run's paired-latency scale
