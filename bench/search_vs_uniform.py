"""The outcome that matters: a searched candidate against uniform L1 and global LAMP pruning.

On the embedded base model (yolov8n-digits, 160 px):
1. measure the base model's onnxruntime latency; the budget is half of it;
2. run the NSGA-II search (latency_ms:min, map50_95:max; constraint latency_ms <= budget) and take
   the feasible candidate with the best adaptive-BN proxy mAP (what a user would pick);
3. prune the base with Torch-Pruning's uniform l1 and global lamp at the smallest ratio whose
   measured latency is at or below the searched candidate's (re-measured with the same settings);
4. score all three by adaptive-BN mAP50-95 on the whole val split, then again after the same
   short fine-tune (E epochs, head distillation from the base, same seed).

    python bench/search_vs_uniform.py --trials 300 --epochs 3 --out results/bench-search-vs-uniform
    python bench/search_vs_uniform.py --trials 64 --proxy finetune --finetune-steps 100 --epochs 5 \
        --out results/bench-search-vs-uniform-ft
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from torch import nn

from evaluators._base import Candidate
from evaluators.data import load_data_config
from evaluators.detection_eval import evaluate_detector
from evaluators.flops import count_flops_params
from evaluators.latency import measure_onnx_latency
from evaluators.onnx_export import export_onnx
from evaluators.proxy_accuracy import AdaptiveBNMapEvaluator
from evaluators.training.trainer import TrainSettings, train
from search.job import run_search
from search.space_recipes.channels import build_space, load_inputs
from search.settings import RunSettings
from search.baseline_pruning import prune_with_ratio
from spaces.models import load_model, save_checkpoint

LATENCY_RUNS = 200  # the final comparison: more runs than the search used


def latency(model: nn.Module, imgsz: int, path: Path) -> float:
    export_onnx(model, path, imgsz=imgsz)
    return measure_onnx_latency(path, imgsz, runs=LATENCY_RUNS, warmup=20)["latency_ms"]


def baseline_at(base: nn.Module, imgsz: int, budget_ms: float, importance: str, global_pruning: bool,
                work: Path) -> tuple[nn.Module, float, float]:
    """The least-pruned copy whose measured latency is <= budget: ratios in steps of 0.05, then
    0.01 steps up from the last ratio that missed (so the baseline lands as close to the budget as
    its ratio allows, rather than far below it)."""
    def at(ratio: float) -> tuple[nn.Module, float]:
        model = prune_with_ratio(base, imgsz, ratio, importance, global_pruning=global_pruning, round_to=8)
        ms = latency(model, imgsz, work / f"{importance}-{ratio:.2f}.onnx")
        print(f"  {importance}{' global' if global_pruning else ''} ratio {ratio:.2f}: {ms:.3f} ms", flush=True)
        return model, ms

    for step in range(1, 19):
        coarse = round(0.05 * step, 2)
        model, ms = at(coarse)
        if ms <= budget_ms:
            for fine in (round(coarse - 0.05 + 0.01 * k, 2) for k in range(1, 5)):
                finer, fine_ms = at(fine)
                if fine_ms <= budget_ms:
                    return finer, fine, fine_ms
            return model, coarse, ms
    raise SystemExit(f"{importance} never reached {budget_ms:.3f} ms")


def finetuned_map(model: nn.Module, name: str, args: argparse.Namespace, out: Path) -> float:
    path = save_checkpoint(model, out / f"{name}.pt", meta={"imgsz": args.imgsz})
    settings = TrainSettings(model=str(path), data=args.data, imgsz=args.imgsz, epochs=args.epochs,
                             out=str(out / f"ft-{name}"), lr0=5e-4, warmup_epochs=0.5, seed=args.seed,
                             teacher=args.base, kd_weight=1.0)
    return float(train(settings, log=lambda line: None)["map50_95"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", default="yolov8n-digits")
    parser.add_argument("--data", default="digits-det")
    parser.add_argument("--imgsz", type=int, default=160)
    parser.add_argument("--trials", type=int, default=300)
    parser.add_argument("--latency-fraction", type=float, default=0.5)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--proxy", default="adaptive-bn", help="the search's proxy: adaptive-bn or finetune")
    parser.add_argument("--finetune-steps", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="results/bench-search-vs-uniform")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    data = load_data_config(args.data)
    base = load_model(args.base)
    t0 = time.perf_counter()

    base_ms = latency(base, args.imgsz, out / "base.onnx")
    budget = args.latency_fraction * base_ms
    print(f"base latency {base_ms:.3f} ms -> budget {budget:.3f} ms", flush=True)

    settings = RunSettings(model=args.base, data=args.data, objectives="latency_ms:min,map50_95:max",
                           constraints=[f"latency_ms<={budget:.4f}"], trials=args.trials, run="search",
                           results=str(out), seed=args.seed, latency_runs=30, proxy=args.proxy,
                           finetune_steps=args.finetune_steps)
    result = run_search(settings, progress=False)
    feasible = [r for r in result.store.records() if r.feasible]
    best = max(feasible, key=lambda r: r.metrics["map50_95"])
    searched = build_space(settings, *load_inputs(settings)).build(best.genome)  # the same space the run searched
    searched_ms = latency(searched, args.imgsz, out / "searched.onnx")
    print(f"searched: trial {best.number}, proxy {best.metrics['map50_95']:.4f}, re-measured {searched_ms:.3f} ms",
          flush=True)

    target = min(searched_ms, budget)
    uniform, u_ratio, u_ms = baseline_at(base, args.imgsz, target, "l1", False, out)
    lamp, g_ratio, g_ms = baseline_at(base, args.imgsz, target, "lamp", True, out)

    proxy = AdaptiveBNMapEvaluator(data, args.imgsz, val_images=len(data.images("val")))
    rows: dict[str, dict[str, Any]] = {}
    for name, m, ms, how in (("searched", searched, searched_ms, f"trial {best.number}"),
                             ("uniform-l1", uniform, u_ms, f"ratio {u_ratio:.2f}"),
                             ("global-lamp", lamp, g_ms, f"ratio {g_ratio:.2f}")):
        cost = count_flops_params(m, args.imgsz)
        bn_map = proxy.evaluate(Candidate(m, args.imgsz))["map50_95"]
        rows[name] = {"how": how, "latency_ms": round(ms, 3), "latency_vs_base": round(ms / base_ms, 3),
                      **{k: round(v, 4) for k, v in cost.items()}, "adaptive_bn_map50_95": round(bn_map, 4)}
        print(name, rows[name], flush=True)
    for name, m in (("searched", searched), ("uniform-l1", uniform), ("global-lamp", lamp)):
        rows[name]["finetuned_map50_95"] = round(finetuned_map(m, name, args, out), 4)
        print(name, "fine-tuned", rows[name]["finetuned_map50_95"], flush=True)

    base_map = evaluate_detector(base, data, imgsz=args.imgsz)["map50_95"]
    report = {"base": {"latency_ms": round(base_ms, 3), "map50_95": round(base_map, 4)}, "budget_ms": round(budget, 3),
              "trials": len(result.store), "search_proxy": args.proxy, "epochs": args.epochs, "rows": rows,
              "wall_s": round(time.perf_counter() - t0)}
    (out / "report.json").write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
