"""Zero-shot search speed: structures per second of the TinyNAS-style EA on analytic entropy, end to end.

Runs ``archprune search --space blocks --driver zeroshot --objectives entropy:max --trials N
[--islands K]`` as a user would (the default YOLOv8n-sized block space and budgets, SQLite store),
samples every 5 s the trials in the store and the resident memory of the search's processes (island
0 and its islands), then opens the finished run with ``archprune pareto RUN --no-plots --json`` in a
fresh process (wall time, peak RSS) and reads the best entropy found. Prints one JSON object; ``--out`` keeps the run and writes it there.

    python bench/zeroshot_throughput.py --trials 500000 --islands 2 --out ~/archprune-runs/zs-500k
    taskset -c 0 python bench/zeroshot_throughput.py --trials 20000      # a per-core figure
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psutil

BIN = Path(sys.executable).parent / "archprune"
RUN = "zeroshot-throughput"
SAMPLE_S = 5.0


def cpu_name() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def stored(db: Path) -> int:
    """Finished trials indexed so far (the index's last seq: one row per trial, no table scan)."""
    if not db.exists():
        return 0
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1.0) as conn:
            row = conn.execute("select max(seq) from archprune_records").fetchone()
        return int(row[0] or 0)
    except sqlite3.OperationalError:  # not created yet, or locked for a moment
        return -1


def tree_rss_mb(proc: psutil.Process) -> tuple[float, float]:
    """Resident MiB of the process and its children: the total and the largest single process."""
    sizes = []
    for p in [proc, *proc.children(recursive=True)]:
        try:
            sizes.append(p.memory_info().rss / 2**20)
        except psutil.NoSuchProcess:
            pass
    return round(sum(sizes), 1), round(max(sizes, default=0.0), 1)


def timed(cmd: list[str]) -> dict[str, Any]:
    start = time.perf_counter()
    proc = subprocess.run(["/usr/bin/time", "-f", "%M", *cmd], capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stderr[-2000:]}")
    return {"wall_s": round(time.perf_counter() - start, 2),
            "rss_mb": round(int(proc.stderr.strip().splitlines()[-1]) / 1024, 1), "stdout": proc.stdout}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=20000)
    parser.add_argument("--islands", type=int, default=1)
    parser.add_argument("--executor", default="auto")
    parser.add_argument("--out", default=None, help="keep the run in this folder (default a temporary one)")
    args = parser.parse_args()
    folder = Path(args.out).expanduser() if args.out else Path(tempfile.mkdtemp(prefix="zs-throughput-"))
    if (folder / RUN).exists():
        raise SystemExit(f"{folder / RUN} exists: pass another --out (this benchmark times a run from empty)")
    db = folder / RUN / "study.db"
    cmd = [str(BIN), "search", "--space", "blocks", "--driver", "zeroshot", "--objectives", "entropy:max",
           "--trials", str(args.trials), "--islands", str(args.islands), "--executor", args.executor,
           "--results", str(folder), "--run", RUN, "--no-progress"]
    start = time.perf_counter()
    search = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    watched, timeline = psutil.Process(search.pid), []
    while search.poll() is None:
        time.sleep(SAMPLE_S)
        total, largest = tree_rss_mb(watched) if search.poll() is None else (0.0, 0.0)
        timeline.append({"s": round(time.perf_counter() - start, 1), "trials": stored(db), "rss_mb": total,
                         "largest_process_mb": largest})
    wall = time.perf_counter() - start
    out = search.stdout.read() if search.stdout else ""
    if search.returncode != 0:
        raise SystemExit(f"the search failed ({search.returncode}):\n{out[-3000:]}")
    trials = stored(db)
    opened = timed([str(BIN), "pareto", str(folder / RUN), "--no-plots", "--json"])
    front = json.loads(opened.pop("stdout"))
    # the rate per window of the timeline: does it fall as the store grows?
    windows = [{"from_trials": a["trials"], "to_trials": b["trials"],
                "structures_per_s": round((b["trials"] - a["trials"]) / (b["s"] - a["s"]), 1)}
               for a, b in zip(timeline[::12], timeline[12::12]) if a["trials"] > 0]
    report = {"cpu": cpu_name(), "cores": len(os.sched_getaffinity(0)), "islands": args.islands,
              "trials": trials, "wall_s": round(wall, 1), "structures_per_s": round(trials / wall, 1),
              "peak_rss_mb": max((t["rss_mb"] for t in timeline), default=None),
              "store_mb": round(db.stat().st_size / 2**20, 1), "rate_per_minute": windows,
              "pareto_open": opened, "pareto_trials": front["n_trials"],
              "best_entropy": round(front["front"][0]["entropy"], 2),
              "log_tail": [line for line in (folder / RUN / "search.log").read_text().splitlines()[-4:]],
              "timeline": timeline}
    print(json.dumps(report, indent=1))
    if args.out:
        (folder / "throughput.json").write_text(json.dumps(report, indent=1))
    else:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
