#!/bin/bash
# Issue 13, core 0 (resumable): at 50% FLOPs the 3-epoch judge preferred trial 63 over the LAMP start
# by 0.009 on the proxy's images, yet trial 63 recovered 0.0052 under LAMP-sparse over three seeds.
# The same top 4 and starts judged by the whole 10-epoch recovery (still on the proxy's images, so
# the table's val images stay unseen), in a folder of its own holding copies of the baseline rows.
source "$(dirname "$0")/outcome_queue_env.sh"
MAIN=$OUT
OUT=/work/main/bench/runs/prune-outcome-judge10
FLAGS="${FLAGS/--out $MAIN/--out $OUT}"
RERANK="${RERANK/--rerank-epochs 3/--rerank-epochs 10}"
P="taskset -c 0 .venv/bin/python"
$P bench/prune_outcome.py $FLAGS $RERANK --only reranked-sparse --budgets 0.5 || exit 1
$P bench/prune_outcome.py $FLAGS $RERANK --only reranked-sparse,lamp-sparse,searched-sparse --budgets 0.5 --seeds 1,2
