"""archprune's own checkpoint: the architecture as plain data plus a state dict.

Everything in it is a dict, list, string, number or tensor, so it loads with
``torch.load(weights_only=True)`` and never executes pickled code.
"""
from __future__ import annotations

import hashlib
import io
import os
from pathlib import Path
from typing import Any

import torch

from ..errors import ArchpruneError
from ..output_files import atomic_output
from .architecture import architecture_of, build_from_architecture
from .yolo import YOLODetector

FORMAT = "archprune-checkpoint"
VERSION = 1


def save_checkpoint(model: YOLODetector, path: str | os.PathLike, meta: dict[str, Any] | None = None,
                    half: bool = False) -> Path:
    """Write ``model`` to ``path`` atomically. ``half`` stores float weights as fp16 (half the size)."""
    path = Path(path)
    # a quantization-aware model's NNCF quantizers stay out: the checkpoint is the float model
    # (training state for --resume keeps them; the INT8 model is its own ONNX file)
    state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items() if not k.startswith("__nncf_hooks.")}
    if half:
        state = {k: v.half() if v.is_floating_point() else v for k, v in state.items()}
    meta = dict(meta or {})
    if getattr(model, "channel_order", None):  # an elastic base: the order its sub-networks were trained in
        meta["channel_order"] = {k: list(v) for k, v in model.channel_order.items()}
    payload = {"format": FORMAT, "version": VERSION, "architecture": architecture_of(model),
               "state_dict": state, "meta": meta}
    buffer = io.BytesIO()  # torch.save to a path fails in C++ (a RuntimeError) on a read-only or full disk
    torch.save(payload, buffer)
    with atomic_output(path) as tmp:  # a crash or a full disk mid-write never leaves a truncated checkpoint
        tmp.write_bytes(buffer.getbuffer())
    return path


def state_dict_sha256(model: torch.nn.Module) -> str:
    """A fingerprint of a model's weights (names, dtypes, shapes, float32 values), independent of
    the file they came from: the same base in fp16 or fp32 files hashes alike once loaded."""
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        t = tensor.detach().cpu().contiguous()
        digest.update(f"{name}:{t.dtype}:{tuple(t.shape)};".encode())
        digest.update(t.numpy().tobytes())
    return digest.hexdigest()


def is_archprune_checkpoint(obj: Any) -> bool:
    return isinstance(obj, dict) and obj.get("format") == FORMAT


def _channel_order(value: Any) -> dict[str, list[int]] | None:
    if value is None:
        return None
    if not isinstance(value, dict) or not all(isinstance(v, list) for v in value.values()):
        raise ArchpruneError("channel_order is not a mapping of group names to channel lists")
    return {str(k): [int(i) for i in v] for k, v in value.items()}


def reject_non_finite(state: dict[str, Any], path: Path) -> None:
    """A NaN or inf weight is damage (a bad write, a diverged run): fail at load, not as a NaN mAP."""
    for name, value in state.items():
        if isinstance(value, torch.Tensor) and value.is_floating_point() and not torch.isfinite(value).all():
            raise ArchpruneError(f"checkpoint {path} is corrupt: {name} has non-finite values; "
                                 "re-export or re-download it")


def detector_from_checkpoint(obj: dict[str, Any], path: Path) -> YOLODetector:
    """Rebuild the model stored in an archprune checkpoint already read with weights_only=True."""
    if obj.get("version", 0) > VERSION:
        raise ArchpruneError(f"{path}: written by a newer archprune (format version {obj['version']}); upgrade archprune")
    try:
        model = build_from_architecture(obj["architecture"])
        state = {k: v.float() if v.is_floating_point() else v for k, v in obj["state_dict"].items()}
        model.load_state_dict(state)
        model.channel_order = _channel_order(obj.get("meta", {}).get("channel_order"))
    except ArchpruneError as err:
        raise ArchpruneError(f"{path}: {err}") from None
    except (KeyError, RuntimeError, TypeError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ArchpruneError(f"{path}: damaged archprune checkpoint ({first})") from None
    reject_non_finite(model.state_dict(), path)
    return model.eval()
