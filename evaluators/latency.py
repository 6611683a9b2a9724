"""Latency of an exported model in onnxruntime, with the provenance that makes it readable later."""
from __future__ import annotations

import platform
import socket
import time
from pathlib import Path
from typing import Any

import numpy as np

from evaluators.onnx_export import onnx_session


def cpu_model() -> str:
    """The CPU's marketing name where Linux exposes it, else what platform knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def measure_onnx_latency(path: str | Path, imgsz: int, threads: int | None = None,
                         providers: list[str] | None = None, warmup: int = 5, runs: int = 30) -> dict[str, Any]:
    """Median and p90 wall time of batch-1 inference, in ms, plus host/CPU/runtime provenance."""
    import onnxruntime as ort

    session = onnx_session(path, providers=providers, threads=threads)
    x = np.random.default_rng(0).random((1, 3, imgsz, imgsz), dtype=np.float32)
    feed = {session.get_inputs()[0].name: x}
    for _ in range(warmup):
        session.run(None, feed)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        session.run(None, feed)
        times.append((time.perf_counter() - start) * 1e3)
    return {
        "latency_ms": float(np.median(times)),
        "latency_p90_ms": float(np.percentile(times, 90)),
        "host": socket.gethostname(),
        "cpu": cpu_model(),
        "onnxruntime": ort.__version__,
        "provider": session.get_providers()[0],
        "threads": threads or 0,  # 0 = onnxruntime's default (all cores)
        "runs": runs,
    }
