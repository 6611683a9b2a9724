"""The steady-state evolutionary search of MAE-NAS / DAMO-YOLO's TinyNAS, scored without training.

The population starts from the space's baselines (the initial structure) and grows by mutation only:
each child mutates a uniformly chosen member, and is mutated again while it is a known genome. A
child that breaks a budget the space can check analytically (FLOPs, params, layers of a block
structure) is dropped before anything is built or stored — counted, not recorded. After each batch
the best ``population`` members survive: by the one objective (a training-free score, usually), or
by non-dominated sorting and crowding when there are several (``entropy:max,latency_ms:min``). Each
``ask`` hands out ``batch`` children so the store writes in batches, not one by one.

Several processes can share one run (``--islands N``; TinyNAS runs its EA over MPI ranks the same
way): before each batch a process reads what the others stored since its last look and takes it
into its population, so the islands share one population through the store. Each island mutates
with its own seed and keeps only the children of its share of the genomes (``hash(genome) %
islands``), so two islands never score one candidate (sharing a population, they proposed the same
child ~4 times in 1,000 before). Island 0 starts from the space's baselines, the others from what
island 0 has stored. One process alone reads nothing new, so its search (and a resume's replay) is
unchanged.
"""
from __future__ import annotations

import time
from typing import Sequence

from search.drivers._base import Driver, Proposal
from search.drivers.nsga2 import Member, select_survivors
from search.objectives import Constraint, Objective
from search.seen_genomes import SeenGenomes
from search.store import Store, TrialRecord
from spaces._base import Genome, SearchSpace

MAX_TRIES = 100  # walks per wanted child before a batch goes out short
# A child already seen (or another island's) is mutated again, a step further from its parent, up to
# this many steps: after ~100,000 trials the population's one-step neighbourhood is mostly known, and
# drawing a fresh parent each time cost 88% of the search in mutations (the rate fell ~950 -> ~50
# structures/s, BENCHMARKS.md)
MAX_WALK = 8
FIRST_RECORDS_WAIT_S = 600.0  # an island other than 0 waits this long for island 0's first batch


class ZeroShotDriver(Driver):
    shares_studies = True  # others' trials come in through the store before every batch (islands)

    def __init__(self, space: SearchSpace, objectives: Sequence[Objective], seed: int = 0, population: int = 256,
                 offspring: int = 64, imgsz: int | None = None, island: int = 0, islands: int = 1) -> None:
        super().__init__(space, objectives, seed)
        self.size, self.batch, self.imgsz = population, offspring, imgsz
        self.island, self.islands = island, islands
        self.population: list[Member] = []
        self.constraints: list[Constraint] = []
        self.seen = SeenGenomes()
        self.rejected = 0  # children dropped by the analytic budget check (never stored)
        self.heard = 0  # records other processes stored that joined this population
        self.mutations = 0
        self.steps = 0
        self.store: Store | None = None

    def bind(self, store: Store, constraints: Sequence[Constraint]) -> None:
        self.constraints = list(constraints)
        self.store = store if store.cheap_refresh else None  # an in-memory store has no other writer

    def _hear(self) -> None:
        """Take what the other islands stored since the last look into the population."""
        if self.store is None:
            return
        fresh = self.store.refresh_records()
        if fresh:
            self.heard += len(fresh)
            self.seen.update(r.genome for r in fresh)
            self._select(list({m.genome: m for m in self.population}.values())
                         + [Member(r.genome, r) for r in fresh if not r.failed])

    def _first_records(self) -> list[Member]:
        """An island after the first starts from the run's best stored records (island 0's baselines
        at least), waiting for them: starting from the baselines too would score them twice."""
        assert self.store is not None
        deadline = time.monotonic() + FIRST_RECORDS_WAIT_S
        while True:
            self.store.refresh()
            stored = self.store.records()
            if any(not r.failed for r in stored) or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        self.seen.update(r.genome for r in stored)
        self._select([Member(r.genome, r) for r in stored if not r.failed])
        return self.population

    def _breaks_budget(self, genome: Genome) -> bool:
        if not self.constraints:
            return False
        metrics = self.space.analytic_metrics(genome, self.imgsz)
        return any(c.violation(float(metrics[c.name])) > 0 for c in self.constraints if c.name in metrics)

    def ask(self) -> list[Proposal]:
        self._hear()
        if not self.population and self.island > 0 and self.store is not None and self._first_records():
            start: list[Proposal] = []
            parents = [m.genome for m in self.population]
        elif not self.population:
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
            child = parents[int(self.rng.integers(len(parents)))]
            for _ in range(MAX_WALK):
                child = self.space.mutate(child, self.rng)
                self.mutations += 1
                if child not in self.seen and self._mine(child):
                    break
            else:
                continue
            self.seen.add(child)
            if self._breaks_budget(child):
                self.rejected += 1
                continue
            children.append(Proposal(child, f"zeroshot-s{self.steps}" if not self.island
                                     else f"zeroshot-i{self.island}-s{self.steps}"))
        return children

    def _mine(self, genome: Genome) -> bool:
        """Whether this island scores ``genome`` (tuples of ints hash alike in every process)."""
        return self.islands == 1 or hash(genome) % self.islands == self.island

    def report(self) -> str | None:
        heard = f"; {self.heard} trials of other islands joined its population" if self.heard else ""
        island = f" (island {self.island})" if self.island else ""
        return (f"zero-shot EA{island}: {self.steps} steps, {self.mutations} mutations, {self.rejected} children "
                f"dropped by the analytic budget check (not stored){heard}")

    def tell(self, proposals: Sequence[Proposal], records: Sequence[TrialRecord]) -> None:
        pool = {m.genome: m for m in self.population}
        for record in records:
            if not record.failed:
                pool.setdefault(record.genome, Member(record.genome, record))
        self._select(list(pool.values()))

    def _select(self, members: list[Member]) -> None:
        if len(self.objectives) == 1:
            sign = -1.0 if self.objectives[0].direction == "max" else 1.0
            members.sort(key=lambda m: (not m.record.feasible, m.record.violation, sign * m.record.values[0],
                                        m.record.number))
            self.population = members[: self.size]
        else:
            self.population = select_survivors(members, self.size, self.objectives)
