"""Each candidate scored as the INT8 model a user would ship (issue 18, item 1).

The candidate's BatchNorm statistics are recalibrated as the float proxy's are (adaptive BN, on the
same training images), it is exported to ONNX and statically quantized by onnxruntime
(``evaluators.quantization``: QDQ, per-channel weights, calibrated on those same images), then:

- ``map50_95_int8`` / ``map50_int8``: the quantized file run through onnxruntime on the proxy's val
  images (the float proxy's subset and rect batches, so the two numbers compare);
- ``latency_int8_ms`` and the latency harness's other figures (``latency_int8_p90_ms`` ...): the
  quantized file of fixed input size timed like a float candidate (paired with the run's float
  reference, so float and INT8 latencies share one scale); in OpenVINO with ``--latency openvino``,
  which runs a QDQ ONNX model in INT8;
- ``model_int8_mb``: that file's size.

Pruning and quantization interact (a narrow layer quantizes worse), so a search over these metrics
ranks the models that will be deployed rather than their float parents.
"""
from __future__ import annotations

import copy
import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING, Any

from evaluators._base import Candidate, Evaluator, Metric, RunContext
from evaluators.latency import LatencyEvaluator
from evaluators.proxy_accuracy import calibration_images
from evaluators.quantization import calibration_arrays, check_calibration_method, fixed_shape, quantize_onnx
from spaces.errors import ArchpruneError

if TYPE_CHECKING:  # torch and the data pipeline load when a run quantizes, not for the metric table
    from evaluators.data import DataConfig


def int8_name(latency_metric: str) -> str:
    """``latency_p90_ms`` -> ``latency_int8_p90_ms``: the INT8 twin of a float latency metric."""
    return latency_metric.replace("latency_", "latency_int8_", 1)


ACCURACY = (Metric("map50_95_int8", "max", "mAP50-95 (INT8)", 0.0, 1.0), Metric("map50_int8", "max", "mAP50 (INT8)", 0.0, 1.0))
SIZE = Metric("model_int8_mb", "min", "MB", 0.0)
LATENCY = tuple(dataclasses.replace(m, name=int8_name(m.name)) for m in LatencyEvaluator.metrics)
#: what --precision int8 adds to every candidate's record
RECORDED = ("latency_int8_ms", "map50_95_int8", "map50_int8", "model_int8_mb")


def head_scope(model: Any) -> str | None:
    """The detection head's module path (its ONNX node scope), None for a model without one."""
    head = getattr(model, "head", None)
    return next((name for name, module in model.named_modules() if module is head), None) if head is not None else None


class Int8Evaluator(Evaluator):
    metrics = (*LATENCY, *ACCURACY, SIZE)
    on_target = True  # it times the quantized model on this machine
    needs_data = True  # calibration and val images
    cost = 20  # after the float metrics: an infeasible candidate is not quantized
    name = "int8"

    def __init__(self, data: DataConfig | str, imgsz: int, latency: LatencyEvaluator, calib_batches: int = 8,
                 batch_size: int = 16, val_images: int = 200, method: str = "minmax") -> None:
        from evaluators.data import DataConfig, load_data_config

        self.data = data if isinstance(data, DataConfig) else load_data_config(data)
        self.imgsz, self.val_images, self.method = imgsz, val_images, check_calibration_method(method)
        self.latency = latency
        if not latency._runtime().from_onnx:
            raise ArchpruneError("INT8 candidates are timed from their quantized ONNX file: use --latency ort "
                                 "(or openvino), not torch")
        self._calibration = calibration_images(self.data, imgsz, calib_batches, batch_size)  # decoded once
        self.directions = {**{int8_name(k): v for k, v in latency.directions.items()},
                           **{m.name: m.direction for m in (*ACCURACY, SIZE)}}

    @classmethod
    def for_run(cls, run: RunContext) -> "Int8Evaluator":
        settings = run.settings
        latency = LatencyEvaluator.for_run(run) if not settings.latency.startswith("predict:") else None
        if latency is None:  # a table predicts float latency; the INT8 file is measured
            reference = run.space.build(run.space.baselines()[0][1]) if run.space is not None else None
            latency = LatencyEvaluator.measuring(settings, reference)
        return cls(run.data, run.imgsz, latency, calib_batches=settings.calib_batches, val_images=settings.val_images,
                   method=settings.int8_calibration)

    def bind_run(self, stored: dict[str, Any], resumed: bool, imgsz: int) -> dict[str, Any]:
        # the float latency's scale when the run has one (the same reference, runtime and threads)
        return self.latency.bind_run(stored, resumed, imgsz)

    def evaluate(self, candidate: Candidate) -> dict[str, Any]:
        from evaluators.bn_recalibration import recalibrate_bn
        from evaluators.detection_eval import evaluate_detector
        from evaluators.onnx_detector import OnnxDetector
        from evaluators.runtimes import scratch_folder

        model = copy.deepcopy(candidate.model)  # the candidate keeps the base model's statistics
        recalibrate_bn(model, self._calibration)
        with scratch_folder() as tmp:
            free, shipped = quantize_detector(model, candidate.imgsz, self._calibration, self.method, Path(tmp))
            accuracy = evaluate_detector(OnnxDetector(free, threads=self.latency.threads), self.data,
                                         imgsz=candidate.imgsz, split="val", max_images=self.val_images)
            timed = self.latency.measure_file(shipped, candidate.imgsz)
            size_mb = shipped.stat().st_size / 1e6
        latency = {int8_name(k): v for k, v in timed.items() if k.startswith("latency_") and k != "latency_scheme"}
        return {**latency, "map50_95_int8": accuracy["map50_95"], "map50_int8": accuracy["map50"],
                "model_int8_mb": size_mb, "int8_calibration": self.method}


def quantize_detector(model: Any, imgsz: int, calibration: list, method: str, folder: Path) -> tuple[Path, Path]:
    """``model`` (BatchNorm already recalibrated) as INT8 ONNX in ``folder``: (free input size, to score
    on rect batches; batch 1 at ``imgsz``, to time and to ship), one quantization for both."""
    from evaluators.onnx_export import export_onnx

    free = export_onnx(model, folder / "float.onnx", imgsz=imgsz, dynamic=True)
    int8 = quantize_onnx(free, folder / "int8.onnx", calibration_arrays(calibration), method, head=head_scope(model))
    return int8, fixed_shape(int8, folder / "int8-fixed.onnx", batch=1, imgsz=imgsz)


#: how every INT8 file is made (recorded beside an exported one)
RECIPE = {"tool": "onnxruntime quantize_static", "format": "QDQ", "weights": "int8, per channel",
          "activations": "uint8, per tensor", "float": "the detection head's decode", "bn_recalibrated": True}
