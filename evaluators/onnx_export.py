"""Export a detector to ONNX and open it in onnxruntime."""
from __future__ import annotations

import os
import warnings
from pathlib import Path

import torch
from torch import nn

from spaces.errors import ArchpruneError
from spaces.output_files import atomic_output

OPSET = 17
DYNAMIC_AXES = {"images": {0: "batch", 2: "height", 3: "width"}, "output0": {0: "batch", 2: "anchors"}}


def _size(imgsz: int | tuple[int, int]) -> tuple[int, int]:
    return (imgsz, imgsz) if isinstance(imgsz, int) else (int(imgsz[0]), int(imgsz[1]))


def export_onnx(model: nn.Module, path: str | os.PathLike, imgsz: int | tuple[int, int] = 640,
                opset: int = OPSET, batch: int = 1, dynamic: bool = False) -> Path:
    """Write ``model`` as ONNX with a fixed batch, 1 by default (what edge runtimes measure; a
    throughput is measured at a larger one). ``dynamic``: batch, height and width left free (to
    score a model file on Ultralytics' rect batches, whose canvas changes from batch to batch).

    Uses the TorchScript exporter (``dynamo=False``): ~0.7 s for YOLOv8n where the dynamo path
    takes 4-9 s and needs onnxscript (see ../shared/DESIGN.md).
    """
    from spaces.models.repconv import deployed

    path = Path(path)
    h, w = _size(imgsz)
    model = deployed(model)  # RepConvs export fused, as deployed
    was_training = model.training
    model.eval()
    try:
        with warnings.catch_warnings(), atomic_output(path) as tmp:
            warnings.simplefilter("ignore")  # tracer warnings about python ints in shapes are expected
            torch.onnx.export(model, (torch.zeros(batch, 3, h, w),), str(tmp), dynamo=False, opset_version=opset,
                              input_names=["images"], output_names=["output0"], do_constant_folding=True,
                              dynamic_axes=DYNAMIC_AXES if dynamic else None)
    except ArchpruneError:  # a full disk or an unwritable path, already one line
        raise
    except Exception as err:  # noqa: BLE001 - the exporter raises many types; the user needs one line
        raise ArchpruneError(f"ONNX export to {path} failed: {str(err).strip().splitlines()[0][:200]}") from None
    finally:
        model.train(was_training)
    return path


def onnx_session(path: str | os.PathLike, providers: list[str] | None = None, threads: int | None = None):
    """An onnxruntime session; ``threads`` = intra-op threads (None: onnxruntime's default)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
    available = ort.get_available_providers()
    providers = providers or ["CPUExecutionProvider"]
    unknown = [p for p in providers if p not in available]
    if unknown:
        raise ArchpruneError(f"onnxruntime provider(s) {unknown} not available here; available: {available}")
    return ort.InferenceSession(str(path), sess_options=options, providers=providers)
