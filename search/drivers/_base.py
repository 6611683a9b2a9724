"""The small base every search driver implements: ask for candidates, be told their results.

A driver never knows what a metric means beyond its direction and its constraint. The runner
answers a proposal from the store when it was evaluated before, so a seeded driver replayed
from the start over a resumed run rebuilds exactly the population it had when it stopped.
"""
from __future__ import annotations

import abc
import inspect
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np

from search.objectives import Constraint, Objective
from search.store import Store, TrialRecord
from spaces._base import Genome, SearchSpace


@dataclass(frozen=True)
class Proposal:
    genome: Genome
    source: str  # "unpruned", "uniform-0.5", "random", "nsga2-g3" ... (kept with the trial)
    #: the driver's own handle of the proposal (the trial an Optuna driver asked its study for); only
    #: the driver that made it reads it, through the hooks below
    trial: Any = field(default=None, compare=False)


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

    @classmethod
    def create(cls, space: SearchSpace, objectives: Sequence[Objective], seed: int,
               options: Mapping[str, Any]) -> "Driver":
        """Built from a search's options (``population``, ``offspring``, ``crossover_prob``,
        ``mutation_rate``, ``imgsz``; a missing one means the driver's default): each driver takes
        the ones its ``__init__`` names and ignores the rest."""
        accepted = inspect.signature(cls.__init__).parameters
        return cls(space, objectives, seed=seed, **{k: v for k, v in options.items() if k in accepted})

    def bind(self, store: "Store", constraints: Sequence[Constraint]) -> None:
        """Called once before the first ``ask`` (optional): drivers whose state is the store use it."""

    @abc.abstractmethod
    def ask(self) -> list[Proposal]:
        """The next batch of candidates (a generation for NSGA-II)."""

    @abc.abstractmethod
    def tell(self, proposals: Sequence[Proposal], records: Sequence[TrialRecord]) -> None:
        """The finished trials of the last ``ask``, in the same order."""

    # -- hooks for drivers whose proposals are records of their own (an Optuna study's asked trials):
    # the runner calls them at each turn of a proposal's life; the defaults do nothing

    def asked(self, proposal: Proposal) -> Any:
        """The handle the store finishes the proposal's trial through (an asked Optuna trial), or None."""
        return None

    def duplicate(self, proposal: Proposal, of: "Proposal | TrialRecord | None") -> None:
        """``proposal`` is answered by another one's trial (``of``), or by none (it was repaired)."""

    def repaired(self, proposal: Proposal, genome: Genome) -> None:
        """``proposal`` was an illegal genome; ``genome`` is evaluated instead, as a trial of its own."""

    def surplus(self, proposal: Proposal, trials: int | None) -> bool:
        """Whether ``proposal`` came after the run's last trial was taken (by another process); if so
        it is given back here and never evaluated."""
        return False

    def taken_elsewhere(self, proposal: Proposal, genome: Genome) -> bool:
        """Whether another process is evaluating ``genome`` now; if so ``proposal`` is closed as its duplicate."""
        return False

    def withdraw(self, proposal: Proposal, reason: str) -> None:
        """``proposal`` was asked but will not be evaluated (the search stopped first)."""

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
