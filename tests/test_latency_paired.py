"""Paired, reference-normalised latency (issue 16). No timing is asserted on this noisy machine: the
clock is injected, and a fake machine changes speed the way the VM does."""
from __future__ import annotations

import random

import pytest
import torch
from torch import nn

from evaluators._base import Candidate
from evaluators.latency import SCALE_ATTR, LatencyEvaluator
from evaluators.latency_paired import (DEFAULT_SCHEME, MIN_WINDOW_MS, PERCENTILE_RUNS, WARM_SCHEME, WINDOW_CAP,
                                      WINDOW_SCHEME, interleave, paired_metrics, reference_best_ms)
from spaces.errors import ArchpruneError


class FakeMachine:
    """A clock, and inferences that take ``ms`` x 2 in every other window of ``window`` inferences."""

    def __init__(self, window: int = 20, slow_factor: float = 2.0, start_slow: bool = False) -> None:
        self.now, self.calls, self.window, self.factor, self.start_slow = 0.0, 0, window, slow_factor, start_slow

    def slow(self) -> bool:
        return ((self.calls // self.window) % 2 == 1) != self.start_slow

    def model(self, ms: float):
        def run() -> None:
            self.now += ms / 1e3 * (self.factor if self.slow() else 1.0)
            self.calls += 1
        return run

    def clock(self) -> float:
        return self.now


def test_a_candidate_slowed_in_half_of_its_windows_reads_its_quiet_value() -> None:
    machine = FakeMachine()
    best = reference_best_ms(machine.model(10.0), rounds=3, warmup=2, runs=15, clock=machine.clock)
    assert best == pytest.approx(10.0)  # the best round is a quiet one
    times = interleave(machine.model(10.0), machine.model(4.0), runs=60, warmup=2, clock=machine.clock)
    raw = sorted(times.candidate_ms)
    assert raw[0] == pytest.approx(4.0) and raw[-1] == pytest.approx(8.0)  # half of the runs were slowed
    metrics = paired_metrics(times, best)
    assert metrics["latency_ms"] == pytest.approx(4.0, rel=1e-6)  # the quiet value, from every window
    assert metrics["latency_ratio"] == pytest.approx(0.4, rel=1e-6)


def test_a_machine_slow_for_the_whole_window_still_reads_the_quiet_scale() -> None:
    quiet = FakeMachine(window=10**6)
    best = reference_best_ms(quiet.model(10.0), rounds=2, warmup=1, runs=10, clock=quiet.clock)
    slow = FakeMachine(window=10**6, start_slow=True)  # a later candidate, measured in a slow spell
    times = interleave(slow.model(10.0), slow.model(4.0), runs=30, warmup=1, clock=slow.clock)
    metrics = paired_metrics(times, best)
    assert metrics["latency_raw_ms"] == pytest.approx(8.0) and metrics["latency_ms"] == pytest.approx(4.0)


class ColdCacheMachine:
    """A clock, and a model that runs ``penalty_ms`` slower right after another model ran (its cache
    was evicted), as the smallest candidates did paired on the VM (issue 16)."""

    def __init__(self, penalty_ms: float) -> None:
        self.now, self.penalty, self.last = 0.0, penalty_ms, None

    def model(self, ms: float):
        def run() -> None:
            self.now += (ms + (self.penalty if self.last not in (None, run) else 0.0)) / 1e3
            self.last = run
        return run

    def clock(self) -> float:
        return self.now


@pytest.mark.parametrize("warm,expected_ms", [(False, 2.5), (True, 2.0)])
def test_the_warm_scheme_times_each_model_on_its_own_cache(warm: bool, expected_ms: float) -> None:
    machine = ColdCacheMachine(penalty_ms=0.5)
    reference, candidate = machine.model(10.0), machine.model(2.0)
    times = interleave(reference, candidate, runs=20, warmup=1, clock=machine.clock, warm=warm)
    assert paired_metrics(times, 10.0)["latency_raw_ms"] == pytest.approx(expected_ms)
    assert len(times.reference_ms) == len(times.candidate_ms) + 1


def test_the_warm_scheme_is_part_of_the_scale_so_a_resume_on_the_other_is_refused() -> None:
    stored = LatencyEvaluator("torch", threads=1, runs=10, warmup=1, reference=_tiny(), reference_rounds=1,
                              scheme="paired-runs-v1").bind_run({}, resumed=False, imgsz=32)
    warm = LatencyEvaluator("torch", threads=1, runs=10, warmup=1, reference=_tiny(), scheme=WARM_SCHEME)
    with pytest.raises(ArchpruneError, match="scheme 'paired-runs-v1' -> 'paired-warm-v1'"):
        warm.bind_run(stored, resumed=True, imgsz=32)
    with pytest.raises(ArchpruneError, match="unknown latency scheme 'cold'"):
        LatencyEvaluator("torch", scheme="cold")


def test_percentiles_are_consistent_and_reported_only_when_the_runs_support_them() -> None:
    machine = FakeMachine(window=7, slow_factor=1.3)
    many = paired_metrics(interleave(machine.model(10.0), machine.model(3.0), runs=120, warmup=0,
                                     clock=machine.clock), 10.0)
    assert 0 < many["latency_ms"] <= many["latency_p90_ms"] <= many["latency_p95_ms"] <= many["latency_p99_ms"]
    assert many["latency_std_ms"] > 0 and many["latency_pairs"] >= 120
    few = paired_metrics(interleave(machine.model(10.0), machine.model(3.0), runs=15, warmup=0, max_runs=15,
                                    clock=machine.clock), 10.0)
    assert "latency_p90_ms" in few and "latency_p95_ms" not in few and "latency_p99_ms" not in few
    assert PERCENTILE_RUNS == {90: 10, 95: 20, 99: 100}


def test_runs_continue_while_the_ratios_spread_and_stop_at_the_cap() -> None:
    steady = FakeMachine(window=10**6)
    assert len(interleave(steady.model(10.0), steady.model(4.0), runs=10, warmup=0,
                          clock=steady.clock).candidate_ms) == 10
    rng = random.Random(0)
    jumpy = FakeMachine(window=10**6)
    jittery = jumpy.model(4.0)

    def candidate() -> None:  # each run 1-3x slower at random: the ratios never settle
        jittery()
        jumpy.now += rng.uniform(0.0, 8.0) / 1e3

    assert len(interleave(jumpy.model(10.0), candidate, runs=10, warmup=0, max_runs=25,
                          clock=jumpy.clock).candidate_ms) == 25


def test_the_window_scheme_times_a_small_candidate_until_its_runs_add_up_to_the_minimum() -> None:
    machine = FakeMachine(window=10**6)
    small = interleave(machine.model(10.0), machine.model(1.0), runs=30, warmup=0, clock=machine.clock, min_ms=200.0)
    # 30 runs were 30 ms: it went past the 3x cap, and stopped at the first run that reached 200 ms
    assert sum(small.candidate_ms) >= 200.0 > sum(small.candidate_ms[:-1]) and len(small.candidate_ms) > 190
    large = interleave(machine.model(10.0), machine.model(8.0), runs=30, warmup=0, clock=machine.clock, min_ms=200.0)
    assert len(large.candidate_ms) == 30  # 240 ms already
    tiny = interleave(machine.model(10.0), machine.model(0.01), runs=30, warmup=0, clock=machine.clock, min_ms=200.0)
    assert len(tiny.candidate_ms) == WINDOW_CAP * 3 * 30  # never endless: 360 runs of 0.01 ms, short of the window


def test_the_evaluator_measures_by_its_scheme(monkeypatch: pytest.MonkeyPatch) -> None:
    import evaluators.latency as latency

    seen: list[dict] = []
    real = latency.interleave
    monkeypatch.setattr(latency, "interleave", lambda *a, **k: seen.append(k) or real(*a, **k))
    for scheme in ("paired-runs-v1", WARM_SCHEME, WINDOW_SCHEME):
        LatencyEvaluator("torch", threads=1, runs=5, warmup=1, reference=_tiny(), reference_rounds=1,
                         scheme=scheme).evaluate(Candidate(model=_tiny(), imgsz=32))
    assert [(k["warm"], k["min_ms"]) for k in seen] == [(False, 0.0), (True, 0.0), (True, MIN_WINDOW_MS)]


def _tiny() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU()).eval()


def test_the_scale_is_measured_once_stored_and_reused(monkeypatch: pytest.MonkeyPatch) -> None:
    first = LatencyEvaluator("torch", threads=1, runs=10, warmup=1, reference=_tiny(), reference_rounds=1)
    stored = first.bind_run({}, resumed=False, imgsz=32)
    scale = stored[SCALE_ATTR]
    assert scale["scheme"] == DEFAULT_SCHEME == WARM_SCHEME and scale["best_ms"] > 0 and scale["threads"] == 1
    result = first.evaluate(Candidate(model=nn.Conv2d(3, 4, 3).eval(), imgsz=32))
    assert result["latency_ms"] == pytest.approx(result["latency_ratio"] * scale["best_ms"])
    assert set(first.metric_names) <= set(result)

    def never(*args, **kwargs):
        raise AssertionError("a resumed run must not re-measure its scale")

    monkeypatch.setattr("evaluators.latency.reference_best_ms", never)
    again = LatencyEvaluator("torch", threads=1, runs=10, warmup=1, reference=_tiny())
    assert again.bind_run(stored, resumed=True, imgsz=32) == {} and again.reference_scale == scale


def test_two_fresh_runs_on_one_machine_share_the_best_scale_either_has_seen(monkeypatch, tmp_path) -> None:
    """The second of two fresh runs measured the reference in a slower mode: it still reports on the
    first run's scale; a later, faster reading lowers the scale for the runs after it."""
    monkeypatch.setenv("ARCHPRUNE_CACHE", str(tmp_path))
    readings = iter([10.0, 12.5, 9.0])
    monkeypatch.setattr("evaluators.latency.reference_best_ms", lambda *args, **kwargs: next(readings))

    def fresh_scale(**change) -> dict:
        options = {"threads": 1, "runs": 10, "warmup": 1, "reference": _tiny(), "reference_rounds": 1, **change}
        return LatencyEvaluator("torch", **options).bind_run({}, resumed=False, imgsz=32)[SCALE_ATTR]

    first, second, third = fresh_scale(), fresh_scale(), fresh_scale()
    assert first["best_ms"] == 10.0 and second["best_ms"] == 10.0 and second["best_measured_now_ms"] == 12.5
    assert third["best_ms"] == 9.0 and third["machine_readings"] == 3
    # another thread count is another scale: it starts from its own reading
    readings = iter([20.0])
    assert fresh_scale(threads=2)["best_ms"] == 20.0


@pytest.mark.parametrize("change,message", [
    (dict(threads=2), "threads 1 -> 2"),
    (dict(backend="ort"), "backend 'torch' -> 'ort'"),
    (dict(imgsz=64), "imgsz 32 -> 64"),
    (dict(reference=nn.Conv2d(3, 2, 1)), "reference_sha256"),
])
def test_a_resume_on_another_scale_is_refused(change: dict, message: str) -> None:
    stored = LatencyEvaluator("torch", threads=1, runs=10, warmup=1, reference=_tiny(),
                              reference_rounds=1).bind_run({}, resumed=False, imgsz=32)
    imgsz = change.pop("imgsz", 32)
    options = {"backend": "torch", "threads": 1, "runs": 10, "warmup": 1, "reference": _tiny(), **change}
    with pytest.raises(ArchpruneError, match="another scale") as refused:
        LatencyEvaluator(options.pop("backend"), **options).bind_run(stored, resumed=True, imgsz=imgsz)
    assert message in str(refused.value)


@pytest.mark.parametrize("stored_scheme", ["paired-runs-v1", WARM_SCHEME])
def test_a_resume_keeps_the_scheme_its_run_was_measured_with_unless_another_is_asked(stored_scheme: str) -> None:
    """A run keeps its scheme when the default changes; asking for another one is refused."""
    stored = LatencyEvaluator("torch", threads=1, runs=10, warmup=1, reference=_tiny(), reference_rounds=1,
                              scheme=stored_scheme).bind_run({}, resumed=False, imgsz=32)
    resumed = LatencyEvaluator("torch", threads=1, runs=10, warmup=1, reference=_tiny())
    assert resumed.bind_run(stored, resumed=True, imgsz=32) == {} and resumed.scheme == stored_scheme
    other = next(s for s in ("paired-runs-v1", WARM_SCHEME) if s != stored_scheme)
    with pytest.raises(ArchpruneError, match="another scale"):
        LatencyEvaluator("torch", threads=1, runs=10, warmup=1, reference=_tiny(), scheme=other).bind_run(
            stored, resumed=True, imgsz=32)


def test_a_run_measured_the_old_way_is_not_mixed_with_paired_latencies() -> None:
    with pytest.raises(ArchpruneError, match="without a reference model"):
        LatencyEvaluator("torch", threads=1, reference=_tiny()).bind_run({}, resumed=True, imgsz=32)


def test_a_search_measures_every_candidate_on_the_run_scale_and_a_resume_keeps_it(tmp_path) -> None:
    from search.job import run_search
    from search.settings import RunSettings

    settings = RunSettings(model="yolov8n-digits", imgsz=64, objectives="latency_ms:min,params_m:min", trials=4,
                           threads=1, latency_runs=10, latency_warmup=1, executor="inline", results=str(tmp_path))
    first = run_search(settings, progress=False, say=lambda line: None)
    scale = first.store.study.user_attrs[SCALE_ATTR]
    assert scale["reference_sha256"] and scale["threads"] == 1 and scale["imgsz"] == 64
    records = first.store.records()
    assert records[0].source == "unpruned"  # the reference itself: its ratio is about 1
    for record in records:
        assert record.metrics["latency_ms"] == pytest.approx(record.metrics["latency_ratio"] * scale["best_ms"])
        assert record.metrics["latency_scheme"] == WARM_SCHEME and record.metrics["latency_raw_ms"] > 0
    again = run_search(RunSettings(**{**settings.to_dict(), "trials": 6}), progress=False, say=lambda line: None)
    assert len(again.store) == 6 and again.store.study.user_attrs[SCALE_ATTR] == scale
