#!/bin/bash
# Issue 13, core 0 (resumable): the searched pick from the sparse base with the search starting at
# Torch-Pruning's LAMP (--round-to 1, --width-steps 64) at 70% FLOPs, its top 4 and its starts judged by
# a 3-epoch recovery, then the same at 50%.
cd ~/archprune-bench || exit 1
export PYTHONPATH=$PWD OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
P="taskset -c 0 .venv/bin/python"
OUT=/work/main/bench/runs/prune-outcome-lamp-exact
FLAGS="--bases plain=yolov8n-digits,sparse=yolov8n-digits-sparse --proxy finetune --trials 72 --min-keep 0.0625 --width-steps 64 --round-to 1 --importance lamp --out $OUT"
RERANK="--only reranked-sparse --rerank-bases sparse --rerank-top 4 --rerank-epochs 3 --rerank-starts"
while pgrep -f "budgets 0.7 --out $OUT" >/dev/null; do sleep 60; done
$P bench/prune_outcome.py $FLAGS --only searched-sparse --budgets 0.7 || exit 1
$P bench/prune_outcome.py $FLAGS $RERANK --budgets 0.7 || exit 1
$P bench/prune_outcome.py $FLAGS --only searched-sparse --budgets 0.5 || exit 1
$P bench/prune_outcome.py $FLAGS $RERANK --budgets 0.5
