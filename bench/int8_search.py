"""INT8 search against a float search whose picks are quantized afterwards (issue 18's last table).

Pruning and quantization interact, so the question a user deploying INT8 asks is: does searching
over the quantized candidates' own metrics find better INT8 models than searching in float and
quantizing the front? Steps, each stored as it finishes (``--out``; a rerun resumes):

1. two searches of equal length on ``--base`` (default the elastic base; 160 px, NSGA-II, adaptive-BN
   proxy on val images 0..199, onnxruntime at one thread, latency paired with the base):
   ``int8``:  ``--precision int8 --objectives latency_int8_ms:min,map50_95_int8:max``;
   ``float``: ``--objectives latency_ms:min,map50_95:max``;
2. every member of each search's Pareto front quantized as ``--precision int8`` does (BN
   recalibrated, onnxruntime ``quantize_static``, QDQ, per-channel weights, minmax), its INT8 file
   scored on val images 200..499, which neither search saw (batch 1, square letterbox);
3. all those INT8 files timed in one window, each paired run by run with the float base
   (``evaluators.latency_paired``), ``--latency-rounds`` interleaved rounds, best kept, so both
   fronts share one latency scale;
4. the report: at each INT8 latency budget (a fraction of the unpruned model's INT8 latency), the best
   held-out INT8 mAP each front offers;
5. with ``--recover-budget B``: each search's pick within B × the unpruned INT8 latency (chosen by the search's own
   proxy, as a user would: float mAP for the float search, INT8 mAP for the INT8 one) recovered by the
   outcome tables' fine-tune (bench/_recovery.py: 10 epochs, distillation from yolov8n-digits, seed 0),
   quantized again and scored on the held-out images: the INT8 model each route ships.

    taskset -c 0 env OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 .venv/bin/python bench/int8_search.py
    .venv/bin/python bench/int8_search.py --report
    ... --seed 1 --out ~/archprune-runs/int8-search-s1      # the same comparison with other searches

A second process with the same arguments on the other core takes the other search (each is claimed);
step 3 runs once both fronts are scored, while that process waits, so nothing else shares the CPU.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _recovery import (Recovery, add_recovery_args, check_settings, claimed, eval_convention, held_out_map, is_current,
                       md_table, num, read_current, read_json, recover, recovery_from_args, run_search, until_all_done,
                       write_json)

BASE = "yolov8n-digits-elastic"
SEARCHES = {"int8": ("latency_int8_ms:min,map50_95_int8:max", ["--precision", "int8"]),
            "float": ("latency_ms:min,map50_95:max", [])}
BUDGETS = (0.6, 0.7, 0.8, 0.9, 0.95)  # fractions of the unpruned model's INT8 latency


def front_members(run: Path) -> tuple[Any, list[tuple[str, tuple[int, ...], dict[str, Any]]]]:
    """The search's channel space and, for each distinct model of its front, (name, genome, the trial's
    stored metrics); a model is built only where it is needed (``space.build``)."""
    from search.pareto import non_dominated
    from search.runs import open_run
    from search.space_recipes.channels import build_space, load_inputs

    handle = open_run(str(run))
    model, data, imgsz = load_inputs(handle.settings)
    space = build_space(handle.settings, model, data, imgsz)
    front = sorted(non_dominated(handle.store.records(), handle.store.objectives), key=lambda r: r.number)
    seen: set[tuple[int, ...]] = set()
    members = []
    for record in front:
        if tuple(record.genome) in seen:  # exact duplicates of one model: score it once
            continue
        seen.add(tuple(record.genome))
        members.append((f"trial-{record.number}", tuple(record.genome),
                        {"source": record.source, **{k: v for k, v in record.metrics.items() if isinstance(v, (int, float))}}))
    return space, members


def genome_key(genome: tuple[int, ...]) -> str:
    """A genome as the text that keys front.json rows and latency.json timings."""
    return ",".join(map(str, genome))


def score_front(name: str, out: Path, recovery: Recovery) -> None:
    """Quantize each front member, keep its batch-1 INT8 file, score it on the held-out images."""
    from evaluators.flops import count_flops_params
    from evaluators.onnx_detector import OnnxDetector
    from int8_table import quantized

    path, files = out / name / "front.json", out / name / "int8"
    done = read_json(path) or {}
    space, members = front_members(out / "searches" / name)
    for trial, genome, metrics in members:
        if trial in done and is_current(done[trial]["int8"]) and (files / f"{trial}.onnx").exists():
            continue
        model = space.build(genome)
        with tempfile.TemporaryDirectory(prefix="archprune-int8-search-") as tmp:
            recalibrated, _, fixed = quantized(model, recovery.imgsz, "minmax", Path(tmp))
            files.mkdir(parents=True, exist_ok=True)
            fixed.replace(files / f"{trial}.onnx")
        done[trial] = {**count_flops_params(model, recovery.imgsz), "search": metrics, "genome": genome_key(genome),
                       "fp32": held_out_map(recalibrated, recovery, rect=False),
                       "int8": held_out_map(OnnxDetector(files / f"{trial}.onnx", threads=1), recovery, rect=False)}
        write_json(path, done)
        print(f"{name} {trial}: {done[trial]['flops_g']:.3f} GFLOPs, held-out INT8 mAP50-95 "
              f"{done[trial]['int8']['map50_95']:.4f} (fp32 {done[trial]['fp32']['map50_95']:.4f})", flush=True)


def measure_latency(out: Path, base: str, imgsz: int, rounds: int) -> None:
    """Every INT8 file of both fronts, paired with the float base, in ``rounds`` interleaved rounds; a
    model on both fronts (same genome) is timed once, so the two fronts cannot differ by noise there."""
    from evaluators.latency import LatencyEvaluator
    from spaces.models import load_model

    files = {row["genome"]: out / name / "int8" / f"{trial}.onnx"
             for name in SEARCHES for trial, row in (read_json(out / name / "front.json") or {}).items()}
    stored = read_json(out / "latency.json")
    if not files or (stored and sorted(stored["ms"]) == sorted(files)):
        return
    evaluator = LatencyEvaluator("ort", threads=1, runs=100, warmup=10, reference=load_model(base))
    evaluator.bind_run({}, resumed=False, imgsz=imgsz)
    best = {key: float("inf") for key in files}
    for r in range(rounds):
        for key, path in files.items():
            best[key] = min(best[key], evaluator.measure_file(path, imgsz)["latency_ms"])
        print(f"latency round {r + 1}/{rounds} done", flush=True)
    write_json(out / "latency.json", {"base_ms": evaluator.reference_scale["best_ms"], "scale": evaluator.reference_scale,
                                      "ms": best, "threads": 1, "rounds": rounds})


def int8_base_ms(latency: dict[str, Any], front: dict[str, Any]) -> float:
    """The unpruned model's INT8 latency in the fronts' window: the budgets' unit. Both searches start
    from the unpruned model and nothing dominates it in accuracy, so it is on either front."""
    return next(latency["ms"][r["genome"]] for r in front.values() if r["search"].get("source") == "unpruned")


def recover_pick(name: str, out: Path, recovery: Recovery, budget: float) -> None:
    """The search's pick within ``budget`` of the float base's latency, recovered, then quantized again."""
    from qat_outcome import post_training  # BN recalibrated, minmax quantize_static, INT8 file scored held out
    from spaces.models import save_checkpoint

    path = out / name / f"recovered-{round(budget * 100)}pct.json"
    if read_current(path):
        return
    latency, front = read_json(out / "latency.json"), read_json(out / name / "front.json")
    limit = budget * int8_base_ms(latency, front)
    fitting = {t: r for t, r in front.items() if latency["ms"][r["genome"]] <= limit}
    if not fitting:
        raise SystemExit(f"the {name} search's front has no model within {budget:.0%} of the unpruned INT8 latency")
    proxy = "map50_95_int8" if name == "int8" else "map50_95"  # what that search itself ranked by
    trial = max(fitting, key=lambda t: (fitting[t]["search"][proxy], -latency["ms"][fitting[t]["genome"]]))
    checkpoint = out / name / "picks" / f"{trial}.pt"
    if not checkpoint.exists():
        space, _ = front_members(out / "searches" / name)
        model = space.build(tuple(int(g) for g in front[trial]["genome"].split(",")))
        model.channel_order = None  # recorded for the unpruned widths only
        checkpoint.parent.mkdir(parents=True, exist_ok=True)
        save_checkpoint(model, checkpoint, meta={"run": name, "trial": trial})
    t0 = time.perf_counter()
    last = recover(checkpoint, out / name / f"recovery-{trial}", recovery, log=lambda line: print("  " + line, flush=True))
    result = post_training(last, recovery)
    write_json(path, {"trial": trial, "budget": budget, "int8_ms": latency["ms"][front[trial]["genome"]],
                      "flops_g": front[trial]["flops_g"], "before": front[trial]["int8"], **result,
                      "seconds": time.perf_counter() - t0, "eval": eval_convention()})
    print(f"{name} {trial} recovered: INT8 mAP50-95 {result['int8']['map50_95']:.4f}", flush=True)


def run_all(out: Path, base: str, recovery: Recovery, args: argparse.Namespace) -> None:
    def searched_and_scored(name: str) -> bool:
        if (out / name / "scored").exists():
            return True
        with claimed(out / name) as mine:
            if not mine:
                return False
            objectives, extra = SEARCHES[name]
            t0 = time.perf_counter()
            run_search(out / "searches" / name, base, recovery, objectives, args.trials,
                       extra=[*extra, "--latency", "ort", "--threads", "1", "--seed", str(args.seed)])
            print(f"search {name}: {args.trials} trials in {(time.perf_counter() - t0) / 60:.1f} min", flush=True)
            score_front(name, out, recovery)
            (out / name / "scored").touch()
        return True

    until_all_done(list(SEARCHES), searched_and_scored)
    with claimed(out / "latency") as mine:
        if mine:
            measure_latency(out, base, recovery.imgsz, args.latency_rounds)
    if args.recover_budget is not None:
        until_all_done(list(SEARCHES), lambda n: claim_and(out / n / "recover", lambda: recover_pick(
            n, out, recovery, args.recover_budget)))


def claim_and(folder: Path, work: Any) -> bool:
    with claimed(folder) as mine:
        if mine:
            work()
        return mine


def report(out: Path) -> str:
    latency = read_json(out / "latency.json")
    if latency is None:
        return f"not finished yet in {out} (the fronts' latency is measured last)"
    base_ms = latency["base_ms"]
    fronts: dict[str, list[dict[str, Any]]] = {}
    for name in SEARCHES:
        for trial, row in (read_json(out / name / "front.json") or {}).items():
            ms = latency["ms"].get(row["genome"])
            if ms is not None:
                fronts.setdefault(name, []).append({"trial": trial, "ms": ms, **row})
    unit = int8_base_ms(latency, {r["trial"]: r for rows in fronts.values() for r in rows})
    lines = [f"INT8 latency: onnxruntime, 1 thread, {latency['scale'].get('imgsz', 160)} px, best of "
             f"{latency['rounds']} rounds paired with the float base ({base_ms:.2f} ms); CPU: {latency['scale'].get('cpu', '?')}",
             "", f"Best held-out INT8 mAP50-95 within each INT8 latency budget (fraction of the unpruned model's "
                 f"INT8 latency, {unit:.2f} ms = {unit / base_ms:.2f}× the float base):", ""]
    rows = []
    for budget in BUDGETS:
        cells = []
        for name in SEARCHES:
            fitting = [r for r in fronts.get(name, []) if r["ms"] <= budget * unit]
            top = max(fitting, key=lambda r: r["int8"]["map50_95"], default=None)
            cells.append(f"{top['int8']['map50_95']:.4f} ({top['trial']}, {top['ms']:.2f} ms)" if top else "—")
        rows.append([f"{budget:.0%}", *cells])
    lines += [md_table(["budget", *(f"{n} search, quantized front" for n in SEARCHES)], rows, right=(1, 2)), ""]
    for name, rows_ in fronts.items():
        lines += [f"The {name} search's front ({len(rows_)} models):", ""]
        table = [[r["trial"], r["search"].get("source", ""), f"{r['flops_g']:.3f}", f"{r['ms']:.2f} ({r['ms'] / base_ms:.2f})",
                  num(r["search"].get("map50_95_int8", r["search"].get("map50_95")), 4), num(r["fp32"]["map50_95"], 4),
                  num(r["int8"]["map50_95"], 4)] for r in sorted(rows_, key=lambda r: r["ms"])]
        lines += [md_table(["trial", "source", "GFLOPs", "INT8 ms (× float base)", "search's proxy",
                            "held-out fp32", "held-out INT8"], table, right=(2, 3, 4, 5, 6)), ""]
    for budget_file in sorted({p.name for n in SEARCHES for p in (out / n).glob("recovered-*pct.json")}):
        done = {n: read_json(out / n / budget_file) for n in SEARCHES if (out / n / budget_file).exists()}
        budget = next(iter(done.values()))["budget"]
        lines += [f"Each search's pick within {budget:.0%} of the unpruned INT8 latency (by its own proxy), recovered "
                  "(10 epochs, distillation), then quantized again; held-out mAP50-95:", ""]
        lines += [md_table(["search", "pick", "GFLOPs", "INT8 ms", "INT8 before recovery", "fp32 after", "INT8 after"],
                           [[n, r["trial"], f"{r['flops_g']:.3f}", f"{r['int8_ms']:.2f}", f"{r['before']['map50_95']:.4f}",
                             f"{r['fp32']['map50_95']:.4f}", f"**{r['int8']['map50_95']:.4f}**"] for n, r in done.items()],
                           right=(2, 3, 4, 5, 6)), ""]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="~/archprune-runs/int8-search")
    parser.add_argument("--base", default=BASE, help=f"the model both searches prune (default {BASE})")
    parser.add_argument("--trials", type=int, default=60, help="trials of each search (default 60)")
    parser.add_argument("--latency-rounds", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0,
                        help="both searches' seed (default 0); the two share their first generation either way")
    parser.add_argument("--recover-budget", type=float, default=None,
                        help="recover each search's pick within this fraction of the unpruned INT8 latency (step 5)")
    parser.add_argument("--report", action="store_true", help="print the tables from what has finished; run nothing")
    add_recovery_args(parser)
    args = parser.parse_args()
    out = Path(args.out).expanduser()
    if args.report:
        print(report(out))
        return
    recovery = recovery_from_args(args)
    check_settings(out, {"base": args.base, "trials": args.trials, "imgsz": recovery.imgsz,
                         "held_out": [recovery.held_out_first, recovery.held_out_images],
                         **({"seed": args.seed} if args.seed else {})})  # folders of seed 0 stay valid
    start = time.perf_counter()
    run_all(out, args.base, recovery, args)
    print(f"done in {(time.perf_counter() - start) / 60:.1f} min\n", flush=True)
    print(report(out))


if __name__ == "__main__":
    sys.exit(main())
