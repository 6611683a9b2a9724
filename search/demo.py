"""``archprune demo``: the most complete slice of the main job on the embedded default.

Until the channel search exists, the demo loads the embedded trained detector (yolov8n-digits),
builds the digits-det dataset it was trained on, evaluates it, counts its FLOPs, exports it to
ONNX and measures onnxruntime latency, printing every number and writing them to
``<out>/summary.json``.
"""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

DEMO_MODEL = "yolov8n-digits"  # shipped inside the package, trained by `archprune train` on digits-det
DEMO_DATA = "digits-det"


def _say(quiet: bool, text: str) -> None:
    if not quiet:
        print(text, flush=True)


def run_demo(out: Path, as_json: bool = False) -> dict[str, Any]:
    from evaluators.data import load_data_config
    from evaluators.detection_eval import check_classes, evaluate_detector
    from evaluators.flops import count_flops_params
    from evaluators.latency import measure_onnx_latency
    from evaluators.onnx_export import export_onnx
    from spaces.models import load_model

    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    data = load_data_config(DEMO_DATA)
    _say(as_json, f"[1/4] data      {DEMO_DATA}: {len(data.images('train'))} train / {len(data.images('val'))} val "
                  f"images, {data.nc} classes ({data.yaml_path}) in {time.perf_counter() - t0:.1f}s")

    model = load_model(DEMO_MODEL)
    check_classes(model, data)
    imgsz = model.imgsz  # the size it was trained at
    cost = count_flops_params(model, imgsz)
    _say(as_json, f"[2/4] model     {DEMO_MODEL}: {cost['params_m']:.3f} M params, {cost['flops_g']:.3f} GFLOPs "
                  f"at {imgsz}px")

    t1 = time.perf_counter()
    result = evaluate_detector(model, data, imgsz=imgsz, split="val", progress=not as_json)
    _say(as_json, f"[3/4] eval      mAP50-95 {result['map50_95']:.4f}  mAP50 {result['map50']:.4f} on "
                  f"{result['images']} val images, {result['images_per_s']:.1f} images/s "
                  f"({time.perf_counter() - t1:.1f}s)")

    onnx_path = export_onnx(model, out / "model.onnx", imgsz=imgsz)
    latency = measure_onnx_latency(onnx_path, imgsz)
    _say(as_json, f"[4/4] latency   onnxruntime {latency['provider']}: median {latency['latency_ms']:.2f} ms, "
                  f"p90 {latency['latency_p90_ms']:.2f} ms at {imgsz}px, batch 1 ({latency['cpu']})")

    summary = {
        "model": DEMO_MODEL, "data": str(data.yaml_path), "imgsz": imgsz, **cost,
        "map50_95": result["map50_95"], "map50": result["map50"], "images": result["images"],
        "images_per_s": result["images_per_s"], **latency, "onnx": str(onnx_path),
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    _say(as_json, f"wrote {out / 'summary.json'} in {time.perf_counter() - t0:.1f}s total")
    return summary
