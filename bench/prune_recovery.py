"""Recovery of a uniformly pruned copy of the embedded base model, with and without distillation.

Prunes the base model uniformly (Torch-Pruning, L1 magnitude, one ratio for every layer) to half
its FLOPs, then fine-tunes it for E epochs twice with the same seed and schedule: once with the
detection loss alone, once adding head distillation from the unpruned base. Reports mAP50-95 on
the digits-det val split before pruning, right after pruning and after each fine-tune.

    python bench/prune_recovery.py --base yolov8n-digits --epochs 10 --out results/bench-prune-recovery
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from evaluators.data import load_data_config
from evaluators.detection_eval import evaluate_detector
from evaluators.flops import count_flops_params
from evaluators.training.trainer import TrainSettings, train
from search.baseline_pruning import prune_to_flops
from spaces.models import load_model, save_checkpoint


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", default="yolov8n-digits")
    parser.add_argument("--data", default="digits-det")
    parser.add_argument("--imgsz", type=int, default=160)
    parser.add_argument("--flops-ratio", type=float, default=0.5)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--lr0", type=float, default=5e-4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--val-max-images", type=int, default=None)
    parser.add_argument("--out", default="results/bench-prune-recovery")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    data = load_data_config(args.data)

    base = load_model(args.base)
    base_cost = count_flops_params(base, args.imgsz)
    base_map = evaluate_detector(base, data, imgsz=args.imgsz, max_images=args.val_max_images)["map50_95"]
    t0 = time.perf_counter()
    pruned, ratio = prune_to_flops(base, args.imgsz, args.flops_ratio, importance="l1")
    pruned.imgsz = args.imgsz
    prune_s = time.perf_counter() - t0
    pruned_cost = count_flops_params(pruned, args.imgsz)
    pruned_map = evaluate_detector(pruned, data, imgsz=args.imgsz, max_images=args.val_max_images)["map50_95"]
    pruned_path = save_checkpoint(pruned, out / "pruned.pt", meta={"channel_ratio": ratio, "importance": "l1"})
    print(f"base {base_map:.4f} mAP50-95 at {base_cost['flops_g']:.3f} GFLOPs; uniform l1 ratio {ratio:.3f} -> "
          f"{pruned_cost['flops_g']:.3f} GFLOPs ({pruned_cost['flops_g'] / base_cost['flops_g']:.1%}), "
          f"{pruned_map:.4f} right after pruning ({prune_s:.1f}s)", flush=True)

    results = {}
    for label, kd in (("finetune", 0.0), ("finetune_kd", 1.0)):
        settings = TrainSettings(model=str(pruned_path), data=args.data, imgsz=args.imgsz, epochs=args.epochs,
                                 out=str(out / label), lr0=args.lr0, warmup_epochs=0.5, seed=args.seed,
                                 teacher=args.base if kd else None, kd_weight=kd,
                                 val_max_images=args.val_max_images)
        t1 = time.perf_counter()
        run = train(settings, resume=(out / label / "last.pt").exists())
        final = evaluate_detector(load_model(run["last"]), data, imgsz=args.imgsz,
                                  max_images=args.val_max_images)["map50_95"]
        results[label] = {"final_map50_95": final, "best_map50_95": run["map50_95"], "best_epoch": run["best_epoch"],
                          "seconds": time.perf_counter() - t1}
        print(f"{label}: final {final:.4f}, best {run['map50_95']:.4f} (epoch {run['best_epoch']})", flush=True)

    summary = {"base": args.base, "imgsz": args.imgsz, "epochs": args.epochs, "threads": torch.get_num_threads(),
               "base_map50_95": base_map, "base_flops_g": base_cost["flops_g"], "base_params_m": base_cost["params_m"],
               "channel_ratio": ratio, "pruned_flops_g": pruned_cost["flops_g"], "pruned_params_m": pruned_cost["params_m"],
               "pruned_map50_95": pruned_map, **results}
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
