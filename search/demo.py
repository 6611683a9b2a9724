"""``archprune demo``: the main job on the embedded default.

The shipped elastic base ``yolov8n-digits-elastic`` (``yolov8n-digits`` trained so that every
channel genome is a working sub-network) on the ``digits-det`` data it was trained on: a short
NSGA-II channel-pruning search over measured onnxruntime latency, GFLOPs and adaptive-BN mAP,
then the front as a table and as plots. The run lives in ``results/demo`` like any other, so
running the demo again resumes (or simply re-reports) it.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any

# Shipped inside the package. The elastic base, not the plain one: on the plain base adaptive-BN mAP
# reads ~0 for every candidate below ~75% of its FLOPs (a cliff, nothing to rank); on the elastic
# base it falls gradually with cost (BENCHMARKS.md, issue 13).
DEMO_MODEL = "yolov8n-digits-elastic"
DEMO_DATA = "digits-det"
DEMO_OBJECTIVES = "latency_ms:min,flops_g:min,map50_95:max"
DEMO_TRIALS = 96  # 16 first-generation candidates + 5 generations of 16
# The proxy's val images. The search default (200) made the demo take 19 minutes once evaluation
# followed `yolo val` (multi-label NMS keeps up to 300 boxes an image, the rect canvas is 192 px);
# 100 images halve the proxy's cost per candidate (BENCHMARKS.md has the demo's time).
DEMO_VAL_IMAGES = 100


def run_demo(out: Path, trials: int = DEMO_TRIALS, progress: bool = True) -> dict[str, Any]:
    from evaluators.data import load_data_config
    from search.job import run_search
    from search.report import report_front
    from search.settings import RunSettings

    start = time.perf_counter()
    data = load_data_config(DEMO_DATA)
    print(f"[1/3] data    {DEMO_DATA}: {len(data.images('train'))} train / {len(data.images('val'))} val images, "
          f"{data.nc} classes ({data.yaml_path}) in {time.perf_counter() - start:.1f}s", flush=True)
    settings = RunSettings(model=DEMO_MODEL, data=DEMO_DATA, objectives=DEMO_OBJECTIVES, trials=trials,
                           driver="nsga2", population=16, offspring=16, latency_runs=20, val_images=DEMO_VAL_IMAGES,
                           run=out.name,
                           results=str(out.parent))
    print(f"[2/3] search  NSGA-II, {trials} candidates: channel-pruned {DEMO_MODEL}, each built, exported to ONNX, "
          "timed in onnxruntime and scored by mAP50-95 after BatchNorm recalibration", flush=True)
    result = run_search(settings, progress=progress, say=lambda line: print("        " + line, flush=True))
    print(f"[3/3] front   {len(result.front)} non-dominated of {len(result.store)} trials "
          f"({time.perf_counter() - start:.0f}s so far)", flush=True)
    report = report_front(result.store, settings.run_name(), settings.run_dir(), as_json=False, hv_ref=None,
                          plots=True)
    print(f"done in {time.perf_counter() - start:.0f}s. Open {settings.run_dir() / 'pareto.png'}; export a candidate "
          f"with: archprune export {settings.run_dir()} --pick (or --trial N)")
    return report
