#!/bin/bash
# Issue 13, core 0 (resumable): the searched pick from the sparse base with the search starting at
# Torch-Pruning's LAMP (--round-to 1, --width-steps 64) at 70% FLOPs, its top 4 and its starts judged by
# a 3-epoch recovery, then the same at 50%.
source "$(dirname "$0")/outcome_queue_env.sh"
P="taskset -c 0 .venv/bin/python"
while pgrep -f "budgets 0.7 --out $OUT" >/dev/null; do sleep 60; done
$P bench/prune_outcome.py $FLAGS --only searched-sparse --budgets 0.7 || exit 1
$P bench/prune_outcome.py $FLAGS --only reranked-sparse $RERANK --budgets 0.7 || exit 1
$P bench/prune_outcome.py $FLAGS --only searched-sparse --budgets 0.5 || exit 1
$P bench/prune_outcome.py $FLAGS --only reranked-sparse $RERANK --budgets 0.5
