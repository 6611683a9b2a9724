"""Static INT8 quantization of an exported detector with onnxruntime (issue 18).

``quantize_onnx`` is onnxruntime's ``quantize_static`` in the QDQ format with per-channel weights
(signed INT8 weights, unsigned INT8 activations: the pairing onnxruntime's CPU kernels are built
for), calibrated on images the caller gives (a search gives the training images adaptive BN uses).
``fixed_shape`` turns a model exported with free dimensions (the accuracy proxy runs it on
Ultralytics' rect batches) into one of fixed input size for timing, with onnxruntime's own tool.
"""
from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

from spaces.errors import ArchpruneError

CALIBRATION_METHODS = ("minmax", "entropy", "percentile")


def check_calibration_method(name: str) -> str:
    if name not in CALIBRATION_METHODS:
        raise ArchpruneError(f"unknown INT8 calibration method {name!r}; use {', '.join(CALIBRATION_METHODS)}")
    return name


def _method(name: str):  # noqa: ANN202 - onnxruntime's enum
    from onnxruntime.quantization import CalibrationMethod

    check_calibration_method(name)
    return {"minmax": CalibrationMethod.MinMax, "entropy": CalibrationMethod.Entropy,
            "percentile": CalibrationMethod.Percentile}[name]


class _Images:
    """onnxruntime's CalibrationDataReader protocol over a list of NCHW float32 arrays."""

    def __init__(self, input_name: str, images: Sequence[np.ndarray]) -> None:
        self.input_name, self.images, self.index = input_name, list(images), 0

    def get_next(self) -> dict[str, np.ndarray] | None:
        if self.index >= len(self.images):
            return None
        self.index += 1
        return {self.input_name: self.images[self.index - 1]}

    def rewind(self) -> None:
        self.index = 0


def calibration_arrays(batches: Iterable, batch: int | None = None) -> list[np.ndarray]:
    """Torch image batches (N, 3, H, W) as the float32 arrays a calibration reader feeds: whole
    batches when the model takes any batch size (``batch`` None), else split into ``batch``-sized ones."""
    out: list[np.ndarray] = []
    for images in batches:
        array = images.detach().cpu().numpy().astype(np.float32, copy=False)
        if batch is None:
            out.append(array)
        else:
            out += [array[i:i + batch] for i in range(0, len(array) - batch + 1, batch)]
    return out


def head_decode_nodes(model: Any, head: str, branches: Sequence[str] = ("cv2", "cv3")) -> list[str]:
    """The nodes of the detection head ``head`` (its module path, e.g. ``model.22``) that decode its
    outputs: everything in its scope but its conv branches. They stay in float: the decode
    concatenates box coordinates in pixels with class probabilities in [0, 1], and one INT8 scale
    for both rounds every score to 0 (mAP 0, measured), as the YOLO quantization guides warn."""
    scope = f"/{head}/"
    keep = tuple(f"{scope}{b}" for b in branches)
    return [n.name for n in model.graph.node if n.name.startswith(scope) and not n.name.startswith(keep)]


def quantize_onnx(src: str | os.PathLike, dst: str | os.PathLike, images: Sequence[np.ndarray],
                  method: str = "minmax", head: str | None = None) -> Path:
    """Write the INT8 (QDQ, per-channel) version of the float ONNX model ``src`` to ``dst``;
    ``head``: the detection head's module path, whose decode stays in float (``head_decode_nodes``)."""
    import onnx
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    if not images:
        raise ArchpruneError("INT8 calibration needs at least one image")
    dst = Path(dst)
    calibrate = _method(method)
    input_name = onnx.load(str(src), load_external_data=False).graph.input[0].name
    src, dst = Path(src).resolve(), dst.resolve()
    # onnxruntime's calibration writes scratch weight files into the working directory: work in ours
    with tempfile.TemporaryDirectory(prefix="archprune-int8-") as tmp, contextlib.chdir(tmp):
        prepared = Path(tmp) / "prepared.onnx"
        try:
            # shape inference and graph clean-up first, as onnxruntime recommends (ONNX's own shape
            # inference: the symbolic one gives up on free image sizes)
            quant_pre_process(str(src), str(prepared), skip_symbolic_shape=True)
            exclude = head_decode_nodes(onnx.load(str(prepared)), head) if head else None
            quantize_static(str(prepared), str(dst), _Images(input_name, images), quant_format=QuantFormat.QDQ,
                            per_channel=True, activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                            calibrate_method=calibrate, nodes_to_exclude=exclude)
        except ArchpruneError:
            raise
        except Exception as err:  # noqa: BLE001 - onnxruntime raises many types; the trial needs one line
            first = (str(err).strip().splitlines() or [type(err).__name__])[0][:200]
            raise ArchpruneError(f"INT8 quantization ({method} calibration) failed: {first}") from None
    return dst


def fixed_shape(src: str | os.PathLike, dst: str | os.PathLike, batch: int, imgsz: int) -> Path:
    """A copy of ``src`` whose free input dimensions are fixed to (batch, 3, imgsz, imgsz)."""
    import onnx
    from onnxruntime.tools.onnx_model_utils import fix_output_shapes, make_input_shape_fixed

    model = onnx.load(str(src))
    make_input_shape_fixed(model.graph, model.graph.input[0].name, [batch, 3, imgsz, imgsz])
    fix_output_shapes(model)
    onnx.save(model, str(dst))
    return Path(dst)
