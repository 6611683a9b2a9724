"""Zero-shot detector variants (issue 19 item 3): each search's entropy pick, trained like the base, in one table.

The issue-7 search (``bench/zeroshot_outcome.py``) maximised MAE-DET entropy (stage weights 0,0,1,1,6)
under YOLOv8n's backbone FLOPs and got narrow P3/P4 stages (40 and 96 channels against 64 and 128)
with six thin units each; trained, it scored mAP50-95 0.811 against the base's 0.856. Each variant
here changes one thing about the search, the rest as there (default budgets, 50,000 structures,
seed 0), and its pick is trained with the base's recipe:

    archprune train --model STRUCTURE --data digits-det --imgsz 160 --epochs 100 --batch 32 --seed S

Steps, each the CLI command a user runs, each resumable (re-run after a kill):

    python bench/zeroshot_variants.py search                 # every variant's search + export (minutes each)
    python bench/zeroshot_variants.py train ranges --seed 0  # one training (about 1.5 h on one core)
    python bench/zeroshot_variants.py report                 # mAP, params, GFLOPs, latency of what is trained

Searches and trainings live under ``--root`` (default ``~/archprune-runs/zs-variants``); the pick's
structure, its search numbers and each training's ``results.csv`` are copied to
``bench/runs/zeroshot-variants/<variant>/`` as they land, so they can be committed.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from pathlib import Path
from typing import Any

from _recovery import archprune, epochs_done

DATA, IMGSZ, EPOCHS = "digits-det", 160, 100
KEPT = Path(__file__).resolve().parent / "runs" / "zeroshot-variants"
DAMO_RANGES = "*,*,64:128,128:256,256:512"  # DAMO-YOLO's channel_range_list idea, at YOLOv8n's P3/P4/P5 widths

#: name -> (what changes, the search's flags). "yolov8n" is the hand-designed base, trained as it is.
VARIANTS: dict[str, tuple[str, list[str] | None]] = {
    "yolov8n": ("YOLOv8n's own backbone (the base)", None),
    "maedet": ("entropy, MAE-DET weights 0,0,1,1,6 (the issue-7 search)", []),
    "ranges": ("+ DAMO-YOLO's priors: stage widths P3 64-128, P4 128-256, P5 256-512, k = 3",
               ["--channel-ranges", DAMO_RANGES, "--kernels", "3"]),
    "ranges-equal": ("+ the same priors, stage weights 0,0,1,1,1 (P3, P4, P5 alike)",
                     ["--channel-ranges", DAMO_RANGES, "--kernels", "3", "--entropy-weights", "0,0,1,1,1"]),
    "equal": ("entropy, stage weights 0,0,1,1,1, no width priors", ["--entropy-weights", "0,0,1,1,1"]),
}


def search(name: str, root: Path, trials: int) -> dict[str, Any]:
    """The variant's search and its highest-entropy structure, exported; the pick's numbers kept."""
    flags = VARIANTS[name][1]
    assert flags is not None, name
    run = root / f"zs-{name}"
    archprune("search", "--space", "blocks", "--driver", "zeroshot", "--objectives", "entropy:max", "--data", DATA,
              "--imgsz", str(IMGSZ), "--trials", str(trials), "--seed", "0", *flags, "--run", run.name,
              "--results", str(root), "--no-progress")
    front = json.loads(archprune("pareto", str(run), "--json", "--no-plots", capture=True))["front"]
    best = max(front, key=lambda row: row["entropy"])
    exported = run / "exports" / f"trial-{best['trial']}"
    if not (exported / "structure.yaml").exists():
        archprune("export", str(run), "--trial", str(best["trial"]))
    kept = KEPT / name
    kept.mkdir(parents=True, exist_ok=True)
    shutil.copy(exported / "structure.yaml", kept / "structure.yaml")
    pick = {"variant": name, "flags": flags, "trials": trials, **{k: best[k] for k in best if k != "source"}}
    (kept / "search.json").write_text(json.dumps(pick, indent=1) + "\n")
    return pick


def model_of(name: str) -> str:
    if VARIANTS[name][1] is None:
        return name
    structure = KEPT / name / "structure.yaml"
    if not structure.exists():
        raise SystemExit(f"{name}: no searched structure yet; run `python {sys.argv[0]} search {name}` first")
    return str(structure)


def train(name: str, root: Path, seed: int, epochs: int) -> None:
    out = root / f"train-{name}-s{seed}"
    if epochs_done(out) < epochs:
        resume = ["--resume"] if (out / "last.pt").exists() else []
        archprune("train", "--model", model_of(name), "--data", DATA, "--imgsz", str(IMGSZ), "--epochs", str(epochs),
                  "--batch", "32", "--seed", str(seed), "--out", str(out), *resume)
    (KEPT / name).mkdir(parents=True, exist_ok=True)
    shutil.copy(out / "results.csv", KEPT / name / f"results-s{seed}.csv")


def report(root: Path, rounds: int, threads: int) -> dict[str, Any]:
    """Every finished training (and the embedded base as YOLOv8n's seed 0: it is that training): val mAP
    of its best checkpoint and its costs; every searched pick not trained yet, built untrained, for its
    costs and latency only. Latency is at ``threads`` in rounds that interleave all the models (the best
    median of each kept)."""
    from zeroshot_outcome import backbone_of
    from evaluators.detection_eval import evaluate_detector
    from evaluators.flops import count_flops_params
    from evaluators.latency import best_of_rounds
    from spaces.blocks import BlockDetector, parse_structure
    from spaces.models import load_model

    entries: list[tuple[str, int | None, Any]] = [("yolov8n", 0, "yolov8n-digits")]
    entries += [(*run.name[len("train-"):].rsplit("-s", 1), run / "best.pt")
                for run in sorted(root.glob("train-*-s*")) if epochs_done(run) >= EPOCHS and (run / "best.pt").exists()]
    trained = {name for name, _, _ in entries}
    entries += [(d.name, None, d / "structure.yaml") for d in sorted(KEPT.iterdir())
                if (d / "structure.yaml").exists() and d.name not in trained]
    rows: list[dict[str, Any]] = []
    models = []
    for name, seed, source in entries:
        if seed is None:
            model = BlockDetector(parse_structure(str(source)), nc=10).eval()
        else:
            model = load_model(source)
        whole, backbone = count_flops_params(model, IMGSZ), count_flops_params(backbone_of(model), IMGSZ)
        scores = evaluate_detector(model, DATA, imgsz=IMGSZ) if seed is not None else {}
        picked = KEPT / name / "search.json"
        entropy = json.loads(picked.read_text())["entropy"] if picked.exists() else None
        rows.append({"variant": name, "seed": None if seed is None else int(seed),
                     "what": VARIANTS.get(name, ("?", None))[0],
                     "map50_95": round(scores["map50_95"], 4) if scores else None,
                     "map50": round(scores["map50"], 4) if scores else None,
                     "params_m": round(whole["params_m"], 3), "flops_g": round(whole["flops_g"], 4),
                     "backbone_params_m": round(backbone["params_m"], 3),
                     "backbone_flops_g": round(backbone["flops_g"], 4), "entropy": entropy})
        models.append(model)
    for row, latency in zip(rows, best_of_rounds(models, IMGSZ, threads, rounds, runs=50)):
        row[f"latency_ms_{threads}t"] = round(latency, 2)
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), "?")
    return {"imgsz": IMGSZ, "data": DATA, "epochs": EPOCHS, "cpu": cpu, "cores": os.cpu_count(), "rows": rows}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("step", choices=("search", "train", "report"))
    parser.add_argument("variants", nargs="*", help=f"of {', '.join(VARIANTS)} (default: all)")
    parser.add_argument("--root", type=Path, default=Path.home() / "archprune-runs" / "zs-variants")
    parser.add_argument("--trials", type=int, default=50000, help="structures each search stores (issue 7: 50,000)")
    parser.add_argument("--seed", type=int, default=0, help="training seed")
    parser.add_argument("--epochs", type=int, default=EPOCHS, help="as the base model (100)")
    parser.add_argument("--rounds", type=int, default=5, help="latency rounds (each model once per round)")
    parser.add_argument("--threads", type=int, default=1, help="onnxruntime threads for latency")
    args = parser.parse_args()
    unknown = [v for v in args.variants if v not in VARIANTS]
    if unknown:
        raise SystemExit(f"unknown variant {', '.join(unknown)}: choose from {', '.join(VARIANTS)}")
    names = args.variants or list(VARIANTS)
    args.root.mkdir(parents=True, exist_ok=True)
    if args.step == "search":
        for name in names:
            if VARIANTS[name][1] is not None:
                print(json.dumps(search(name, args.root, args.trials)), flush=True)
    elif args.step == "train":
        for name in names:
            train(name, args.root, args.seed, args.epochs)
    else:
        table = report(args.root, args.rounds, args.threads)
        (KEPT / "table.json").write_text(json.dumps(table, indent=1) + "\n")
        print(json.dumps(table, indent=1))


if __name__ == "__main__":
    main()
