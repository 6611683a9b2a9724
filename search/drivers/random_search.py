"""Random search: the space's baselines, then uniform samples. The baseline every driver must beat."""
from __future__ import annotations

from typing import Sequence

from search.drivers._base import Driver, Proposal
from search.objectives import Objective
from search.store import TrialRecord
from spaces._base import SearchSpace


class RandomDriver(Driver):
    def __init__(self, space: SearchSpace, objectives: Sequence[Objective], seed: int = 0, offspring: int = 16) -> None:
        super().__init__(space, objectives, seed)
        self.batch, self._started = offspring, False  # candidates per ask

    def ask(self) -> list[Proposal]:
        if not self._started:
            self._started = True
            return self.initial(self.batch)
        return [Proposal(self.space.sample(self.rng), "random") for _ in range(self.batch)]

    def tell(self, proposals: Sequence[Proposal], records: Sequence[TrialRecord]) -> None:
        pass  # random search learns nothing
