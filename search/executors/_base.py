"""The one seam every evaluation goes through, whoever proposed the candidate.

An executor takes a genome and hands back a future of its ``Outcome``; ``capacity`` says how many
evaluations it runs at once, so the search loop keeps that many in flight. Failures come back as
an ``Outcome`` with ``error`` set, never raised: a failing candidate is recorded and the search goes on.
"""
from __future__ import annotations

import abc
from concurrent.futures import Future

from search.pipeline import Outcome
from spaces._base import Genome


class Executor(abc.ABC):
    #: evaluations run at the same time (the search keeps this many in flight)
    capacity: int = 1

    @abc.abstractmethod
    def submit(self, genome: Genome) -> Future[Outcome]:
        """Start scoring one candidate; the future resolves to its outcome (errors included)."""

    def evaluate(self, genome: Genome) -> Outcome:
        return self.submit(genome).result()

    def close(self) -> None:
        """Release workers (optional)."""


def done(outcome: Outcome) -> Future[Outcome]:
    """A future that already holds ``outcome`` (executors that evaluate on the spot)."""
    future: Future[Outcome] = Future()
    future.set_result(outcome)
    return future
