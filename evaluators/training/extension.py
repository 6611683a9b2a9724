"""The seam through which sparse and elastic training change a training run.

The trainer owns the loop (data order, schedule, EMA, checkpoints, resume); an extension may
replace a step's forward and backward, touch the gradients before the optimizer steps, add
columns to ``results.csv`` and keep state that ``--resume`` must restore. Every hook defaults to
doing nothing, so an extension overrides only what it changes.
"""
from __future__ import annotations

from typing import Any, Callable

from torch import Tensor, nn

#: what one plain step computes: (images, student feats) -> (loss to backpropagate, [box, cls, dfl, kd])
StepLoss = Callable[[dict[str, Any], list[Tensor]], tuple[Tensor, Tensor]]


class TrainingExtension:
    name = "none"

    def forward_backward(self, model: nn.Module, batch: dict[str, Any], step_loss: StepLoss,
                         epoch: int, index: int) -> Tensor | None:
        """Run this step's forwards and backwards (gradients accumulate in ``model``) and return
        the [box, cls, dfl, kd] parts to log; None lets the trainer run its plain step."""
        return None

    def after_backward(self, model: nn.Module) -> None:
        """Change the gradients after clipping, before the optimizer steps (regularizers)."""

    def end_epoch(self, model: nn.Module) -> dict[str, float]:
        """Per-epoch columns for results.csv."""
        return {}

    def prepare_checkpoint(self, model: nn.Module) -> None:
        """Set what the saved model must carry (e.g. an elastic base's channel order)."""

    def state(self) -> dict[str, Any]:
        return {}

    def load_state(self, state: dict[str, Any]) -> None:
        """Restore ``state()`` on --resume."""
