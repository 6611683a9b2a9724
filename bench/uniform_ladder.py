"""Adaptive-BN mAP50-95 of uniform channel prunes of each base: where a base's proxy falls off a cliff.

    python bench/uniform_ladder.py yolov8n-digits yolov8n-digits-sparse yolov8n-digits-elastic

For each base, a ChannelSpace (default ratios, round_to 8; an elastic base's recorded order) and
its uniform genomes keep 100% ... 25% of every group; each is built, BatchNorm-recalibrated on 8
training batches of 16 and scored on the first 200 val images: the search's default proxy.
"""
from __future__ import annotations

import argparse
import time

from evaluators._base import Candidate
from evaluators.flops import count_flops_params
from evaluators.proxy_accuracy import AdaptiveBNMapEvaluator
from spaces.channel_space import ChannelSpace
from spaces.models import load_model

RATIOS = (1.0, 0.875, 0.75, 0.625, 0.5, 0.375, 0.25)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("bases", nargs="+", help="model sources (names or checkpoints)")
    parser.add_argument("--data", default="digits-det")
    parser.add_argument("--imgsz", type=int, default=160)
    args = parser.parse_args()
    proxy = AdaptiveBNMapEvaluator(args.data, args.imgsz)
    rows: dict[float, list[str]] = {r: [] for r in RATIOS}
    flops: dict[float, float] = {}
    for source in args.bases:
        space = ChannelSpace(load_model(source))
        base_flops = count_flops_params(space.base, args.imgsz)["flops_g"]
        t0 = time.perf_counter()
        for ratio in RATIOS:
            genome = space.unpruned() if ratio == 1 else space.uniform(ratio)
            model = space.build(genome)
            flops[ratio] = count_flops_params(model, args.imgsz)["flops_g"] / base_flops
            score = proxy.evaluate(Candidate(model=model, imgsz=args.imgsz, genome=genome))["map50_95"]
            rows[ratio].append(f"{score:.3f}")
        print(f"{source}: order {space.order_source}, {time.perf_counter() - t0:.0f}s", flush=True)
    print("\n| keep | FLOPs | " + " | ".join(f"`{b}`" for b in args.bases) + " |")
    print("|---:|---:|" + "---:|" * len(args.bases))
    for ratio in RATIOS:
        print(f"| {ratio:.1%} | {flops[ratio]:.0%} | " + " | ".join(rows[ratio]) + " |")


if __name__ == "__main__":
    main()
