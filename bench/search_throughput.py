"""End-to-end search throughput without the accuracy proxy, with the time split per stage.

NSGA-II over the channel groups of YOLOv8n (80 classes, random init: the weights do not change
the cost) at imgsz 320, objectives measured onnxruntime latency and GFLOPs, everything stored in
an in-memory Optuna study. Each candidate is pruned (Torch-Pruning), counted (thop), exported to
ONNX and timed (warm-up + N runs). Prints candidates per hour and the mean seconds per stage.

    python bench/search_throughput.py --candidates 120 --imgsz 320 [--driver random]
"""
from __future__ import annotations

import argparse
import json
import statistics
import time

from evaluators.flops import FlopsEvaluator
from evaluators.latency import LatencyEvaluator
from search.objectives import parse_objectives
from search.runner import search
from spaces.channel_space import ChannelSpace
from spaces.models import build_model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="yolov8n")
    parser.add_argument("--imgsz", type=int, default=320)
    parser.add_argument("--candidates", type=int, default=120)
    parser.add_argument("--latency-runs", type=int, default=30)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--driver", default="nsga2", help="nsga2 drifts towards small models; random samples all sizes")
    args = parser.parse_args()

    start = time.perf_counter()
    space = ChannelSpace(build_model(args.model, nc=80))
    setup = time.perf_counter() - start
    evaluators = [FlopsEvaluator(), LatencyEvaluator("ort", threads=args.threads, runs=args.latency_runs)]
    start = time.perf_counter()
    result = search(space, evaluators, parse_objectives("latency_ms:min,flops_g:min"), imgsz=args.imgsz,
                    driver=args.driver, storage="memory", run="throughput", trials=args.candidates, progress=False)
    wall = time.perf_counter() - start
    timings = [t.user_attrs["timings"] for t in result.store.study.get_trials()]
    stages = ("build_s", "flops_s", "export_s", "latency_runs_s", "total_s")
    split = {s: statistics.mean(t.get(s, 0.0) for t in timings) for s in stages}
    split["store_and_driver_s"] = wall / len(timings) - split["total_s"]
    metrics = [t.user_attrs["metrics"] for t in result.store.study.get_trials()]
    candidates = {k: {"mean": round(statistics.mean(m[k] for m in metrics), 3),
                      "min": round(min(m[k] for m in metrics), 3), "max": round(max(m[k] for m in metrics), 3)}
                  for k in ("latency_ms", "flops_g")}
    report = {"model": args.model, "imgsz": args.imgsz, "driver": args.driver, "candidates": len(timings), "wall_s": round(wall, 1),
              "setup_s": round(setup, 2), "candidates_per_hour": round(3600 * len(timings) / wall),
              "latency_runs": args.latency_runs, "mean_s_per_stage": {k: round(v, 4) for k, v in split.items()},
              "candidates_measured": candidates}
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
