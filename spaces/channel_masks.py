"""Run any genome of a ChannelSpace on the full model by masking channels instead of removing them.

Zeroing a group's channels at every layer that *outputs* them (its convs, linears and the
BatchNorms behind them) gives exactly the physically pruned network: SiLU(0) = 0, residual adds
and concats carry the zeros along, pooling and upsampling keep them, and every consumer then
sees zero inputs where the pruned network has no inputs at all. Elastic training uses it to train
many sub-networks of one set of weights without a rebuild per step.

Depth genes (``spaces.depth_pruning``) are masked the same way: a dropped block of a C2f / C3k2
returns zeros (what the sliced ``cv2`` no longer reads), and a dropped residual bottleneck of a
C3k returns its input (``x`` where ``x + f(x)`` was). The dropped blocks still run, so a masked
step costs the full model's time; the point is one set of weights, not speed.
"""
from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from spaces._base import Genome
from spaces.channel_space import ChannelSpace


class ChannelMasks:
    """Forward hooks on ``model`` (which must have the space's base architecture and module names)."""

    def __init__(self, model: nn.Module, space: ChannelSpace) -> None:
        self.model, self.space = model, space
        self._masks: dict[str, Tensor] = {}
        self._handles = []
        layers = {name for gene in space.width_genes for name, _, _ in space.output_members(gene.name)}
        for name in sorted(layers):
            self._handles.append(model.get_submodule(name).register_forward_hook(self._hook(name)))
        self._dropped: dict[str, str] = {}  # block path -> "zero" (split CSP) or "identity" (C3k)
        for unit in space.depth_units:
            for j in range(unit.blocks):
                block = f"{unit.name}.m.{j}"
                self._handles.append(model.get_submodule(block).register_forward_hook(self._block_hook(block)))

    def _hook(self, name: str) -> Any:
        def apply(module: nn.Module, args: tuple[Any, ...], output: Tensor) -> Tensor | None:
            mask = self._masks.get(name)
            if mask is None:
                return None
            shape = (1, -1) + (1,) * (output.dim() - 2)
            return output * mask.to(output.dtype).view(shape)
        return apply

    def _block_hook(self, name: str) -> Any:
        def apply(module: nn.Module, args: tuple[Any, ...], output: Tensor) -> Tensor | None:
            mode = self._dropped.get(name)
            if mode is None:
                return None
            return args[0] if mode == "identity" else torch.zeros_like(output)  # no backward through it
        return apply

    def set(self, genome: Genome | None) -> None:
        """Mask to ``genome`` (None: the full model)."""
        self._masks, self._dropped = {}, {}
        if genome is None or genome == self.space.unpruned():
            return
        depth = self.space.depth(genome)
        for unit in self.space.depth_units:
            for j in range(depth[unit.name], unit.blocks):
                self._dropped[f"{unit.name}.m.{j}"] = "zero" if unit.kind == "split" else "identity"
        out: dict[str, Tensor] = {}
        for gene_name, kept in self.space.kept_indices(genome).items():
            kept_set = set(kept)
            for layer, idxs, root_idxs in self.space.output_members(gene_name):
                if layer not in out:
                    module = self.model.get_submodule(layer)
                    width = module.num_features if isinstance(module, nn.BatchNorm2d) else module.weight.shape[0]
                    out[layer] = torch.ones(width)
                dropped = [i for i, r in zip(idxs, root_idxs) if r not in kept_set]
                out[layer][dropped] = 0.0
        self._masks = {k: v for k, v in out.items() if not bool(v.all())}

    def remove(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles, self._masks, self._dropped = [], {}, {}
