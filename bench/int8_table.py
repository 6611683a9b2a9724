"""fp32 against INT8, model by model (issue 18's BENCHMARKS table).

For a base and five candidates of it (``--run RUN``: five of that run's front spread in FLOPs;
default the uniform baselines 0.875 ... 0.375), each quantized exactly as ``--precision int8`` does
(BN recalibrated, onnxruntime ``quantize_static``, QDQ, per-channel; ``evaluators.int8``):

- mAP50-95 of the float model (after adaptive BN) and of its INT8 file, on the proxy's val images;
- the INT8 calibration methods (minmax, entropy, percentile) compared on the smallest candidate;
- latency of both, onnxruntime and OpenVINO, 1 and 2 threads, 160 and 320 px: each model paired run
  by run with the float base (``evaluators.latency_paired``), so every figure of one configuration
  is on one scale. Run it while nothing else runs.

Each step is stored as it finishes (``--out``, JSON), so an interrupted run resumes.

    python bench/int8_table.py --out ~/archprune-runs/int8-table
    python bench/int8_table.py --out ~/archprune-runs/int8-table --report
"""
from __future__ import annotations

import argparse
import copy
import json
import tempfile
from pathlib import Path
from typing import Any

DATA, BASE = "digits-det", "yolov8n-digits-elastic"
RATIOS = (0.875, 0.75, 0.625, 0.5, 0.375)


def models(source: str, run: str | None) -> list[tuple[str, Any]]:
    from spaces.channel_space import ChannelSpace
    from spaces.models import load_model

    space = ChannelSpace(load_model(source))
    if run is None:
        return [("unpruned", space.build(space.unpruned()))] + [
            (f"uniform-{r}", space.build(space.uniform(r))) for r in RATIOS]
    from search.pareto import non_dominated
    from search.runs import open_run

    handle = open_run(run)
    front = sorted(non_dominated(handle.store.records(), handle.store.objectives), key=lambda r: -r.metrics["flops_g"])
    step = max(1, len(front) // 5)
    chosen = [r for r in front if r.source != "unpruned"][::step][:5]
    return [("unpruned", space.build(space.unpruned()))] + [(f"trial-{r.number}", space.build(r.genome)) for r in chosen]


def quantized(model: Any, imgsz: int, method: str, folder: Path) -> tuple[Any, Path, Path]:
    from evaluators.bn_recalibration import recalibrate_bn
    from evaluators.data import load_data_config
    from evaluators.int8 import quantize_detector
    from evaluators.proxy_accuracy import calibration_images

    recalibrated = copy.deepcopy(model)
    calibration = calibration_images(load_data_config(DATA), imgsz, 8, 16)
    recalibrate_bn(recalibrated, calibration)
    free, fixed = quantize_detector(recalibrated, imgsz, calibration, method, folder)
    return recalibrated, free, fixed


def accuracy(out: Path, named: list[tuple[str, Any]], imgsz: int, val: int) -> None:
    from evaluators.detection_eval import evaluate_detector
    from evaluators.onnx_detector import OnnxDetector

    path = out / f"accuracy-{imgsz}.json"
    done = json.loads(path.read_text()) if path.exists() else {}
    jobs = [(name, model, "minmax") for name, model in named]
    jobs += [(named[-1][0], named[-1][1], m) for m in ("entropy", "percentile")]
    for name, model, method in jobs:
        key = f"{name}/{method}"
        if key in done:
            continue
        with tempfile.TemporaryDirectory() as tmp:
            recalibrated, free, _ = quantized(model, imgsz, method, Path(tmp))
            fp32 = evaluate_detector(recalibrated, DATA, imgsz=imgsz, max_images=val)["map50_95"]
            int8 = evaluate_detector(OnnxDetector(free, threads=1), DATA, imgsz=imgsz, max_images=val)["map50_95"]
        done[key] = {"fp32": fp32, "int8": int8}
        path.write_text(json.dumps(done, indent=1))
        print(f"{imgsz}px {key}: mAP50-95 fp32 {fp32:.4f}, int8 {int8:.4f}", flush=True)


def latency(out: Path, named: list[tuple[str, Any]], imgsz: int, backend: str, threads: int) -> None:
    from evaluators.latency import LatencyEvaluator

    path = out / f"latency-{backend}-{imgsz}px-{threads}t.json"
    done = json.loads(path.read_text()) if path.exists() else {}
    evaluator = LatencyEvaluator(backend, threads=threads, runs=100, warmup=10, reference=named[0][1])
    evaluator.bind_run({"latency_scale": done["scale"]} if "scale" in done else {}, resumed="scale" in done,
                       imgsz=imgsz)
    done["scale"] = evaluator.reference_scale
    for name, model in named:
        if name in done:
            continue
        with tempfile.TemporaryDirectory() as tmp:
            _, _, fixed = quantized(model, imgsz, "minmax", Path(tmp))
            fp32 = evaluator.measure(model, imgsz)
            int8 = evaluator.measure_file(fixed, imgsz)
        done[name] = {"fp32_ms": fp32["latency_ms"], "int8_ms": int8["latency_ms"],
                      "fp32_p90_ms": fp32["latency_p90_ms"], "int8_p90_ms": int8["latency_p90_ms"]}
        path.write_text(json.dumps(done, indent=1))
        print(f"{backend} {imgsz}px {threads}t {name}: fp32 {fp32['latency_ms']:.2f} ms, "
              f"int8 {int8['latency_ms']:.2f} ms", flush=True)


def report(out: Path) -> str:
    lines = []
    for path in sorted(out.glob("accuracy-*.json")):
        done = json.loads(path.read_text())
        lines += [f"mAP50-95 on the proxy's val images, {path.stem.split('-')[1]} px (BN recalibrated)", "",
                  "| model | calibration | fp32 | INT8 | drop |", "|---|---|---:|---:|---:|"]
        lines += [f"| {k.split('/')[0]} | {k.split('/')[1]} | {v['fp32']:.4f} | {v['int8']:.4f} | "
                  f"{v['fp32'] - v['int8']:+.4f} |" for k, v in done.items()]
        lines.append("")
    tables = sorted(out.glob("latency-*.json"))
    if tables:
        lines += ["Latency, ms (p50 on the float base's paired scale; INT8 speed-up in brackets)", "",
                  "| model | " + " | ".join(p.stem[len("latency-"):] for p in tables) + " |",
                  "|---|" + "---:|" * len(tables)]
        data = [json.loads(p.read_text()) for p in tables]
        names = [n for n in data[0] if n != "scale"]
        for name in names:
            cells = [f"{d[name]['fp32_ms']:.2f} → {d[name]['int8_ms']:.2f} ({d[name]['fp32_ms'] / d[name]['int8_ms']:.2f}×)"
                     if name in d else "…" for d in data]
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
        cpu = data[0]["scale"].get("cpu", "?")
        lines += ["", f"CPU: {cpu}"]
    return "\n".join(lines) if lines else f"nothing measured yet in {out}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="~/archprune-runs/int8-table")
    parser.add_argument("--model", default=BASE)
    parser.add_argument("--run", default=None, help="take five front candidates of this run (default uniform baselines)")
    parser.add_argument("--val-images", type=int, default=200)
    parser.add_argument("--report", action="store_true")
    args = parser.parse_args()
    out = Path(args.out).expanduser()
    if not args.report:
        out.mkdir(parents=True, exist_ok=True)
        named = models(args.model, args.run)
        accuracy(out, named, 160, args.val_images)  # the size the bases were trained at
        for backend in ("ort", "openvino"):
            for imgsz in (160, 320):
                for threads in (1, 2):
                    latency(out, named, imgsz, backend, threads)
    print(report(out))


if __name__ == "__main__":
    main()
