"""``archprune bench proxies``: how well each training-free score ranks NAS-Bench-201 cells.

A seeded sample of distinct cells from the table (the first N of one seeded permutation, so a
60-cell run is the start of the 1,000-cell run with the same seed and its cached scores count),
each built as the benchmark's macro network (C=16, N=5 cells per stage, 10 classes) and scored by
every score on the same real CIFAR-10 minibatch. Spearman rho and Kendall tau against the table's
accuracy column, beside the published anchors. A score of -inf or NaN (a cell with no path from the
image, say) stays in: it ranks lowest, and the report counts it.

Scoring 1,000 cells takes hours on a laptop CPU, so every (cell, score) result is appended to a
JSON-lines cache as soon as it exists: an interrupted run resumes where it stopped.
"""
from __future__ import annotations

import json
import math
import random
import statistics
import sys
import time
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from torch import nn

from evaluators.cache_folder import cache_folder
from evaluators.table_lookup import Table, table_columns
from evaluators.zero_shot import SCORES, Minibatch, cifar10_batch
from spaces.errors import ArchpruneError, did_you_mean
from spaces.models.nb201_net import OPS, NB201Network
from spaces.nb201_space import arch_to_genome

BASELINES = ("params_m", "flops_g")  # not scores, but the bar any score has to clear
ALL_PROXIES = tuple(SCORES) + BASELINES
# Spearman rho against CIFAR-10 test accuracy over NAS-Bench-201: Abdelfattah et al., "Zero-Cost Proxies
# for Lightweight NAS" (ICLR 2021) for synflow, jacob_cov, snip, grad_norm and params; Mellor et al.,
# "Neural Architecture Search without Training" (ICML 2021) for NASWOT. None where no anchor was given.
PUBLISHED_SPEARMAN: dict[str, float] = {"synflow": 0.74, "jacob_cov": 0.73, "snip": 0.60, "grad_norm": 0.59,
                                        "naswot": 0.79, "params_m": 0.74}
TOLERANCE = 0.05
# minibatch size per score as published: 64 in Abdelfattah et al. (and Zen-NAS's search), 128 for
# NASWOT; synflow's input is one all-ones image whatever the batch; the baselines need no input
PUBLISHED_BATCH = 64
SCORE_BATCH: dict[str, int] = {"naswot": 128, "synflow": 1, "params_m": 0, "flops_g": 0}
IMGSZ = 32
CACHE_FILE = "nb201_proxy_scores.v2.jsonl"  # bump the version when a score's definition changes


# --- choosing what to run ---------------------------------------------------------------------

def resolve_proxies(names: str | Sequence[str] | None) -> tuple[str, ...]:
    """Score names (comma-separated or a sequence); None means every score plus the baselines."""
    if names is None:
        return ALL_PROXIES
    items = [n.strip() for n in (names.split(",") if isinstance(names, str) else names)]
    items = [n for n in items if n]
    if not items:
        raise ArchpruneError(f"no score named; choose from {', '.join(ALL_PROXIES)}")
    for name in items:
        if name not in ALL_PROXIES:
            raise ArchpruneError(f"unknown score {name!r}{did_you_mean(name, ALL_PROXIES)}; "
                                 f"choose from {', '.join(ALL_PROXIES)}")
    return tuple(dict.fromkeys(items))


def check_accuracy_column(table_path: str | Path, column: str) -> None:
    """A one-line error naming the table's columns (and the closest one) when ``column`` is not among them."""
    columns = table_columns(table_path)
    if column not in columns:
        raise ArchpruneError(f"table {Path(table_path).name} has no accuracy column {column!r}"
                             f"{did_you_mean(column, columns)}; its columns are {', '.join(columns)}")


def score_batch(name: str, batch: int | None) -> int:
    """The minibatch size ``name`` runs at: ``batch`` if given (for scores that take one), else as published."""
    if name in SCORE_BATCH and (batch is None or SCORE_BATCH[name] <= 1):
        return SCORE_BATCH[name]
    return PUBLISHED_BATCH if batch is None else batch


def sample_cells(table: Table, samples: int, seed: int) -> list[str]:
    """``samples`` distinct arch strings: the first ones of a seeded permutation of the table (prefix-stable)."""
    archs = list(table.rows)
    if not 2 <= samples <= len(archs):
        raise ArchpruneError(f"--samples {samples}: give between 2 and {len(archs)} (the table's cells)")
    return random.Random(seed).sample(archs, len(archs))[:samples]


# --- the per-cell cache -----------------------------------------------------------------------

def cache_path(cache_dir: str | Path | None = None) -> Path:
    """The JSON-lines file under ``cache_dir``, else ``$ARCHPRUNE_CACHE``, else ~/.cache/archprune."""
    root = Path(cache_dir) if cache_dir else cache_folder()
    return root / CACHE_FILE


CacheKey = tuple[str, str, int, int, str, int]  # arch, score, batch, seed, data, cells per stage


class ScoreCache:
    """(cell, score) results, appended one line each as they are computed, so a killed run loses at most one."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.entries: dict[CacheKey, dict[str, float]] = {}
        if path.exists():
            for line in path.read_text().splitlines():
                self._load_line(line)

    def _load_line(self, line: str) -> None:
        try:  # a line cut short by a kill is skipped, not fatal
            row = json.loads(line)
            self.entries[tuple(row["key"])] = {"value": float(row["value"]), "seconds": float(row["seconds"])}
        except (ValueError, KeyError, TypeError):
            pass

    def get(self, key: CacheKey) -> dict[str, float] | None:
        return self.entries.get(key)

    def put(self, key: CacheKey, value: float, seconds: float) -> None:
        self.entries[key] = {"value": value, "seconds": seconds}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a") as handle:  # json writes NaN / -Infinity, which json.loads reads back
            handle.write(json.dumps({"key": list(key), "value": value, "seconds": seconds}) + "\n")


# --- scoring ----------------------------------------------------------------------------------

def build_cell(arch: str, cells_per_stage: int = 5) -> nn.Module:
    """The NAS-Bench-201 macro network of ``arch``: C=16, ``cells_per_stage`` (5 in the benchmark), 10 classes."""
    return NB201Network(tuple(OPS[g] for g in arch_to_genome(arch)), num_classes=10, channels=16,
                        cells_per_stage=cells_per_stage)


def measure(name: str, net: nn.Module, data: Minibatch | None, batch: int, seed: int) -> float:
    """One score (or baseline) of ``net``; data-dependent scores see ``data``."""
    if name == "params_m":
        return sum(p.numel() for p in net.parameters()) / 1e6  # as evaluators.flops counts it, minus thop
    if name == "flops_g":
        from evaluators.flops import count_flops_params

        return count_flops_params(net, IMGSZ)["flops_g"]
    spec = SCORES[name]
    kwargs: dict[str, Any] = {"batch": batch, "seed": seed}
    if spec.uses_data:
        kwargs["data"] = data
    return float(spec.fn(net, IMGSZ, **kwargs))


def _data_tag(name: str, data: Minibatch | None) -> str:
    """What the score saw, for the cache key: the batch's origin for data scores, '-' for the rest."""
    if name in BASELINES or not SCORES[name].uses_data:
        return "-"
    return "cifar10" if data is not None and data.source.startswith("cifar10") else "gaussian"


class _Batches:
    """One CIFAR-10 minibatch per size, all drawn with the run's seed (so the 64 are the first 64 of the 128)."""

    def __init__(self, seed: int) -> None:
        self.seed = seed
        self.made: dict[int, Minibatch] = {}

    def get(self, size: int) -> Minibatch | None:
        if size <= 0:
            return None
        if size not in self.made:
            try:
                self.made[size] = cifar10_batch(size, self.seed)
            except ValueError as err:  # more images than the shared sample holds
                raise ArchpruneError(f"--batch {size}: {err}") from None
        return self.made[size]


Columns = dict[str, list[float]]  # per score, one entry per cell in sample order


def score_cells(archs: Sequence[str], proxies: Sequence[str], batch: int | None, seed: int, cache: ScoreCache,
                cells_per_stage: int = 5, progress: bool = True) -> tuple[Columns, Columns, int]:
    """Every proxy on every cell: values and seconds per proxy (cell order), and how many came from the cache."""
    from tqdm import tqdm

    batches = _Batches(seed)
    values: dict[str, list[float]] = {p: [] for p in proxies}
    seconds: dict[str, list[float]] = {p: [] for p in proxies}
    cached = 0
    # disable=None: a bar on a terminal, none in a log file
    for arch in tqdm(archs, desc="proxies", unit="cell", disable=None if progress else True, file=sys.stderr):
        net: nn.Module | None = None
        for name in proxies:
            size = score_batch(name, batch)
            data = batches.get(size) if name not in BASELINES and SCORES[name].uses_data else None
            key = (arch, name, size, seed, _data_tag(name, data), cells_per_stage)
            hit = cache.get(key)
            if hit is None:
                net = net if net is not None else build_cell(arch, cells_per_stage)
                start = time.perf_counter()
                value = measure(name, net, data, size, seed)
                hit = {"value": value, "seconds": time.perf_counter() - start}
                cache.put(key, hit["value"], hit["seconds"])
            else:
                cached += 1
            values[name].append(hit["value"])
            seconds[name].append(hit["seconds"])
    return values, seconds, cached


# --- statistics and the report ----------------------------------------------------------------

def rank_correlations(values: Sequence[float], accuracy: Sequence[float]) -> tuple[float | None, float | None]:
    """Spearman rho and Kendall tau; NaN scores rank lowest (as -inf); None when undefined (a constant score)."""
    import numpy as np
    from scipy import stats

    v = np.asarray(values, dtype=float)
    v[np.isnan(v)] = -np.inf
    ranks = stats.rankdata(v)  # ranks, not values: -inf and inf are ordinary (lowest, highest) here
    with warnings.catch_warnings():  # a constant score warns, then gives NaN: reported as None instead
        warnings.simplefilter("ignore", stats.ConstantInputWarning)
        rho = stats.spearmanr(ranks, accuracy).statistic
        tau = stats.kendalltau(ranks, accuracy).statistic
    return (None if math.isnan(rho) else float(rho)), (None if math.isnan(tau) else float(tau))


def summarise(name: str, values: list[float], seconds: list[float], accuracy: list[float],
              batch: int) -> dict[str, Any]:
    rho, tau = rank_correlations(values, accuracy)
    return {"spearman": rho, "kendall": tau, "seconds_per_model": statistics.fmean(seconds),
            "nonfinite": sum(1 for v in values if not math.isfinite(v)), "cells": len(values), "batch": batch}


def benchmark_proxies(table_path: str | Path, accuracy_column: str, samples: int = 1000, seed: int = 0,
                      scores: str | Sequence[str] | None = None, batch: int | None = None,
                      say: Callable[[str], None] = print, cache_dir: str | Path | None = None,
                      cells_per_stage: int = 5, progress: bool = True) -> dict[str, dict[str, Any]]:
    """Score -> {spearman, kendall, seconds_per_model, nonfinite, cells, batch} over ``samples`` cells.

    ``batch`` overrides the published minibatch size of every score that takes one; ``cells_per_stage``
    other than 5 is not the benchmark's network (tests use 1 for speed).
    """
    proxies = resolve_proxies(scores)
    if batch is not None and batch < 2:
        raise ArchpruneError(f"--batch {batch}: give at least 2 (a correlation over one image is undefined)")
    check_accuracy_column(table_path, accuracy_column)
    table = Table(table_path)
    archs = sample_cells(table, samples, seed)
    accuracy = [table.value(a, accuracy_column) for a in archs]
    cache = ScoreCache(cache_path(cache_dir))
    _say_setup(say, table, archs, proxies, batch, seed, cache)
    values, seconds, cached = score_cells(archs, proxies, batch, seed, cache, cells_per_stage, progress)
    if cached:
        say(f"{cached} of {len(archs) * len(proxies)} (cell, score) results came from the cache; "
            "their seconds are as first measured")
    return {p: summarise(p, values[p], seconds[p], accuracy, score_batch(p, batch)) for p in proxies}


def _say_setup(say: Callable[[str], None], table: Table, archs: list[str], proxies: Sequence[str],
               batch: int | None, seed: int, cache: ScoreCache) -> None:
    data_scores = [p for p in proxies if p not in BASELINES and SCORES[p].uses_data]
    if data_scores:
        sizes = sorted({score_batch(p, batch) for p in data_scores})
        source = cifar10_batch(max(sizes), seed).source
        say(f"minibatch: {source} (sizes {', '.join(map(str, sizes))}: each the first images of the largest)")
        if not source.startswith("cifar10"):
            say("warning: no CIFAR-10 sample, so the data scores see Gaussian noise: "
                "their correlations will not match the anchors")
    say(f"{table.path.name}: {len(archs)} of {len(table.rows)} cells (seed {seed}), scores {', '.join(proxies)}; "
        f"cache {cache.path} ({len(cache.entries)} results)")


def format_proxy_report(report: dict[str, dict[str, Any]]) -> str:
    """A markdown table: ours beside the published Spearman anchor, the difference, and whether it is within ±0.05."""
    lines = ["| score | batch | Spearman ρ | published ρ | Δ | within ±0.05 | Kendall τ | s/model | -inf/NaN |",
             "|---|---:|---:|---:|---:|:-:|---:|---:|---:|"]
    for name, row in report.items():
        anchor = PUBLISHED_SPEARMAN.get(name)
        rho = row["spearman"]
        delta = None if anchor is None or rho is None else rho - anchor
        verdict = "—" if delta is None else ("yes" if abs(delta) <= TOLERANCE + 1e-12 else "**no**")
        lines.append(f"| {name} | {row.get('batch') or '—'} | {_num(rho)} | {_num(anchor, '.2f')} | {_num(delta, '+.3f')} "
                     f"| {verdict} | {_num(row['kendall'])} | {row['seconds_per_model']:.3f} "
                     f"| {row.get('nonfinite', 0)}/{row.get('cells', '')} |")
    return "\n".join(lines)


def _num(value: float | None, spec: str = ".3f") -> str:
    return "—" if value is None else format(value, spec)
