"""Plots of a run's front: a PNG (matplotlib) and an interactive HTML page (plotly).

Both draw from a ``ParetoFront`` and never recompute it. With three or more objectives every pair
of objectives gets its own panel; within a panel the front points that are also non-dominated in
that pair are joined by a line.
"""
from __future__ import annotations

import itertools
import math
from pathlib import Path
from typing import Sequence

import moocore
import numpy as np

from search.objectives import METRICS, Objective
from search.pareto import ParetoFront
from search.store import TrialRecord


def _label(o: Objective) -> str:
    unit = METRICS.get(o.name, ("", ""))[1]
    better = "lower is better" if o.direction == "min" else "higher is better"
    return f"{o.name} [{unit}] ({better})" if unit else f"{o.name} ({better})"


def _finite(records: Sequence[TrialRecord], i: int, j: int) -> list[TrialRecord]:
    return [r for r in records if not r.failed and math.isfinite(r.values[i]) and math.isfinite(r.values[j])]


def _pair_front(front: Sequence[TrialRecord], objectives: Sequence[Objective], i: int, j: int) -> list[TrialRecord]:
    """Front points non-dominated in the (i, j) projection, sorted along objective i."""
    if not front:
        return []
    sign = np.array([1.0 if objectives[k].direction == "min" else -1.0 for k in (i, j)])
    points = np.array([(r.values[i], r.values[j]) for r in front], dtype=float) * sign
    keep = moocore.is_nondominated(points, keep_weakly=True)  # the same library as the front itself
    return sorted((r for r, k in zip(front, keep) if k), key=lambda r: r.values[i])


def _pairs(n: int) -> list[tuple[int, int]]:
    return list(itertools.combinations(range(n), 2))


def plot_png(pf: ParetoFront, records: Sequence[TrialRecord], path: Path, title: str) -> Path:
    import matplotlib

    matplotlib.use("Agg")  # files only: no display on servers
    import matplotlib.pyplot as plt

    pairs = _pairs(len(pf.objectives))
    if not pairs:
        raise ValueError("a Pareto plot needs at least two objectives")
    ncols = min(3, len(pairs))
    nrows = math.ceil(len(pairs) / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(5.6 * ncols, 4.6 * nrows), squeeze=False)
    on_front = {r.number for r in pf.front}
    for ax, (i, j) in zip(axes.flat, pairs):
        xi, yj = pf.objectives[i], pf.objectives[j]
        drawable = _finite(records, i, j)
        rest = [r for r in drawable if r.feasible and r.number not in on_front]
        bad = [r for r in drawable if not r.feasible]
        ax.scatter([r.values[i] for r in rest], [r.values[j] for r in rest], s=12, c="0.7", label="candidate")
        if bad:
            ax.scatter([r.values[i] for r in bad], [r.values[j] for r in bad], s=14, c="0.85", marker="x",
                       label="infeasible")
        ax.scatter([r.values[i] for r in pf.front], [r.values[j] for r in pf.front], s=28, c="tab:blue",
                   zorder=3, label="Pareto front")
        line = _pair_front(pf.front, pf.objectives, i, j)
        ax.plot([r.values[i] for r in line], [r.values[j] for r in line], c="tab:blue", lw=1.2, zorder=2)
        for r in drawable:
            if r.source == "unpruned":
                ax.scatter([r.values[i]], [r.values[j]], marker="*", s=180, c="black", zorder=4, label="base model")
            elif r.source.startswith("uniform-"):
                ax.scatter([r.values[i]], [r.values[j]], marker="^", s=50, c="tab:orange", zorder=4,
                           label="uniform pruning")
                ax.annotate(r.source.replace("uniform-", "u"), (r.values[i], r.values[j]), fontsize=7,
                            xytext=(4, -8), textcoords="offset points", color="tab:orange")
        if pf.knee is not None and all(math.isfinite(pf.knee.values[k]) for k in (i, j)):
            ax.scatter([pf.knee.values[i]], [pf.knee.values[j]], s=160, facecolors="none", edgecolors="tab:red",
                       linewidths=1.8, zorder=5, label="knee")
            ax.annotate(f"knee: trial {pf.knee.number}", (pf.knee.values[i], pf.knee.values[j]),
                        xytext=(10, 10), textcoords="offset points", color="tab:red", fontsize=8)
        ax.set_xlabel(_label(xi))
        ax.set_ylabel(_label(yj))
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(pairs):]:
        ax.axis("off")
    handles: dict = {}
    for ax in axes.flat:
        for h, lab in zip(*ax.get_legend_handles_labels()):
            handles.setdefault(lab, h)
    fig.legend(list(handles.values()), list(handles), loc="lower center", ncol=len(handles), frameon=False)
    hv = f"hypervolume {pf.hypervolume:.4g}" if pf.hypervolume is not None else "no feasible candidate yet"
    fig.suptitle(f"{title}: front of {len(pf.front)} / {len(pf.feasible)} feasible / {pf.n_trials} trials, {hv}")
    fig.tight_layout(rect=(0, 0.06, 1, 0.95))
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _hover(r: TrialRecord, objectives: Sequence[Objective]) -> str:
    head = f"trial {r.number} ({r.source})<br>" + "<br>".join(
        f"{o.name} = {v:.4g}" for o, v in zip(objectives, r.values))
    extra = [f"{m} = {r.metrics[m]:.4g}" for m in ("params_m", "flops_g") if m in r.metrics
             and m not in {o.name for o in objectives}]
    groups = list(r.config.get("groups", {}).items())
    lines = [", ".join(f"{name}:{count}" for name, count in chunk)
             for chunk in (groups[k:k + 4] for k in range(0, len(groups), 4))]
    described = ["channels per group:", *lines] if lines else []
    if "arch_str" in r.config:
        described = [f"cell: {r.config['arch_str']}"]
    return "<br>".join([head, *extra, *described])


def plot_html(pf: ParetoFront, records: Sequence[TrialRecord], path: Path, title: str) -> Path:
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    pairs = _pairs(len(pf.objectives))
    ncols = min(3, len(pairs))
    nrows = math.ceil(len(pairs) / ncols)
    fig = make_subplots(rows=nrows, cols=ncols)
    on_front = {r.number for r in pf.front}
    for k, (i, j) in enumerate(pairs):
        row, col = k // ncols + 1, k % ncols + 1
        drawable = _finite(records, i, j)
        groups = {"candidate": [r for r in drawable if r.feasible and r.number not in on_front],
                  "infeasible": [r for r in drawable if not r.feasible],
                  "Pareto front": [r for r in pf.front if r in drawable or r.number in on_front],
                  "baselines": [r for r in drawable if r.source == "unpruned" or r.source.startswith("uniform-")]}
        style = {"candidate": dict(color="lightgrey", size=6), "infeasible": dict(color="#eeeeee", size=6,
                 symbol="x"), "Pareto front": dict(color="royalblue", size=9),
                 "baselines": dict(color="orange", size=11, symbol="triangle-up")}
        for name, members in groups.items():
            if name == "Pareto front":
                members = sorted(members, key=lambda r: r.values[i])
            fig.add_trace(go.Scatter(
                x=[r.values[i] for r in members], y=[r.values[j] for r in members], name=name,
                mode="markers", marker=style[name], hovertext=[_hover(r, pf.objectives) for r in members],
                hoverinfo="text", legendgroup=name, showlegend=k == 0), row=row, col=col)
        line = _pair_front(pf.front, pf.objectives, i, j)
        fig.add_trace(go.Scatter(x=[r.values[i] for r in line], y=[r.values[j] for r in line], mode="lines",
                                 line=dict(color="royalblue"), hoverinfo="skip", showlegend=False), row=row, col=col)
        fig.update_xaxes(title_text=_label(pf.objectives[i]), row=row, col=col)
        fig.update_yaxes(title_text=_label(pf.objectives[j]), row=row, col=col)
    fig.update_layout(title=f"{title}: {len(pf.front)} on the front, {pf.n_trials} trials",
                      height=450 * nrows, width=560 * ncols)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.write_html(str(path), include_plotlyjs=True)  # self-contained: opens without internet
    return path
