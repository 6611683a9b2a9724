"""Latency predicted from a table: the sum of a network's per-conv entries, plus a fitted correction.

Interpolation is linear in log(ms) over log(c_in), log(c_out) and log(side) (depthwise: log(c),
log(side)). Conv cost follows a power law in each size (MACs = c_in * c_out * k^2 * side^2 / s^2)
and the grid doubles, so log-log interpolation is exact for the pure power law, where linear
interpolation over the side would over-estimate by up to 12% half-way between two sides. The table
may be any scattered set of entries (a banded grid, or exactly the convs of a few models), so the
interpolation is piecewise linear on a Delaunay triangulation (scipy's LinearNDInterpolator), exact
at every entry, with the nearest entry outside their hull (TinyNAS's fallback).

The correction ``measured = a * sum + b`` is fitted per image size on a few fully measured
candidates (``fit``): it absorbs what the conv sum leaves out (concat, upsample, the head's
decode, one session call instead of one per conv).
"""
from __future__ import annotations

import math
import os
from typing import Any, Sequence

import numpy as np
from torch import nn

from spaces.errors import ArchpruneError

from .convs import ConvSpec, conv_list
from .table import ConvKey, LatencyTable, load_table


class _Group:
    """Interpolator over the entries of one (kind, kernel, stride)."""

    def __init__(self, points: np.ndarray, values: np.ndarray) -> None:
        from scipy.interpolate import LinearNDInterpolator, NearestNDInterpolator
        from scipy.spatial import QhullError
        from threadpoolctl import threadpool_limits

        self.nearest = NearestNDInterpolator(points, values)
        self.linear = None
        if len(points) > points.shape[1]:
            try:
                self.linear = LinearNDInterpolator(points, values)
                # scipy computes the simplices' transforms on the first call, through BLAS: do it now, and
                # on one thread (starting BLAS threads on a busy 2-core box took seconds for a few ms of work)
                with threadpool_limits(1):
                    self.linear(points[:1])
            except QhullError:  # too few or flat (e.g. all at one side): nearest only, still exact at entries
                pass

    def __call__(self, queries: np.ndarray) -> np.ndarray:
        out = self.linear(queries) if self.linear is not None else np.full(len(queries), np.nan)
        missing = np.isnan(out)
        if missing.any():
            out[missing] = self.nearest(queries[missing])
        return out


class LatencyPredictor:
    """``predict(model, imgsz)`` in ms from a ``LatencyTable`` (or the path of one)."""

    def __init__(self, table: LatencyTable | str | os.PathLike) -> None:
        self.table = table if isinstance(table, LatencyTable) else load_table(table)
        if not self.table.entries:
            raise ArchpruneError("the latency table has no entries: measure it first")
        self._groups: dict[tuple[str, int, int], _Group] = {}
        by_group: dict[tuple[str, int, int], list[tuple[ConvKey, float]]] = {}
        for key, ms in self.table.entries.items():
            by_group.setdefault((key.kind, key.k, key.s), []).append((key, ms))
        overhead = self.table.call_overhead_ms
        for group, items in by_group.items():
            points = np.array([_coords(key.kind, key.c_in, key.c_out, key.h) for key, _ in items])
            # each entry paid one session call a whole model pays once; never let that take it to 0
            values = np.log([max(ms - overhead, 0.1 * ms) for _, ms in items])
            self._groups[group] = _Group(points, values)

    # -- the conv sum ----------------------------------------------------------------------------
    def _group_for(self, kind: str, k: int, s: int) -> tuple[tuple[str, int, int], float]:
        """The group to look a conv up in, and the MACs factor when it is another kernel or stride."""
        if (kind, k, s) in self._groups:
            return (kind, k, s), 1.0
        same_kind = [g for g in self._groups if g[0] == kind]
        if not same_kind:
            raise ArchpruneError(f"the latency table has no {kind} convs; re-measure it with the default grid")
        near = min(same_kind, key=lambda g: (abs(math.log(g[1] / k)), abs(g[2] - s)))
        return near, (k / near[1]) ** 2 * (near[2] / s) ** 2

    def conv_times(self, convs: Sequence[ConvSpec]) -> np.ndarray:
        """Predicted ms of each conv (before the correction)."""
        out = np.zeros(len(convs))
        queries: dict[tuple[str, int, int], list[tuple[int, tuple[float, ...], float]]] = {}
        for i, spec in enumerate(convs):
            if spec.kind == "depthwise":
                kind, c_in, c_out, factor = "depthwise", spec.c_in, spec.c_in, spec.c_out / spec.c_in
            else:  # grouped convs as the regular conv with the same MACs
                kind, c_in, c_out, factor = "regular", max(1, spec.c_in // spec.groups), spec.c_out, 1.0
            group, macs = self._group_for(kind, spec.k, spec.stride)
            queries.setdefault(group, []).append((i, _coords(kind, c_in, c_out, spec.side), factor * macs))
        for group, items in queries.items():
            idx = np.array([i for i, _, _ in items])
            values = self._groups[group](np.array([q for _, q, _ in items]))
            out[idx] = np.exp(values) * np.array([f for _, _, f in items])
        return out

    def conv_sum(self, model: nn.Module, imgsz: int) -> float:
        """Sum of the model's per-conv table latencies at ``imgsz``, in ms (no correction)."""
        return float(self.conv_times(conv_list(model, imgsz)).sum())

    # -- the correction --------------------------------------------------------------------------
    def correction(self, imgsz: int) -> tuple[float, float]:
        """(a, b) for ``imgsz``: its own fit, else the nearest size's with b scaled by pixels
        (what b stands for, the non-conv ops, grows with the image), else (1, 0)."""
        if not self.table.corrections:
            return 1.0, 0.0
        ref = min(self.table.corrections, key=lambda size: abs(math.log(size / imgsz)))
        fit = self.table.corrections[ref]
        return fit["a"], fit["b"] * (imgsz / ref) ** 2

    def fit(self, models: Sequence[nn.Module], measured_ms: Sequence[float], imgsz: int,
            on: str | None = None) -> dict[str, Any]:
        """Least-squares ``measured = a * conv_sum + b`` over fully measured candidates at ``imgsz``;
        stored in the table (save it to keep it), with ``on`` naming the family they came from. One
        candidate, or a fit with a <= 0 (candidates too alike for the noise): a ratio through the origin
        instead."""
        if len(models) != len(measured_ms) or not models:
            raise ArchpruneError("fit needs one measured latency per model, and at least one model")
        sums = np.array([self.conv_sum(m, imgsz) for m in models])
        measured = np.asarray(measured_ms, dtype=float)
        a, b = float(measured.sum() / sums.sum()), 0.0
        if len(models) >= 2 and np.ptp(sums) > 0:
            slope, intercept = np.linalg.lstsq(np.stack([sums, np.ones_like(sums)], 1), measured, rcond=None)[0]
            if slope > 0:
                a, b = float(slope), float(intercept)
        self.table.corrections[imgsz] = {"a": a, "b": b, "n": float(len(models)), **({"on": on} if on else {})}
        return self.table.corrections[imgsz]

    def predict(self, model: nn.Module, imgsz: int) -> float:
        """Predicted batch-1 latency of ``model`` at ``imgsz`` on the table's target, in ms."""
        a, b = self.correction(imgsz)
        return a * self.conv_sum(model, imgsz) + b


def _coords(kind: str, c_in: int, c_out: int, side: float) -> tuple[float, ...]:
    if kind == "depthwise":
        return (math.log2(c_in), math.log2(side))
    return (math.log2(c_in), math.log2(c_out), math.log2(side))
