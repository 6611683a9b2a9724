"""The small base every search driver implements: ask for candidates, be told their results.

A driver never knows what a metric means beyond its direction and its constraint. The runner
answers a proposal from the store when it was evaluated before, so a seeded driver replayed
from the start over a resumed run rebuilds exactly the population it had when it stopped.
"""
from __future__ import annotations

import abc
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from search.objectives import Constraint, Objective
from search.store import Store, TrialRecord
from spaces._base import Genome, SearchSpace


@dataclass(frozen=True)
class Proposal:
    genome: Genome
    source: str  # "unpruned", "uniform-0.5", "random", "nsga2-g3" ... (kept with the trial)
    trial: Any = field(default=None, compare=False)  # the Optuna trial an Optuna driver asked for


class Driver(abc.ABC):
    #: False: ``ask`` again only after ``tell`` (a generation at a time). True: the driver can be asked
    #: while earlier proposals are still being evaluated (Optuna), so every worker stays busy
    asynchronous: bool = False
    #: True: every proposal is asked and told through the store, so several search processes can
    #: work on one run (Optuna's ask/tell on a shared storage). False: the driver's state lives in
    #: this process (a DEAP population, a seeded random stream), and a second process on the run
    #: would duplicate work and overshoot --trials, so the run is locked to one process.
    shares_studies: bool = False

    def __init__(self, space: SearchSpace, objectives: Sequence[Objective], seed: int = 0) -> None:
        self.space, self.objectives = space, list(objectives)
        self.rng = np.random.default_rng(seed)

    def bind(self, store: "Store", constraints: Sequence[Constraint]) -> None:
        """Called once before the first ``ask`` (optional): drivers whose state is the store use it."""

    @abc.abstractmethod
    def ask(self) -> list[Proposal]:
        """The next batch of candidates (a generation for NSGA-II)."""

    @abc.abstractmethod
    def tell(self, proposals: Sequence[Proposal], records: Sequence[TrialRecord]) -> None:
        """The finished trials of the last ``ask``, in the same order."""

    def report(self) -> str | None:
        """A line for the run's log when the search stops (optional)."""
        return None

    def initial(self, size: int) -> list[Proposal]:
        """The space's baselines, then distinct random samples up to ``size``."""
        proposals = [Proposal(g, name) for name, g in self.space.baselines()]
        seen = {p.genome for p in proposals}
        attempts = 0
        while len(proposals) < size and attempts < 100 * size:
            attempts += 1
            genome = self.space.sample(self.rng)
            if genome not in seen:
                seen.add(genome)
                proposals.append(Proposal(genome, "random"))
        return proposals
