"""``archprune pareto``: the front as a table, JSON and CSV, plus the plots (written from the same data).

Every output names the same pick (``search.pick``); the knee is marked only where it may be recommended.
"""
from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from typing import Any

from search.pareto import ParetoFront, stored_pareto_front
from search.pick import DEFAULT_MAX_DROP, Pick, choose_pick, pick_widths
from spaces.errors import ArchpruneError
from spaces.output_files import atomic_output, make_folder, write_text


def _num(value: float | None) -> float | None:
    return float(value) if isinstance(value, (int, float)) and math.isfinite(value) else None


def front_json(pf: ParetoFront, pick: Pick) -> dict[str, Any]:
    """The ``--json`` object: objectives, front, hypervolume, reference point, trial count, plus the
    pick (its trial, rule, max-drop and reference) and the knee (null when below the max-drop line)."""
    return {
        "objectives": [{"name": o.name, "direction": o.direction} for o in pf.objectives],
        "front": [{k: _num(v) if isinstance(v, float) else v for k, v in row.items() if k not in ("knee", "pick")}
                  for row in front_rows(pf, pick)],
        "hypervolume": pf.hypervolume,
        "reference_point": pf.reference_point,
        "n_trials": pf.n_trials,
        "n_feasible": pf.n_feasible,
        "n_failed": len(pf.failed),
        "failures": pf.failure_reasons(),  # reason -> trials
        "knee": pick.knee.number if pick.knee else None,
        **pick.as_json(),
    }


def _columns(pf: ParetoFront) -> list[str]:
    """The objectives, then params and GFLOPs when the run measured them (a table search does not)."""
    names = [o.name for o in pf.objectives]
    return names + [m for m in ("params_m", "flops_g") if m not in names and any(m in r.metrics for r in pf.front)]


def front_rows(pf: ParetoFront, pick: Pick) -> list[dict[str, Any]]:
    rows = []
    for r in pf.front:
        row: dict[str, Any] = {"trial": r.number}
        row.update({c: r.metrics.get(c) for c in _columns(pf)})
        row.update({"source": r.source, "knee": pick.knee is not None and r.number == pick.knee.number,
                    "pick": r.number == pick.number})
        if "arch_str" in r.config:
            row["arch_str"] = r.config["arch_str"]
        rows.append(row)
    return rows


def _marks(row: dict[str, Any]) -> str:
    marks = [m for m in ("pick", "knee") if row[m]]
    return f" ({', '.join(marks)})" if marks else ""


def front_table(pf: ParetoFront, pick: Pick) -> str:
    columns = ["trial"] + _columns(pf) + ["source"]
    lines = ["  ".join(f"{c:>12}" for c in columns)]
    for row in front_rows(pf, pick):
        cells = [f"{row['trial']:>12}"]
        cells += [f"{row[c]:>12.4f}" if isinstance(row[c], (int, float)) else f"{'-':>12}" for c in _columns(pf)]
        cells.append(f"{row['source'] + _marks(row):>12}")
        lines.append("  ".join(cells))
    hv = f"{pf.hypervolume:.6g}" if pf.hypervolume is not None else "n/a"
    ref = ", ".join(f"{v:.4g}" for v in pf.reference_point) if pf.reference_point else "n/a"
    units = ", ".join(f"{c} {pf.unit(c)}" for c in _columns(pf) if pf.unit(c))
    lines.append(f"front: {len(pf.front)} of {pf.n_feasible} feasible / {pf.n_trials} trials; hypervolume {hv} "
                 f"(reference {ref})" + (f"; units: {units}" if units else ""))
    if pf.failed:
        reasons = pf.failure_reasons()
        first, count = next(iter(reasons.items()))
        more = f" (and {len(reasons) - 1} other reason(s): see pareto.json)" if len(reasons) > 1 else ""
        lines.append(f"{len(pf.failed)} of {pf.n_trials} trials failed; {count} with: {first}{more}")
    lines.append(pick.note)
    return "\n".join(lines)


def write_front_files(pf: ParetoFront, pick: Pick, folder: Path) -> dict[str, Path]:
    make_folder(folder)
    paths = {"json": folder / "pareto.json", "csv": folder / "pareto.csv"}
    write_text(paths["json"], json.dumps(front_json(pf, pick), indent=2))
    rows = front_rows(pf, pick)
    with atomic_output(paths["csv"]) as tmp, tmp.open("w", newline="") as handle:
        extra = ["arch_str"] if any("arch_str" in row for row in rows) else []
        writer = csv.DictWriter(handle, fieldnames=["trial"] + _columns(pf) + ["source", "knee", "pick"] + extra)
        writer.writeheader()
        writer.writerows(rows)
    return paths


def report_front(store: Any, name: str, folder: Path, as_json: bool, hv_ref: str | None,
                 plots: bool, max_drop: float | None = None) -> dict[str, Any]:
    """Print a run's front (table or JSON) and write pareto.csv/json and, with ``plots``, png/html and
    (channel-space runs) pick.png."""
    from search.plots import plot_html, plot_png, plot_widths  # matplotlib and plotly load only when drawing

    reference = None
    if hv_ref:
        try:
            reference = [float(v) for v in hv_ref.split(",")]
        except ValueError:
            raise ArchpruneError(f"--hv-ref {hv_ref!r}: give one number per objective, comma-separated") from None
    # the front, the counts, and the trials the pick compares with, from the store's columns; every
    # record is built only for the plots of the front, which draw every trial
    pf = stored_pareto_front(store, reference)
    compared = store.records_from("unpruned", "uniform-")
    pick = choose_pick(pf, compared, DEFAULT_MAX_DROP if max_drop is None else max_drop)
    written = write_front_files(pf, pick, folder)
    if plots and len(pf.objectives) >= 2:
        records = store.records()
        written["png"] = plot_png(pf, records, folder / "pareto.png", name, pick)
        written["html"] = plot_html(pf, records, folder / "pareto.html", name, pick)
    widths = pick_widths(pick, compared, pf) if plots else None
    if widths is not None:  # channel-space runs only: the others have no channel groups to draw
        written["pick"] = plot_widths(widths, folder / "pick.png", name)
    summary = front_json(pf, pick)
    if as_json:
        print(json.dumps(summary))
    else:
        print(front_table(pf, pick))
        print("wrote " + ", ".join(str(p) for p in written.values()))
    return summary
