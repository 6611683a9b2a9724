"""Stores at scale (issue 19, item 1): open time and memory of a run, and the engine's per-trial
cost, at 1k, 50k and 500k trials.

A real zero-shot search writes the first ``--seed-trials`` trials (`archprune search --space blocks
--driver zeroshot --objectives entropy:max`); the store is then grown to each size synthetically
through the store's own batch path (random genomes of the same space, metrics, config and timings
copied from the real trials, so every row is as large as a real one). At each size it measures, each
command in a fresh process (wall time and peak RSS from ``/usr/bin/time``):

- ``archprune pareto RUN --no-plots`` and ``archprune pareto RUN`` (the plots draw every trial);
- ``archprune export RUN --trial N`` of the best trial;
- a resumed search asked for no new trials (what opening a run for a resume costs), then one adding
  ``--resume-trials`` real trials: the difference is the engine's per-trial cost at that size;
- the store's own write cost: one batch of 1,000 trials through ``Store.flush`` (ms per trial).

Resumable: each size's measurements are stored in ``--out``/scale.json as they finish.

    taskset -c 0 env OMP_NUM_THREADS=1 python bench/store_scale.py --out ~/archprune-runs/store-scale
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import random
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

RUN = "scale"
BIN = Path(sys.executable).parent / "archprune"


def cpu_name() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def timed(cmd: list[str]) -> dict[str, Any]:
    """Wall seconds and peak resident MiB of one command in a fresh process."""
    start = time.perf_counter()
    proc = subprocess.run(["/usr/bin/time", "-f", "%M", *cmd], capture_output=True, text=True)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stderr[-2000:]}")
    rss_kb = int(proc.stderr.strip().splitlines()[-1])
    return {"wall_s": round(wall, 2), "rss_mb": round(rss_kb / 1024, 1), "stdout": proc.stdout}


def search_cmd(results: Path, trials: int) -> list[str]:
    return [str(BIN), "search", "--space", "blocks", "--driver", "zeroshot", "--objectives", "entropy:max",
            "--trials", str(trials), "--results", str(results), "--run", RUN, "--no-progress"]


def open_store(results: Path) -> Any:
    from search.runs import open_run
    from search.store import Store

    handle = open_run(str(results / RUN))
    url = handle.store.url
    return Store(url, handle.name, handle.store.objectives, genes=None)


def grow(results: Path, size: int, rng: random.Random) -> dict[str, Any]:
    """Add synthetic trials until the store holds ``size``; the ms per trial of the last batch."""
    store = open_store(results)
    # configs read once: a record's config is read from the store on demand
    real = [(dict(r.metrics), dict(r.constraints), dict(r.config)) for r in store.records() if r.feasible][:2000]
    seen = {r.genome for r in store.records()}
    batch_ms = None
    while len(store) < size:
        n = min(1000, size - len(store))
        added = 0
        while added < n:
            genome = tuple(rng.randrange(len(g.choices)) for g in store.genes)
            if genome in seen:
                continue
            seen.add(genome)
            metrics, constraints, config = rng.choice(real)
            store.add_complete(genome, metrics, constraints, config, {"eval_s": 0.001}, "synthetic", defer=True)
            added += 1
        t0 = time.perf_counter()
        store.flush()
        batch_ms = (time.perf_counter() - t0) * 1000 / n
        if len(store) % 50000 < 1000:
            print(f"  store at {len(store)} trials ({batch_ms:.2f} ms/trial to write)", flush=True)
    return {"flush_ms_per_trial": round(batch_ms, 3) if batch_ms is not None else None}


def measure(results: Path, size: int, resume_trials: int) -> dict[str, Any]:
    run = str(results / RUN)
    out: dict[str, Any] = {}
    no_plots = timed([str(BIN), "pareto", run, "--no-plots", "--json"])
    best = json.loads(no_plots.pop("stdout"))
    out["pareto_no_plots"] = no_plots
    out["pareto"] = {k: v for k, v in timed([str(BIN), "pareto", run]).items() if k != "stdout"}
    trial = front_trial(best)
    out["export"] = {k: v for k, v in timed([str(BIN), "export", run, "--trial", str(trial), "--out",
                                             str(results / f"export-{size}")]).items() if k != "stdout"}
    # a resume asked for no new trials: opening the store, the space and the worker, then stopping
    opened = timed(search_cmd(results, size))
    out["resume_open"] = {k: v for k, v in opened.items() if k != "stdout"}
    if not resume_trials:
        return out
    resumed = timed(search_cmd(results, size + resume_trials))
    per_trial = (resumed["wall_s"] - opened["wall_s"]) / resume_trials
    out["resume"] = {"wall_s": resumed["wall_s"], "rss_mb": resumed["rss_mb"], "trials": resume_trials,
                     "ms_per_trial": round(per_trial * 1000, 2), "structures_per_s": round(1 / per_trial, 1)}
    return out


def front_trial(summary: dict[str, Any]) -> int:
    front = summary.get("front") or summary.get("pareto") or []
    if not front:
        raise SystemExit(f"pareto --json gave no front: keys {sorted(summary)}")
    return int(front[0]["trial"] if "trial" in front[0] else front[0]["number"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,50000,500000")
    parser.add_argument("--seed-trials", type=int, default=1000, help="real zero-shot trials before the synthetic ones")
    parser.add_argument("--resume-trials", type=int, default=1000, help="real trials a resumed search adds at each size")
    parser.add_argument("--out", default="~/archprune-runs/store-scale")
    parser.add_argument("--reopen", metavar="LABEL", default=None,
                        help="measure the opening commands again on the store as it is (e.g. on a quiet machine or "
                        "after a change), stored under this label; nothing is added")
    args = parser.parse_args()
    out = Path(args.out).expanduser()
    results = out / "results"
    results.mkdir(parents=True, exist_ok=True)
    path = out / "scale.json"
    done = json.loads(path.read_text()) if path.exists() else {}
    done.setdefault("machine", {"cpu": cpu_name(), "cores": len(os.sched_getaffinity(0))})
    if not (results / RUN / "run.yaml").exists():
        seeded = timed(search_cmd(results, args.seed_trials))
        done["seed"] = {"trials": args.seed_trials, "wall_s": seeded["wall_s"], "rss_mb": seeded["rss_mb"]}
    if args.reopen:
        from search.runs import open_run

        size = len(open_run(str(results / RUN)).store)
        done[args.reopen] = {"trials": size, **measure(results, size, 0)}
        path.write_text(json.dumps(done, indent=1))
        print(json.dumps({args.reopen: done[args.reopen]}, indent=1))
        return
    rng = random.Random(0)
    for size in (int(s) for s in args.sizes.split(",")):
        if str(size) in done:
            continue
        print(f"size {size}", flush=True)
        grown = grow(results, size, rng)
        row = {**grown, **measure(results, size, args.resume_trials)}
        row["store_mb"] = round((results / RUN / "study.db").stat().st_size / 2**20, 1)
        done[str(size)] = row
        path.write_text(json.dumps(done, indent=1))
        print(json.dumps({size: row}), flush=True)
    print(json.dumps(done, indent=1))


if __name__ == "__main__":
    main()
