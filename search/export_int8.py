"""``archprune export --int8``: the exported trial as the INT8 model its run scored (issue 18, item 2).

The pruned model's BatchNorm statistics are recalibrated on the run's training images and it is
quantized exactly as ``--precision int8`` scored it (``evaluators.int8``), into ``model-int8.onnx``
(batch 1 at the run's image size); how it was made goes into ``summary.json``.
"""
from __future__ import annotations

import copy
import shutil
from pathlib import Path
from typing import Any

from search.runs import RunHandle
from spaces.errors import ArchpruneError


def write_int8_export(handle: RunHandle, record: Any, out: Path, imgsz: int) -> dict[str, Any]:
    from evaluators.bn_recalibration import recalibrate_bn
    from evaluators.data import load_data_config
    from evaluators.int8 import RECIPE, quantize_detector
    from evaluators.proxy_accuracy import calibration_images
    from evaluators.runtimes import scratch_folder
    from spaces.models import load_model

    settings = handle.settings
    if not (out / "pruned.pt").is_file():
        raise ArchpruneError(f"--int8 quantizes the exported pruned.pt, which the {settings.space} space does not write")
    if not settings.data:
        raise ArchpruneError("--int8 needs the run's --data: its training images calibrate the quantization")
    data = load_data_config(settings.data)
    model = copy.deepcopy(load_model(str(out / "pruned.pt")))
    batches = calibration_images(data, imgsz, settings.calib_batches)
    recalibrate_bn(model, batches)
    with scratch_folder() as tmp:
        _, shipped = quantize_detector(model, imgsz, batches, settings.int8_calibration, Path(tmp))
        shutil.copyfile(shipped, out / "model-int8.onnx")
    scored = {k: record.metrics[k] for k in ("latency_int8_ms", "map50_95_int8", "map50_int8") if k in record.metrics}
    return {"file": "model-int8.onnx", **RECIPE, "calibration": settings.int8_calibration,
            "calibration_images": sum(len(b) for b in batches), "imgsz": imgsz,
            "mb": (out / "model-int8.onnx").stat().st_size / 1e6, **({"as_searched": scored} if scored else {})}
