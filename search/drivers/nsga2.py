"""NSGA-II on DEAP: non-dominated sorting and crowding (``tools.selNSGA2``), binary tournament,
uniform crossover and per-gene mutation on the discrete genome; μ parents, λ children a generation.

Constraints follow Deb's rule: a feasible candidate beats an infeasible one, and infeasible ones
rank by their total violation. Failed candidates never become parents.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from deap import base, tools

from search.drivers._base import Driver, Proposal
from search.objectives import Objective
from search.store import TrialRecord
from spaces._base import Genome, SearchSpace


@dataclass
class Member:
    genome: Genome
    record: TrialRecord
    rank: int = 0  # non-domination front (0 = best) among the feasible; infeasible rank after them
    crowding: float = 0.0


class _Individual(list):
    """A DEAP individual carrying its member (DEAP's selectors need ``.fitness``)."""

    def __init__(self, member: Member, fitness_class: type) -> None:
        super().__init__(member.genome)
        self.member = member
        self.fitness = fitness_class(member.record.values)


def select_survivors(pool: Sequence[Member], mu: int, objectives: Sequence[Objective]) -> list[Member]:
    """μ survivors: feasible ones by NSGA-II (DEAP), then infeasible ones by least violation."""
    # a Fitness class per call instead of deap.creator: creator's globals break pickling and re-runs
    fitness_class = type("Fitness", (base.Fitness,), {"weights": tuple(1.0 if o.direction == "max" else -1.0
                                                                        for o in objectives)})
    feasible = [_Individual(m, fitness_class) for m in pool if m.record.feasible]
    others = sorted((m for m in pool if not m.record.feasible), key=lambda m: (m.record.violation, m.record.number))
    chosen = tools.selNSGA2(feasible, min(mu, len(feasible))) if feasible else []
    # ranks and crowding distances for the tournament, from DEAP's own sort
    for rank, front in enumerate(tools.sortNondominated(chosen, len(chosen))):
        tools.emo.assignCrowdingDist(front)
        for ind in front:
            ind.member.rank, ind.member.crowding = rank, ind.fitness.crowding_dist
    survivors = [ind.member for ind in chosen]
    last = max((m.rank for m in survivors), default=-1)
    for m in others[: mu - len(survivors)]:
        m.rank, m.crowding = last + 1, 0.0
        survivors.append(m)
    return survivors


def _better(a: Member, b: Member) -> bool:
    """Crowded-comparison with Deb's constraint rule. (DEAP's selTournamentDCD needs population
    sizes that are multiples of 4 and knows nothing of constraints, so this is ours.)"""
    if a.record.feasible != b.record.feasible:
        return a.record.feasible
    if not a.record.feasible and a.record.violation != b.record.violation:
        return a.record.violation < b.record.violation
    if a.rank != b.rank:
        return a.rank < b.rank
    return a.crowding > b.crowding


class NSGA2Driver(Driver):
    def __init__(self, space: SearchSpace, objectives: Sequence[Objective], seed: int = 0, population: int = 16,
                 offspring: int = 16, crossover_prob: float = 0.9, mutation_rate: float | None = None) -> None:
        super().__init__(space, objectives, seed)
        self.mu, self.lam = population, offspring
        self.crossover_prob, self.mutation_rate = crossover_prob, mutation_rate
        self.population: list[Member] | None = None
        self.generation = 0

    def ask(self) -> list[Proposal]:
        if self.population is None:
            # the baselines always join the first population, even when there are more than μ
            return self.initial(self.mu)
        self.generation += 1
        tag = f"nsga2-g{self.generation}"
        children: list[Proposal] = []
        while len(children) < self.lam:
            a, b = self._tournament(), self._tournament()
            if self.rng.random() < self.crossover_prob:
                a, b = self.space.crossover(a, b, self.rng)
            for child in (a, b):
                if len(children) < self.lam:
                    children.append(Proposal(self.space.mutate(child, self.rng, self.mutation_rate), tag))
        return children

    def _tournament(self) -> Genome:
        parents = self.population or []
        i, j = self.rng.integers(len(parents), size=2)
        a, b = parents[int(i)], parents[int(j)]
        return (a if _better(a, b) else b).genome

    def tell(self, proposals: Sequence[Proposal], records: Sequence[TrialRecord]) -> None:
        pool: dict[Genome, Member] = {m.genome: m for m in self.population or []}
        for record in records:
            pool.setdefault(record.genome, Member(record.genome, record))
        usable = [m for m in pool.values() if not m.record.failed]
        if not usable:  # everything failed so far: keep proposing from random samples
            usable = [Member(r.genome, r) for r in records]
        self.population = select_survivors(usable, self.mu, self.objectives)

