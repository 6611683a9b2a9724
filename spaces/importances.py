"""Channel importance criteria by the name ``--importance`` uses: each a maker of a Torch-Pruning
importance (the library scores the coupled channels of a group together).

A new criterion is one ``Criterion`` in a module of its own, registered here or through an entry
point of the group ``archprune.importances`` (``my-crit = "my_pkg.crit:MY_CRITERION"``); the channel
space's suite (tests/test_channel_space.py) then runs it like every other.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from spaces.plugin_registry import Registry


@dataclass(frozen=True)
class Criterion:
    make: Callable[[], Any]  # a fresh tp.importance.Importance
    needs_gradients: bool = False  # taylor / hessian: scored from a loss on calibration data


def _tp() -> Any:
    import torch_pruning as tp  # imported when a criterion is made, not when the names are listed

    return tp.importance


L1 = Criterion(lambda: _tp().GroupMagnitudeImportance(p=1))
L2 = Criterion(lambda: _tp().GroupMagnitudeImportance(p=2))
LAMP = Criterion(lambda: _tp().LAMPImportance(p=2))
BN_SCALE = Criterion(lambda: _tp().BNScaleImportance())
FPGM = Criterion(lambda: _tp().FPGMImportance())
RANDOM = Criterion(lambda: _tp().RandomImportance())
TAYLOR = Criterion(lambda: _tp().GroupTaylorImportance(), needs_gradients=True)
HESSIAN = Criterion(lambda: _tp().GroupHessianImportance(), needs_gradients=True)

IMPORTANCES: Registry[Criterion] = Registry("importance", "archprune.importances", {
    name: f"spaces.importances:{name.upper()}"
    for name in ("l1", "l2", "lamp", "bn_scale", "fpgm", "random", "taylor", "hessian")})


def make_importance(name: str) -> Any:
    """Torch-Pruning's importance for the criterion ``name`` (an unknown name is a one-line error)."""
    return IMPORTANCES.get(name).make()


def needs_gradients(name: str) -> bool:
    return name in IMPORTANCES and IMPORTANCES.get(name).needs_gradients


def gradient_importances() -> list[str]:
    return [name for name in IMPORTANCES if needs_gradients(name)]
