# Sourced by bench/outcome_queue_core*.sh: the issue-13 outcome run's folder and flags, shared so the
# queues on both cores search, recover and re-rank with the same settings (prune_outcome.py refuses
# a folder holding results of other settings).
cd ~/archprune-bench || exit 1
export PYTHONPATH=$PWD OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
OUT=/work/main/bench/runs/prune-outcome-lamp-exact
FLAGS="--bases plain=yolov8n-digits,sparse=yolov8n-digits-sparse --proxy finetune --trials 72 --min-keep 0.0625 --width-steps 64 --round-to 1 --importance lamp --out $OUT"
RERANK="--rerank-bases sparse --rerank-top 4 --rerank-epochs 3 --rerank-starts"
