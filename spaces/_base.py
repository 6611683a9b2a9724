"""The small base every search space implements.

A genome is a tuple of choice indices, one per gene; a gene is a name and its finite choices.
Sampling, mutation and crossover work on indices alone, so every driver (DEAP, Optuna, the
zero-shot EA) can treat every space the same way.
"""
from __future__ import annotations

import abc
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from spaces.errors import ArchpruneError

if TYPE_CHECKING:  # genomes and genes are read without torch (the CLI, the store)
    from torch import nn

Genome = tuple[int, ...]


class InvalidGenome(ArchpruneError):
    """A genome the space cannot build (wrong length, a choice out of range, an emptied group)."""


@dataclass(frozen=True)
class Gene:
    name: str
    choices: tuple[Any, ...]


class SearchSpace(abc.ABC):
    genes: list[Gene]

    @abc.abstractmethod
    def build(self, genome: Genome) -> nn.Module:
        """The candidate as a real (physically smaller or re-designed) network."""

    @abc.abstractmethod
    def to_config(self, genome: Genome) -> dict[str, Any]:
        """A human-readable description that ``from_config`` turns back into the genome."""

    @abc.abstractmethod
    def from_config(self, config: dict[str, Any]) -> Genome:
        """Inverse of ``to_config``."""

    def baselines(self) -> list[tuple[str, Genome]]:
        """Named reference candidates a search evaluates first (optional; none by default)."""
        return []

    def repair(self, genome: Genome) -> Genome | None:
        """A legal genome near an illegal one (optional): a sampler that picks genes one by one can
        propose combinations the space forbids. None (the default): the space cannot repair."""
        return None

    def analytic_metrics(self, genome: Genome, imgsz: int | None = None) -> dict[str, float]:
        """Metrics known from the genome alone, without building the network (optional; none by
        default): a driver checks budgets on them before anything is evaluated."""
        return {}

    def validate(self, genome: Genome) -> Genome:
        genome = tuple(int(g) for g in genome)
        if len(genome) != len(self.genes):
            raise InvalidGenome(f"genome has {len(genome)} genes, the space has {len(self.genes)}")
        for gene, choice in zip(self.genes, genome):
            if not 0 <= choice < len(gene.choices):
                raise InvalidGenome(f"gene {gene.name!r}: choice {choice} out of range 0..{len(gene.choices) - 1}")
        return genome

    def sample(self, rng: np.random.Generator) -> Genome:
        return tuple(int(rng.integers(len(g.choices))) for g in self.genes)

    def mutate(self, genome: Genome, rng: np.random.Generator, rate: float | None = None) -> Genome:
        """Each gene moves to another choice with probability ``rate`` (default 1 / number of genes)."""
        rate = 1.0 / max(len(self.genes), 1) if rate is None else rate
        out = list(genome)
        for i, gene in enumerate(self.genes):
            if len(gene.choices) > 1 and rng.random() < rate:
                other = int(rng.integers(len(gene.choices) - 1))
                out[i] = other if other < out[i] else other + 1  # never the current choice
        return tuple(out)

    def crossover(self, a: Genome, b: Genome, rng: np.random.Generator) -> tuple[Genome, Genome]:
        """Uniform crossover: each gene swaps between the parents with probability 1/2."""
        swap = rng.random(len(a)) < 0.5
        child_a = tuple(y if s else x for x, y, s in zip(a, b, swap))
        child_b = tuple(x if s else y for x, y, s in zip(a, b, swap))
        return child_a, child_b
