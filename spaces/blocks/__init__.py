"""TinyNAS-style block structures: parsing, mutation, the backbone and detector they build, analytic
costs and MAE-DET entropy, and the ``BlockSpace`` search space over them."""
from __future__ import annotations

from .analytic import (ENTROPY_WEIGHTS, analytic_entropy, detector_flops_params, stage_entropies, structure_flops,
                       structure_params)
from .backbone import BlockBackbone
from .detector import BlockDetector
from .mutation import SpaceLimits
from .space import DEFAULT_STRUCTURE, BlockSpace, default_budgets, structure_budgets
from .structure import Block, count_layers, parse_structure, structure_to_dicts

__all__ = [
    "DEFAULT_STRUCTURE",
    "ENTROPY_WEIGHTS",
    "Block",
    "BlockBackbone",
    "BlockDetector",
    "BlockSpace",
    "SpaceLimits",
    "analytic_entropy",
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
