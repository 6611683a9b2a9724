"""Plots of a run's front: a PNG (matplotlib) and an interactive HTML page (plotly).

Both draw from a ``ParetoFront`` and never recompute it. With three or more objectives every pair
of objectives gets its own panel; within a panel the front points that are also non-dominated in
that pair are joined by a line. The pick (``search.pick``) is ringed in green, the max-drop line is
dashed across accuracy axes, and the knee is ringed only where it may be recommended. ``pick.png``
shows where the pick prunes, group by group, beside the base and uniform pruning of equal cost.
"""
from __future__ import annotations

import itertools
import math
from pathlib import Path
from typing import Any, Sequence

import moocore
import numpy as np

from search.objectives import Objective
from search.pareto import ParetoFront
from search.pick import Pick, Widths, accuracy_index, choose_pick
from search.store import TrialRecord
from spaces.output_files import atomic_output


def _label(o: Objective, pf: ParetoFront) -> str:
    unit = pf.unit(o.name)
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


def _line_label(pick: Pick) -> str:
    assert pick.accuracy is not None and pick.reference_value is not None
    return f"max-drop line ({pick.reference_value:.4g} - {pick.max_drop:g})"


def _shown(r: TrialRecord | None, i: int, j: int) -> bool:
    return r is not None and all(math.isfinite(r.values[k]) for k in (i, j))


def plot_png(pf: ParetoFront, records: Sequence[TrialRecord], path: Path, title: str,
             pick: Pick | None = None) -> Path:
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
    pick = pick or choose_pick(pf, records)
    a = accuracy_index(pf.objectives) if pick.line is not None else None
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
        if a in (i, j):  # the accuracy the pick holds: everything below the line is too lossy to pick
            draw = ax.axvline if a == i else ax.axhline
            draw(pick.line, color="tab:green", ls="--", lw=1.1, alpha=0.8, zorder=1, label=_line_label(pick))
        knee = pick.knee
        if _shown(knee, i, j):
            ax.scatter([knee.values[i]], [knee.values[j]], s=160, facecolors="none", edgecolors="tab:red",
                       linewidths=1.8, zorder=5, label="knee")
            if pick.trial is None or knee.number != pick.trial.number:
                ax.annotate(f"knee: trial {knee.number}", (knee.values[i], knee.values[j]),
                            xytext=(10, 10), textcoords="offset points", color="tab:red", fontsize=8)
        if _shown(pick.trial, i, j):
            p = pick.trial
            ax.scatter([p.values[i]], [p.values[j]], s=330, facecolors="none", edgecolors="tab:green",
                       linewidths=2.4, zorder=6, label="pick")
            ax.annotate(f"pick: trial {p.number}", (p.values[i], p.values[j]), xytext=(10, -14),
                        textcoords="offset points", color="tab:green", fontsize=8, fontweight="bold")
        ax.set_xlabel(_label(xi, pf))
        ax.set_ylabel(_label(yj, pf))
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(pairs):]:
        ax.axis("off")
    handles: dict = {}
    for ax in axes.flat:
        for h, lab in zip(*ax.get_legend_handles_labels()):
            handles.setdefault(lab, h)
    ncol = min(len(handles), 3 * ncols)  # a one-panel figure holds three legend entries a row
    fig.legend(list(handles.values()), list(handles), loc="lower center", ncol=ncol, frameon=False)
    hv = f"hypervolume {pf.hypervolume:.4g}" if pf.hypervolume is not None else "no feasible candidate yet"
    fig.suptitle(f"{title}: front of {len(pf.front)} / {pf.n_feasible} feasible / {pf.n_trials} trials, {hv}")
    legend_in = 0.3 * math.ceil(len(handles) / ncol) + 0.15  # inches under the panels for the legend
    fig.tight_layout(rect=(0, legend_in / fig.get_figheight(), 1, 0.95))
    return _save_png(fig, path)


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


def plot_html(pf: ParetoFront, records: Sequence[TrialRecord], path: Path, title: str,
              pick: Pick | None = None) -> Path:
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    pairs = _pairs(len(pf.objectives))
    ncols = min(3, len(pairs))
    nrows = math.ceil(len(pairs) / ncols)
    fig = make_subplots(rows=nrows, cols=ncols)
    on_front = {r.number for r in pf.front}
    pick = pick or choose_pick(pf, records)
    a = accuracy_index(pf.objectives) if pick.line is not None else None
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
        rings = [("knee", pick.knee, dict(color="red", size=18, symbol="circle-open", line=dict(width=2))),
                 (f"pick: trial {pick.number}", pick.trial,
                  dict(color="green", size=26, symbol="circle-open", line=dict(width=3)))]
        for name, r, marker in rings:
            if _shown(r, i, j):
                fig.add_trace(go.Scatter(x=[r.values[i]], y=[r.values[j]], name=name, mode="markers", marker=marker,
                                         hovertext=[f"{name.split(':')[0]}<br>" + _hover(r, pf.objectives)],
                                         hoverinfo="text", legendgroup=name, showlegend=k == 0), row=row, col=col)
        if a in (i, j):
            draw = fig.add_vline if a == i else fig.add_hline
            draw(pick.line, line=dict(color="green", dash="dash", width=1), annotation_text=_line_label(pick),
                 annotation_font_color="green", annotation_font_size=10, row=row, col=col)
        fig.update_xaxes(title_text=_label(pf.objectives[i], pf), row=row, col=col)
        fig.update_yaxes(title_text=_label(pf.objectives[j], pf), row=row, col=col)
    fig.update_layout(title=f"{title}: {len(pf.front)} on the front, {pf.n_trials} trials; {pick.note}",
                      height=450 * nrows, width=560 * ncols)
    with atomic_output(path) as tmp:
        fig.write_html(str(tmp), include_plotlyjs=True)  # self-contained: opens without internet
    return path


def _cost_line(widths: Widths) -> str:
    def cost(r: TrialRecord) -> str:
        value = r.metrics.get(widths.cost_name or "")
        unit = widths.cost_unit
        return f"{widths.cost_name} {value:.4g} {unit}".rstrip() if isinstance(value, (int, float)) else "cost unknown"

    line = f"pick {cost(widths.pick_trial)}"
    if widths.uniform_trial is None:
        return line + "; no uniform baseline stored"
    if widths.uniform_trial.number == widths.pick_trial.number:
        return line + f"; the pick is the uniform baseline {widths.uniform_trial.source} itself"
    return line + f"; nearest uniform baseline {widths.uniform_trial.source} {cost(widths.uniform_trial)}"


def plot_widths(widths: Widths, path: Path, title: str) -> Path:
    """``pick.png``: kept channels per group, the base's full width behind the pick's and uniform's
    (the per-layer picture Torch-Pruning users draw by hand)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(widths.groups)
    x = np.arange(n)
    fig, ax = plt.subplots(figsize=(max(8.0, 0.26 * n + 2), 4.8))
    ax.bar(x, widths.base, width=0.9, color="0.88", label=widths.base_label)
    bars = [(f"pick: trial {widths.pick_trial.number}", widths.pick, "tab:green")]
    if widths.uniform is not None and widths.uniform_trial not in (None, widths.pick_trial):
        bars.append((f"{widths.uniform_trial.source} (trial {widths.uniform_trial.number})", widths.uniform,
                     "tab:orange"))
    step = 0.8 / len(bars)
    for k, (label, counts, color) in enumerate(bars):
        ax.bar(x - 0.4 + step * (k + 0.5), counts, width=step, color=color, label=label)
    ax.set_xticks(x, [g.removeprefix("model.") for g in widths.groups], rotation=90, fontsize=6)
    ax.set_xlim(-0.6, n - 0.4)
    ax.set_ylabel("channels kept")
    ax.set_xlabel("channel group (its root layer)")
    ax.grid(axis="y", alpha=0.3)
    ax.legend(loc="best", fontsize=8, framealpha=0.9)
    ax.set_title(f"{title}: where the pick (trial {widths.pick_trial.number}) prunes\n{_cost_line(widths)}",
                 fontsize=10)
    fig.tight_layout()
    return _save_png(fig, path)


def _save_png(fig: Any, path: Path) -> Path:
    import matplotlib.pyplot as plt

    try:
        with atomic_output(path) as tmp:
            fig.savefig(tmp, dpi=110)
    finally:
        plt.close(fig)
    return path
