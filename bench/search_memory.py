"""Resident memory over a long detector search: does it stay flat?

Runs the channel search on the embedded model (latency and GFLOPs objectives, the default worker
process executor) in a background thread, and samples the resident set size (VmRSS) of the search
process and of its evaluation worker every ``--every`` trials.

    python bench/search_memory.py --candidates 1000 --every 100
"""
from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import tempfile
import threading
import time
from pathlib import Path

from search.job import run_search
from search.settings import RunSettings


def rss_mib(pid: int | str = "self") -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="yolov8n-digits")
    parser.add_argument("--candidates", type=int, default=1000)
    parser.add_argument("--every", type=int, default=100)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        settings = RunSettings(model=args.model, objectives="latency_ms:min,flops_g:min", trials=args.candidates,
                               run="memory", results=tmp, latency_runs=20)
        thread = threading.Thread(target=run_search, args=(settings,), kwargs={"progress": False,
                                                                                "say": lambda line: None})
        start = time.perf_counter()
        thread.start()
        db = Path(tmp) / "memory" / "study.db"
        samples, next_mark = [], args.every
        while thread.is_alive():
            time.sleep(1.0)
            done = _count(db)
            if done >= next_mark or not thread.is_alive():
                workers = [rss_mib(c.pid) for c in mp.active_children()]
                samples.append({"trials": done, "search_mib": round(rss_mib(), 1),
                                "worker_mib": round(workers[0], 1) if workers else None,
                                "elapsed_s": round(time.perf_counter() - start)})
                print(json.dumps(samples[-1]), flush=True)
                next_mark = done - done % args.every + args.every
        thread.join()
    with_worker = [s for s in samples if s["worker_mib"] is not None]  # the final sample follows the worker's exit
    print(json.dumps({"first": samples[0], "last": with_worker[-1] if with_worker else samples[-1]}))


def _count(db: Path) -> int:
    import sqlite3

    if not db.exists():
        return 0
    try:
        with sqlite3.connect(db) as con:
            return con.execute("SELECT COUNT(*) FROM trials WHERE state IN ('COMPLETE', 'FAIL')").fetchone()[0]
    except sqlite3.OperationalError:
        return 0


if __name__ == "__main__":
    main()
