"""The whole models a latency table is calibrated on: candidates of the family the user will search
(``--calibrate MODEL`` or ``blocks[:STRUCTURE]``), so the fitted correction sees the interpolation
error the search will."""
from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # torch and the spaces load only when a table is calibrated
    from torch import nn

    from spaces._base import Genome, SearchSpace

BLOCKS = "blocks"


def names_blocks(source: str) -> bool:
    """Whether a --calibrate value names the block space (``blocks`` or ``blocks:STRUCTURE``), not a model."""
    return source == BLOCKS or source.startswith(BLOCKS + ":")


def calibration_space(source: str, nc: int = 80) -> SearchSpace:
    """The search space whose candidates calibrate the table: ``blocks`` or ``blocks:STRUCTURE`` (a
    block space grown from the default or the given structure), else channel pruning of a model."""
    if names_blocks(source):
        from spaces.blocks import DEFAULT_STRUCTURE, BlockSpace

        structure = source.partition(":")[2]
        return BlockSpace(structure or DEFAULT_STRUCTURE, nc=nc)
    from spaces.channel_space import ChannelSpace
    from spaces.models import load_model

    return ChannelSpace(load_model(source))


def calibration_genomes(space: SearchSpace, n: int, seed: int = 0) -> list[Genome]:
    """The space's first baseline (the unpruned model, or the initial structure) and ``n - 1`` distinct
    random candidates: candidates like a search's, so the fit sees the interpolation error the search will."""
    import numpy as np

    rng, genomes = np.random.default_rng(seed), [space.baselines()[0][1]]
    for _ in range(100 * n):
        if len(genomes) >= n:
            break
        genome = space.sample(rng)
        if genome not in genomes:
            genomes.append(genome)
    return genomes


def calibration_models(source: str, n: int, seed: int = 0, nc: int = 80) -> list[nn.Module]:
    """The models ``--calibrate SOURCE`` measures: see ``calibration_genomes``."""
    space = calibration_space(source, nc)
    return [space.build(g) for g in calibration_genomes(space, n, seed)]
