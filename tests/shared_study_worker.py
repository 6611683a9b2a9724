"""One search process on a shared study:
``python -m tests.shared_study_worker URL RUN TRIALS [HANG_AFTER [DRIVER [SECONDS]]]``.

The toy space with a slow evaluator and an Optuna driver, as ``archprune search --storage URL``
would run it on one of many machines.
"""
from __future__ import annotations

import sys

from search.objectives import Objective
from search.runner import search
from tests.search_toys import QualityEvaluator, SizeEvaluator, SlowEvaluator, ToySpace

OBJECTIVES = [Objective("size", "min"), Objective("quality", "max")]

if __name__ == "__main__":
    url, run, trials = sys.argv[1], sys.argv[2], int(sys.argv[3])
    hang_after = int(sys.argv[4]) if len(sys.argv) > 4 and sys.argv[4] != "-" else None  # then hang until killed
    driver = sys.argv[5] if len(sys.argv) > 5 else "optuna-tpe"
    seconds = float(sys.argv[6]) if len(sys.argv) > 6 else 0.3
    result = search(ToySpace(), [SizeEvaluator(), SlowEvaluator(seconds, hang_after), QualityEvaluator()], OBJECTIVES,
                    imgsz=32, driver=driver, storage=url, run=run, trials=trials, progress=False, seed=0,
                    driver_options={"population": 8, "offspring": 6})
    print(f"evaluated {result.evaluated}")
