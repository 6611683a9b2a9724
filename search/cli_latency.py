"""``archprune latency``: the deployment harness for one model, as a command (issue 16)."""
from __future__ import annotations

import argparse
import json

from evaluators.choice_names import RUNTIME_NAMES
from search.cli_types import image_size, positive_int


def add_latency_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("latency", help="a model's latency percentiles, throughput, memory, size and load time")
    p.add_argument("--model", required=True, help="model name, checkpoint, exported pruned.pt or structure YAML")
    p.add_argument("--imgsz", type=image_size, default=None, help="input size (default: the checkpoint's, else 640)")
    p.add_argument("--runtime", choices=list(RUNTIME_NAMES), default="ort", help="ort (default), openvino or torch")
    p.add_argument("--threads", type=positive_int, default=None, help="inference threads: the target's (default 1)")
    p.add_argument("--runs", type=positive_int, default=100, help="timed batch-1 runs (default 100: p99 needs 100)")
    p.add_argument("--warmup", type=positive_int, default=10, help="untimed runs first (default 10)")
    p.add_argument("--throughput-batch", type=positive_int, default=8, help="batch for throughput_ips (default 8)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=_cmd_latency)


def _cmd_latency(args: argparse.Namespace) -> int:
    from evaluators.detection_eval import resolve_imgsz
    from evaluators.latency_harness import harness
    from spaces.models import load_model

    model = load_model(args.model)
    imgsz = resolve_imgsz(model, args.imgsz)
    result = harness(model, imgsz, args.runtime, args.threads, runs=args.runs, warmup=args.warmup,
                     throughput_batch=args.throughput_batch)
    if args.json:
        print(json.dumps(result))
        return 0
    labels = {"latency_ms": "p50", "latency_p90_ms": "p90", "latency_p95_ms": "p95", "latency_p99_ms": "p99",
              "latency_std_ms": "std"}
    shown = ", ".join(f"{label} {result[key]:.2f}" for key, label in labels.items() if key in result)
    print(f"{args.model} at {imgsz}px on {result['runtime']} ({result['provider']}, threads "
          f"{result['threads'] or 'default'}): latency ms {shown} ({args.runs} runs); "
          f"{result['throughput_ips']:.1f} images/s at batch {args.throughput_batch}; peak memory "
          f"{result['peak_mem_mb']:.1f} MB; model {result['model_mb']:.2f} MB; load {result['load_ms']:.0f} ms")
    return 0
