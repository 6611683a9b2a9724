"""Held-out accuracy and speed of the latency-table predictor on this machine.

Measures (or loads) the default grid at one image size, fits the correction per family on the
candidates ``archprune latency-table --calibrate`` measures (``yolov8n``: the unpruned model and 4
random channel-pruned samples; ``blocks``: the default structure and 4 random block-space detectors),
then predicts held-out candidates of each family and measures them with onnxruntime. Prints, per
family, the share of predictions within +-10% of the measured latency and the errors, and the
predictor's speed (conv list + lookup on an already built model).

    python bench/latency_predictor.py --table results/lut320-t1.json --held-out 10 --blocks 5 --threads 1

(one thread: on the 2-core development VM, two-thread latency has two modes; see BENCHMARKS.md)
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from evaluators.latency_lut import LatencyPredictor, default_grid, load_table, measure_table, new_table
from evaluators.latency_lut.measure import calibrate, measure_model
from evaluators.latency_lut.calibration_models import calibration_genomes
from search.space_recipes import calibration_space_for


def distinct(space: Any, rng: np.random.Generator, n: int, avoid: list) -> list:
    out: list = []
    while len(out) < n:
        genome = space.sample(rng)
        if genome not in out and genome not in avoid:
            out.append(genome)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--table", default="results/lut320.json", help="measured here when missing (resumable)")
    parser.add_argument("--imgsz", type=int, default=320)
    parser.add_argument("--held-out", type=int, default=10)
    parser.add_argument("--blocks", type=int, default=5)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    path, imgsz = Path(args.table), args.imgsz
    start = time.time()
    table = load_table(path) if path.exists() else new_table("this-box", threads=args.threads)
    measure_table(default_grid([imgsz]), table, path, threads=args.threads, progress=False)
    grid_s = time.time() - start
    families = {"yolov8n": args.held_out, "blocks": args.blocks}  # --calibrate value: held-out candidates
    report: dict[str, Any] = {"imgsz": imgsz, "entries": len(table.entries), "grid_s": round(grid_s)}
    speeds = []
    for seed, (family, held_out) in enumerate(families.items()):
        space = calibration_space_for(family)[0]
        fit_genomes = calibration_genomes(space, 5)
        family_table = load_table(path)
        calibrate(family_table, [space.build(g) for g in fit_genomes], imgsz, threads=args.threads, on=family)
        predictor = LatencyPredictor(family_table)
        held = [space.build(g) for g in distinct(space, np.random.default_rng(100 + seed), held_out, fit_genomes)]
        predictor.predict(held[0], imgsz)  # warm-up
        tick = time.perf_counter()
        predicted = [predictor.predict(m, imgsz) for m in held]
        speeds.append(len(held) / (time.perf_counter() - tick))
        measured = [measure_model(m, imgsz, threads=args.threads) for m in held]
        errors = [p / m - 1 for p, m in zip(predicted, measured)]
        report[family] = {"held_out": len(held), "within_10pct": float(np.mean(np.abs(errors) <= 0.10)),
                          "errors_pct": [round(100 * e, 1) for e in errors],
                          "measured_ms": [round(m, 2) for m in measured]}
    report["predictor_candidates_per_s"] = round(float(np.mean(speeds)), 1)
    report["total_s"] = round(time.time() - start)
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
