"""Does the demo's front repeat? (issue 16, "done means": the same candidates within 5% latency)

Runs ``archprune demo`` twice from fresh (``--out OUT/run1``, ``OUT/run2``; a finished run is kept
and re-read, so an interrupted benchmark resumes), then compares the stored ``latency_ms`` of every
candidate both runs evaluated (the same genome; the first generation is identical by seed, later
ones diverge where the measurements steer NSGA-II differently) and of the first run's front.
Run it while nothing else runs.

    python bench/demo_repeatability.py --out ~/archprune-runs/demo-repeatability
    python bench/demo_repeatability.py --out ~/archprune-runs/demo-repeatability --report
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

from evaluators.latency import cpu_model


def run_demo(run: Path) -> None:
    """One ``archprune demo`` into ``run``. Both runs share one cache folder beside them, new with the
    benchmark, so they start as a new user's first and second runs do: the dataset and this machine's
    latency scale (latency_machine_scale) are made by the first, found by the second."""
    if (run / "pareto.json").exists():
        return
    env = {**os.environ, "ARCHPRUNE_CACHE": str(run.parent / "cache")}
    subprocess.run([sys.executable, "-m", "search.cli", "demo", "--out", str(run)], check=True, env=env)


def front_latencies(run: Path) -> tuple[dict[tuple, float], set[tuple]]:
    """The front's candidates from ``pareto.json`` alone, keyed by their FLOPs and params (the file
    holds no genomes; two different genomes of one FLOPs and params count are rare enough here): for
    a run whose ``study.db`` did not survive (a machine change keeps only the text files)."""
    import json

    front = json.loads((run / "pareto.json").read_text())["front"]
    keyed = {(round(row["flops_g"], 7), round(row["params_m"], 6)): row["latency_ms"] for row in front}
    return keyed, set(keyed)


def latencies(run: Path) -> tuple[dict[tuple, float], set[tuple]]:
    from search.pareto import non_dominated
    from search.runs import open_run

    if not (run / "study.db").exists():
        return front_latencies(run)
    handle = open_run(str(run))
    records = [r for r in handle.store.records() if not r.failed and "latency_ms" in r.metrics]
    front = {tuple(r.genome) for r in non_dominated(records, handle.store.objectives)}
    return {tuple(r.genome): r.metrics["latency_ms"] for r in records}, front


def scale_line(run: Path) -> str:
    """The run's latency scale: the reference's best it took, and its own reading at the start."""
    from evaluators.latency import SCALE_ATTR
    from search.runs import open_run

    scale = open_run(str(run)).store.study.user_attrs.get(SCALE_ATTR) or {}
    now = scale.get("best_measured_now_ms")
    return (f"scale {scale.get('best_ms', float('nan')):.3f} ms ({scale.get('scheme')}); its own reading at the "
            f"start {now:.3f} ms" if now else f"scale {scale.get('best_ms', float('nan')):.3f} ms (measured by the run)")


def report(out: Path) -> str:
    (one, front), (two, _) = latencies(out / "run1"), latencies(out / "run2")
    common = sorted(set(one) & set(two))
    ratios = np.array([two[g] / one[g] for g in common])
    on_front = [g for g in common if g in front]
    front_ratios = np.array([two[g] / one[g] for g in on_front])

    def line(what: str, values: np.ndarray) -> str:
        if not len(values):
            return f"| {what} | 0 | — | — | — |"
        worst = np.abs(values - 1).max()
        within = float(np.mean(np.abs(values - 1) <= 0.05))
        return (f"| {what} | {len(values)} | {values.min():.3f} / {np.median(values):.3f} / {values.max():.3f} | "
                f"{worst:.1%} | {within:.0%} |")

    fronts_only = not all((out / name / "study.db").exists() for name in ("run1", "run2"))
    scales = [] if fronts_only else [f"- {name}: {scale_line(out / name)}" for name in ("run1", "run2")]
    note = ["(a study.db is missing: both rows are the two fronts' common candidates, matched by FLOPs and params)",
            ""] if fronts_only else []
    return "\n".join([f"CPU: {cpu_model()}", "", *note, *scales, *([""] if scales else []),
                      "| candidates | n | run 2 / run 1 latency_ms (min / median / max) | worst difference | within 5% |",
                      "|---|---:|---|---:|---:|", line("evaluated in both runs", ratios),
                      line("on run 1's front", front_ratios)])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="~/archprune-runs/demo-repeatability")
    parser.add_argument("--report", action="store_true", help="compare the finished runs; run nothing")
    args = parser.parse_args()
    out = Path(args.out).expanduser()
    if not args.report:
        for name in ("run1", "run2"):
            run_demo(out / name)
    print(report(out))


if __name__ == "__main__":
    main()
