"""Depth genes, the outcome (issue 17, item 4): width+depth against width only, at equal latency.

At 160 px on a CPU, onnxruntime spends about a third of YOLOv8n's time on per-operator overhead
whatever the widths, so narrowing channels alone cannot halve the latency without destroying the
model. This benchmark asks whether dropping blocks does better. Steps, each resumable (a JSON per
step under ``--out``; a rerun skips finished work):

1. the base: an elastic base trained with depth sampled as well as width (``archprune finetune
   --elastic --elastic-depth``, 10 epochs from yolov8n-digits; about 1 h on one core), so that
   depth-pruned candidates are scoreable. ``--base MODEL`` uses an existing one instead.
2. per latency budget (``--budgets 0.5,0.7``: fractions of the base's measured latency) two
   searches of equal length on that base: ``archprune search --objectives map50_95:max
   --constraint latency_ratio<=B`` with and without ``--depth`` (measured, paired latency:
   onnxruntime, one thread, each candidate interleaved with the base run by run);
3. each search's pick (the feasible trial with the best adaptive-BN mAP) exported, scored before
   recovery on the truth's slice, then recovered by the one recovery fine-tune of the outcome
   tables (bench/_recovery.py: 10 epochs, distillation from yolov8n-digits, seed 0) and scored on
   val images the proxy never saw;
4. the picks' latency measured again in one interleaved schedule with the base (best of rounds),
   so the table compares them in one window.

    taskset -c 0 env OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 .venv/bin/python bench/depth_outcome.py
    .venv/bin/python bench/depth_outcome.py --report

(default ``--out ~/archprune-runs/depth-outcome``). A second process with the same arguments on the
other core shares the rows (each is claimed by one process); the picks' latency is measured once
both are done.
"""
from __future__ import annotations

import argparse
import shlex
import sys
import time
from pathlib import Path
from typing import Any

from _recovery import (BASE, Progress, Recovery, add_recovery_args, archprune, check_settings, claimed, epochs_done,
                       held_out_map, is_current, md_table, num, read_current, read_json, recover,
                       recovery_from_args, run_search, training_seconds, until_all_done, write_json)

SPACES = {"width": [], "width+depth": ["--depth"]}
BASE_EPOCHS = 10
BASE_COMMAND = ["finetune", "--model", BASE, "--teacher", BASE, "--data", "digits-det", "--epochs", str(BASE_EPOCHS),
                "--elastic", "--elastic-depth", "--elastic-samples", "2", "--elastic-weight", "0.5",
                "--importance", "l1", "--seed", "0"]


def budget_name(ratio: float) -> str:
    return f"{round(ratio * 100)}pct"


def train_base(out: Path) -> Path:
    """The elastic-depth base (resumed where a killed run stopped; a second process waits for it); its last.pt."""
    run = out / "base"

    def trained(_: Any) -> bool:
        if epochs_done(run) >= BASE_EPOCHS:
            return True
        with claimed(run) as mine:
            if mine and epochs_done(run) < BASE_EPOCHS:
                archprune(*BASE_COMMAND, "--out", str(run), *(["--resume"] if (run / "last.pt").exists() else []))
            return mine

    until_all_done([run], trained)
    return run / "last.pt"


def describe(model: Any, recovery: Recovery, **extra: Any) -> dict[str, Any]:
    from evaluators.flops import count_flops_params

    return {**count_flops_params(model, recovery.imgsz), **extra, "before": held_out_map(model, recovery),
            "before_abn": held_out_map(model, recovery, recalibrate=True)}


def pick(row: Path, source: str, ratio: float, space: str, recovery: Recovery, args: argparse.Namespace,
         searches: Path) -> dict[str, Any]:
    """The feasible trial with the best proxy mAP of a search under ``latency_ratio<=ratio``."""
    from spaces.models import load_model

    run = searches / f"{space.replace('+', '-')}-{budget_name(ratio)}"
    handle = run_search(run, source, recovery, "map50_95:max", args.trials, [f"latency_ratio<={ratio}"],
                        proxy=args.proxy, extra=[*SPACES[space], "--latency", "ort", "--threads", "1",
                                                 *shlex.split(args.search_flags)])
    feasible = [r for r in handle.store.records() if r.feasible and "map50_95" in r.metrics]
    if not feasible:
        raise SystemExit(f"search {run} found no candidate within {ratio:.0%} of the base's latency")
    best = max(feasible, key=lambda r: (r.metrics["map50_95"], -r.metrics["latency_ratio"], -r.number))
    if not (row / "export" / "pruned.pt").exists():
        archprune("export", str(run), "--trial", str(best.number), "--out", str(row / "export"))
    model = load_model(row / "export" / "pruned.pt")
    from spaces.depth_pruning import depth_units

    blocks = dict(best.config.get("depth") or {})
    total = sum(u.blocks for u in depth_units(load_model(source)))
    return describe(model, recovery, how=f"{run.name} trial {best.number} ({best.source})", trial=best.number,
                    search_proxy=best.metrics["map50_95"], search_latency_ratio=best.metrics["latency_ratio"],
                    search_latency_ms=best.metrics["latency_ms"], blocks=blocks, blocks_total=total, trials=len(handle.store.records()),
                    checkpoint=str(row / "export" / "pruned.pt"))


def measure_latency(out: Path, base: str, rows: list[Path], imgsz: int, rounds: int) -> None:
    """Every pick and the base in one interleaved schedule (rerun when more picks exist)."""
    from evaluators.latency import best_of_rounds
    from spaces.models import load_model

    models = {f"{r.parent.name}/{r.name}": read_json(r / "model.json")["checkpoint"] for r in rows
              if (r / "model.json").exists()}
    stored = read_json(out / "latency.json")
    if not models or (stored and sorted(stored["ms"]) == sorted(models)):
        return
    ms = best_of_rounds([load_model(base), *(load_model(p) for p in models.values())], imgsz, 1, rounds, runs=100)
    write_json(out / "latency.json", {"base_ms": ms[0], "ms": dict(zip(models, ms[1:])), "threads": 1,
                                      "rounds": rounds})


def run_all(out: Path, base: str, budgets: list[float], recovery: Recovery, args: argparse.Namespace) -> None:
    """Each row (a budget and a gene set: its search, pick and recovery) is claimed by one process, so
    a second process on the other core shares the rows; the picks' latency is measured last, once."""
    from spaces.models import load_model

    with claimed(out / "scores") as mine:
        if mine and (read_json(out / "base.json") is None or not is_current(read_json(out / "base.json")["before"])):
            write_json(out / "base.json", {"source": base, **describe(load_model(base), recovery),
                                           "plain": held_out_map(load_model(BASE), recovery)})
    rows = [out / budget_name(ratio) / space.replace("+", "-") for ratio in budgets for space in SPACES]
    progress = Progress({"search": len(rows), "recovery": len(rows)},
                        {"search": 10.0 * args.trials, "recovery": 100.0 * recovery.epochs})

    def searched(row: Path) -> bool:
        if (row / "model.json").exists():
            return True
        with claimed(row) as mine:
            if not mine:
                return False
            if (row / "model.json").exists():  # finished while we waited for the claim
                return True
            ratio, space = float(row.parent.name[:-3]) / 100, {k.replace("+", "-"): k for k in SPACES}[row.name]
            t0 = time.perf_counter()
            info = pick(row, base, ratio, space, recovery, args, out / "searches")
            write_json(row / "model.json", {**info, "space": space, "budget": ratio})
        progress.finish("search", f"{row.parent.name} {space}", time.perf_counter() - t0,
                        f"latency {info['search_latency_ratio']:.2f}× base, proxy {info['search_proxy']:.4f}")
        return True

    def recovered(row: Path) -> bool:
        if read_current(row / "after.json"):
            return True
        with claimed(row) as mine:
            if not mine:
                return False
            if read_current(row / "after.json"):
                return True
            t0 = time.perf_counter()
            info, last = read_json(row / "model.json"), row / "recovery" / "last.pt"
            if epochs_done(row / "recovery") < recovery.epochs:
                recover(Path(info["checkpoint"]), row / "recovery", recovery,
                        log=lambda line: print("  " + line, flush=True))
            after = held_out_map(load_model(last), recovery)
            write_json(row / "after.json", {**after, "recovery_s": training_seconds(row / "recovery")})
        progress.finish("recovery", f"{row.parent.name} {info['space']}", time.perf_counter() - t0,
                        f"recovered mAP50-95 {after['map50_95']:.4f}")
        return True

    # a row's recovery may start as soon as its pick exists: the rows alternate between the steps
    until_all_done(rows, lambda row: searched(row) and recovered(row))
    with claimed(out / "latency") as mine:
        if mine:  # the other process is done too: until_all_done waited for every row
            measure_latency(out, base, rows, recovery.imgsz, args.latency_rounds)


def report(out: Path) -> str:
    base = read_json(out / "base.json")
    if base is None:
        return f"nothing measured yet in {out}"
    latency = read_json(out / "latency.json") or {"ms": {}}
    lines = ["Depth genes against width only at equal measured latency (160 px, onnxruntime, 1 thread; "
             f"latency: best of {latency.get('rounds', '…')} interleaved rounds with the base)", "",
             f"Base: `{base['source']}`, {base['flops_g']:.3f} GFLOPs, mAP50-95 {base['before']['map50_95']:.4f} "
             f"(the plain base yolov8n-digits: {base['plain']['map50_95']:.4f}); latency "
             f"{num(latency.get('base_ms'), 2)} ms", ""]
    rows = []
    for budget in sorted((p for p in out.iterdir() if p.is_dir() and p.name.endswith("pct")), reverse=True):
        for row in sorted(p for p in budget.iterdir() if (p / "model.json").exists()):
            info, after = read_json(row / "model.json"), read_current(row / "after.json")
            ms = latency["ms"].get(f"{budget.name}/{row.name}")
            ratio = f"{ms / latency['base_ms']:.2f}" if ms else "…"
            kept = f"{sum(info['blocks'].values())} of {info['blocks_total']}" if info["blocks"] else "all"
            rows.append([budget.name.replace("pct", "%"), info["space"], info["how"],
                         f"{num(ms, 2)} ({ratio})", f"{info['search_latency_ratio']:.2f}",
                         f"{info['flops_g']:.3f} ({info['flops_g'] / base['flops_g']:.0%})", f"{info['params_m']:.3f}",
                         kept, num(info["before"]["map50_95"], 4),
                         num(info["before_abn"]["map50_95"], 4), num(after["map50_95"] if after else None, 4)])
    lines.append(md_table(["latency budget", "genes", "pick", "latency ms (× base)", "search's ratio", "GFLOPs (% base)",
                           "params M", "blocks kept", "mAP50-95 as pruned", "after adaptive BN", "after recovery"],
                          rows, right=(3, 4, 5, 6, 7, 8, 9, 10)))
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="~/archprune-runs/depth-outcome")
    parser.add_argument("--base", default=None, help="an elastic-depth base to use (default: train it, step 1)")
    parser.add_argument("--budgets", default="0.7,0.5", help="fractions of the base's latency (default 0.7,0.5)")
    parser.add_argument("--trials", type=int, default=120, help="trials of each search (default 120)")
    parser.add_argument("--latency-rounds", type=int, default=5)
    parser.add_argument("--proxy", default="adaptive-bn",
                        help="the searches' accuracy proxy (default adaptive-bn; finetune: ~50 s a candidate, the "
                             "only axis issue 13 found to keep its order below 50%% of the FLOPs)")
    parser.add_argument("--search-flags", default="",
                        help="more flags for both searches, e.g. issue 13's '--importance lamp --min-keep 0.0625 "
                             "--width-steps 32' (recorded in the folder's settings)")
    parser.add_argument("--report", action="store_true", help="print the table from what has finished; run nothing")
    add_recovery_args(parser)
    args = parser.parse_args()
    out = Path(args.out).expanduser()
    if args.report:
        print(report(out))
        return
    recovery = recovery_from_args(args)
    budgets = [float(b) for b in args.budgets.split(",") if b.strip()]
    proxy = {} if args.proxy == "adaptive-bn" else {"proxy": args.proxy}  # folders of the default stay valid
    flags = {"search_flags": args.search_flags} if args.search_flags else {}
    check_settings(out, {**recovery.meaning(), "trials": args.trials, "base": args.base or "trained", **proxy, **flags})
    start = time.perf_counter()
    base = args.base or str(train_base(out))
    run_all(out, base, budgets, recovery, args)
    print(f"done in {(time.perf_counter() - start) / 60:.1f} min\n", flush=True)
    print(report(out))


if __name__ == "__main__":
    sys.exit(main())
