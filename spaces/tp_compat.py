"""What Torch-Pruning needs to know about our modules.

Tracing through YOLO11's attention (a per-head view and split of one qkv conv) makes Torch-Pruning's
index mapping run without end, and pruning it would break the head layout anyway. Registered as a
customized pruner, each Attention block becomes one opaque node of fixed width: the dependency graph
stops at it, and channel groups that reach it are left whole.
"""
from __future__ import annotations

from typing import Any, Callable

import torch
from torch import nn

from spaces.errors import ArchpruneError
from spaces.models.blocks import Attention


def _frozen_attention_pruner() -> Any:
    import torch_pruning as tp

    class FrozenAttentionPruner(tp.pruner.function.BasePruningFunc):
        def prune_out_channels(self, layer: nn.Module, idxs: list[int]) -> nn.Module:
            raise ArchpruneError("attention blocks are not pruned")

        prune_in_channels = prune_out_channels

        def get_out_channels(self, layer: Attention) -> int:
            return layer.proj.conv.out_channels

        def get_in_channels(self, layer: Attention) -> int:
            return layer.qkv.conv.in_channels

    return FrozenAttentionPruner()


def customized_pruners() -> dict[type, Any]:
    return {Attention: _frozen_attention_pruner()}


#: per-sample losses of a model on calibration data (what taylor / hessian importance differentiate)
CalibrationLoss = Callable[[nn.Module], list[torch.Tensor]]


def dependency_graph(model: nn.Module, example_inputs: torch.Tensor) -> Any:
    import torch_pruning as tp

    with torch.enable_grad():  # the graph is traced through autograd: works even inside no_grad()
        return tp.DependencyGraph().build_dependency(model, example_inputs=example_inputs,
                                                     customized_pruners=customized_pruners())


def accumulate_gradients(model: nn.Module, scorer: Any, name: str, calibration_loss: CalibrationLoss | None) -> None:
    """Leave in ``model`` (or ``scorer``) the gradients Taylor / Hessian importance read.

    Taylor uses the gradient of the summed loss; Torch-Pruning's Hessian approximation needs each
    sample's gradient accumulated separately.
    """
    if calibration_loss is None:
        raise ArchpruneError(f"importance {name!r} needs gradients on calibration data: give the space a "
                             "calibration_loss (the CLI builds one from --data), or use l1, l2, lamp, bn_scale, "
                             "fpgm or random")
    with torch.enable_grad():
        model.zero_grad(set_to_none=True)
        losses = calibration_loss(model)
        if name == "hessian":
            scorer.zero_grad()
            for loss in losses:
                model.zero_grad(set_to_none=True)
                loss.backward(retain_graph=True)
                scorer.accumulate_grad(model)
        else:
            torch.stack(list(losses)).sum().backward()
