"""The outcome at equal cost: the search's pick from each base against Torch-Pruning's baselines, all recovered alike.

At each FLOPs budget (``--budgets 0.7,0.5``: fractions of the plain base's FLOPs) the rows are:

- ``searched-BASE`` for every base of ``--bases`` (plain, sparse, elastic; any subset):
  ``archprune search --model BASE --objectives map50_95:max --constraint flops_g<=BUDGET --driver nsga2
  --trials 200 --proxy adaptive-bn --run pick-BASE-70pct --results OUT/searches`` (resumed by the same
  command), its feasible trial with the best proxy mAP (what a user would pick), then
  ``archprune export RUN --trial N``;
- ``l1-BASE`` (Torch-Pruning uniform L1: one channel ratio for every layer) and ``lamp-BASE``
  (global LAMP), bisected to the budget, from the plain and from the sparse base (``--baseline-bases``),
  as the seeds' pipeline would;
- ``reranked-BASE`` (``--rerank-bases``, default plain and sparse): the same search re-ranked, as a
  user with an hour more would pick. Its ``--rerank-top`` (5) feasible trials with the best proxy
  mAP are each scored by the finetune proxy (200 steps, then the proxy's val images), or with
  ``--rerank-epochs E`` by the recovery cut to E epochs (then the proxy's val images), and the best
  of them is the pick. (Added when the first table showed the adaptive-BN pick under-using the
  budget and losing to LAMP after recovery at 70%: near the unpruned model, adaptive BN ranks
  candidates no better than their FLOPs.)
- ``iterative-plain``: Torch-Pruning's own YOLOv8 recipe, iterative: k (``--steps 5``) prune steps of
  uniform L2 group magnitude to geometric FLOPs targets (budget^(i/k) of the base), each followed by
  epochs/k epochs of the recovery fine-tune, so its fine-tune epochs total the others'.

Every other model then gets the one recovery of bench/_recovery.py (10 epochs, head distillation
from yolov8n-digits, AdamW lr 5e-4, warmup 0.5 epoch, seed 0); its last.pt is scored on val images
200..499, which the search's proxy never scores. The table per budget: GFLOPs, params, onnxruntime
latency (batch 1, every model exported once and measured in rounds interleaved with the base, best
round kept; one thread by default: two-thread latency on the 2-core VM has two modes), mAP50-95 as
pruned, after adaptive BN, and after recovery, the margin over the best baseline and over the plain
base, and the extra training epochs each base cost (``--base-epochs``, else the results.csv beside the
base checkpoint, else its settings).

``--seeds 1,2`` then recovers every one-shot and re-ranked row of the run again with those seeds
(``recovery-seedS/``, ``after-seedS.json``; the iterative recipe is not repeated) and the report adds
each row's mean ± sd and each pick's paired difference from the best baseline: at 70% the rows were
within 0.001 of each other, the size of one seed's luck.

Each step writes its JSON atomically under ``--out``; a rerun skips finished work (a killed
fine-tune resumes from its last epoch). ``--report`` prints the tables from whatever has finished.

    taskset -c 0 env OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 .venv/bin/python bench/prune_outcome.py \\
        --bases plain=yolov8n-digits,sparse=SPARSE.pt,elastic=ELASTIC.pt
    .venv/bin/python bench/prune_outcome.py --report > prune-outcome.md

(default ``--out ~/archprune-runs/prune-outcome``)
"""
from __future__ import annotations

import argparse
import math
import statistics
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from torch import nn

from _recovery import (BASE, PROXY_IMAGES, Progress, Recovery, add_recovery_args, archprune, base_training_epochs, check_bases,
                       check_settings, epochs_done, eval_convention, held_out_map, is_current, md_table, num,
                       parse_mapping, read_current, read_json, recover, recovery_from_args, run_search,
                       training_seconds, write_json)

BASE_ORDER = ("plain", "sparse", "elastic")


def budget_dir(out: Path, ratio: float) -> Path:
    return out / f"{round(ratio * 100)}pct"


def flops_bound(base_flops: float, ratio: float) -> float:
    """The budget in GFLOPs, rounded down so that ``flops_g<=bound`` never admits a model above it."""
    return math.floor(base_flops * ratio * 1e6) / 1e6


def describe(model: nn.Module, recovery: Recovery, how: str, **extra: Any) -> dict[str, Any]:
    """FLOPs, params and the mAP before recovery (as pruned and after adaptive BN) on the truth's slice."""
    from evaluators.flops import count_flops_params

    return {"how": how, **count_flops_params(model, recovery.imgsz), **extra,
            "before": held_out_map(model, recovery), "before_abn": held_out_map(model, recovery, recalibrate=True)}


def rescore_model(row: Path, recovery: Recovery) -> None:
    """A stored model's before-recovery scores again when they were taken under an older evaluation
    (the model itself, e.g. a search's pick, stays what it was)."""
    from spaces.models import load_model

    info = read_json(row / "model.json")
    if is_current(info["before"]) and is_current(info["before_abn"]):
        return
    model = load_model(info["checkpoint"])
    write_json(row / "model.json", {**info, "before": held_out_map(model, recovery),
                                    "before_abn": held_out_map(model, recovery, recalibrate=True)})


# -- the models ----------------------------------------------------------------------------------
def one_shot_baseline(row: Path, source: str, ratio: float, importance: str, global_pruning: bool,
                      recovery: Recovery) -> dict[str, Any]:
    """Torch-Pruning's MetaPruner at one ratio (uniform) or one threshold (global), bisected to the budget."""
    from search.baseline_pruning import prune_to_flops
    from spaces.models import load_model, save_checkpoint

    pruned, channel_ratio = prune_to_flops(load_model(source), recovery.imgsz, ratio, importance=importance,
                                           global_pruning=global_pruning)
    pruned.imgsz = recovery.imgsz
    if getattr(pruned, "channel_order", None):
        pruned.channel_order = None  # recorded for the unpruned widths only
    save_checkpoint(pruned, row / "pruned.pt", meta={"pruned_from": source, "importance": importance,
                                                      "global": global_pruning, "channel_ratio": channel_ratio})
    how = f"{'global' if global_pruning else 'uniform'} {importance}, channel ratio {channel_ratio:.3f}"
    return describe(pruned, recovery, how, channel_ratio=channel_ratio)


def searched_pick(row: Path, base: str, source: str, bound: float, recovery: Recovery, args: argparse.Namespace,
                  searches: Path) -> dict[str, Any]:
    """The feasible trial with the best proxy mAP of a search on ``source`` under ``flops_g<=bound``."""
    from spaces.models import load_model

    extra = ["--finetune-steps", str(args.finetune_steps)] if args.finetune_steps else []
    extra += ["--min-keep", str(args.min_keep)] if args.min_keep is not None else []
    extra += ["--width-steps", str(args.width_steps)] if args.width_steps is not None else []
    extra += ["--round-to", str(args.round_to)] if args.round_to is not None else []
    extra += ["--depth"] if args.depth else []
    run = searches / f"pick-{base}-{row.parent.name}"
    handle = run_search(run, source, recovery, args.search_objectives, args.trials, [f"flops_g<={bound}"],
                        proxy=args.proxy, importance=args.importance, extra=extra)
    feasible = [r for r in handle.store.records() if r.feasible and "map50_95" in r.metrics]
    if not feasible:
        raise SystemExit(f"search {run} found no candidate within {bound} GFLOPs")
    best = max(feasible, key=lambda r: (r.metrics["map50_95"], r.metrics["flops_g"], -r.number))
    if not (row / "export" / "pruned.pt").exists():
        archprune("export", str(run), "--trial", str(best.number), "--out", str(row / "export"))
    model = load_model(row / "export" / "pruned.pt")
    return describe(model, recovery, f"{run.name} trial {best.number} ({best.source})", trial=best.number,
                    search_proxy=best.metrics["map50_95"], proxy=args.proxy, checkpoint=str(row / "export" / "pruned.pt"))


def short_recovery_score(folder: Path, recovery: Recovery, epochs: int) -> dict[str, float]:
    """``folder/pruned.pt`` after the recovery recipe shortened to ``epochs`` (resumable), scored on the
    proxy's val images 0..199: never on the truth's, so choosing by it leaks nothing into the table."""
    from evaluators.detection_eval import evaluate_detector
    from spaces.models import load_model

    run = folder / f"short-recovery-{epochs}"
    if epochs_done(run) < epochs:
        recover(folder / "pruned.pt", run, recovery, epochs=epochs, log=lambda line: print("    " + line, flush=True))
    result = evaluate_detector(load_model(run / "last.pt"), recovery.data, imgsz=recovery.imgsz, split="val",
                               max_images=PROXY_IMAGES)
    return {"map50_95": float(result["map50_95"]), "map50": float(result["map50"]),
            "seconds": training_seconds(run)}


BUDGET_STARTS = ("global-budget", "lamp-budget")  # the allocations a budget search starts from (uniform-budget reads far below)


def reranked_pick(row: Path, base: str, recovery: Recovery, args: argparse.Namespace, searches: Path) -> dict[str, Any]:
    """The top ``--rerank-top`` feasible trials of the budget's search by its own proxy, each scored
    again on the proxy's images by a slower judge (stored one by one: resumable); the best.

    The judge is the 200-step finetune proxy, or with ``--rerank-epochs E`` the recovery itself cut
    to E epochs (distilled, same seed). Added when the 200-step proxy, searching from Torch-Pruning's
    LAMP model at 70% FLOPs, preferred a start that recovered 0.33 points under LAMP itself."""
    from evaluators._base import Candidate
    from evaluators.proxy_finetune import FinetuneMapEvaluator
    from search.runs import open_run
    from spaces.models import load_model

    run = searches / f"pick-{base}-{row.parent.name}"
    handle = open_run(str(run))
    feasible = [r for r in handle.store.records() if r.feasible and "map50_95" in r.metrics]
    top = sorted(feasible, key=lambda r: (-r.metrics["map50_95"], r.number))[:args.rerank_top]
    if args.rerank_starts:  # the starts' proxy readings differ by less than the proxy's noise (~0.002)
        judged = {r.number for r in top}
        top += [r for r in feasible if r.source in BUDGET_STARTS and r.number not in judged]
    judge = f"{args.rerank_epochs}-epoch recovery" if args.rerank_epochs else "finetune proxy"
    stored = read_json(row / "rerank.json") or {"judge": judge, "scores": {}}
    if "judge" not in stored:  # written before --rerank-epochs: a flat trial -> score mapping
        stored = {"judge": "finetune proxy", "scores": stored}
    if stored["judge"] != judge:
        raise SystemExit(f"{row} was re-ranked by the {stored['judge']}, not the {judge}; rerun with that "
                         "--rerank-epochs or pass another --out")
    scores = stored["scores"]
    evaluator = None
    for record in top:
        key = str(record.number)
        folder = row / "candidates" / f"trial-{record.number}"
        if key in scores:
            continue
        if not (folder / "pruned.pt").exists():
            archprune("export", str(run), "--trial", key, "--out", str(folder))
        t0 = time.perf_counter()
        if args.rerank_epochs:
            score = short_recovery_score(folder, recovery, args.rerank_epochs)
        else:
            evaluator = evaluator or FinetuneMapEvaluator(recovery.data, recovery.imgsz, seed=recovery.seed)
            score = evaluator.evaluate(Candidate(load_model(folder / "pruned.pt"), imgsz=recovery.imgsz))
        # a short recovery reports its training seconds (all epochs, even across a resume); else the wall time
        scores[key] = {**score, "seconds": score.get("seconds", time.perf_counter() - t0),
                       "search_proxy": record.metrics["map50_95"], "flops_g": record.metrics["flops_g"],
                       "source": record.source}
        write_json(row / "rerank.json", {"judge": judge, "scores": scores})
        print(f"  rerank {row.parent.name} {base} trial {key} ({record.source}): search proxy "
              f"{record.metrics['map50_95']:.4f}, {judge} {scores[key]['map50_95']:.4f} "
              f"({scores[key]['flops_g']:.3f} GFLOPs)", flush=True)
    best = max(top, key=lambda r: (scores[str(r.number)]["map50_95"], r.metrics["flops_g"], -r.number))
    checkpoint = row / "candidates" / f"trial-{best.number}" / "pruned.pt"
    return describe(load_model(checkpoint), recovery,
                    f"{run.name} trial {best.number} ({best.source}), best {judge} of the top {len(top)}",
                    trial=best.number, search_proxy=best.metrics["map50_95"],
                    rerank_proxy=scores[str(best.number)]["map50_95"], rerank_judge=judge, checkpoint=str(checkpoint))


def iterative_recipe(row: Path, source: str, ratio: float, steps: int, importance: str, recovery: Recovery,
                     progress: Progress) -> Path:
    """k prune steps to FLOPs targets ratio^(i/k) of the base, each followed by epochs/k recovery epochs;
    returns the final last.pt. Every step is resumable (its pruned.pt, its fine-tune's last.pt)."""
    from evaluators.flops import count_flops_params
    from search.baseline_pruning import prune_to_flops
    from spaces.models import load_model, save_checkpoint

    model = load_model(source)
    base_flops = count_flops_params(model, recovery.imgsz)["flops_g"]
    for i in range(1, steps + 1):
        step = row / f"step{i}"
        if (step / "pruned.pt").exists():
            progress.skip("prune")
        else:
            t0 = time.perf_counter()
            target = base_flops * ratio ** (i / steps)
            current = count_flops_params(model, recovery.imgsz)["flops_g"]
            if current > target:  # a step that already landed below its target only fine-tunes
                model, _ = prune_to_flops(model, recovery.imgsz, target / current, importance=importance)
            model.imgsz = recovery.imgsz
            if getattr(model, "channel_order", None):
                model.channel_order = None
            save_checkpoint(model, step / "pruned.pt", meta={"pruned_from": source, "step": i, "importance": importance})
            progress.finish("prune", f"{row.parent.name} {row.name} step {i}/{steps}", time.perf_counter() - t0,
                            f"{count_flops_params(model, recovery.imgsz)['flops_g'] / base_flops:.1%} of the base's FLOPs")
        epochs = recovery.epochs // steps
        if epochs_done(step / "recovery") >= epochs:
            model = load_model(step / "recovery" / "last.pt")
            progress.skip("recovery-step")
            continue
        t0 = time.perf_counter()
        model = load_model(recover(step / "pruned.pt", step / "recovery", recovery, epochs=epochs,
                                   log=lambda line: print("  " + line, flush=True)))
        progress.finish("recovery-step", f"{row.parent.name} {row.name} step {i}/{steps}", time.perf_counter() - t0,
                        f"mAP50-95 {held_out_map(model, recovery)['map50_95']:.4f}")
    return row / f"step{steps}" / "recovery" / "last.pt"


# -- the plan ------------------------------------------------------------------------------------
def rows_for(bases: dict[str, str], baseline_bases: list[str], iterative_bases: list[str],
             rerank_bases: list[str] = ()) -> list[tuple[str, str, str]]:
    """(row name, kind, base) in the order their recoveries run: the comparison that matters first."""
    rows = [(f"searched-{b}", "searched", b) for b in bases]
    rows += [(f"{imp}-{b}", imp, b) for b in baseline_bases for imp in ("l1", "lamp")]
    rows += [(f"iterative-{b}", "iterative", b) for b in iterative_bases]
    rows += [(f"reranked-{b}", "reranked", b) for b in rerank_bases]
    return rows


def measure_latency(budget: Path, bases: dict[str, str], imgsz: int, threads: int | None, rounds: int) -> None:
    """All rows with a final architecture, interleaved with the plain base in every round (rerun when
    more rows have one): latency depends on the architecture only, so pruned.pt stands for the recovered model."""
    from evaluators.latency import best_of_rounds
    from spaces.models import load_model

    models = {}
    for row in sorted(p for p in budget.iterdir() if p.is_dir()) if budget.is_dir() else []:
        info = read_json(row / "model.json")
        if info is not None:
            models[row.name] = info["checkpoint"]
    stored = read_json(budget / "latency.json")
    if not models or (stored and sorted(stored["ms"]) == sorted(models)):
        return
    ms = best_of_rounds([load_model(bases["plain"]), *(load_model(p) for p in models.values())], imgsz, threads,
                        rounds, runs=100)
    write_json(budget / "latency.json", {"base_ms": ms[0], "ms": dict(zip(models, ms[1:])), "threads": threads or 0,
                                         "rounds": rounds})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bases", default=f"plain={BASE}", help="NAME=MODEL,... (plain is required: the FLOPs, "
                        "latency and mAP reference)")
    parser.add_argument("--out", default="~/archprune-runs/prune-outcome")
    parser.add_argument("--budgets", default="0.7,0.5", help="fractions of the plain base's FLOPs (default 0.7,0.5)")
    parser.add_argument("--baseline-bases", default="plain,sparse", help="bases the one-shot baselines prune (those given)")
    parser.add_argument("--iterative-bases", default="plain", help="bases the iterative recipe prunes")
    parser.add_argument("--steps", type=int, default=5, help="iterative prune steps (divides --epochs; default 5)")
    parser.add_argument("--rerank-bases", default="plain,sparse", help="bases whose search pick is also re-ranked "
                        "(by the finetune proxy or --rerank-epochs; those given; '' for none)")
    parser.add_argument("--rerank-top", type=int, default=5, help="feasible trials the re-ranking scores (default 5)")
    parser.add_argument("--rerank-starts", action="store_true",
                        help="also judge the search's global-budget and lamp-budget starts, whatever their "
                             "proxy reads")
    parser.add_argument("--rerank-epochs", type=int, default=0, help="judge the re-ranked trials by the recovery "
                        "cut to this many epochs, on the proxy's images (default 0: the 200-step finetune proxy)")
    parser.add_argument("--iterative-importance", default="l2", help="iterative recipe's criterion (Torch-Pruning's "
                        "YOLOv8 example: L2 group magnitude)")
    parser.add_argument("--trials", type=int, default=200, help="trials of each pick's search (default 200)")
    parser.add_argument("--proxy", default="adaptive-bn", help="the pick's proxy: adaptive-bn (default) or finetune")
    parser.add_argument("--finetune-steps", type=int, default=None, help="with --proxy finetune (default its 200)")
    parser.add_argument("--importance", default="l1", help="the search's channel importance (default l1)")
    parser.add_argument("--min-keep", type=float, default=None, help="the search's --min-keep (default the search's 0.25)")
    parser.add_argument("--width-steps", type=int, default=None, help="the search's --width-steps (default the search's 16)")
    parser.add_argument("--round-to", type=int, default=None,
                        help="the search's --round-to (default the search's 8); 1 lets its LAMP start be Torch-Pruning's "
                             "LAMP model itself, whose channel counts are not multiples of 8")
    parser.add_argument("--depth", action="store_true",
                        help="the search also drops C2f/C3k2 bottlenecks (issue 17's depth genes)")
    parser.add_argument("--search-objectives", default="map50_95:max",
                        help="the pick's search objectives (default map50_95:max: only the budget bounds FLOPs)")
    parser.add_argument("--base-epochs", default="", help="NAME=EPOCHS,...: extra training epochs of each base")
    parser.add_argument("--threads", type=int, default=1, help="onnxruntime threads for latency (0: all cores)")
    parser.add_argument("--latency-rounds", type=int, default=5)
    parser.add_argument("--remeasure-latency", action="store_true",
                        help="measure latency again (e.g. on a quieter machine); otherwise it is measured once per set of rows")
    parser.add_argument("--only", default="", help="ROW,...: run only these rows (e.g. iterative-plain); "
                        "the rest wait for a later run")
    parser.add_argument("--seeds", default="", help="S,...: recover the rows again with these seeds too (after "
                        "everything else; the report then compares means over the seeds every row has)")
    parser.add_argument("--report", action="store_true", help="print the tables from what has finished; run nothing")
    add_recovery_args(parser)
    args = parser.parse_args()
    out = Path(args.out).expanduser()
    if args.report:
        print(report(out))
        return
    recovery = recovery_from_args(args)
    bases = parse_mapping(args.bases, "--bases")
    if "plain" not in bases:
        raise SystemExit("--bases needs plain=MODEL: the FLOPs budgets, latency and mAP are measured against it")
    if recovery.epochs % args.steps:
        raise SystemExit(f"--steps {args.steps} must divide --epochs {recovery.epochs} (same total fine-tune epochs)")
    budgets = [float(b) for b in args.budgets.split(",") if b.strip()]
    try:
        args.seeds = sorted({int(s) for s in args.seeds.split(",") if s.strip()} - {recovery.seed})
    except ValueError:
        raise SystemExit(f"--seeds {args.seeds!r}: give whole numbers separated by commas, e.g. --seeds 1,2") from None
    check_settings(out, {**recovery.meaning(), "steps": args.steps, "iterative_importance": args.iterative_importance,
                         "trials": args.trials, "proxy": args.proxy, "finetune_steps": args.finetune_steps,
                         "importance": args.importance, "search_objectives": args.search_objectives,
                         **({"min_keep": args.min_keep} if args.min_keep is not None else {}),
                         **({"width_steps": args.width_steps} if args.width_steps is not None else {}),
                         **({"round_to": args.round_to} if args.round_to is not None else {}),
                         **({"depth": True} if args.depth else {})})
    check_bases(out, bases)
    given = parse_mapping(args.base_epochs, "--base-epochs")
    rows = rows_for(bases, [b for b in args.baseline_bases.split(",") if b in bases],
                    [b for b in args.iterative_bases.split(",") if b in bases],
                    [b for b in args.rerank_bases.split(",") if b in bases])
    if args.only:
        wanted = {r.strip() for r in args.only.split(",") if r.strip()}
        unknown = wanted - {name for name, _, _ in rows}
        if unknown:
            raise SystemExit(f"--only: no row named {', '.join(sorted(unknown))}; rows: {', '.join(n for n, _, _ in rows)}")
        rows = [r for r in rows if r[0] in wanted]
    start = time.perf_counter()
    run_all(out, bases, given, budgets, rows, recovery, args)
    print(f"done in {(time.perf_counter() - start) / 60:.1f} min\n", flush=True)
    print(report(out))


def run_all(out: Path, bases: dict[str, str], given: dict[str, str], budgets: list[float],
            rows: list[tuple[str, str, str]], recovery: Recovery, args: argparse.Namespace) -> None:
    from evaluators.flops import count_flops_params
    from spaces.models import load_model

    for base, source in bases.items():  # the reference rows
        path = out / "bases" / f"{base}.json"
        stored = read_json(path)
        if stored is not None and not is_current(stored["map"]):  # scored under an older evaluation
            stored = {**stored, "map": held_out_map(load_model(source), recovery)}
            write_json(path, stored)
        if stored is not None:  # the extra epochs may be known now where they were not (--base-epochs, a shipped base)
            epochs, where = base_training_epochs(source, given.get(base))
            if epochs is not None and stored.get("extra_epochs") != epochs:
                write_json(path, {**stored, "extra_epochs": epochs, "epochs_from": where})
        else:
            model = load_model(source)
            epochs, where = base_training_epochs(source, given.get(base))
            write_json(path, {"source": source, **count_flops_params(model, recovery.imgsz),
                              "map": held_out_map(model, recovery), "extra_epochs": epochs, "epochs_from": where})
    base_flops = read_json(out / "bases" / "plain.json")["flops_g"]
    if args.remeasure_latency:
        for ratio in budgets:
            (budget_dir(out, ratio) / "latency.json").unlink(missing_ok=True)
    one_shot = [r for r in rows if r[1] not in ("iterative", "reranked")]
    iterative = [r for r in rows if r[1] == "iterative"]
    reranked = [r for r in rows if r[1] == "reranked"]
    n, searched = len(budgets), sum(kind == "searched" for _, kind, _ in one_shot)
    progress = Progress({"prune": n * (len(one_shot) - searched + args.steps * len(iterative)),
                         "search": n * searched, "recovery": n * len(one_shot),
                         "recovery-step": n * args.steps * len(iterative), "final": n * len(iterative),
                         "rerank": n * len(reranked)},
                        {"prune": 30, "search": 5.0 * args.trials, "recovery": 75.0 * recovery.epochs,
                         "recovery-step": 75.0 * recovery.epochs / args.steps, "final": 20,
                         "rerank": (75.0 * args.rerank_epochs if args.rerank_epochs else 400.0) * args.rerank_top
                                   + 75.0 * recovery.epochs})

    # models first, cheapest kind first (minutes): the before-recovery columns and latency fill in early
    for kind_order in (("l1", "lamp"), ("searched",)):
        for ratio in budgets:
            budget = budget_dir(out, ratio)
            for name, kind, base in (r for r in one_shot if r[1] in kind_order):
                row = budget / name
                what = "search" if kind == "searched" else "prune"
                if (row / "model.json").exists():
                    rescore_model(row, recovery)
                    progress.skip(what)
                    continue
                t0 = time.perf_counter()
                if kind == "searched":
                    info = searched_pick(row, base, bases[base], flops_bound(base_flops, ratio), recovery, args,
                                         out / "searches")
                else:
                    info = {**one_shot_baseline(row, bases[base], ratio, kind, kind == "lamp", recovery),
                            "checkpoint": str(row / "pruned.pt")}
                write_json(row / "model.json", {**info, "base": base})
                progress.finish(what, f"{budget.name} {name}", time.perf_counter() - t0,
                                f"{info['flops_g'] / base_flops:.1%} FLOPs, as pruned {info['before']['map50_95']:.4f}, "
                                f"adaptive BN {info['before_abn']['map50_95']:.4f}")
    for ratio in budgets:
        measure_latency(budget_dir(out, ratio), bases, recovery.imgsz, args.threads or None, args.latency_rounds)

    # then the recoveries (hours), one budget's table complete before the next
    for ratio in budgets:
        budget = budget_dir(out, ratio)
        for name, _, _ in one_shot:
            row = budget / name
            if read_current(row / "after.json"):
                progress.skip("recovery")
                continue
            t0 = time.perf_counter()
            info, last = read_json(row / "model.json"), row / "recovery" / "last.pt"
            if epochs_done(row / "recovery") < recovery.epochs:  # else: recovered already, scored under an older evaluation
                recover(Path(info["checkpoint"]), row / "recovery", recovery, log=lambda line: print("  " + line, flush=True))
            after = held_out_map(load_model(last), recovery)
            write_json(row / "after.json", {**after, "recovery_s": training_seconds(row / "recovery")})
            progress.finish("recovery", f"{budget.name} {name}", time.perf_counter() - t0,
                            f"recovered mAP50-95 {after['map50_95']:.4f}")
    for ratio in budgets:
        budget = budget_dir(out, ratio)
        for name, _, base in iterative:
            row = budget / name
            if read_current(row / "after.json"):
                for kind in ("final", *("prune", "recovery-step") * args.steps):
                    progress.skip(kind)
                continue
            last = iterative_recipe(row, bases[base], ratio, args.steps, args.iterative_importance, recovery, progress)
            t0 = time.perf_counter()
            final_step = row / f"step{args.steps}"
            info = describe(load_model(final_step / "pruned.pt"), recovery,
                            f"{args.steps} × (uniform {args.iterative_importance} prune + "
                            f"{recovery.epochs // args.steps} epoch(s))", checkpoint=str(final_step / "pruned.pt"))
            write_json(row / "model.json", {**info, "base": base})
            after = held_out_map(load_model(last), recovery)
            seconds = sum(training_seconds(row / f"step{i}" / "recovery") for i in range(1, args.steps + 1))
            write_json(row / "after.json", {**after, "recovery_s": seconds})
            progress.finish("final", f"{budget.name} {name}", time.perf_counter() - t0,
                            f"recovered mAP50-95 {after['map50_95']:.4f}")
        measure_latency(budget, bases, recovery.imgsz, args.threads or None, args.latency_rounds)
    # last, the re-ranked picks (a finetune proxy per top trial, then the one recovery)
    for ratio in budgets:
        budget = budget_dir(out, ratio)
        for name, _, base in reranked:
            row = budget / name
            if read_current(row / "after.json"):
                progress.skip("rerank")
                continue
            t0 = time.perf_counter()
            if not (row / "model.json").exists():
                write_json(row / "model.json", {**reranked_pick(row, base, recovery, args, out / "searches"), "base": base})
            info, last = read_json(row / "model.json"), row / "recovery" / "last.pt"
            searched = budget / f"searched-{base}"
            same = read_json(searched / "model.json") or {}
            reused = read_current(searched / "after.json") if same.get("trial") == info["trial"] else None
            if reused:  # the judge chose the search's own pick: the same network, recipe and seed, recovered already
                after = {**reused, "same_as": searched.name}
            else:
                if epochs_done(row / "recovery") < recovery.epochs:
                    recover(Path(info["checkpoint"]), row / "recovery", recovery,
                            log=lambda line: print("  " + line, flush=True))
                after = {**held_out_map(load_model(last), recovery), "recovery_s": training_seconds(row / "recovery")}
            write_json(row / "after.json", after)
            progress.finish("rerank", f"{budget.name} {name}", time.perf_counter() - t0,
                            f"{info['flops_g'] / base_flops:.1%} FLOPs, recovered mAP50-95 {after['map50_95']:.4f}")
        measure_latency(budget, bases, recovery.imgsz, args.threads or None, args.latency_rounds)
    # then the same recovery with other seeds (--seeds), seed by seed: how much of a margin is one seed's luck
    for seed in args.seeds:
        for ratio in budgets:
            budget = budget_dir(out, ratio)
            for name, _, _ in one_shot + reranked:
                seeded_truth(budget, name, replace(recovery, seed=seed), base_flops)


def seeded_truth(budget: Path, name: str, recovery: Recovery, base_flops: float) -> dict[str, Any] | None:
    """The row's model recovered again with ``recovery.seed`` (into recovery-seedS/, scored into
    after-seedS.json); None while the row has no model yet. A re-ranked row whose pick is the search's
    own shares the searched row's recoveries, as it does for seed 0."""
    from spaces.models import load_model

    row = budget / name
    path = row / f"after-seed{recovery.seed}.json"
    done = read_current(path)
    info = read_json(row / "model.json")
    if done or info is None:
        return done
    same_as = (read_json(row / "after.json") or {}).get("same_as")
    if same_as:
        shared = seeded_truth(budget, same_as, recovery, base_flops)
        if shared is not None:
            write_json(path, {**shared, "same_as": same_as})
        return shared
    t0, run = time.perf_counter(), row / f"recovery-seed{recovery.seed}"
    if epochs_done(run) < recovery.epochs:
        recover(Path(info["checkpoint"]), run, recovery, log=lambda line: print("  " + line, flush=True))
    after = {**held_out_map(load_model(run / "last.pt"), recovery), "recovery_s": training_seconds(run),
             "seed": recovery.seed}
    write_json(path, after)
    print(f"seed {recovery.seed} {budget.name} {name}: {info['flops_g'] / base_flops:.1%} FLOPs, recovered mAP50-95 "
          f"{after['map50_95']:.4f} ({time.perf_counter() - t0:.0f}s)", flush=True)
    return after


def seed_truths(row: Path) -> dict[int, float]:
    """Every recovered mAP50-95 of the row by seed (0: after.json, S: after-seedS.json), current ones only."""
    found = {0: read_current(row / "after.json")}
    for path in row.glob("after-seed*.json"):
        found[int(path.stem.removeprefix("after-seed"))] = read_current(path)
    return {seed: a["map50_95"] for seed, a in sorted(found.items()) if a is not None}


# -- the report ------------------------------------------------------------------------------------
def current_map(result: dict[str, Any]) -> str:
    return num(result["map50_95"], 4) if is_current(result) else "…"


def report(out: Path) -> str:
    settings = read_json(out / "settings.json")
    if settings is None:
        raise SystemExit(f"nothing to report in {out}: no settings.json yet")
    bases = {p.stem: read_json(p) for p in sorted((out / "bases").glob("*.json"))}
    order = sorted(bases, key=lambda b: (BASE_ORDER.index(b) if b in BASE_ORDER else len(BASE_ORDER), b))
    plain = bases.get("plain")
    if plain is None:
        return "no plain base measured yet"
    lines = [f"Recovery: {settings['epochs']} epochs, distillation from `{settings['teacher']}` (kd {settings['kd_weight']}), "
             f"AdamW lr {settings['lr0']}, seed {settings['seed']}; mAP50-95 on val images {settings['held_out_first']}+ "
             f"(the search's proxy scores 0..199). Iterative: {settings['steps']} steps, {settings['epochs'] // settings['steps']} "
             f"epoch(s) after each. Searched picks: {settings['trials']} trials, proxy {settings['proxy']}. "
             f"Evaluation: {eval_convention()} (a score of another evaluation shows as … until a run re-scores it).", ""]
    headers = ["model", "how", "GFLOPs (% base)", "params M", "latency ms (× base)", "mAP50-95 as pruned",
               "after adaptive BN", "after recovery", "vs best baseline", "vs plain base", "extra base epochs"]
    for budget in sorted((p for p in out.iterdir() if p.is_dir() and p.name.endswith("pct")),
                         key=lambda p: -int(p.name[:-3])):
        latency = read_json(budget / "latency.json") or {"ms": {}}
        table = []
        for b in order:
            ref = bases[b]
            lat = f"{latency['base_ms']:.2f} (1.00)" if b == "plain" and "base_ms" in latency else "—"
            table.append([f"base {b} (unpruned)", f"`{ref['source']}`", f"{ref['flops_g']:.3f} (100%)",
                          f"{ref['params_m']:.3f}", lat, current_map(ref["map"]), "—", "—", "—",
                          f"{ref['map']['map50_95'] - plain['map']['map50_95']:+.4f}"
                          if is_current(ref["map"]) and is_current(plain["map"]) else "…", num(ref["extra_epochs"])])
        rows = {p.name: (read_json(p / "model.json"), read_current(p / "after.json"))
                for p in sorted(budget.iterdir()) if p.is_dir() and (p / "model.json").exists()}
        after = {name: a["map50_95"] for name, (_, a) in rows.items() if a is not None}
        ours = ("searched-", "reranked-")  # the search's picks; every other row is a baseline
        baselines = {n: v for n, v in after.items() if not n.startswith(ours)}
        best_baseline = max(baselines.items(), key=lambda kv: kv[1]) if baselines else None
        ordered = sorted(rows, key=lambda n: (not n.startswith(ours), n.startswith("iterative-"), n))
        for name in ordered:
            info, a = rows[name]
            ms = latency["ms"].get(name)
            lat = f"{ms:.2f} ({ms / latency['base_ms']:.2f})" if ms is not None else "…"
            margin = (f"{a['map50_95'] - best_baseline[1]:+.4f}" if a and best_baseline and name.startswith(ours)
                      else "—")
            epochs = bases[info["base"]]["extra_epochs"] if not name.startswith("iterative-") else 0
            table.append([name, info["how"], f"{info['flops_g']:.3f} ({info['flops_g'] / plain['flops_g']:.1%})",
                          f"{info['params_m']:.3f}", lat, current_map(info["before"]),
                          current_map(info["before_abn"]), num(a["map50_95"], 4) if a else "…", margin,
                          f"{a['map50_95'] - plain['map']['map50_95']:+.4f}" if a else "…", num(epochs)])
        lines += [f"**{budget.name[:-3]}% of the base's FLOPs** (≤ {plain['flops_g'] * int(budget.name[:-3]) / 100:.4f} "
                  f"GFLOPs; {len(after)} of {len(rows)} models recovered; latency: onnxruntime, "
                  f"{latency.get('threads', '?') or 'default'} thread(s), best of {latency.get('rounds', '?')} interleaved rounds)",
                  "", md_table(headers, table, right=range(2, 11)), ""]
        for name in (n for n in ordered if n.startswith(ours) and n in after):
            if best_baseline is None:
                continue
            beaten = all(after[name] > v for v in baselines.values())
            lines.append(f"- {name}: {after[name]:.4f} after recovery, {after[name] - best_baseline[1]:+.4f} against the "
                         f"best baseline ({best_baseline[0]}, {best_baseline[1]:.4f}) of {len(baselines)} recovered; "
                         f"beats every one: {'yes' if beaten else 'no'}; {after[name] - plain['map']['map50_95']:+.4f} "
                         f"from the plain base")
        lines += seed_lines(budget, ordered, ours)
        lines.append("")
    lines.append("Iterative rows: 'as pruned' and 'after adaptive BN' score the last prune step, before its fine-tune.")
    return "\n".join(lines)


def seed_lines(budget: Path, ordered: list[str], ours: tuple[str, ...]) -> list[str]:
    """Rows recovered with more than one seed: mean ± sd, and each pick against the best baseline on the
    seeds both have (paired by seed: one seed is one data order for both)."""
    truths = {name: seed_truths(budget / name) for name in ordered}
    multi = {name: t for name, t in truths.items() if len(t) > 1}
    if not multi:
        return []
    lines = ["", "Over recovery seeds (mAP50-95 after recovery; mean ± sample sd):"]
    for name, t in multi.items():
        lines.append(f"- {name}: {statistics.mean(t.values()):.4f} ± {statistics.stdev(t.values()):.4f} over seeds "
                     f"{', '.join(map(str, t))} ({', '.join(f'{v:.4f}' for v in t.values())})")
    baselines = {n: t for n, t in multi.items() if not n.startswith(ours)}
    for name in (n for n in multi if n.startswith(ours)):
        scored = {b: [s for s in multi[name] if s in t] for b, t in baselines.items()}
        scored = {b: seeds for b, seeds in scored.items() if len(seeds) > 1}
        if not scored:
            continue
        best = max(scored, key=lambda b: statistics.mean(baselines[b][s] for s in scored[b]))
        diffs = [multi[name][s] - baselines[best][s] for s in scored[best]]
        lines.append(f"- {name} against {best} on seeds {', '.join(map(str, scored[best]))}: mean difference "
                     f"{statistics.mean(diffs):+.4f} (per seed {', '.join(f'{d:+.4f}' for d in diffs)}); "
                     f"ahead on {sum(d > 0 for d in diffs)} of {len(diffs)}")
    return lines


if __name__ == "__main__":
    main()
