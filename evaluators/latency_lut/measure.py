"""Measuring the table: one tiny ONNX graph per conv config, timed with onnxruntime on this machine.

Each graph is ``Conv (bias = folded BatchNorm) -> SiLU`` because almost every conv in our models is
``spaces.models.blocks.Conv`` (Conv-BN-SiLU) and onnxruntime folds the BN into the conv; the few
convs without an activation (the head's last 1x1s, a residual unit's last conv) are slightly
over-counted, which the fitted correction absorbs. Batch 1, fp32, opset 17, the session options of
``onnx_session`` (the same as a candidate's measurement).
"""
from __future__ import annotations

import datetime
import math
import socket
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable, Sequence

import numpy as np
from torch import nn

from evaluators.latency import cpu_model, measurement_lock
from evaluators.onnx_export import OPSET, onnx_session

from .convs import ConvSpec, conv_list
from .table import ConvKey, LatencyTable

if TYPE_CHECKING:
    import onnx

GRAPH = "Conv (BN folded) + SiLU, fp32, batch 1, opset 17"

# The default grid, sized for YOLO-style detectors at 160-640 px: channels in steps of 1.5x and 2x
# (onnxruntime's CPU convs work in blocks of 8 or 16 channels, so 24 or 48 channels cost more than
# interpolating between powers of two says: ~10% under on pruned YOLOv8n), and a conv at input side
# h keeps max(c_in, c_out) * h <= MAX_WIDTH_X_SIDE (YOLOv8m at 640 has 48 ch x 320 px = 15360),
# which is what keeps the grid small enough for a few minutes on a 2-core CPU.
CHANNELS = (8, 16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512)
MAX_WIDTH_X_SIDE = 16384
REGULAR = ((1, 1), (3, 1), (3, 2), (5, 1), (5, 2))  # (kernel, stride); k5 for block-space kernels
DEPTHWISE = ((3, 1), (3, 2), (5, 1), (5, 2))
QUICK_CHANNELS = (8, 32, 128)
QUICK_REGULAR = ((1, 1), (3, 1), (3, 2))
QUICK_DEPTHWISE = ((3, 1),)


def sides(imgszs: Iterable[int], levels: int = 7) -> list[int]:
    """Input sides a detector's convs see: the image and its halvings down to stride 64."""
    out = set()
    for imgsz in imgszs:
        for i in range(levels):
            out.add(math.ceil(imgsz / 2 ** i))
    return sorted(s for s in out if s >= 2)


def default_grid(imgszs: Sequence[int] = (320, 640), quick: bool = False) -> list[ConvKey]:
    """Regular convs over (c_in, c_out) and depthwise over c, at every side of ``sides(imgszs)``,
    within the width x side band, plus c_in = 3 (a stem) for the strided kernels."""
    channels, regular, depthwise = ((QUICK_CHANNELS, QUICK_REGULAR, QUICK_DEPTHWISE) if quick
                                    else (CHANNELS, REGULAR, DEPTHWISE))
    limit = MAX_WIDTH_X_SIDE // (4 if quick else 1)
    keys = []
    for h in sides(imgszs, levels=5 if quick else 7):
        widths = [c for c in channels if c * h <= limit] or [channels[0]]
        for k, s in regular:
            stems = [3] if s == 2 else []
            keys += [ConvKey("regular", k, s, ci, co, h) for ci in stems + widths for co in widths]
        for k, s in depthwise:
            keys += [ConvKey("depthwise", k, s, c, c, h) for c in widths]
    return sorted(set(keys))


def table_key(spec: ConvSpec) -> ConvKey:
    """The entry a conv is measured as (grouped convs as the regular conv with the same MACs)."""
    side = max(1, round(spec.side))
    if spec.kind == "depthwise":
        return ConvKey("depthwise", spec.k, spec.stride, spec.c_in, spec.c_in, side)
    return ConvKey("regular", spec.k, spec.stride, spec.c_in // spec.groups, spec.c_out, side)


def keys_for(models: Iterable[nn.Module], imgsz: int) -> list[ConvKey]:
    """Exactly the distinct conv configs ``models`` run at ``imgsz`` (a table that needs no interpolation)."""
    return sorted({table_key(spec) for model in models for spec in conv_list(model, imgsz)})


def conv_graph(key: ConvKey, seed: int = 0) -> onnx.ModelProto:
    """A one-conv model: input (1, c_in, h, h) -> Conv(+bias) -> SiLU (as x * sigmoid(x), like torch exports it)."""
    # imported here: every search lists the evaluators' metrics, and onnx costs ~0.6-1.6 s of a resume
    from onnx import TensorProto, helper, numpy_helper

    groups = key.c_in if key.kind == "depthwise" else 1
    rng = np.random.default_rng(seed)
    weight = rng.standard_normal((key.c_out, key.c_in // groups, key.k, key.k)).astype(np.float32) * 0.1
    bias = rng.standard_normal(key.c_out).astype(np.float32) * 0.1
    pad = key.k // 2
    nodes = [helper.make_node("Conv", ["x", "w", "b"], ["y"], kernel_shape=[key.k, key.k], strides=[key.s, key.s],
                              pads=[pad] * 4, group=groups),
             helper.make_node("Sigmoid", ["y"], ["g"]),
             helper.make_node("Mul", ["y", "g"], ["out"])]
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, key.c_in, key.h, key.h])
    graph = helper.make_graph(nodes, "conv", [x], [helper.make_tensor_value_info("out", TensorProto.FLOAT, None)],
                              initializer=[numpy_helper.from_array(weight, "w"), numpy_helper.from_array(bias, "b")])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], ir_version=8)


def _median_ms(run: Callable[[], Any], warmup: int, min_runs: int, max_runs: int, budget_s: float) -> float:
    """Median wall time of ``run()``: at least ``min_runs``, then more until ``budget_s`` (tiny convs
    get many samples, big ones a few)."""
    for _ in range(warmup):
        run()
    times: list[float] = []
    start = time.perf_counter()
    while len(times) < max_runs and (len(times) < min_runs or time.perf_counter() - start < budget_s):
        t0 = time.perf_counter()
        run()
        times.append((time.perf_counter() - t0) * 1e3)
    return float(np.median(times))


def measure_key(key: ConvKey, workdir: Path, providers: list[str] | None = None, threads: int | None = None,
                budget_s: float = 0.03) -> float:
    """Median ms of one conv config on this machine, under the machine-wide measurement lock."""
    import onnx

    path = workdir / "conv.onnx"
    onnx.save(conv_graph(key), path)
    session = onnx_session(path, providers=providers, threads=threads)
    feed = {"x": np.random.default_rng(0).random((1, key.c_in, key.h, key.h), dtype=np.float32)}
    with measurement_lock():
        return _median_ms(lambda: session.run(None, feed), warmup=3, min_runs=5, max_runs=200, budget_s=budget_s)


def new_table(target: str, providers: list[str] | None = None, threads: int | None = None) -> LatencyTable:
    import onnxruntime as ort

    provider = (providers or ["CPUExecutionProvider"])[0]
    provenance = {"host": socket.gethostname(), "cpu": cpu_model(), "onnxruntime": ort.__version__,
                  "provider": provider, "threads": threads or 0, "batch": 1,
                  "created": datetime.datetime.now().astimezone().isoformat(timespec="seconds"), "graph": GRAPH}
    return LatencyTable(target=target, provenance=provenance)


SAME_MACHINE = ("host", "cpu", "onnxruntime", "provider", "threads", "graph")


def measure_table(keys: Iterable[ConvKey], table: LatencyTable, out: str | Path | None = None,
                  providers: list[str] | None = None, threads: int | None = None, progress: bool = True,
                  save_every_s: float = 10.0) -> LatencyTable:
    """Measure the ``keys`` ``table`` lacks, saving to ``out`` every few seconds and on interrupt,
    so a run stopped half-way continues where it was (resume = call again with the loaded table)."""
    from tqdm import tqdm

    todo = [k for k in dict.fromkeys(keys) if k not in table.entries]
    last_save = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="archprune-lut-") as tmp:
        if not table.call_overhead_ms:
            table.call_overhead_ms = measure_key(ConvKey("regular", 1, 1, 1, 1, 1), Path(tmp), providers, threads)
        try:
            for key in tqdm(todo, desc="latency table", unit="conv", disable=not progress or not todo):
                table.entries[key] = measure_key(key, Path(tmp), providers, threads)
                if out is not None and time.monotonic() - last_save > save_every_s:
                    table.save(out)
                    last_save = time.monotonic()
        finally:
            if out is not None and table.entries:
                table.save(out)
    return table


def measure_for(models: Iterable[nn.Module], imgsz: int, table: LatencyTable, **kwargs: Any) -> LatencyTable:
    """Add to ``table`` exactly the conv configs ``models`` use at ``imgsz`` (a table for one known set
    of candidates, e.g. in tests: no interpolation needed)."""
    return measure_table(keys_for(models, imgsz), table, **kwargs)


def measure_model(model: nn.Module, imgsz: int, providers: list[str] | None = None, threads: int | None = None,
                  runs: int = 30) -> float:
    """Median ms of the whole exported model, as ``LatencyEvaluator`` measures it."""
    from evaluators.latency import measure_onnx_latency
    from evaluators.onnx_export import export_onnx

    with tempfile.TemporaryDirectory(prefix="archprune-lut-") as tmp:
        path = export_onnx(model, Path(tmp) / "candidate.onnx", imgsz=imgsz)
        with measurement_lock():
            return float(measure_onnx_latency(path, imgsz, threads, providers, runs=runs)["latency_ms"])


def calibrate(table: LatencyTable, models: Sequence[nn.Module], imgsz: int, providers: list[str] | None = None,
              threads: int | None = None, on: str | None = None) -> dict[str, Any]:
    """Measure ``models`` whole at ``imgsz`` and fit the table's correction there (``on`` names their family).

    Their convs are deliberately not added to the table: the fit must see the same interpolation
    error the search's candidates will, so calibrate on candidates like them (random samples of
    the space), not on convs measured exactly. They are measured as a search measures them: paired
    with the first model (the unpruned or initial one) run by run, on its best-of-rounds scale, so
    a change of the machine's speed mode between two models does not bend the fit.
    """
    from evaluators._base import Candidate
    from evaluators.latency import LatencyEvaluator

    from .predictor import LatencyPredictor

    evaluator = LatencyEvaluator("ort", threads=threads, providers=providers, reference=models[0])
    evaluator.bind_run({}, resumed=False, imgsz=imgsz)
    measured = [float(evaluator.evaluate(Candidate(model=m, imgsz=imgsz))["latency_ms"]) for m in models]
    return LatencyPredictor(table).fit(models, measured, imgsz, on)
