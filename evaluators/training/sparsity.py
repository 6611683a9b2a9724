"""Sparse training before pruning: Torch-Pruning's regularizers over the channel space's groups.

``slim`` is Network Slimming (L1 on BatchNorm scales, Torch-Pruning's ``BNScalePruner``);
``group-norm`` is DepGraph's group-level sparsity (``GroupNormPruner``: weak groups pulled up to
16x harder); ``growing-reg`` is ``GrowingRegPruner`` (each channel's penalty grows with its
unimportance at every ``update_reg``, once an epoch here). We call their ``regularize`` after
backward; only the groups a ``ChannelSpace`` of the same model makes genes of are regularized, so
the channels pushed towards zero are exactly the ones a search can remove.

The weight is per image: our detection loss is summed over the batch (as Ultralytics does), so
the penalty is multiplied by the batch size to keep its balance with the loss whatever --batch.
"""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

from spaces.channel_groups import protected_layers
from spaces.channel_space import ChannelSpace
from spaces.errors import ArchpruneError
from spaces.models.blocks import Attention
from spaces.tp_compat import customized_pruners

from .extension import TrainingExtension

REGULARIZERS = ("slim", "group-norm", "growing-reg")
DEFAULT_WEIGHTS = {"slim": 1e-4, "group-norm": 5e-4, "growing-reg": 1e-5}
SPARSE_BELOW = 0.01  # a channel counts as sparse when its group importance is below 1% of the group's max


def check_sparsity(kind: str | None, weight: float | None) -> None:
    if kind is None:
        if weight is not None:
            raise ArchpruneError("--sparsity-weight needs --sparsity slim|group-norm|growing-reg")
        return
    if kind not in REGULARIZERS:
        raise ArchpruneError(f"unknown --sparsity {kind!r}; choose one of {', '.join(REGULARIZERS)}")
    if weight is not None and not (weight > 0 and weight < 1):
        raise ArchpruneError(f"--sparsity-weight must be in (0, 1), got {weight}")


class SparsityRegularizer(TrainingExtension):
    def __init__(self, model: nn.Module, kind: str, weight: float | None, batch: int,
                 example: torch.Tensor | None = None, keep_layers: tuple[str, ...] = ()) -> None:
        import torch_pruning as tp

        check_sparsity(kind, weight)
        self.name, self.weight = kind, weight if weight is not None else DEFAULT_WEIGHTS[kind]
        example = example if example is not None else torch.zeros(1, 3, 64, 64)
        was_training = model.training
        model.eval()  # tracing must not touch the BatchNorm statistics
        genes = {g.name for g in ChannelSpace(model, example_inputs=example, keep_layers=keep_layers).genes}
        names = {module: name for name, module in model.named_modules()}
        ignored = protected_layers(model) + [m for m in model.modules() if isinstance(m, Attention)]
        scale = self.weight * batch
        common = dict(ignored_layers=ignored, root_module_types=[nn.Conv2d, nn.Linear],
                      customized_pruners=customized_pruners())
        magnitude = tp.importance.GroupMagnitudeImportance(p=2)
        if kind == "slim":
            self.pruner = tp.pruner.BNScalePruner(model, example, importance=tp.importance.BNScaleImportance(),
                                                  reg=scale, **common)
        elif kind == "group-norm":
            self.pruner = tp.pruner.GroupNormPruner(model, example, importance=magnitude, reg=scale, **common)
        else:
            self.pruner = tp.pruner.GrowingRegPruner(model, example, importance=magnitude, reg=scale,
                                                     delta_reg=scale, **common)
        model.train(was_training)
        self.pruner._groups = [g for g in self.pruner._groups if names[g[0].dep.target.module] in genes]
        if len(self.pruner._groups) != len(genes):
            raise ArchpruneError(f"sparse training found {len(self.pruner._groups)} of the channel space's "
                                 f"{len(genes)} groups; this model is not supported by --sparsity")
        if kind == "slim":
            # BNScalePruner walks every BatchNorm of the model: ignore the ones outside the genes
            wanted = {id(item.dep.target.module) for g in self.pruner._groups for item in g}
            self.pruner.ignored_layers = list(self.pruner.ignored_layers) + [
                m for m in model.modules() if isinstance(m, nn.BatchNorm2d) and id(m) not in wanted]
        if kind == "growing-reg":
            self.pruner.group_reg = {g: self.pruner.group_reg[g] for g in self.pruner._groups}
        # Sparsity is read with the importance the penalty acts on: |BN scale| for slim (it zeroes
        # scales, not conv weights), the group's L2 magnitude for the group regularizers.
        self._measure = (tp.importance.BNScaleImportance(normalizer=None) if kind == "slim"
                         else tp.importance.GroupMagnitudeImportance(p=2, normalizer=None))

    def after_backward(self, model: nn.Module) -> None:
        self.pruner.regularize(model)

    def end_epoch(self, model: nn.Module) -> dict[str, float]:
        if self.name == "growing-reg":
            self.pruner.update_reg()
        return {"sparsity": self.sparsity()}

    @torch.no_grad()
    def sparsity(self) -> float:
        """Share of the groups' channels whose importance (see ``_measure``) is below 1% of their group's max."""
        below = total = 0
        for group in self.pruner._groups:
            imp = self._measure(group)
            below += int((imp < SPARSE_BELOW * imp.max()).sum())
            total += imp.numel()
        return below / max(total, 1)

    def state(self) -> dict[str, Any]:
        if self.name != "growing-reg":
            return {}
        return {"group_reg": [self.pruner.group_reg[g].clone() for g in self.pruner._groups]}

    def load_state(self, state: dict[str, Any]) -> None:
        if self.name == "growing-reg" and state.get("group_reg"):
            self.pruner.group_reg = {g: r for g, r in zip(self.pruner._groups, state["group_reg"])}
