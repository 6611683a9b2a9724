#!/bin/bash
# Issue 19 item 4 (resumable: every (cell, score) lands in the cache as it is computed): the scores of
# 1,200 NAS-Bench-201 cells on core 0 once the issue-13 judge queue there is done, then the ensemble
# report. About 70 minutes of one core from an empty cache.
source "$(dirname "$0")/outcome_queue_env.sh"
while pgrep -f "outcome_queue_judge10.sh" >/dev/null; do sleep 60; done
export ARCHPRUNE_CACHE=/work/main/bench/runs/nb201-scores
TABLE=/work/shared/data/nb201/nb201_cifar10.csv
taskset -c 0 .venv/bin/archprune bench proxies --table $TABLE --accuracy test_acc_cifar10 --samples 1200 --seed 0 \
    --scores synflow,params_m,flops_g,snip,jacob_cov,naswot,entropy --json > /work/main/bench/runs/nb201-proxies-1200.json || exit 1
taskset -c 0 .venv/bin/python bench/nb201_ensemble.py --table $TABLE --cache-dir /work/main/bench/runs/nb201-scores \
    > /work/main/bench/runs/nb201-ensemble.txt
