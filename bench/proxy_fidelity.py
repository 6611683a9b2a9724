"""Proxy fidelity, measured: how well each accuracy proxy predicts a pruned candidate's recovered mAP.

For each base (``--bases plain=...,sparse=...,elastic=...``, any subset; a base is anything
``load_model`` reads) the same genomes are scored. They are spread evenly in FLOPs from the
unpruned model down to ~30% of its FLOPs, taken from one search's front on the plain base plus the
uniform baselines, and mean the same channel counts on every base (one channel space per base,
same ratios and round_to; an elastic base's recorded channel order decides which channels). Scores:

- ``no-recal``: mAP50-95 of the pruned network as it is (no BatchNorm recalibration);
- ``adaptive-bn``: after BatchNorm recalibration on 8 training batches (EagleEye; ``--proxy adaptive-bn``);
- ``finetune``: after 200 fine-tuning steps (``--proxy finetune`` at its default steps);
- the truth: mAP50-95 of last.pt after the recovery fine-tune (10 epochs, head distillation from
  yolov8n-digits, AdamW lr 5e-4, warmup 0.5 epoch, seed 0: bench/_recovery.py), on val images
  200..499. The proxies score val images 0..199 only, so no proxy ever sees the truth's images.

Steps, each resumable (one JSON per base, genome and score under ``--out``; a rerun skips them):

1. ``archprune search --model PLAIN --objectives flops_g:min,map50_95:max --driver nsga2 --trials 64
   --run genomes --results OUT/search`` (the same command resumes it), then the genome choice
   (``genomes.json``, reused on every rerun);
2. every proxy on every base and genome, cheapest proxy first (about 1.5 h for three bases on one core);
3. the truths, base by base, FLOPs levels interleaved so that a partial table spans the range.

The report (``--report`` prints it from whatever has finished, running nothing) gives, per base and
proxy: Spearman and Kendall against the truth with bootstrap 95% intervals, mean |proxy - truth|,
the same below and above 50% FLOPs, seconds per candidate; and a calibrated axis: each proxy mapped
to recovered mAP by a monotone fit on 4 fine-tuned candidates (``fit_monotone_map``), scored on the
rest. FLOPs alone is a reference row: a proxy that ranks no better than FLOPs adds nothing.

    taskset -c 0 env OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 .venv/bin/python bench/proxy_fidelity.py \\
        --bases plain=yolov8n-digits,sparse=SPARSE.pt,elastic=ELASTIC.pt
    .venv/bin/python bench/proxy_fidelity.py --report > proxy-fidelity.md

(default ``--out ~/archprune-runs/proxy-fidelity``; ``--stage proxies`` stops after step 2)

A second process with the same arguments on the other core shares the truths: each recovery is
claimed by one process (``_recovery.claimed``), the other takes the next (its ETA counts only its own).
"""
from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from _recovery import (BASE, PROXY_IMAGES, Progress, Recovery, add_recovery_args, calibrated_stats,
                       channel_space, check_bases, claimed, until_all_done, check_settings, epochs_done, eval_convention, held_out_map,
                       interleaved, md_table, num, parse_mapping, rank_stats, read_current, read_json, recover,
                       recovery_from_args, run_search, training_seconds, with_ci, write_json)

PROXIES = ("no-recal", "adaptive-bn", "finetune")  # cheapest first: partial tables come early
BASE_ORDER = ("plain", "sparse", "elastic")


# -- step 1: the genomes ----------------------------------------------------------------------------
def choose_genomes(handle: Any, n: int, min_ratio: float) -> dict[str, Any]:
    """``n`` genomes at FLOPs ratios spread evenly from 1.0 to ``min_ratio``: for each target the
    nearest unused front or uniform-baseline candidate, or the nearest feasible trial where none is
    within half a step (a front is sparse where the proxy reads 0)."""
    from search.pareto import non_dominated

    records = [r for r in handle.store.records() if r.feasible and "flops_g" in r.metrics]
    unpruned = next((r for r in records if r.source == "unpruned"), None)
    if unpruned is None:
        raise SystemExit(f"run {handle.folder} has no unpruned trial to measure FLOPs ratios against")
    base_flops = unpruned.metrics["flops_g"]
    front = {r.number for r in non_dominated(records, handle.store.objectives)}
    half_step = (1.0 - min_ratio) / max(n - 1, 1) / 2
    ratio = {r.number: r.metrics["flops_g"] / base_flops for r in records}
    reachable = [r for r in records if ratio[r.number] >= min_ratio - half_step]
    preferred = [r for r in reachable if r.number in front or r.source == "unpruned" or r.source.startswith("uniform")]
    taken: dict[int, Any] = {}

    def nearest(pool: list[Any], target: float) -> Any:
        free = [r for r in pool if r.number not in taken]
        return min(free, key=lambda r: (abs(ratio[r.number] - target), r.number), default=None)

    for target in np.linspace(1.0, min_ratio, n):
        pick = nearest(preferred, target)
        if pick is None or abs(ratio[pick.number] - target) > half_step:
            pick = nearest(reachable, target)  # preferred is part of reachable: at least as near
        if pick is not None:
            taken[pick.number] = pick
    if len(taken) < n:
        print(f"note: only {len(taken)} distinct candidates within reach of the {n} FLOPs targets", file=sys.stderr)
    genomes = []
    for i, r in enumerate(sorted(taken.values(), key=lambda r: (-ratio[r.number], r.number))):
        named = r.source == "unpruned" or r.source.startswith("uniform")
        genomes.append({"id": f"g{i:02d}", "trial": r.number,
                        "source": (r.source if named else f"trial {r.number}") + (" (front)" if r.number in front else ""),
                        "flops_ratio": ratio[r.number], "flops_g": r.metrics["flops_g"],
                        "params_m": r.metrics.get("params_m"), "search_proxy": r.metrics.get("map50_95"),
                        "groups": r.config["groups"]})
    settings = handle.settings
    return {"run": str(handle.folder), "model": settings.model, "base_flops_g": base_flops,
            "space": {"importance": settings.importance, "round_to": settings.round_to,
                      "keep_layers": list(settings.keep_layers), "seed": settings.seed},
            "genomes": genomes}


def genomes_for(args: argparse.Namespace, recovery: Recovery, out: Path, plain: str) -> dict[str, Any]:
    path = out / "genomes.json"
    stored = read_json(path)
    if stored is not None:
        return stored
    if args.search_run:
        from search.runs import open_run

        handle = open_run(args.search_run)
    else:
        handle = run_search(out / "search" / "genomes", plain, recovery, "flops_g:min,map50_95:max",
                            args.search_trials)
    chosen = choose_genomes(handle, args.genomes, args.min_ratio)
    write_json(path, chosen)
    print(f"chose {len(chosen['genomes'])} genomes from {chosen['run']}: FLOPs "
          + ", ".join(f"{g['flops_ratio']:.0%}" for g in chosen["genomes"]), flush=True)
    return chosen


class BaseSpaces:
    """One channel space per base, built once; a genome is carried across bases by its channel counts."""

    def __init__(self, sources: dict[str, str], space_settings: dict[str, Any]) -> None:
        self.sources, self.settings, self._spaces = sources, argparse.Namespace(**space_settings), {}

    def build(self, base: str, genome: dict[str, Any], imgsz: int) -> Any:
        from spaces.models import load_model

        if base not in self._spaces:
            self._spaces[base] = channel_space(load_model(self.sources[base]), self.settings)
        space = self._spaces[base]
        if set(genome["groups"]) != {g.name for g in space.genes}:
            raise SystemExit(f"base {base} ({self.sources[base]}) has other channel groups than the plain base: "
                             "every base must be the same architecture")
        model = space.build(space.from_config({"groups": genome["groups"]}))
        model.imgsz = imgsz
        return model


# -- steps 2 and 3 ----------------------------------------------------------------------------------
def proxy_evaluators(recovery: Recovery, finetune_steps: int | None) -> dict[str, Any]:
    from evaluators.proxy_accuracy import AdaptiveBNMapEvaluator
    from evaluators.proxy_finetune import FinetuneMapEvaluator

    steps = {} if finetune_steps is None else {"steps": finetune_steps}
    return {"no-recal": lambda: AdaptiveBNMapEvaluator(recovery.data, recovery.imgsz, recalibrate=False),
            "adaptive-bn": lambda: AdaptiveBNMapEvaluator(recovery.data, recovery.imgsz),
            "finetune": lambda: FinetuneMapEvaluator(recovery.data, recovery.imgsz, **steps)}


def score_proxies(bases: dict[str, str], chosen: dict[str, Any], spaces: BaseSpaces, recovery: Recovery,
                  finetune_steps: int | None, out: Path, progress: Progress) -> None:
    from evaluators._base import Candidate

    makers = proxy_evaluators(recovery, finetune_steps)
    for proxy in PROXIES:
        evaluator = None  # built on first use: a finished proxy costs nothing on a rerun
        for base in bases:
            for genome in chosen["genomes"]:
                path = out / base / genome["id"] / f"{proxy}.json"
                if read_current(path):
                    continue
                evaluator = evaluator or makers[proxy]()
                t0 = time.perf_counter()
                model = spaces.build(base, genome, recovery.imgsz)
                t1 = time.perf_counter()
                scores = evaluator.evaluate(Candidate(model=model, imgsz=recovery.imgsz))
                seconds = time.perf_counter() - t1
                write_json(path, {"map50_95": scores["map50_95"], "map50": scores["map50"], "seconds": seconds,
                                  "build_s": t1 - t0, "val_images": PROXY_IMAGES, "eval": eval_convention()})
                progress.finish(proxy, f"{base} {genome['id']} ({genome['flops_ratio']:.0%} FLOPs)", seconds,
                                f"mAP50-95 {scores['map50_95']:.4f}")


def score_truths(bases: dict[str, str], chosen: dict[str, Any], spaces: BaseSpaces, recovery: Recovery,
                 out: Path, progress: Progress) -> None:
    from spaces.models import load_model, save_checkpoint

    genomes = chosen["genomes"]

    def attempt(item: tuple[str, int]) -> bool:
        base, i = item
        genome = genomes[i]
        folder = out / base / genome["id"]
        if read_current(folder / "truth.json"):
            return True
        with claimed(folder) as mine:
            if not mine:  # a second process (the other core) is recovering it
                return False
            if read_current(folder / "truth.json"):  # it finished while we waited for the claim
                return True
            t0 = time.perf_counter()
            pruned, last = folder / "pruned.pt", folder / "recovery" / "last.pt"
            if epochs_done(folder / "recovery") < recovery.epochs:  # else: a truth of an older evaluation, re-scored
                if not pruned.exists():
                    save_checkpoint(spaces.build(base, genome, recovery.imgsz), pruned,
                                    meta={"base": base, "source": bases[base], "genome": genome["id"]})
                recover(pruned, folder / "recovery", recovery, log=lambda line: print("  " + line, flush=True))
            truth = held_out_map(load_model(last), recovery)
            write_json(folder / "truth.json", {**truth, "recovery_s": training_seconds(folder / "recovery"),
                                               "epochs": recovery.epochs})
        progress.finish("truth", f"{base} {genome['id']} ({genome['flops_ratio']:.0%} FLOPs)",
                        time.perf_counter() - t0, f"recovered mAP50-95 {truth['map50_95']:.4f}")
        return True

    until_all_done([(base, i) for base in bases for i in interleaved(len(genomes))], attempt)


def score_bases(bases: dict[str, str], recovery: Recovery, out: Path) -> None:
    """Each unpruned base on the truth's slice, before any recovery: where 'far from the base' starts."""
    from spaces.models import load_model

    for base, source in bases.items():
        path = out / base / "base.json"
        if not read_current(path):
            write_json(path, {"source": source, **held_out_map(load_model(source), recovery)})


# -- the report -------------------------------------------------------------------------------------
def collect(out: Path) -> tuple[dict[str, Any], dict[str, str], dict[str, dict[str, dict[str, Any]]]]:
    """genomes.json, the bases, and base -> genome id -> {proxy or 'truth': result} of what finished."""
    chosen, bases = read_json(out / "genomes.json"), read_json(out / "bases.json") or {}
    if chosen is None:
        raise SystemExit(f"nothing to report in {out}: no genomes.json yet")
    order = sorted(bases, key=lambda b: (BASE_ORDER.index(b) if b in BASE_ORDER else len(BASE_ORDER), b))
    results: dict[str, dict[str, dict[str, Any]]] = {}
    for base in order:
        results[base] = {}
        for genome in chosen["genomes"]:
            found = {what: read_current(out / base / genome["id"] / f"{what}.json") for what in (*PROXIES, "truth")}
            results[base][genome["id"]] = {k: v for k, v in found.items() if v is not None}
    return chosen, {b: bases[b] for b in order}, results


def report(out: Path, k: int, repeats: int, resamples: int) -> str:
    chosen, bases, results = collect(out)
    genomes = {g["id"]: g for g in chosen["genomes"]}
    settings = read_json(out / "settings.json") or {}
    lines = [f"Genomes: {len(genomes)} from `{chosen['run']}` (FLOPs {min(g['flops_ratio'] for g in genomes.values()):.0%}"
             f"–{max(g['flops_ratio'] for g in genomes.values()):.0%} of {chosen['base_flops_g']:.3f} GFLOPs). "
             f"Truth: mAP50-95 of last.pt after {settings.get('epochs')} recovery epoch(s), val images "
             f"{settings.get('held_out_first')}+; proxies: val images 0..{PROXY_IMAGES - 1}. Evaluation: "
             f"{eval_convention()} (scores of another evaluation are left out until a run re-scores them).", ""]

    header = ["genome", "FLOPs %", "params M", "source", "no-recal", "adaptive-bn", "finetune", "truth (recovered)"]
    for base, per in results.items():
        base_ref = read_current(out / base / "base.json") or {}
        lines += [f"**{base}** (`{bases[base]}`; unpruned, not fine-tuned: {num(base_ref.get('map50_95'), 4)} on the truth's images)", ""]
        rows = []
        for gid, got in per.items():
            g = genomes[gid]
            rows.append([gid, f"{g['flops_ratio']:.1%}", num(g["params_m"]), g["source"],
                         *(num(got[p]["map50_95"], 4) if p in got else "…" for p in (*PROXIES, "truth"))])
        lines += [md_table(header, rows, right=range(4, 8)), ""]

    fidelity, split, calibrated, verdicts = [], [], [], []
    for base, per in results.items():
        done = [gid for gid, got in per.items() if "truth" in got]
        recovery_min = np.mean([per[g]["truth"]["recovery_s"] for g in done]) / 60 if done else math.nan
        rank_best, value_best = (-math.inf, "—"), (math.inf, "—")
        rho: dict[str, tuple[float, float]] = {}  # axis -> (all, below 50% FLOPs): EagleEye's comparison
        for axis in (*PROXIES, "flops"):
            is_map = axis != "flops"  # FLOPs has a rank, not a value in mAP
            label = axis if is_map else "FLOPs (reference)"
            ids = [g for g in done if not is_map or axis in per[g]]
            x = np.array([per[g][axis]["map50_95"] if is_map else genomes[g]["flops_ratio"] for g in ids])
            y = np.array([per[g]["truth"]["map50_95"] for g in ids])
            flops = np.array([genomes[g]["flops_ratio"] for g in ids])
            seconds = [got[axis]["seconds"] for got in per.values() if axis in got]
            cost = f"{np.mean(seconds):.1f}" if seconds else ("0" if not is_map else "—")
            s = rank_stats(x, y, resamples, value_error=is_map)
            fidelity.append([base, label, s["n"], with_ci(s["spearman"], s["spearman_ci"]),
                             with_ci(s["kendall"], s["kendall_ci"]), num(s["mae"], 4), cost])
            upper, lower = (rank_stats(x[m], y[m], resamples, value_error=is_map) for m in (flops >= 0.5, flops < 0.5))
            split.append([base, label, *(f"{with_ci(h['spearman'], h['spearman_ci'])} (n={h['n']})" for h in (upper, lower)),
                          num(upper["mae"], 4), num(lower["mae"], 4)])
            rho[axis] = (s["spearman"], lower["spearman"])
            if math.isfinite(s["spearman"]) and s["spearman"] > rank_best[0]:
                rank_best = (s["spearman"], label)
            if math.isfinite(s["mae"]) and s["mae"] < value_best[0]:
                value_best = (s["mae"], label)
            c = calibrated_stats(x, y, flops, k, repeats)
            if c.get("held_out"):
                name = f"{label} → isotonic (k={k})"
                calibrated.append([base, name, c["held_out"], with_ci(c["mae"], c["mae_ci"], 4),
                                   with_ci(c["spearman"], c["spearman_ci"]), with_ci(c["kendall"], c["kendall_ci"]),
                                   f"{cost} s + {k} × {recovery_min:.0f} min per run"])
                if math.isfinite(c["mae"]) and c["mae"] < value_best[0]:
                    value_best = (c["mae"], name)
        verdicts.append(f"- {base}: {len(done)} of {len(per)} truths; best ranking: {rank_best[1]} "
                        f"(ρ {num(rank_best[0])}); smallest value error: {value_best[1]} "
                        f"(mean |estimate − truth| {num(value_best[0], 4)}); adaptive BN against no recalibration "
                        f"(EagleEye): ρ {num(rho['adaptive-bn'][0])} vs {num(rho['no-recal'][0])} overall, "
                        f"{num(rho['adaptive-bn'][1])} vs {num(rho['no-recal'][1])} below 50% FLOPs")
    lines += ["Fidelity: each axis against the recovered mAP50-95 (bootstrap 95% intervals over candidates, "
              f"{resamples} resamples; MAE = mean absolute difference proxy − truth, in mAP; s/candidate = the "
              "proxy's own evaluation, the candidate's build excluded)", "",
              md_table(["base", "axis", "n", "Spearman ρ [95% CI]", "Kendall τ [95% CI]", "MAE",
                        "s / candidate"], fidelity, right=(2, 5, 6)), "",
              "Above and below 50% of the base's FLOPs", "",
              md_table(["base", "axis", "ρ at ≥ 50% FLOPs", "ρ below 50% FLOPs", "MAE ≥ 50%", "MAE < 50%"], split,
                       right=(4, 5)), "",
              f"Calibrated axis: the proxy mapped to recovered mAP by a monotone fit (isotonic) on {k} fine-tuned "
              f"candidates, one drawn from each of {k} FLOPs strata, scored on the others; mean and 2.5–97.5 percentiles over "
              f"{repeats} draws. On the front it would read as an *estimated* recovered mAP50-95.", "",
              md_table(["base", "axis", "scored on", "MAE", "Spearman ρ", "Kendall τ", "cost"],
                       calibrated, right=(2,)), "", *verdicts]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bases", default=f"plain={BASE}", help="NAME=MODEL,... (plain, sparse, elastic; any subset)")
    parser.add_argument("--out", default="~/archprune-runs/proxy-fidelity")
    parser.add_argument("--genomes", type=int, default=16, help="candidates per base (default 16)")
    parser.add_argument("--min-ratio", type=float, default=0.3, help="smallest FLOPs ratio (default 0.3)")
    parser.add_argument("--search-trials", type=int, default=64, help="trials of the genome search (default 64)")
    parser.add_argument("--search-run", default=None, help="take the genomes from this existing run folder instead")
    parser.add_argument("--finetune-steps", type=int, default=None, help="the finetune proxy's steps (default: its own, 200)")
    parser.add_argument("--stage", choices=("proxies", "all"), default="all", help="'proxies': stop before the truths")
    parser.add_argument("--report", action="store_true", help="print the tables from what has finished; run nothing")
    parser.add_argument("--calib-k", type=int, default=4, help="fine-tuned candidates the calibrated axis fits on")
    parser.add_argument("--calib-repeats", type=int, default=200)
    parser.add_argument("--resamples", type=int, default=2000, help="bootstrap resamples")
    add_recovery_args(parser)
    args = parser.parse_args()
    out = Path(args.out).expanduser()
    if args.report:
        print(report(out, args.calib_k, args.calib_repeats, args.resamples))
        return
    recovery = recovery_from_args(args)
    bases = parse_mapping(args.bases, "--bases")
    if "plain" not in bases and not args.search_run and not (out / "genomes.json").exists():
        raise SystemExit("the genomes come from a search on the plain base: include plain=MODEL in --bases")
    check_settings(out, {**recovery.meaning(), "genomes": args.genomes, "min_ratio": args.min_ratio,
                         "finetune_steps": args.finetune_steps})
    check_bases(out, bases)
    start = time.perf_counter()
    chosen = genomes_for(args, recovery, out, bases.get("plain", BASE))
    spaces = BaseSpaces(bases, chosen["space"])
    score_bases(bases, recovery, out)
    def missing(what: str) -> int:  # counted up front, so the first ETA of a resumed run is right
        return sum(not read_current(out / b / g["id"] / f"{what}.json") for b in bases for g in chosen["genomes"])

    steps = args.finetune_steps or 200
    progress = Progress({**{p: missing(p) for p in PROXIES}, "truth": missing("truth") if args.stage == "all" else 0},
                        {"no-recal": 4, "adaptive-bn": 6, "finetune": 0.35 * steps, "truth": 75.0 * recovery.epochs})
    score_proxies(bases, chosen, spaces, recovery, args.finetune_steps, out, progress)
    if args.stage == "all":
        score_truths(bases, chosen, spaces, recovery, out, progress)
    print(f"done in {(time.perf_counter() - start) / 60:.1f} min\n", flush=True)
    print(report(out, args.calib_k, args.calib_repeats, args.resamples))


if __name__ == "__main__":
    main()
