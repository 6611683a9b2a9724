"""Dropping whole blocks of a YOLO model (issue 17's depth genes, the operation itself).

Two kinds of block chains can lose their trailing blocks without touching any other weight:

- **split CSP** (YOLOv8's C2f, YOLO11's C3k2): every block's output is concatenated into ``cv2``,
  so dropping the last k blocks removes their outputs from the concat: ``cv2``'s input channels
  that received them are sliced off. The result equals the original with those outputs zeroed.
- **C3k** (inside YOLO11's C3k2), a sequential chain of residual bottlenecks: dropping the last k
  leaves ``x`` where ``x + f(x)`` was, so the result equals the original with those residual
  branches zeroed. A chain whose bottlenecks have no residual add cannot drop any (the next block
  would see another input).

Torch-Pruning prunes channels, not layers, hence this module; it edits our own block classes
(``spaces.models.blocks``) and keeps every remaining parameter as it was.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
from torch import nn

from spaces.errors import ArchpruneError
from spaces.models.blocks import C3k, Bottleneck, _SplitCSP


@dataclass(frozen=True)
class DepthUnit:
    """One chain whose trailing blocks may go: ``name`` is the module's path in the model."""

    name: str
    kind: str  # "split" (C2f / C3k2) or "c3k"
    blocks: int  # how many it has now
    minimum: int  # the fewest it may keep

    def choices(self) -> tuple[int, ...]:
        return tuple(range(self.minimum, self.blocks + 1))


def depth_units(model: nn.Module) -> list[DepthUnit]:
    """Every chain of ``model`` that can lose blocks, in module order."""
    units = []
    for name, module in model.named_modules():
        if isinstance(module, _SplitCSP) and len(module.m):
            units.append(DepthUnit(name, "split", len(module.m), 0))
        elif isinstance(module, C3k) and len(module.m) and all(
                isinstance(b, Bottleneck) and b.add for b in module.m):
            units.append(DepthUnit(name, "c3k", len(module.m), 0))
    return units


def _block_out_channels(block: nn.Module) -> int:
    """Channels a split-CSP block adds to the concat: its output conv's width (after any width pruning)."""
    return block.cv3.conv.out_channels if isinstance(block, C3k) else block.cv2.conv.out_channels


def drop_trailing_blocks(module: nn.Module, keep: int) -> None:
    """Keep the first ``keep`` blocks of a C2f / C3k2 / C3k ``module``, in place."""
    blocks = len(module.m)
    if not 0 <= keep <= blocks:
        raise ArchpruneError(f"cannot keep {keep} of the {blocks} blocks of {type(module).__name__}")
    if keep == blocks:
        return
    if isinstance(module, _SplitCSP):
        dropped = sum(_block_out_channels(b) for b in list(module.m)[keep:])
        conv = module.cv2.conv
        kept_in = conv.in_channels - dropped
        sliced = nn.Conv2d(kept_in, conv.out_channels, conv.kernel_size, conv.stride, conv.padding,
                           conv.dilation, conv.groups, bias=conv.bias is not None)
        with torch.no_grad():
            sliced.weight.copy_(conv.weight[:, :kept_in])
            if conv.bias is not None:
                sliced.bias.copy_(conv.bias)
        module.cv2.conv = sliced
        module.m = nn.ModuleList(list(module.m)[:keep])
    elif isinstance(module, C3k):
        if not all(isinstance(b, Bottleneck) and b.add for b in module.m):
            raise ArchpruneError("a C3k whose bottlenecks have no residual add cannot drop blocks")
        module.m = nn.Sequential(*list(module.m)[:keep])
    else:
        raise ArchpruneError(f"{type(module).__name__} has no blocks to drop (C2f, C3k2 and C3k do)")


def with_depth(model: nn.Module, keep: dict[str, int]) -> nn.Module:
    """A copy of ``model`` whose chains named in ``keep`` keep that many blocks (see ``depth_units``).
    Inner chains first: a C3k inside a C3k2 block that is dropped must still be found by its name."""
    pruned = copy.deepcopy(model)
    for name in sorted(keep, key=lambda n: -n.count(".")):
        drop_trailing_blocks(pruned.get_submodule(name), keep[name])
    return pruned
