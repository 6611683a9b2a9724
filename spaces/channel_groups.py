"""The channel groups a model can be pruned in: one definition for the search space, the sparse
trainer's regularizers and the elastic trainer's masks, so all three act on the same channels.

A group is Torch-Pruning's (channels tied by residual adds and concats, with the BatchNorms
behind them). A group is left out when it touches a protected layer (a detector's prediction
convs and DFL), a module named in ``keep_layers``, or an attention block.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable

import torch
from torch import nn

from spaces.errors import ArchpruneError
from spaces.models import YOLODetector
from spaces.models.blocks import Attention
from spaces.tp_compat import dependency_graph


def protected_layers(model: nn.Module) -> list[nn.Module]:
    """Layers no pruning may touch: a detector's final prediction convs and its DFL."""
    if isinstance(model, YOLODetector):
        head = model.head
        return [head.dfl] + [seq[-1] for seq in head.cv2] + [seq[-1] for seq in head.cv3]
    return []


@dataclass
class ChannelGroup:
    name: str  # the root layer's module name: the gene's name
    full: int  # channels in the group
    group: Any  # Torch-Pruning's Group (items reference the traced model's modules)
    # (module name, channel indices in that module, the same channels as root indices) for every
    # conv / linear / BatchNorm whose *outputs* are these channels: what a mask must zero
    outputs: list[tuple[str, list[int], list[int]]]


def frozen_modules(model: nn.Module, keep_layers: Iterable[str]) -> set[nn.Module]:
    names = {module: name for name, module in model.named_modules()}
    known = set(names.values())
    keep_layers = tuple(keep_layers)
    for layer in keep_layers:
        if layer not in known:
            raise ArchpruneError(f"--keep-layers names {layer!r}, which the model does not have "
                                 f"(names look like {next(iter(sorted(known - {''})))!r})")
    frozen = {module for module, name in names.items()
              if any(name == k or name.startswith(k + ".") for k in keep_layers)}
    for module in model.modules():
        if isinstance(module, Attention):
            frozen.update(module.modules())
    return frozen


def _output_members(group: Any, names: dict[nn.Module, str]) -> list[tuple[str, list[int], list[int]]]:
    members = []
    for item in group:
        module = item.dep.target.module
        handler = getattr(item.dep.handler, "__name__", "")
        if isinstance(module, (nn.Conv2d, nn.Linear, nn.BatchNorm2d)) and handler == "prune_out_channels":
            members.append((names[module], list(item.idxs), list(item.root_idxs)))
    return members


def channel_groups(model: nn.Module, example: torch.Tensor, keep_layers: Iterable[str] = ()
                   ) -> tuple[Any, list[ChannelGroup]]:
    """Torch-Pruning's dependency graph of ``model`` and its prunable groups, in graph order."""
    names = {module: name for name, module in model.named_modules()}
    frozen = frozen_modules(model, keep_layers)
    graph = dependency_graph(model, example)
    groups = []
    for group in graph.get_all_groups(ignored_layers=protected_layers(model),
                                      root_module_types=[nn.Conv2d, nn.Linear]):
        if any(item.dep.target.module in frozen or item.dep.source.module in frozen for item in group):
            continue
        groups.append(ChannelGroup(names[group[0].dep.target.module], len(group[0].idxs), group,
                                   _output_members(group, names)))
    return graph, groups
