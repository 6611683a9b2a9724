#!/bin/bash
# Issue 13, core 1 (resumable: run it again and every step continues where it stopped).
# 1. the elastic base's remaining proxy-fidelity truths; 2. the outcome table's baselines at 70% and
# 50% in the same folder (and with the same flags) as the LAMP-exact searches on core 0;
# 3. the iterative recipe; 4. the 70% rows recovered with seeds 1 and 2 (is the 0.0009 between the
# re-ranked pick and LAMP-sparse more than one seed's luck?); 5. the plain base's 16 truths on the
# current genome set.
source "$(dirname "$0")/outcome_queue_env.sh"
P="taskset -c 1 .venv/bin/python"
$P bench/proxy_fidelity.py --bases sparse=yolov8n-digits-sparse,elastic=yolov8n-digits-elastic --out /work/main/bench/runs/proxy-fidelity || exit 1
$P bench/prune_outcome.py $FLAGS --only lamp-sparse,l1-plain,lamp-plain,l1-sparse --budgets 0.7,0.5 || exit 1
$P bench/prune_outcome.py $FLAGS --iterative-bases plain --only iterative-plain --budgets 0.7,0.5 || exit 1
$P bench/prune_outcome.py $FLAGS $RERANK --only lamp-sparse,reranked-sparse,searched-sparse --budgets 0.7 --seeds 1,2 || exit 1
$P bench/proxy_fidelity.py --bases sparse=yolov8n-digits-sparse,elastic=yolov8n-digits-elastic,plain=yolov8n-digits --out /work/main/bench/runs/proxy-fidelity
