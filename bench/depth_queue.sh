#!/usr/bin/env bash
# Issue 17's long runs (the elastic-depth base, then width / width+depth searches and their
# recoveries: about 3 h of one core), each resumable. It waits for the issue-13 queue and the
# latency benchmarks (which need an idle machine) to finish, then runs two processes, one per
# core, sharing the rows (bench/depth_outcome.py claims each row for one of them):
#
#   git worktree add --detach ~/archprune-depth HEAD && ln -s "$PWD/.venv" ~/archprune-depth/.venv
#   cd ~/archprune-depth && nohup bash bench/depth_queue.sh > /tmp/depth-queue.log 2>&1 &
#   .venv/bin/python bench/depth_outcome.py --report
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
# Results go to the main checkout's bench/runs/ (its JSON is committed as it lands: a machine change
# once took a whole session's queue output with ~/archprune-runs), even from a pinned worktree.
RUNS=${ARCHPRUNE_RUNS:-$(git rev-parse --path-format=absolute --git-common-dir)/../bench/runs}
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
while pgrep -f "prunable_bases_queue.sh|latency_queue.sh" > /dev/null; do sleep 300; done
for core in 0 1; do
  taskset -c $core .venv/bin/python bench/depth_outcome.py --out "$RUNS/depth-outcome" \
      > "$RUNS/depth-outcome-$core.log" 2>&1 &
  sleep 60  # the first claims the base's training; the second waits for it
done
wait
