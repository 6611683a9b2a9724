"""Quantization-aware fine-tuning with NNCF (issue 18, item 3): ``archprune finetune --qat``.

torch 2.13's ``torch.ao.quantization`` is being retired, so the route is a maintained library.
NNCF (OpenVINO's compression framework) works on our own modules: ``nncf.quantize`` inserts
fake-quantizers (INT8, symmetric per-channel weights; activations as NNCF's default preset places
them) with scales calibrated on training images, and the model then trains as an ordinary
``nn.Module`` (scales included). ``nncf.strip`` turns it into a model that exports to ONNX as
QuantizeLinear / DequantizeLinear pairs, which onnxruntime and OpenVINO run in INT8. torchao's QAT
was the other candidate, but it converts to its own tensor subclasses, not to an ONNX file a CPU
runtime runs in INT8.

Two notes from trying it:

- NNCF compiles a small C++ extension for its CPU fake-quantize kernels the first time it runs
  (needs a C++ compiler; minutes on a 2-core machine; cached under ~/.cache/torch_extensions). It
  falls back to plain torch ops where it cannot compile. Its default 60 s limit on that step is
  lifted here (``NNCF_EXTENSION_LOAD_TIMEOUT=0`` unless set), so a slow first build does not fail.
- NNCF's default placement also quantizes the head's decode (the DFL softmax, box arithmetic):
  mAP50-95 0.768 against 0.896 float on digits-det. The decode is therefore excluded, as in the
  post-training INT8 path (``evaluators.quantization.head_decode_nodes``): every node downstream
  of the head's last convs stays float, and PTQ then gives 0.891.

The quantizer layout is NNCF's own config (``nncf.torch.get_config``), stored with a run's
training state, so ``--resume`` rebuilds the same quantized model before loading its weights.
"""
from __future__ import annotations

import collections
import copy
import json
import os
from pathlib import Path
from typing import Any, Sequence

import torch
from torch import nn

from spaces.errors import ArchpruneError

HOOK_PREFIX = "__nncf_hooks."  # where NNCF keeps its quantizers in a model's state_dict


def _nncf() -> Any:
    os.environ.setdefault("NNCF_EXTENSION_LOAD_TIMEOUT", "0")  # a slow first compile must not fail
    try:
        import nncf
        import nncf.torch  # noqa: F401 - the torch backend
    except ImportError as err:
        raise ArchpruneError(f"--qat needs NNCF: pip install nncf torchao (or archprune[qat]); {err}") from None
    return nncf


def decode_nodes(model: nn.Module, imgsz: int) -> list[str]:
    """NNCF graph names of every node downstream of the detection head's last convs (its decode)."""
    from nncf.torch.function_hook.nncf_graph.nncf_graph_builder import build_nncf_graph

    from evaluators.int8 import head_scope

    head = head_scope(model)
    if head is None:
        raise ArchpruneError("--qat quantizes a detector: this model has no detection head")
    graph = build_nncf_graph(model.eval(), torch.zeros(1, 3, imgsz, imgsz))
    finals = []
    for node in graph.get_all_nodes():  # the branches' last convs: the ones with a bias (no BN behind them)
        if node.node_type == "conv2d":
            inputs = [e.from_node.node_name for e in graph.get_input_edges(node)]
            if any(n.startswith((f"{head}.cv2.", f"{head}.cv3.")) for n in inputs) and \
                    any(n.endswith(".bias") for n in inputs):
                finals.append(node)
    if not finals:
        raise ArchpruneError(f"--qat: found no output convs of the head {head!r} (cv2 / cv3 branches)")
    seen: set[str] = set()
    queue = collections.deque(finals)
    while queue:
        for edge in graph.get_output_edges(queue.popleft()):
            if edge.to_node.node_name not in seen:
                seen.add(edge.to_node.node_name)
                queue.append(edge.to_node)
    return sorted(seen)


def quantize_for_training(model: nn.Module, calibration: Sequence[torch.Tensor], imgsz: int) -> nn.Module:
    """``model`` with NNCF fake-quantizers calibrated on ``calibration`` (image batches); the decode float."""
    nncf = _nncf()
    ignored = nncf.IgnoredScope(names=decode_nodes(model, imgsz), validate=False)
    images = sum(len(b) for b in calibration)
    try:
        quantized = nncf.quantize(model.eval(), nncf.Dataset(list(calibration)), subset_size=images,
                                  ignored_scope=ignored)
    except ArchpruneError:
        raise
    except Exception as err:  # noqa: BLE001 - NNCF raises many types; the user needs one line
        raise ArchpruneError(f"--qat: NNCF could not quantize the model: {str(err).strip().splitlines()[0][:200]}") from None
    return quantized


def quantizer_config(model: nn.Module) -> str:
    """NNCF's description of ``model``'s quantizers, as JSON text: it is stored with the training state,
    which checkpoints load without unpickling objects (NNCF's holds enums)."""
    from nncf.torch import get_config

    return json.dumps(get_config(model), default=lambda value: getattr(value, "value", str(value)))


def restore_quantizers(model: nn.Module, config: str, imgsz: int) -> nn.Module:
    """``model`` with the quantizers ``config`` describes (their values come with the state_dict)."""
    _nncf()
    from nncf.torch import load_from_config

    return load_from_config(model.eval(), json.loads(config))


def float_state(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A quantized model's state_dict without NNCF's quantizers: the float model's weights."""
    return {k: v for k, v in state.items() if not k.startswith(HOOK_PREFIX)}


def export_int8_onnx(model: nn.Module, path: str | os.PathLike, imgsz: int) -> Path:
    """The fine-tuned model as an INT8 (QDQ) ONNX file of batch 1 at ``imgsz``."""
    from evaluators.onnx_export import export_onnx

    nncf = _nncf()
    from nncf.torch.quantization.layers import QuantizerExportMode

    example = torch.zeros(1, 3, imgsz, imgsz)
    stripped = nncf.strip(copy.deepcopy(model).eval(), example_input=example)
    for module in stripped.modules():  # what stays a quantizer exports as standard ONNX ops, not
        if hasattr(module, "set_export_mode"):  # OpenVINO's FakeQuantize (onnxruntime has no kernel for it)
            module.set_export_mode(QuantizerExportMode.ONNX_QUANTIZE_DEQUANTIZE_PAIRS)
    return export_onnx(stripped, path, imgsz=imgsz)
