"""Load Ultralytics ``.pt`` detection checkpoints without ultralytics, and without running
arbitrary pickled code.

Ultralytics pickles whole ``nn.Module`` objects. We unpickle them through an allow-list: torch's
tensor rebuilders and a few torch.nn layer classes are real, every class under Ultralytics'
``ultralytics.nn`` namespace becomes an empty stand-in ``nn.Module`` (rebuilt by ``__setstate__``
only, so no Ultralytics code exists to run), and any other global is refused with its name. The
stand-in tree yields the yaml, class names and a state dict, which are mapped onto our own model.
"""
from __future__ import annotations

import pickle
import re
import types
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..errors import ArchpruneError
from .checkpoint import reject_non_finite
from .yolo import YOLODetector, check_spec

# Real objects a checkpoint may reference. Anything else outside Ultralytics' nn namespace is refused.
_ALLOWED: dict[tuple[str, str], Any] = {
    ("collections", "OrderedDict"): __import__("collections").OrderedDict,
    ("builtins", "set"): set,
    ("builtins", "frozenset"): frozenset,
    ("builtins", "slice"): slice,
    ("torch._utils", "_rebuild_tensor_v2"): torch._utils._rebuild_tensor_v2,
    ("torch._utils", "_rebuild_parameter"): torch._utils._rebuild_parameter,
    ("torch", "Size"): torch.Size,
    ("torch", "float16"): torch.float16,
    ("torch", "float32"): torch.float32,
    ("torch.nn.modules.conv", "Conv2d"): nn.Conv2d,
    ("torch.nn.modules.batchnorm", "BatchNorm2d"): nn.BatchNorm2d,
    ("torch.nn.modules.activation", "SiLU"): nn.SiLU,
    ("torch.nn.modules.linear", "Identity"): nn.Identity,
    ("torch.nn.modules.pooling", "MaxPool2d"): nn.MaxPool2d,
    ("torch.nn.modules.upsampling", "Upsample"): nn.Upsample,
    ("torch.nn.modules.container", "Sequential"): nn.Sequential,
    ("torch.nn.modules.container", "ModuleList"): nn.ModuleList,
}
# numpy scalars (e.g. a best_fitness of numpy.float64) pickle through these; they build data only.
_NUMPY_SCALARS = {("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
                  ("numpy", "dtype"), ("_codecs", "encode")}
_PY2_MODULES = {"__builtin__": "builtins", "_codecs": "_codecs", "copy_reg": "copyreg"}
_STAND_IN_MODULES = re.compile(r"^ultralytics\.nn(\.tasks|\.modules(\.[a-z_]+)?)$")
_CLASS_NAME = re.compile(r"^[A-Z][A-Za-z0-9_]*$")


class _StandIn(nn.Module):
    """Placeholder for an Ultralytics class: holds the pickled state, has no behaviour."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__()


class DisallowedGlobal(ArchpruneError):
    pass


def _make_unpickler(path: Path) -> type[pickle.Unpickler]:
    stand_ins: dict[tuple[str, str], type] = {}

    class AllowListUnpickler(pickle.Unpickler):
        def find_class(self, module: str, name: str) -> Any:
            # Protocol-2 pickles use Python 2 names; the default find_class maps them (fix_imports).
            module = _PY2_MODULES.get(module, module)
            key = (module, name)
            if key in _ALLOWED:
                return _ALLOWED[key]
            if key in _NUMPY_SCALARS:
                return super().find_class(module, name)
            if _STAND_IN_MODULES.match(module) and _CLASS_NAME.match(name):
                if key not in stand_ins:
                    stand_ins[key] = type(name, (_StandIn,), {"__module__": module})
                return stand_ins[key]
            raise DisallowedGlobal(f"{path}: refused to load: the pickle references {module}.{name}, "
                                   "which is not on archprune's allow-list of checkpoint globals")

    return AllowListUnpickler


def read_ultralytics_checkpoint(path: Path) -> dict[str, Any]:
    """Unpickle an Ultralytics checkpoint through the allow-list (no Ultralytics code runs)."""
    pickle_module = types.SimpleNamespace(Unpickler=_make_unpickler(path), load=pickle.load,
                                          __name__="archprune_allowlist_pickle")
    # weights_only=False is required to pass our own unpickler; the allow-list is the safety.
    return torch.load(path, map_location="cpu", weights_only=False, pickle_module=pickle_module)


def _names_list(names: Any, nc: int) -> list[str]:
    if isinstance(names, dict):
        return [str(names.get(i, i)) for i in range(nc)]
    if isinstance(names, (list, tuple)) and len(names) == nc:
        return [str(n) for n in names]
    return [str(i) for i in range(nc)]


def _trained_imgsz(ckpt: dict[str, Any], source: nn.Module) -> int | None:
    for args in (ckpt.get("train_args"), getattr(source, "args", None)):
        if isinstance(args, dict) and args.get("imgsz"):
            size = args["imgsz"]
            return int(max(size)) if isinstance(size, (list, tuple)) else int(size)
    return None


def _split_state_dict(src: dict[str, torch.Tensor], model: YOLODetector, path: Path) -> dict[str, torch.Tensor]:
    """Map Ultralytics' names onto ours: a fused ``cv1`` becomes its two halves ``cv1a``/``cv1b``."""
    target = model.state_dict()
    out: dict[str, torch.Tensor] = {}
    for key, value in src.items():
        value = value.float() if value.is_floating_point() else value
        if key in target:
            out[key] = value
            continue
        prefix, sep, rest = key.partition(".cv1.")
        a_key, b_key = f"{prefix}.cv1a.{rest}", f"{prefix}.cv1b.{rest}"
        if sep and a_key in target and b_key in target:
            if value.ndim == 0:  # num_batches_tracked
                out[a_key], out[b_key] = value.clone(), value.clone()
            else:
                half = target[a_key].shape[0]
                out[a_key], out[b_key] = value[:half].clone(), value[half:].clone()
            continue
        raise ArchpruneError(f"{path}: weight {key!r} has no place in the model its yaml describes")
    missing = sorted(set(target) - set(out))
    if missing:
        raise ArchpruneError(f"{path}: checkpoint lacks {len(missing)} weight(s) of its model, first {missing[0]!r}")
    for key, value in out.items():
        if value.shape != target[key].shape:
            raise ArchpruneError(f"{path}: weight {key!r} has shape {tuple(value.shape)}, its yaml implies "
                                 f"{tuple(target[key].shape)} (a modified or pruned Ultralytics model is not supported)")
    return out


def ultralytics_to_detector(ckpt: Any, path: Path) -> YOLODetector:
    """Rebuild an unpickled Ultralytics checkpoint as our ``YOLODetector`` (fp32, eval mode)."""
    if not isinstance(ckpt, dict) or not isinstance(ckpt.get("ema") or ckpt.get("model"), nn.Module):
        raise ArchpruneError(f"{path}: not an Ultralytics checkpoint (no 'model' entry holding a network)")
    source = ckpt.get("ema") or ckpt["model"]
    kind = type(source).__name__
    if kind != "DetectionModel":
        raise ArchpruneError(f"{path}: unsupported family: {kind} (archprune loads YOLOv8 and YOLO11 detection models)")
    spec = getattr(source, "yaml", None)
    if not isinstance(spec, dict):
        raise ArchpruneError(f"{path}: the checkpoint's model has no yaml dict describing its layers")
    check_spec(spec, where=str(path))
    nc = int(getattr(source, "nc", None) or spec.get("nc") or 80)
    spec = {k: v for k, v in spec.items() if k in ("scales", "scale", "backbone", "head",
                                                   "depth_multiple", "width_multiple", "max_channels")}
    model = YOLODetector(spec, nc=nc, names=_names_list(getattr(source, "names", None), nc))
    state = source.state_dict()
    reject_non_finite(state, path)
    model.load_state_dict(_split_state_dict(state, model, path))
    model.imgsz = _trained_imgsz(ckpt, source)
    return model.float().eval()
