#!/usr/bin/env bash
# The long runs of issue 13 (hours on a 2-core CPU), each resumable: after any interruption (a
# session's end, a kill, a reboot) run this script again and it carries on where it stopped.
#
#   nohup bash bench/prunable_bases_queue.sh > /tmp/queue.log 2>&1 &
#   .venv/bin/python bench/proxy_fidelity.py --report; .venv/bin/python bench/prune_outcome.py --report
#
# The proxy-fidelity benchmark runs on core 1 and the outcome benchmark on core 0, one torch
# thread each (two torch jobs on 2 cores only work when each has its own core); when the outcome
# is done, a second fidelity process on core 0 shares the remaining truths. The shipped bases
# are used by name; their own training commands are in spaces/models/zoo.py and BENCHMARKS.md.
#
# Hours of runs must not see the code change under them (a search started mid-edit once crashed on
# half-written modules): run the queue from its own worktree, pinned to a commit, sharing the venv:
#
#   git worktree add --detach ~/archprune-bench HEAD && ln -s "$PWD/.venv" ~/archprune-bench/.venv
#   cd ~/archprune-bench && nohup bash bench/prunable_bases_queue.sh > /tmp/queue.log 2>&1 &
#
# (the venv's editable install points at the main tree; PYTHONPATH below makes every process,
# workers included, import this tree instead).
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
# Results go to the main checkout's bench/runs/ (its JSON is committed as it lands: a machine change
# once took a whole session's queue output with ~/archprune-runs), even from a pinned worktree.
RUNS=${ARCHPRUNE_RUNS:-$(git rev-parse --path-format=absolute --git-common-dir)/../bench/runs}
BASES=plain=yolov8n-digits,sparse=yolov8n-digits-sparse,elastic=yolov8n-digits-elastic
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
mkdir -p "$RUNS"
taskset -c 1 .venv/bin/python bench/proxy_fidelity.py --bases "$BASES" --out "$RUNS/proxy-fidelity" \
    > "$RUNS/proxy-fidelity.log" 2>&1 &
fidelity=$!
taskset -c 0 .venv/bin/python bench/prune_outcome.py --bases "$BASES" --out "$RUNS/prune-outcome" \
    --base-epochs sparse=20,elastic=10 \
    > "$RUNS/prune-outcome.log" 2>&1 &
outcome=$!
wait $outcome || echo "prune_outcome.py exited with status $?: see prune-outcome.log"
# Core 0 is free: a second fidelity process shares the remaining truths (each recovery is claimed
# by one process), so the long pole of the queue runs on both cores.
taskset -c 0 .venv/bin/python bench/proxy_fidelity.py --bases "$BASES" --out "$RUNS/proxy-fidelity" \
    > "$RUNS/proxy-fidelity-2.log" 2>&1 &
second=$!
wait $fidelity $second
