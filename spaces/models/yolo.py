"""A YOLO detector built from an Ultralytics-style layer list.

The parser follows Ultralytics' ``parse_model`` rules for the modules of the YOLOv8 and YOLO11
families (depth/width multipliers, channel rounding to 8, max channels, C3k2's c3k for m/l/x,
the legacy head unless C3k2 is present) so that the same spec gives the same layers.
"""
from __future__ import annotations

import copy
import math
from typing import Any

from torch import Tensor, nn

from ..errors import ArchpruneError
from .blocks import C2PSA, C2f, C3k2, Concat, Conv, SPPF
from .head import Detect

# Ultralytics' positional argument names per module, and the defaults we support for each.
_SIGNATURES: dict[str, list[str]] = {
    "Conv": ["c1", "c2", "k", "s", "p", "g", "d", "act"],
    "C2f": ["c1", "c2", "n", "shortcut", "g", "e"],
    "C3k2": ["c1", "c2", "n", "c3k", "e", "g", "shortcut"],
    "SPPF": ["c1", "c2", "k", "n"],
    "C2PSA": ["c1", "c2", "n", "e"],
}
_ONLY_DEFAULT = {"p": None, "g": 1, "d": 1, "act": True}
_BUILDERS = {"Conv": Conv, "C2f": C2f, "C3k2": C3k2, "SPPF": SPPF, "C2PSA": C2PSA}
_REPEATED_INSIDE = {"C2f", "C3k2", "C2PSA"}  # these take `n` as an argument instead of stacking
SUPPORTED_MODULES = set(_SIGNATURES) | {"nn.Upsample", "Concat", "Detect"}


def make_divisible(x: float, divisor: int = 8) -> int:
    return math.ceil(x / divisor) * divisor


def check_spec(spec: dict[str, Any], where: str = "model spec") -> None:
    """Refuse specs outside the families we implement, naming the first offending layer."""
    for key in ("backbone", "head"):
        if not isinstance(spec.get(key), list):
            raise ArchpruneError(f"{where}: no '{key}' layer list; not a YOLOv8/YOLO11 detection model")
    if spec.get("activation"):
        raise ArchpruneError(f"{where}: custom activation {spec['activation']!r} is not supported (only SiLU)")
    for i, row in enumerate(spec["backbone"] + spec["head"]):
        if not (isinstance(row, (list, tuple)) and len(row) == 4):
            raise ArchpruneError(f"{where}: layer {i} is not [from, repeats, module, args]")
        module = row[2]
        if module not in SUPPORTED_MODULES:
            raise ArchpruneError(
                f"{where}: unsupported family: layer {i} is {module!r}; archprune builds YOLOv8 and YOLO11 "
                f"detection models (modules: {', '.join(sorted(SUPPORTED_MODULES))})"
            )
    if spec["head"][-1][2] != "Detect":
        raise ArchpruneError(f"{where}: unsupported family: the last layer is not a Detect head")


def _resolve(arg: Any, nc: int) -> Any:
    if arg == "nc":
        return nc
    if arg == "None":
        return None
    return arg


def _kwargs(module: str, args: list[Any], layer: int) -> dict[str, Any]:
    names = _SIGNATURES[module]
    if len(args) > len(names):
        raise ArchpruneError(f"layer {layer} ({module}): {len(args)} arguments, at most {len(names)} supported")
    kwargs = dict(zip(names, args))
    for key, default in _ONLY_DEFAULT.items():
        if key in kwargs and kwargs.pop(key) != default:
            raise ArchpruneError(f"layer {layer} ({module}): argument {key}={args[names.index(key)]!r} is not supported")
    return kwargs


def parse_layers(spec: dict[str, Any], nc: int, ch: int = 3) -> tuple[nn.ModuleList, list[int]]:
    """Build the layer list of ``spec``; returns the layers and the indices whose outputs are reused."""
    check_spec(spec)
    scale = spec.get("scale")
    scales = spec.get("scales")
    if scales:
        if scale is None:
            scale = next(iter(scales))
        if scale not in scales:
            raise ArchpruneError(f"model spec: scale {scale!r} not among {sorted(scales)}")
        depth, width, max_channels = scales[scale]
    else:
        depth = spec.get("depth_multiple", 1.0)
        width = spec.get("width_multiple", 1.0)
        max_channels = spec.get("max_channels", float("inf"))
    legacy = not any(row[2] == "C3k2" for row in spec["backbone"] + spec["head"])

    channels: list[int] = []
    layers: list[nn.Module] = []
    save: list[int] = []
    for i, (f, n, module, args) in enumerate(copy.deepcopy(spec["backbone"] + spec["head"])):
        args = [_resolve(a, nc) for a in args]
        n = max(round(n * depth), 1) if n > 1 else n
        c_in = channels[f] if i and isinstance(f, int) else ch
        if module in _BUILDERS:
            c2 = args[0]
            if c2 != nc:
                c2 = make_divisible(min(c2, max_channels) * width, 8)
            kwargs = _kwargs(module, [c_in, c2, *args[1:]] if module not in _REPEATED_INSIDE
                             else [c_in, c2, n, *args[1:]], i)
            if module == "C3k2" and scale is not None and scale in "mlx":
                kwargs["c3k"] = True
            build = _BUILDERS[module]
            repeats = 1 if module in _REPEATED_INSIDE else n
            layer = build(**kwargs) if repeats == 1 else nn.Sequential(*(build(**kwargs) for _ in range(repeats)))
        elif module == "nn.Upsample":
            size, factor, mode = (args + [None, None, "nearest"])[:3]
            layer, c2 = nn.Upsample(size=size, scale_factor=factor, mode=mode), c_in
        elif module == "Concat":
            layer, c2 = Concat(args[0] if args else 1), sum(channels[x] for x in f)
        else:  # Detect
            layer = Detect(nc, [channels[x] for x in f], legacy=legacy)
            c2 = 0
        layer.f, layer.i = f, i  # routing, as in Ultralytics: where the input comes from
        save.extend(x % i for x in ([f] if isinstance(f, int) else f) if x != -1)
        layers.append(layer)
        channels.append(c2)
    return nn.ModuleList(layers), sorted(set(save))


class YOLODetector(nn.Module):
    """A YOLOv8 / YOLO11 detector. ``spec`` is plain data (an Ultralytics-style yaml dict)."""

    def __init__(self, spec: dict[str, Any], nc: int = 80, names: list[str] | None = None) -> None:
        super().__init__()
        if nc < 1:
            raise ArchpruneError(f"nc must be at least 1, got {nc}")
        self.spec = copy.deepcopy(spec)
        self.nc = nc
        self.names = list(names) if names is not None else [str(i) for i in range(nc)]
        if len(self.names) != nc:
            raise ArchpruneError(f"{len(self.names)} class names given for nc={nc}")
        self.imgsz: int | None = None  # the size the weights were trained at, when known
        # an elastic base's channel order per group, most important first (see spaces.channel_space)
        self.channel_order: dict[str, list[int]] | None = None
        self.model, self.save = parse_layers(self.spec, nc)

    @property
    def head(self) -> Detect:
        return self.model[-1]

    @property
    def stride(self) -> Tensor:
        return self.head.stride

    def forward(self, x: Tensor) -> Tensor | list[Tensor]:
        outputs: list[Tensor | None] = []
        for layer in self.model:
            if layer.f != -1:
                x = outputs[layer.f] if isinstance(layer.f, int) else [x if j == -1 else outputs[j] for j in layer.f]
            x = layer(x)
            outputs.append(x if layer.i in self.save else None)
        return x
