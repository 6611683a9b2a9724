#!/bin/bash
# Issue 19 item 3 (resumable: every step skips what is done, a training resumes from last.pt): the
# zero-shot variants' searches now (analytic scores, minutes each), then their trainings on core 0
# once the NB201 scoring there is done, one thread, from a worktree pinned at the variants' commit
# (git worktree add ~/archprune-zs <commit>) so later edits in /work/main do not change a run.
cd ~/archprune-zs || exit 1
export PYTHONPATH=$PWD OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
PY=/work/main/.venv/bin/python
KEEP=/work/main/bench/runs/zeroshot-variants
mkdir -p $KEEP
# the script writes its kept files beside itself; keep them in the main tree to commit
rm -rf bench/runs/zeroshot-variants && ln -s $KEEP bench/runs/zeroshot-variants
taskset -c 0 $PY bench/zeroshot_variants.py search maedet ranges ranges-equal equal || exit 1
while pgrep -f "nb201_queue.sh" >/dev/null; do sleep 60; done
for v in ranges ranges-equal equal; do
    taskset -c 0 $PY bench/zeroshot_variants.py train $v --seed 0 || exit 1
done
