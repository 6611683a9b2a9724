"""Search throughput through each executor: one worker process, a local pool, a Dask LocalCluster.

Two workloads over the channel groups of a YOLOv8n (random search, in-memory store, same seed, so
every executor evaluates the same candidates):
- cheap: GFLOPs and params only (prune + thop, a fraction of a second a candidate);
- expensive: yolov8n-digits scored on onnxruntime latency and adaptive-BN mAP50-95 (seconds).
Reports candidates per hour over the whole call (worker or cluster start-up included) and over
the steady state (first finished candidate to last).

    python bench/executor_throughput.py --workload cheap --candidates 64 [--executors process,dask:2,workers:2]
"""
from __future__ import annotations

import argparse
import json
import time
from typing import Any

from search.space_recipes import space_recipe
from search.runner import search
from search.settings import RunSettings

WORKLOADS = {
    "cheap": dict(model="yolov8n", imgsz=320, objectives="flops_g:min,params_m:min"),
    "expensive": dict(model="yolov8n-digits", data="digits-det", objectives="latency_ms:min,map50_95:max",
                      val_images=100, calib_batches=4, latency_runs=20),
}


def executor_kwargs(name: str) -> dict[str, Any]:
    if name in ("process", "inline"):
        return {"executor": name}
    kind, _, n = name.partition(":")
    return {"dask": f"local:{n}"} if kind == "dask" else {"workers": int(n)}


def measure(workload: str, executor: str, candidates: int, seed: int) -> dict[str, Any]:
    settings = RunSettings(**WORKLOADS[workload], importance="l1", trials=candidates, seed=seed)
    parts = space_recipe("channels").build(settings)
    space, evaluators, imgsz = parts.space, parts.evaluators, parts.imgsz
    finished: list[float] = []
    start = time.perf_counter()
    result = search(space, evaluators, settings.objective_list, imgsz=imgsz, driver="random", storage="memory",
                    run="throughput", trials=candidates, seed=seed, progress=False,
                    log=lambda line: finished.append(time.perf_counter()) if line.startswith("trial ") else None,
                    driver_options={"offspring": 16}, **executor_kwargs(executor))
    wall = time.perf_counter() - start
    steady = (len(finished) - 1) / (finished[-1] - finished[0]) * 3600 if len(finished) > 1 else 0.0
    failed = sum(r.failed for r in result.store.records())
    return {"workload": workload, "executor": executor, "candidates": len(result.store), "failed": failed,
            "wall_s": round(wall, 1), "per_hour": round(3600 * len(result.store) / wall),
            "steady_per_hour": round(steady), "first_result_s": round(finished[0] - start, 1) if finished else None}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workload", choices=sorted(WORKLOADS), default="cheap")
    parser.add_argument("--candidates", type=int, default=64)
    parser.add_argument("--executors", default="process,dask:2,workers:2")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    for executor in args.executors.split(","):
        print(json.dumps(measure(args.workload, executor, args.candidates, args.seed)), flush=True)


if __name__ == "__main__":
    main()
