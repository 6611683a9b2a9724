"""Are depth-pruned candidates scoreable on a base? (issue 17, item 3)

For each base (``--bases``, default the plain, elastic and elastic-depth shipped bases), the same
genomes of a ``--depth`` channel space: the depth-only baselines (every block chain at its first k
blocks, all widths full) and ``--random`` random width-and-depth genomes (seed 0). Each is scored
as the search scores it, on the proxy's val images 0..199: mAP50-95 as built (``no-recal``) and
after adaptive BN (``--proxy adaptive-bn``). A base whose depth candidates read ~0 gives a depth
search nothing to rank; one trained with ``--elastic-depth`` should not.

    taskset -c 0 env OMP_NUM_THREADS=1 .venv/bin/python bench/depth_scoreability.py --out bench/runs/depth-scoreability.json
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

BASES = ("yolov8n-digits", "yolov8n-digits-elastic", "yolov8n-digits-elastic-depth")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bases", default=",".join(BASES))
    parser.add_argument("--random", type=int, default=4, help="random width-and-depth genomes (default 4)")
    parser.add_argument("--out", type=Path, default=Path("bench/runs/depth-scoreability.json"))
    args = parser.parse_args()

    import numpy as np

    from evaluators._base import Candidate
    from evaluators.data import load_data_config
    from evaluators.flops import count_flops_params
    from evaluators.proxy_accuracy import AdaptiveBNMapEvaluator
    from spaces.channel_space import ChannelSpace
    from spaces.models import load_model

    data = load_data_config("digits-det")
    proxies = {"no-recal": AdaptiveBNMapEvaluator(data, 160, val_images=200, recalibrate=False),
               "adaptive-bn": AdaptiveBNMapEvaluator(data, 160, val_images=200)}
    rows = []
    genomes = None
    for base in args.bases.split(","):
        space = ChannelSpace(load_model(base), depth=True)
        if genomes is None:  # the first base's genomes, carried to the others by their choice indices
            rng = np.random.default_rng(0)
            genomes = [(n, g) for n, g in space.baselines() if n.startswith("depth-")]
            genomes += [(f"random-{i}", space.sample(rng)) for i in range(args.random)]
        for name, genome in genomes:
            model = space.build(genome)
            row = {"base": base, "genome": name, "blocks": space.depth(genome),
                   "flops_g": count_flops_params(model, 160)["flops_g"]}
            for proxy, evaluator in proxies.items():
                start = time.perf_counter()
                row[proxy] = evaluator.evaluate(Candidate(model=model, imgsz=160, genome=genome, config={}))["map50_95"]
                row[f"{proxy}_s"] = time.perf_counter() - start
            rows.append(row)
            print(json.dumps(row), flush=True)
    args.out.write_text(json.dumps(rows, indent=1) + "\n")


if __name__ == "__main__":
    main()
