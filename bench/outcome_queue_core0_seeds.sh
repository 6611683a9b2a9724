#!/bin/bash
# Issue 13, core 0 after bench/outcome_queue_core0.sh (resumable): the 50% rows recovered with seeds 1
# and 2, as core 1 does for 70%.
cd ~/archprune-bench || exit 1
export PYTHONPATH=$PWD OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
P="taskset -c 0 .venv/bin/python"
OUT=/work/main/bench/runs/prune-outcome-lamp-exact
FLAGS="--bases plain=yolov8n-digits,sparse=yolov8n-digits-sparse --proxy finetune --trials 72 --min-keep 0.0625 --width-steps 64 --round-to 1 --importance lamp --out $OUT"
RERANK="--rerank-bases sparse --rerank-top 4 --rerank-epochs 3 --rerank-starts"
while pgrep -f "outcome_queue_core0.sh" >/dev/null; do sleep 60; done
$P bench/prune_outcome.py $FLAGS $RERANK --only lamp-sparse,reranked-sparse,searched-sparse --budgets 0.5 --seeds 1,2
