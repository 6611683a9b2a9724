"""Paired latency: a candidate timed run by run, interleaved with the run's reference model.

A shared VM, a laptop changing power state or a phone throttling runs the same model at two speeds
for minutes at a time (this project's VM: 13.0 vs 17.9 ms for YOLOv8n at 320 px). Whole
measurements taken minutes apart then disagree by up to 2x, and even the ratio of two whole
measurements taken back to back swings 1.5x (issue 16), because the mode can change between them.
Interleaving single inferences (reference, candidate, reference, candidate, ..., reference) puts
each candidate run between two reference runs a few milliseconds away, which see the same mode:
their ratio does not depend on the mode. ``latency_ms`` is the median ratio times the reference's
best latency, measured at the run's start and kept no higher than this machine's best before
(latency_machine_scale), and stored with the run, so a resume, another worker or another process
uses the same scale. torch.utils.benchmark's adaptive rule is kept: runs continue
past the minimum, up to a cap, until the ratios' interquartile range is within 10% of their median.

No library times two models run by run against each other, hence this module; the timing itself is
``time.perf_counter`` around one inference, as torch.utils.benchmark and onnxruntime's perf tool do.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

SCHEME = "paired-runs-v1"
#: each timed run preceded by an untimed run of the same model, so neither is timed on caches the
#: other just filled (a small candidate after the reference read slower paired than alone, issue 16)
WARM_SCHEME = "paired-warm-v1"
#: warm, and the candidate timed for at least MIN_WINDOW_MS in all (torch.utils.benchmark's
#: blocked_autorange runs for at least 0.2 s). Tried because 30 runs of a ~1.3 ms model are 40 ms of
#: timing; measured no steadier than WARM_SCHEME (uniform-0.25: max/min 1.323 against 1.326,
#: BENCHMARKS.md), so it is not the default; kept for bench/latency_repeatability.py
WINDOW_SCHEME = "paired-warm-window-v1"
MIN_WINDOW_MS = 200.0
WINDOW_CAP = 4  # x the run cap: a tiny candidate beside a large reference stops there, short of the window
SCHEMES = (SCHEME, WARM_SCHEME, WINDOW_SCHEME)
#: what a new run measures with (a resumed run keeps its own): warm, because it times each model on
#: its own cache as deployment runs it back to back, and spread no more than paired runs (BENCHMARKS.md)
DEFAULT_SCHEME = WARM_SCHEME
#: percentile -> runs needed to report it: at least 1 / (1 - p) samples, so at least one lies above it
PERCENTILE_RUNS = {90: 10, 95: 20, 99: 100}
SPREAD = 0.1  # stop once IQR / median of the ratios is below this (torch.utils.benchmark's default)

Clock = Callable[[], float]


@dataclass
class PairedTimes:
    reference_ms: list[float]  # one more than candidate_ms: a reference run before and after each
    candidate_ms: list[float]

    def ratios(self) -> np.ndarray:
        """Each candidate run over the mean of the reference runs either side of it."""
        ref = np.asarray(self.reference_ms)
        return np.asarray(self.candidate_ms) / ((ref[:-1] + ref[1:]) / 2.0)


def _timed(run: Callable[[], Any], clock: Clock) -> float:
    start = clock()
    run()
    return (clock() - start) * 1e3


def relative_spread(values: np.ndarray) -> float:
    q1, median, q3 = np.percentile(values, [25, 50, 75])
    return float((q3 - q1) / median) if median > 0 else math.inf


def interleave(run_reference: Callable[[], Any], run_candidate: Callable[[], Any], runs: int, warmup: int,
               max_runs: int | None = None, spread: float = SPREAD, clock: Clock = time.perf_counter,
               warm: bool = False, min_ms: float = 0.0) -> PairedTimes:
    """Time ``runs`` (up to ``max_runs``, default 3x, while the ratios spread more than ``spread``)
    candidate runs, each between two reference runs, after ``warmup`` untimed runs of each. With
    ``warm`` (WARM_SCHEME) every timed run follows an untimed run of the same model; with ``min_ms``
    (WINDOW_SCHEME) runs go on, past the cap (up to WINDOW_CAP times it), until the candidate's timed
    runs add up to it."""
    cap = max(runs, max_runs if max_runs is not None else 3 * runs)
    for _ in range(warmup):
        run_reference()
        run_candidate()

    def timed(run: Callable[[], Any]) -> float:
        if warm:
            run()
        return _timed(run, clock)

    times = PairedTimes([timed(run_reference)], [])
    while True:
        times.candidate_ms.append(timed(run_candidate))
        times.reference_ms.append(timed(run_reference))
        done = len(times.candidate_ms)
        if sum(times.candidate_ms) < min_ms and done < WINDOW_CAP * cap:
            continue
        if done >= cap or (done >= runs and relative_spread(times.ratios()) < spread):
            return times


def reference_best_ms(run_reference: Callable[[], Any], rounds: int, warmup: int, runs: int,
                      clock: Clock = time.perf_counter) -> float:
    """The reference's median in its best of ``rounds`` rounds: its time in the machine's fast mode,
    the scale every paired candidate is expressed in."""
    for _ in range(warmup):
        run_reference()
    return min(float(np.median([_timed(run_reference, clock) for _ in range(runs)])) for _ in range(rounds))


def paired_metrics(times: PairedTimes, best_ms: float) -> dict[str, float]:
    """``latency_ms`` (the median ratio times ``best_ms``), its percentiles and spread on the same
    scale where the run count supports them, the raw median and the ratio."""
    normalised = times.ratios() * best_ms
    n = len(normalised)
    ratio = float(np.median(times.ratios()))
    out = {"latency_ms": ratio * best_ms, "latency_ratio": ratio,
           "latency_raw_ms": float(np.median(times.candidate_ms)),
           "latency_std_ms": float(np.std(normalised)), "latency_pairs": float(n)}
    for p, needed in PERCENTILE_RUNS.items():
        if n >= needed:
            out[f"latency_p{p}_ms"] = float(np.percentile(normalised, p))
    return out
