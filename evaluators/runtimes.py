"""The runtimes a latency is measured in: onnxruntime (``ort``), Intel's OpenVINO (``openvino``) and
torch eager (``torch``). Each turns a model into a one-inference callable at a fixed input, and says
what it ran on (provenance), so every latency names its runtime, device and thread count."""
from __future__ import annotations

import abc
import tempfile
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch import nn

from evaluators.onnx_export import export_onnx, onnx_session
from spaces.errors import ArchpruneError

Inference = Callable[[], Any]
#: the thread count latency is measured with unless the target's is given: one thread measured stable
#: within 4% on this project's 2-core VM where two (onnxruntime's "all cores") ran bimodal
#: (BENCHMARKS.md), and one inference thread is what a single-stream edge app usually gets. Give the
#: target's own count (--threads N) when the deployed app uses more.
DEFAULT_THREADS = 1


class Runtime(abc.ABC):
    name: str = ""
    #: True: the model runs from an exported ONNX file (exported once, reused per session)
    from_onnx: bool = True

    def __init__(self, threads: int | None = None, providers: list[str] | None = None) -> None:
        self.threads, self.providers = threads or DEFAULT_THREADS, providers

    @abc.abstractmethod
    def load(self, source: nn.Module | Path, imgsz: int, batch: int = 1) -> Inference:
        """A callable that runs one inference of ``source`` (a module, or an ONNX file for ``from_onnx``)."""

    @abc.abstractmethod
    def provenance(self) -> dict[str, Any]:
        """Runtime version, device and threads, stored beside every measurement."""

    def prepare(self, model: nn.Module, imgsz: int, folder: Path, name: str = "model", batch: int = 1) -> nn.Module | Path:
        """What ``load`` takes: the ONNX file exported into ``folder``, or the module itself."""
        if not self.from_onnx:
            return model
        return export_onnx(model, folder / f"{name}.onnx", imgsz=imgsz, batch=batch)


def _input(imgsz: int, batch: int) -> np.ndarray:
    return np.random.default_rng(0).random((batch, 3, imgsz, imgsz), dtype=np.float32)


class OrtRuntime(Runtime):
    name = "ort"

    def load(self, source: nn.Module | Path, imgsz: int, batch: int = 1) -> Inference:
        session = onnx_session(source, providers=self.providers, threads=self.threads)
        feed = {session.get_inputs()[0].name: _input(imgsz, batch)}
        return lambda: session.run(None, feed)

    def provenance(self) -> dict[str, Any]:
        import onnxruntime as ort

        # threads 0 = onnxruntime's default (all cores)
        return {"runtime": f"onnxruntime {ort.__version__}", "onnxruntime": ort.__version__,
                "provider": (self.providers or ["CPUExecutionProvider"])[0], "threads": self.threads or 0}


def openvino_core() -> Any:
    try:
        import openvino as ov
    except ImportError:
        raise ArchpruneError("OpenVINO is not installed here: pip install openvino (or archprune[openvino]); "
                             "on a machine it does not support, use --latency ort") from None
    return ov


class OpenVINORuntime(Runtime):
    """OpenVINO's own runtime on the CPU device with the latency hint (how edge users deploy YOLO).

    In float32: on a CPU with bfloat16 units OpenVINO's default is bf16 inference, whose outputs differ
    from the model's by up to 4% (measured on this project's Xeon), which would time another model
    than the one onnxruntime and the accuracy proxy score. INT8 is issue 18's."""

    name = "openvino"
    device = "CPU"
    precision = "f32"

    def _config(self) -> dict[str, str]:
        config = {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_PRECISION_HINT": self.precision}
        if self.threads:
            config["INFERENCE_NUM_THREADS"] = str(self.threads)
        return config

    def load(self, source: nn.Module | Path, imgsz: int, batch: int = 1) -> Inference:
        ov = openvino_core()
        compiled = ov.Core().compile_model(str(source), self.device, self._config())
        request, x = compiled.create_infer_request(), _input(imgsz, batch)
        return lambda: request.infer({0: x})

    def provenance(self) -> dict[str, Any]:
        ov = openvino_core()
        core = ov.Core()
        return {"runtime": f"openvino {ov.__version__.split('-')[0]}", "onnxruntime": "",
                "provider": f"{self.device} ({core.get_property(self.device, 'FULL_DEVICE_NAME')})",
                "hint": "LATENCY", "precision": self.precision, "threads": self.threads or 0}


class TorchRuntime(Runtime):
    name = "torch"
    from_onnx = False

    def load(self, source: nn.Module | Path, imgsz: int, batch: int = 1) -> Inference:
        from spaces.models.repconv import deployed

        assert isinstance(source, nn.Module)
        model, x = deployed(source).eval(), torch.from_numpy(_input(imgsz, batch))

        def run() -> Any:
            with torch.no_grad():
                return model(x)
        return run

    def provenance(self) -> dict[str, Any]:
        return {"runtime": f"torch {torch.__version__}", "onnxruntime": "", "provider": f"torch {torch.__version__}",
                "threads": self.threads or torch.get_num_threads()}


RUNTIMES: dict[str, type[Runtime]] = {"ort": OrtRuntime, "openvino": OpenVINORuntime, "torch": TorchRuntime}


def make_runtime(name: str, threads: int | None = None, providers: list[str] | None = None) -> Runtime:
    if name not in RUNTIMES:
        raise ArchpruneError(f"unknown runtime {name!r}; use {', '.join(map(repr, RUNTIMES))}")
    return RUNTIMES[name](threads, providers)


class torch_threads:
    """``torch.set_num_threads(n)`` for a block (torch eager reads it), restored after."""

    def __init__(self, threads: int | None) -> None:
        self.threads, self.previous = threads, torch.get_num_threads()

    def __enter__(self) -> None:
        if self.threads:
            torch.set_num_threads(self.threads)

    def __exit__(self, *exc: Any) -> None:
        torch.set_num_threads(self.previous)


def scratch_folder() -> tempfile.TemporaryDirectory:
    return tempfile.TemporaryDirectory(prefix="archprune-runtime-")
