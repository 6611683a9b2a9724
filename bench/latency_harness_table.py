"""The deployment harness of yolov8n (untrained weights; latency does not depend on them) at 320 and
640 px on onnxruntime and OpenVINO at 1 and 2 threads, as a BENCHMARKS.md table (issue 16). Run it
while nothing else runs; each row is saved to ``--out`` as it comes and skipped when there:

    python bench/latency_harness_table.py --out ~/archprune-runs/latency-harness.json
"""
from __future__ import annotations

import argparse
import itertools
import json
from pathlib import Path

from evaluators.latency import cpu_model
from evaluators.latency_harness import harness
from spaces.models import build_model

COLUMNS = ("latency_ms", "latency_p90_ms", "latency_p99_ms", "latency_std_ms", "throughput_ips", "peak_mem_mb",
           "model_mb", "load_ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="~/archprune-runs/latency-harness.json")
    parser.add_argument("--runs", type=int, default=100)
    args = parser.parse_args()
    out = Path(args.out).expanduser()
    rows = json.loads(out.read_text()) if out.exists() else {}
    model = build_model("yolov8n", nc=80)
    for imgsz, runtime, threads in itertools.product((320, 640), ("ort", "openvino"), (1, 2)):
        key = f"{imgsz}-{runtime}-{threads}"
        if key not in rows:
            rows[key] = harness(model, imgsz, runtime, threads, runs=args.runs)
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(json.dumps(rows, indent=1))
    print(f"yolov8n, {args.runs} batch-1 runs, throughput at batch 8; CPU {cpu_model()}\n")
    print("| imgsz | runtime | threads | " + " | ".join(COLUMNS) + " |")
    print("|---:|---|---:|" + "---:|" * len(COLUMNS))
    for key, row in rows.items():
        imgsz, runtime, threads = key.split("-")
        print(f"| {imgsz} | {row['runtime']} | {threads} | "
              + " | ".join(f"{row[c]:.2f}" if c in row else "—" for c in COLUMNS) + " |")


if __name__ == "__main__":
    main()
