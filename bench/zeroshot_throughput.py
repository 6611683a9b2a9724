"""Zero-shot search speed: structures per second of the TinyNAS-style EA on analytic entropy.

The default YOLOv8n-sized block space and budgets, `--driver zeroshot`, SQLite store, the default
worker-process executor: the same path as `archprune search --space blocks --driver zeroshot
--objectives entropy:max`. Pin it to one core to read a per-core figure:

    taskset -c 0 python bench/zeroshot_throughput.py --trials 20000
"""
from __future__ import annotations

import argparse
import json
import os
import tempfile
import time

from search.job import run_search
from search.settings import RunSettings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=20000)
    parser.add_argument("--executor", default="auto")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        settings = RunSettings(space="blocks", driver="zeroshot", objectives="entropy:max", trials=args.trials,
                               results=folder, executor=args.executor)
        start = time.perf_counter()
        result = run_search(settings, progress=False, say=lambda line: None)
        wall = time.perf_counter() - start
        log = open(os.path.join(folder, "blocks-default", "search.log")).read()
    dropped = next((line.split("steps, ")[1].split(" children")[0] for line in log.splitlines()
                    if "children dropped" in line), "0")
    cores = len(os.sched_getaffinity(0))
    print(json.dumps({"trials": len(result.store), "wall_s": round(wall, 1),
                      "structures_per_s": round(len(result.store) / wall, 1), "cores": cores,
                      "per_core_per_s": round(len(result.store) / wall / cores, 1),
                      "children_dropped_by_budget": int(dropped),
                      "best_entropy": round(max(r.metrics["entropy"] for r in result.store.records()), 2)}))


if __name__ == "__main__":
    main()
