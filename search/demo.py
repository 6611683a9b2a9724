"""``archprune demo``: the most complete slice of the main job on the embedded default.

Until the channel search and the trained embedded model exist, the demo loads the built-in
YOLOv8n detector, builds the digits-det dataset, evaluates it, exports it to ONNX and measures
onnxruntime latency, printing every number and writing them to ``<out>/summary.json``.
"""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

DEMO_MODEL = "yolov8n"  # randomly initialised: no trained embedded weights ship yet
DEMO_DATA = "digits-det"
DEMO_IMGSZ = 160  # digits-det's native size


def _say(quiet: bool, text: str) -> None:
    if not quiet:
        print(text, flush=True)


def run_demo(out: Path, as_json: bool = False) -> dict[str, Any]:
    from evaluators.data import load_data_config
    from evaluators.detection_eval import evaluate_detector
    from evaluators.latency import measure_onnx_latency
    from evaluators.onnx_export import export_onnx
    from search.cli import load_for_data
    from spaces.models import save_checkpoint

    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    data = load_data_config(DEMO_DATA)
    _say(as_json, f"[1/4] data      {DEMO_DATA}: {len(data.images('train'))} train / {len(data.images('val'))} val "
                  f"images, {data.nc} classes ({data.yaml_path}) in {time.perf_counter() - t0:.1f}s")

    model = load_for_data(DEMO_MODEL, data)
    model.imgsz = DEMO_IMGSZ
    params_m = sum(p.numel() for p in model.parameters()) / 1e6
    checkpoint = save_checkpoint(model, out / "model.pt", meta={"note": "random init, demo"})
    _say(as_json, f"[2/4] model     {DEMO_MODEL} (random init, untrained), {params_m:.3f} M params -> {checkpoint}")

    t1 = time.perf_counter()
    result = evaluate_detector(model, data, imgsz=DEMO_IMGSZ, split="val", progress=not as_json)
    _say(as_json, f"[3/4] eval      mAP50-95 {result['map50_95']:.4f}  mAP50 {result['map50']:.4f} on "
                  f"{result['images']} val images, {result['images_per_s']:.1f} images/s "
                  f"({time.perf_counter() - t1:.1f}s; untrained weights score ~0)")

    onnx_path = export_onnx(model, out / "model.onnx", imgsz=DEMO_IMGSZ)
    latency = measure_onnx_latency(onnx_path, DEMO_IMGSZ)
    _say(as_json, f"[4/4] latency   onnxruntime {latency['provider']}: median {latency['latency_ms']:.2f} ms, "
                  f"p90 {latency['latency_p90_ms']:.2f} ms at {DEMO_IMGSZ}px, batch 1 ({latency['cpu']})")

    summary = {
        "model": DEMO_MODEL, "data": str(data.yaml_path), "imgsz": DEMO_IMGSZ, "params_m": params_m,
        "map50_95": result["map50_95"], "map50": result["map50"], "images": result["images"],
        "images_per_s": result["images_per_s"], **latency,
        "onnx": str(onnx_path), "checkpoint": str(checkpoint),
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    _say(as_json, f"wrote {out / 'summary.json'} in {time.perf_counter() - t0:.1f}s total")
    return summary
