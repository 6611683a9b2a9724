#!/usr/bin/env bash
# Issue 16's latency benchmarks, which need a machine where nothing else runs: it waits for the
# issue-13 queue (bench/prunable_bases_queue.sh) to finish, then measures, each step resumable:
#
#   nohup bash bench/latency_queue.sh > ~/archprune-runs/latency-queue.log 2>&1 &
#   .venv/bin/python bench/latency_repeatability.py --out ~/archprune-runs/latency-repeatability --report
#
# Run it from the main tree or its own worktree; results go outside the tree.
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
RUNS=${ARCHPRUNE_RUNS:-$HOME/archprune-runs}
while pgrep -f prunable_bases_queue.sh > /dev/null; do sleep 300; done
.venv/bin/python bench/latency_harness_table.py --out "$RUNS/latency-harness.json"
for scheme in single paired; do
  for imgsz in 160 320; do
    for threads in 1 2; do
      .venv/bin/python bench/latency_repeatability.py --scheme $scheme --imgsz $imgsz --threads $threads \
          --out "$RUNS/latency-repeatability"
    done
  done
done
.venv/bin/python bench/latency_repeatability.py --out "$RUNS/latency-repeatability" --report
