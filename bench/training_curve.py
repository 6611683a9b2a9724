"""Print a training run's validation curve (results.csv) as a markdown table.

    python bench/training_curve.py results/yolov8n-digits/results.csv --every 10
"""
from __future__ import annotations

import argparse
import csv


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("csv")
    parser.add_argument("--every", type=int, default=10, help="show every Nth epoch (and the first and last)")
    args = parser.parse_args()
    with open(args.csv) as f:
        rows = list(csv.DictReader(f))
    best = max(rows, key=lambda r: float(r["map50_95"]))
    print("| epoch | mAP50-95 | mAP50 | box | cls | dfl | s/epoch |")
    print("|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        e = int(r["epoch"])
        if e == 1 or e % args.every == 0 or e == len(rows) or r is best:
            mark = " (best)" if r is best else ""
            print(f"| {e}{mark} | {float(r['map50_95']):.4f} | {float(r['map50']):.4f} | {float(r['box']):.3f} | "
                  f"{float(r['cls']):.3f} | {float(r['dfl']):.3f} | {float(r['seconds']):.0f} |")


if __name__ == "__main__":
    main()
