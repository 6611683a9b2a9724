"""A detector's architecture as plain data, so a pruned model can be rebuilt exactly.

The layer spec gives the nominal model; the channel layout records every conv's in/out channel
count and groups, every BatchNorm's width and every attention block's head sizes. Rebuilding
replaces the modules whose recorded shape differs from the nominal one, then the state dict fills
them. Plain dicts, lists, strings and numbers only: it must load with ``weights_only=True``.
"""
from __future__ import annotations

import copy
from typing import Any

from torch import nn

from ..errors import ArchpruneError
from ..plugin_registry import Registry
from .blocks import Attention, C3k, _SplitCSP
from .yolo import YOLODetector

#: architecture kind (the ``kind`` of a checkpoint's architecture) -> the function that builds it. By
#: import path: the block space's detector is built from spaces/blocks, which itself builds on the
#: layers of this package, so naming it here (not importing it) keeps the two packages acyclic.
ARCHITECTURES: Registry[Any] = Registry("architecture kind", "archprune.architectures", {
    "yolo": "spaces.models.architecture:build_yolo",
    "blocks": "spaces.blocks.detector:build_block_detector",
})


def channel_layout(model: nn.Module) -> dict[str, dict[str, list[int]]]:
    """Per-layer channel counts of ``model`` (convs, BatchNorms, attention heads)."""
    layout: dict[str, dict[str, list[int]]] = {"conv": {}, "bn": {}, "attention": {}}
    for name, module in model.named_modules():
        if isinstance(module, nn.Conv2d):
            layout["conv"][name] = [module.in_channels, module.out_channels, module.groups]
        elif isinstance(module, nn.BatchNorm2d):
            layout["bn"][name] = [module.num_features]
        elif isinstance(module, Attention):
            layout["attention"][name] = [module.num_heads, module.key_dim, module.head_dim]
    return layout


def _replace(model: nn.Module, name: str, new: nn.Module) -> None:
    parent_name, _, child = name.rpartition(".")
    setattr(model.get_submodule(parent_name) if parent_name else model, child, new)


def apply_channel_layout(model: nn.Module, layout: dict[str, dict[str, list[int]]]) -> None:
    """Resize ``model``'s layers in place to the recorded layout (weights are re-initialised)."""
    modules = dict(model.named_modules())
    for name, (c_in, c_out, groups) in layout.get("conv", {}).items():
        conv = modules.get(name)
        if not isinstance(conv, nn.Conv2d):
            raise ArchpruneError(f"architecture names conv {name!r}, which the model does not have")
        if (conv.in_channels, conv.out_channels, conv.groups) != (c_in, c_out, groups):
            _replace(model, name, nn.Conv2d(c_in, c_out, conv.kernel_size, conv.stride, conv.padding,
                                            conv.dilation, groups, bias=conv.bias is not None))
    for name, (features,) in layout.get("bn", {}).items():
        bn = modules.get(name)
        if not isinstance(bn, nn.BatchNorm2d):
            raise ArchpruneError(f"architecture names BatchNorm {name!r}, which the model does not have")
        if bn.num_features != features:
            _replace(model, name, nn.BatchNorm2d(features, eps=bn.eps, momentum=bn.momentum))
    for name, (heads, key_dim, head_dim) in layout.get("attention", {}).items():
        attn = modules.get(name)
        if not isinstance(attn, Attention):
            raise ArchpruneError(f"architecture names attention block {name!r}, which the model does not have")
        attn.num_heads, attn.key_dim, attn.head_dim = heads, key_dim, head_dim
        attn.scale = key_dim**-0.5


def architecture_of(model: nn.Module) -> dict[str, Any]:
    """Everything needed to rebuild ``model`` without its weights."""
    if hasattr(model, "structure") and hasattr(model, "backbone"):  # a block-space detector
        from spaces.models.repconv import is_deployed

        return {"kind": "blocks", "structure": model.structure, "nc": model.nc, "names": list(model.names),
                "imgsz": model.imgsz, "neck_depth": model.neck_depth,
                **({"neck": model.neck_kind} if model.neck_kind != "c2f" else {}),
                **({"deployed": True} if is_deployed(model) else {})}
    return {
        "kind": "yolo",
        "spec": copy.deepcopy(model.spec),
        "nc": model.nc,
        "names": list(model.names),
        "imgsz": model.imgsz,
        "layout": channel_layout(model),
        "depth": block_counts(model),
    }


def block_counts(model: nn.Module) -> dict[str, int]:
    """Blocks each C2f / C3k2 / C3k chain has (fewer than the spec's once depth-pruned)."""
    return {name: len(module.m) for name, module in model.named_modules() if isinstance(module, (_SplitCSP, C3k))}


def _apply_block_counts(model: nn.Module, counts: dict[str, int]) -> None:
    """Drop each chain's trailing blocks down to ``counts``; the channel layout then reshapes the
    convs that received them (a C2f's ``cv2``)."""
    for name, count in counts.items():
        try:
            module = model.get_submodule(name)
        except AttributeError:
            raise ArchpruneError(f"architecture names block chain {name!r}, which the model does not have") from None
        if not isinstance(module, (_SplitCSP, C3k)) or not 0 <= count <= len(module.m):
            raise ArchpruneError(f"architecture keeps {count} blocks of {name!r}, which it cannot")
        if count < len(module.m):
            kept = list(module.m)[:count]
            module.m = nn.Sequential(*kept) if isinstance(module.m, nn.Sequential) else nn.ModuleList(kept)


def build_from_architecture(arch: dict[str, Any]) -> nn.Module:
    kind = arch.get("kind")
    if kind not in ARCHITECTURES:
        raise ArchpruneError(f"unknown architecture kind {kind!r} (expected {' or '.join(map(repr, ARCHITECTURES))})")
    return ARCHITECTURES.get(str(kind))(arch)


def build_yolo(arch: dict[str, Any]) -> YOLODetector:
    model = YOLODetector(arch["spec"], nc=arch["nc"], names=arch.get("names"))
    model.imgsz = arch.get("imgsz")
    _apply_block_counts(model, arch.get("depth", {}))  # before the layout: it names the remaining convs
    apply_channel_layout(model, arch.get("layout", {}))
    return model
