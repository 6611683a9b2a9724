#!/bin/bash
# Issue 13, core 0 after bench/outcome_queue_core0.sh (resumable): the 50% rows recovered with seeds 1
# and 2, as core 1 does for 70%.
source "$(dirname "$0")/outcome_queue_env.sh"
P="taskset -c 0 .venv/bin/python"
while pgrep -f "outcome_queue_core0.sh" >/dev/null; do sleep 60; done
$P bench/prune_outcome.py $FLAGS $RERANK --only lamp-sparse,reranked-sparse,searched-sparse --budgets 0.5 --seeds 1,2
