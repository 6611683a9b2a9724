"""An exported detector file (fp32 or INT8 ONNX) run by onnxruntime behind the module interface the
evaluation loop calls, so a shipped artefact is scored by exactly the code that scores a model."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from spaces.errors import ArchpruneError


class OnnxDetector(nn.Module):
    """``forward(images)`` runs the ONNX file on the batch and returns its ``(N, 4 + nc, anchors)``
    output as a tensor. ``fixed``: the file's input size when it has one (then it is scored on
    square letterboxed images, one batch of its size at a time), else None."""

    def __init__(self, path: str | os.PathLike, threads: int | None = None) -> None:
        super().__init__()
        from evaluators.onnx_export import onnx_session

        self.path = Path(path)
        if not self.path.is_file():
            raise ArchpruneError(f"no ONNX file at {self.path}")
        try:
            self.session = onnx_session(self.path, threads=threads)
        except ArchpruneError:
            raise
        except Exception as err:  # noqa: BLE001 - onnxruntime's load errors: one line for the user
            raise ArchpruneError(f"{self.path} does not load in onnxruntime: "
                                 f"{(str(err).strip().splitlines() or ['?'])[0][:200]}") from None
        inputs, outputs = self.session.get_inputs(), self.session.get_outputs()
        shape, out = inputs[0].shape, outputs[0].shape
        self.input_name = inputs[0].name
        fixed = len(shape) == 4 and all(isinstance(d, int) for d in shape)
        self.fixed: tuple[int, int, int] | None = (shape[0], shape[2], shape[3]) if fixed else None
        self.imgsz: int | None = shape[2] if fixed and shape[2] == shape[3] else None
        if len(shape) == 4 and len(out) == 3 and not isinstance(out[1], int):  # a free dimension: ask the model
            probe = (shape[0], 3, shape[2], shape[3]) if fixed else (1, 3, 64, 64)
            out = self.session.run(None, {self.input_name: np.zeros(probe, np.float32)})[0].shape
        if len(shape) != 4 or len(out) != 3 or out[1] <= 4:
            raise ArchpruneError(f"{self.path} is not a detector archprune exported: input {shape}, output {out} "
                                 "(expected images (N, 3, H, W) -> (N, 4 + classes, anchors))")
        self.nc = int(out[1]) - 4

    def forward(self, images: Tensor) -> Tensor:  # noqa: D102
        array = images.detach().cpu().numpy().astype(np.float32, copy=False)
        if self.fixed is None:
            return torch.from_numpy(self.session.run(None, {self.input_name: array})[0])
        batch, height, width = self.fixed
        if array.shape[2:] != (height, width):
            raise ArchpruneError(f"{self.path} takes {height}x{width} images, got {array.shape[2]}x{array.shape[3]}: "
                                 "score it at its own size (square letterbox)")
        outputs = []
        for start in range(0, len(array), batch):  # the file's own batch size; the last chunk padded
            chunk = array[start:start + batch]
            padded = np.concatenate([chunk, np.zeros((batch - len(chunk), *chunk.shape[1:]), np.float32)])
            outputs.append(self.session.run(None, {self.input_name: padded})[0][:len(chunk)])
        return torch.from_numpy(np.concatenate(outputs))
