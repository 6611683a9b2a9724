"""The whole models a latency table is calibrated on: candidates of the family the user will search
(the space ``--calibrate`` names, see ``search.space_recipes.calibration_space_for``), so the fitted
correction sees the interpolation error the search will."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from spaces._base import Genome, SearchSpace


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


def calibration_models(space: SearchSpace, n: int, seed: int = 0) -> list[Any]:
    """The built models of ``calibration_genomes``."""
    return [space.build(g) for g in calibration_genomes(space, n, seed)]
