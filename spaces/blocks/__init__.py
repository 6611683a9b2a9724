"""TinyNAS-style block structures: parsing, mutation, the backbone and detector they build, analytic
costs and MAE-DET entropy, and the ``BlockSpace`` search space over them.

``BlockBackbone`` and ``BlockDetector`` are imported on first use (PEP 562): everything else here is
torch-free, so a block search that scores structures analytically, and its resume, never import torch."""
from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .analytic import (ENTROPY_WEIGHTS, analytic_entropy, detector_flops_params, stage_entropies, structure_flops,
                       structure_params)
from .mutation import SpaceLimits
from .skeleton import NECKS, check_detector_skeleton
from .space import DEFAULT_STRUCTURE, BlockSpace, default_budgets, structure_budgets
from .structure import Block, count_layers, parse_structure, structure_to_dicts

if TYPE_CHECKING:
    from .backbone import BlockBackbone
    from .detector import BlockDetector

_NETWORKS = {"BlockBackbone": ".backbone", "BlockDetector": ".detector"}


def __getattr__(name: str) -> Any:
    if name in _NETWORKS:
        return getattr(importlib.import_module(_NETWORKS[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "DEFAULT_STRUCTURE",
    "ENTROPY_WEIGHTS",
    "NECKS",
    "Block",
    "BlockBackbone",
    "BlockDetector",
    "BlockSpace",
    "SpaceLimits",
    "analytic_entropy",
    "check_detector_skeleton",
    "count_layers",
    "default_budgets",
    "detector_flops_params",
    "parse_structure",
    "stage_entropies",
    "structure_budgets",
    "structure_flops",
    "structure_params",
    "structure_to_dicts",
]
