#!/usr/bin/env bash
# Issue 16's latency benchmarks, which need a machine where nothing else runs: it waits for the
# issue-13 queue (bench/prunable_bases_queue.sh) to finish, then measures, each step resumable:
#
#   nohup bash bench/latency_queue.sh > /tmp/latency-queue.log 2>&1 &
#   .venv/bin/python bench/latency_repeatability.py --out bench/runs/latency-repeatability --report
#   .venv/bin/python bench/demo_repeatability.py --report
#   .venv/bin/python bench/int8_table.py --report
#
# Run it from the main tree or its own worktree; results go outside the tree.
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
# Results go to the main checkout's bench/runs/ (its JSON is committed as it lands: a machine change
# once took a whole session's queue output with ~/archprune-runs), even from a pinned worktree.
RUNS=${ARCHPRUNE_RUNS:-$(git rev-parse --path-format=absolute --git-common-dir)/../bench/runs}
while pgrep -f prunable_bases_queue.sh > /dev/null; do sleep 300; done
.venv/bin/python bench/latency_harness_table.py --out "$RUNS/latency-harness.json"
# every configuration in one ~30-minute schedule (old and new schemes see the same machine)
.venv/bin/python bench/latency_repeatability.py --scheme single,paired --imgsz 160,320 --threads 1,2 \
    --out "$RUNS/latency-repeatability"
.venv/bin/python bench/latency_repeatability.py --out "$RUNS/latency-repeatability" --report
# the demo twice from fresh: the same candidates' stored latencies side by side
.venv/bin/python bench/demo_repeatability.py --out "$RUNS/demo-repeatability"
# issue 18: fp32 against INT8 for the elastic base and five candidates (ORT / OpenVINO, 1 / 2 threads, 160 / 320 px)
.venv/bin/python bench/int8_table.py --out "$RUNS/int8-table"
