"""Optuna samplers as drivers, through ask/tell on the run's own study.

The sampler is always passed explicitly (Optuna 5 defaults multi-objective studies to TPE).
Constraints reach it through ``constraints_func`` over the values the store sets with Optuna's
constraint API. The space's baselines are enqueued first. Unlike the DEAP driver, an Optuna
driver's state is the study itself, so a restarted search simply continues it, and several
search processes (or machines) can share one study: each asks its own trials, seeded apart.
"""
from __future__ import annotations

import os
from typing import Any, Sequence

import numpy as np

import optuna

from search.drivers._base import Driver, Proposal
from search.objectives import Constraint, Objective
from search.store import Store, TrialRecord
from spaces._base import Genome, SearchSpace

SAMPLERS = ("nsga2", "tpe", "gp", "random")


class OptunaDriver(Driver):
    asynchronous = True  # may ask again before the last trial is told: N workers keep N trials in flight
    shares_studies = True  # ask/tell through the storage: many processes, one run
    sampler = "tpe"  # the registered subclasses below fix it

    def __init__(self, space: SearchSpace, objectives: Sequence[Objective], seed: int = 0,
                 sampler: str | None = None, population: int = 16) -> None:
        super().__init__(space, objectives, seed)
        sampler = sampler or self.sampler
        if sampler not in SAMPLERS:
            raise ValueError(f"unknown Optuna sampler {sampler!r}; one of {', '.join(SAMPLERS)}")
        self.sampler_name, self.population, self.seed = sampler, population, seed
        self.store: Store | None = None
        self.tag = f"optuna-{sampler}"

    def _sampler(self, constraints: Sequence[Constraint]) -> optuna.samplers.BaseSampler:
        names = [str(c) for c in constraints]

        def constraint_values(trial: optuna.trial.FrozenTrial) -> list[float]:
            # a budget-stopped candidate has values only for the constraints it reached; the one it
            # broke is positive, which is what makes it infeasible
            return [float(trial.constraints.get(name, 0.0)) for name in names]

        func = constraint_values if names else None
        seed = self.seed
        if self.store is not None and self.store.other_workers():
            # another process is searching this study: the same seed would propose the same trials
            seed = int(np.random.SeedSequence([self.seed, os.getpid()]).generate_state(1)[0])
        if self.sampler_name == "nsga2":
            return optuna.samplers.NSGAIISampler(population_size=self.population, seed=seed, constraints_func=func)
        if self.sampler_name == "tpe":
            return optuna.samplers.TPESampler(seed=seed, constraints_func=func, multivariate=True)
        if self.sampler_name == "gp":
            return optuna.samplers.GPSampler(seed=seed, constraints_func=func)
        return optuna.samplers.RandomSampler(seed=seed)

    def bind(self, store: Store, constraints: Sequence[Constraint]) -> None:
        self.store = store
        store.recover_stale()
        store.study.sampler = self._sampler(constraints)
        if not store.study.get_trials(deepcopy=False):
            for name, genome in self.space.baselines():
                params = {g.name: int(c) for g, c in zip(self.space.genes, genome)}
                store.study.enqueue_trial(params, user_attrs={"source": name})

    def ask(self) -> list[Proposal]:
        assert self.store is not None, "bind() first"
        trial = self.store.ask()
        genome = tuple(int(trial.params[g.name]) for g in self.space.genes)
        return [Proposal(genome, str(trial.user_attrs.get("source", self.tag)), trial)]

    def tell(self, proposals: Sequence[Proposal], records: Sequence[TrialRecord]) -> None:
        pass  # the store finished each asked trial; the sampler reads the study

    # -- the asked trial's bookkeeping (see Driver's hooks): every asked trial ends in the study, as
    # a finished trial, a duplicate of another, or given back, so a resumed run asks again exactly
    # the candidates that were never evaluated

    def asked(self, proposal: Proposal) -> Any:
        return proposal.trial

    def duplicate(self, proposal: Proposal, of: Proposal | TrialRecord | None) -> None:
        assert self.store is not None
        number = of.trial.number if isinstance(of, Proposal) and of.trial is not None else \
            of.number if isinstance(of, TrialRecord) else None
        self.store.close_duplicate(proposal.trial, number)

    def repaired(self, proposal: Proposal, genome: Genome) -> None:
        assert self.store is not None
        proposal.trial.set_user_attr("repaired_to", list(genome))  # the asked params cannot change
        self.store.close_duplicate(proposal.trial, None)

    def surplus(self, proposal: Proposal, trials: int | None) -> bool:
        assert self.store is not None
        if not self.store.surplus(proposal.trial, trials):
            return False
        self.store.abandon(proposal.trial, "surplus: the run's trials are all taken", requeue=False)
        return True

    def taken_elsewhere(self, proposal: Proposal, genome: Genome) -> bool:
        assert self.store is not None
        other = self.store.running_elsewhere(genome)
        if other is None:
            return False
        self.store.close_duplicate(proposal.trial, other)
        return True

    def withdraw(self, proposal: Proposal, reason: str) -> None:
        assert self.store is not None
        self.store.abandon(proposal.trial, reason)


# one registered driver per sampler (``--driver optuna-tpe``)
class OptunaNSGA2Driver(OptunaDriver):
    sampler = "nsga2"


class OptunaTPEDriver(OptunaDriver):
    sampler = "tpe"


class OptunaGPDriver(OptunaDriver):
    sampler = "gp"


class OptunaRandomDriver(OptunaDriver):
    sampler = "random"
