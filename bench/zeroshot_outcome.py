"""Outcome of a zero-shot search: the backbone it finds, trained like the embedded base model, beside it.

Four steps, each the command a user would run, each resumable (re-run the script after a kill):

1. ``archprune search --space blocks --driver zeroshot --objectives entropy:max --data digits-det
   --imgsz 160 --trials N --run RUN``: the default budgets, a YOLOv8n-sized backbone (its FLOPs) in a
   YOLOv8n-sized detector (FLOPs, params) with at most 29 backbone convs;
2. ``archprune export RUN --trial BEST``: the highest-entropy structure as ``structure.yaml``;
3. ``archprune train --model structure.yaml --data digits-det --imgsz 160 --epochs 100 --batch 32
   --seed 0``: the recipe of ``yolov8n-digits`` (BENCHMARKS.md), ``--resume`` when a run is there;
4. both detectors side by side: mAP50-95 and mAP50 on digits-det val, params and GFLOPs of the
   detector and of its backbone, and onnxruntime latency on this machine at 160 px (batch 1, rounds
   interleaving the two models, best median kept, so a burst of load does not land on one only), at
   onnxruntime's default threads and at one thread (two-thread latency on the 2-core development VM
   has two modes; see BENCHMARKS.md).

    python bench/zeroshot_outcome.py --trials 50000 --epochs 100
"""
from __future__ import annotations

import argparse
import csv
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from torch import nn

BASE = "yolov8n-digits"  # the embedded base model: yolov8n, digits-det, 160 px, 100 epochs, batch 32, seed 0
DATA, IMGSZ = "digits-det", 160


def archprune(*args: str, capture: bool = False) -> str:
    """Run the CLI as a user would, its output streamed to stderr (returned instead with ``capture``)."""
    exe = shutil.which("archprune", path=str(Path(sys.executable).parent)) or shutil.which("archprune")
    if exe is None:
        raise SystemExit("archprune is not installed in this environment: `make install` first")
    print("$ archprune " + " ".join(args), file=sys.stderr, flush=True)
    start = time.perf_counter()
    done = subprocess.run([exe, *args], stdout=subprocess.PIPE if capture else sys.stderr, text=True, check=True)
    print(f"  ({time.perf_counter() - start:.1f} s)", file=sys.stderr, flush=True)
    return done.stdout or ""


def backbone_of(model: nn.Module) -> nn.Module:
    """The block detector's searched backbone; YOLOv8's layers 0-8 (without SPPF, as the block space counts)."""
    return model.backbone if hasattr(model, "backbone") else nn.Sequential(*model.model[:9])


def train_minutes(run_dir: Path) -> float:
    """Minutes the training epochs took (training and validation), from the run's results.csv."""
    with (run_dir / "results.csv").open() as handle:
        return round(sum(float(row["seconds"]) for row in csv.DictReader(handle)) / 60, 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=50000, help="structures the zero-shot search stores")
    parser.add_argument("--epochs", type=int, default=100, help="as the base model (100)")
    parser.add_argument("--run", default="zeroshot-digits", help="search run under results/")
    parser.add_argument("--train-out", default="results/zeroshot-digits-train", help="training run folder")
    parser.add_argument("--rounds", type=int, default=5, help="latency rounds (each model once per round)")
    parser.add_argument("--threads", type=int, nargs="+", default=[0, 1],
                        help="onnxruntime intra-op threads to measure at (0: its default, all cores)")
    args = parser.parse_args()

    archprune("search", "--space", "blocks", "--driver", "zeroshot", "--objectives", "entropy:max", "--data", DATA,
              "--imgsz", str(IMGSZ), "--trials", str(args.trials), "--run", args.run, "--no-progress")
    front = json.loads(archprune("pareto", args.run, "--json", "--no-plots", capture=True))["front"]
    best = max(front, key=lambda row: row["entropy"])
    exported = Path("results") / args.run / "exports" / f"trial-{best['trial']}"
    if not (exported / "structure.yaml").exists():
        archprune("export", args.run, "--trial", str(best["trial"]))
    out = Path(args.train_out)
    resume = ["--resume"] if (out / "last.pt").exists() else []
    archprune("train", "--model", str(exported / "structure.yaml"), "--data", DATA, "--imgsz", str(IMGSZ),
              "--epochs", str(args.epochs), "--batch", "32", "--seed", "0", "--out", str(out), *resume)

    from evaluators.detection_eval import evaluate_detector
    from evaluators.latency import best_of_rounds
    from evaluators.flops import count_flops_params
    from spaces.models import load_model

    found = load_model(out / "best.pt")
    models = {BASE: load_model(BASE), f"zero-shot (trial {best['trial']})": found}
    ms = {threads: best_of_rounds(list(models.values()), IMGSZ, threads or None, args.rounds, runs=50)
          for threads in args.threads}
    rows: dict[str, Any] = {}
    for i, (name, model) in enumerate(models.items()):
        whole, backbone = count_flops_params(model, IMGSZ), count_flops_params(backbone_of(model), IMGSZ)
        scores = evaluate_detector(model, DATA, imgsz=IMGSZ)
        rows[name] = {"map50_95": round(scores["map50_95"], 4), "map50": round(scores["map50"], 4),
                      "params_m": round(whole["params_m"], 3), "flops_g": round(whole["flops_g"], 4),
                      "backbone_params_m": round(backbone["params_m"], 3),
                      "backbone_flops_g": round(backbone["flops_g"], 4),
                      **{f"latency_ms_threads_{t or 'default'}": round(ms[t][i], 2) for t in args.threads}}
    rows[f"zero-shot (trial {best['trial']})"].update(entropy=round(best["entropy"], 2),
                                                     train_minutes=train_minutes(out))
    print(json.dumps({"imgsz": IMGSZ, "data": DATA, "epochs": args.epochs, "search_trials": args.trials,
                      "structure": str(exported / "structure.yaml"), "models": rows}, indent=1))


if __name__ == "__main__":
    main()
