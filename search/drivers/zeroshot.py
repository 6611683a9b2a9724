"""The steady-state evolutionary search of MAE-NAS / DAMO-YOLO's TinyNAS, scored without training.

The population starts from the space's baselines (the initial structure) and grows by mutation
only: each child mutates a uniformly chosen member. A child that breaks a budget the space can
check analytically (FLOPs, params, layers of a block structure) is dropped before anything is
built or stored — counted, not recorded; duplicates are dropped too. After each batch the best
``population`` members survive: by the one objective (a training-free score, usually), or by
non-dominated sorting and crowding when there are several (``entropy:max,latency_ms:min``).
Each ``ask`` hands out ``batch`` children so the store writes in batches, not one by one.
"""
from __future__ import annotations

from typing import Sequence

from search.drivers._base import Driver, Proposal
from search.drivers.nsga2 import Member, select_survivors
from search.objectives import Constraint, Objective
from search.store import Store, TrialRecord
from spaces._base import Genome, SearchSpace

MAX_TRIES = 100  # mutations per wanted child before a batch goes out short


class ZeroShotDriver(Driver):
    def __init__(self, space: SearchSpace, objectives: Sequence[Objective], seed: int = 0, population: int = 256,
                 offspring: int = 64, imgsz: int | None = None) -> None:
        super().__init__(space, objectives, seed)
        self.size, self.batch, self.imgsz = population, offspring, imgsz
        self.population: list[Member] = []
        self.constraints: list[Constraint] = []
        self.seen: set[Genome] = set()
        self.rejected = 0  # children dropped by the analytic budget check (never stored)
        self.steps = 0

    def bind(self, store: Store, constraints: Sequence[Constraint]) -> None:
        self.constraints = list(constraints)

    def _breaks_budget(self, genome: Genome) -> bool:
        if not self.constraints:
            return False
        metrics = self.space.analytic_metrics(genome, self.imgsz)
        return any(c.violation(float(metrics[c.name])) > 0 for c in self.constraints if c.name in metrics)

    def ask(self) -> list[Proposal]:
        if not self.population:
            start = [Proposal(g, name) for name, g in self.space.baselines()] or self.initial(1)
            self.seen.update(p.genome for p in start)
            if len(start) >= self.batch or not start:
                return start
            parents = [p.genome for p in start]
        else:
            parents = [m.genome for m in self.population]
            start = []
        self.steps += 1
        children, tries = list(start), 0
        while len(children) < self.batch and tries < MAX_TRIES * self.batch:
            tries += 1
            parent = parents[int(self.rng.integers(len(parents)))]
            child = self.space.mutate(parent, self.rng)
            if child in self.seen:
                continue
            self.seen.add(child)
            if self._breaks_budget(child):
                self.rejected += 1
                continue
            children.append(Proposal(child, f"zeroshot-s{self.steps}"))
        return children

    def report(self) -> str | None:
        return (f"zero-shot EA: {self.steps} steps, {self.rejected} children dropped by the analytic budget "
                "check (not stored)")

    def tell(self, proposals: Sequence[Proposal], records: Sequence[TrialRecord]) -> None:
        pool = {m.genome: m for m in self.population}
        for record in records:
            if not record.failed:
                pool.setdefault(record.genome, Member(record.genome, record))
        members = list(pool.values())
        if len(self.objectives) == 1:
            sign = -1.0 if self.objectives[0].direction == "max" else 1.0
            members.sort(key=lambda m: (not m.record.feasible, m.record.violation, sign * m.record.values[0],
                                        m.record.number))
            self.population = members[: self.size]
        else:
            self.population = select_survivors(members, self.size, self.objectives)
