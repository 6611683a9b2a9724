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
from spaces._base import SearchSpace

SAMPLERS = ("nsga2", "tpe", "gp", "random")


class OptunaDriver(Driver):
    asynchronous = True  # may ask again before the last trial is told: N workers keep N trials in flight
    shares_studies = True  # ask/tell through the storage: many processes, one run
    def __init__(self, space: SearchSpace, objectives: Sequence[Objective], seed: int = 0, sampler: str = "tpe",
                 population: int = 16, **_: Any) -> None:
        super().__init__(space, objectives, seed)
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
