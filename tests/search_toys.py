"""A tiny space and evaluators for testing the search machinery fast and deterministically."""
from __future__ import annotations

from typing import Any

from torch import nn

from evaluators._base import Candidate, Evaluator
from spaces._base import Gene, Genome, SearchSpace


class ToySpace(SearchSpace):
    """Five genes of four choices; ``build`` returns a 1-channel conv (the evaluators read the genome)."""

    def __init__(self, n_genes: int = 5, n_choices: int = 4) -> None:
        self.genes = [Gene(f"g{i}", tuple(range(n_choices))) for i in range(n_genes)]

    def build(self, genome: Genome) -> nn.Module:
        self.validate(genome)
        return nn.Conv2d(1, 1, 1)

    def to_config(self, genome: Genome) -> dict[str, Any]:
        return {"groups": {g.name: c for g, c in zip(self.genes, genome)}}

    def from_config(self, config: dict[str, Any]) -> Genome:
        return tuple(config["groups"][g.name] for g in self.genes)

    def baselines(self) -> list[tuple[str, Genome]]:
        top = len(self.genes[0].choices) - 1
        return [("unpruned", tuple(top for _ in self.genes)), ("uniform-0.5", tuple(top // 2 for _ in self.genes))]


class SizeEvaluator(Evaluator):
    """Cheap: ``size`` = sum of choices (min). Deterministic."""

    directions = {"size": "min"}
    cost = 0
    name = "size"

    def __init__(self) -> None:
        self.calls = 0

    def evaluate(self, candidate: Candidate) -> dict[str, Any]:
        self.calls += 1
        return {"size": float(sum(candidate.genome))}


class QualityEvaluator(Evaluator):
    """Expensive: ``quality`` rises with the choices but with diminishing returns (max); it raises
    for genomes listed in ``fail_on``."""

    directions = {"quality": "max"}
    cost = 10
    name = "proxy"

    def __init__(self, fail_on: tuple[tuple[int, ...], ...] = ()) -> None:
        self.calls, self.fail_on = 0, set(fail_on)

    def evaluate(self, candidate: Candidate) -> dict[str, Any]:
        self.calls += 1
        if tuple(candidate.genome) in self.fail_on:
            raise RuntimeError("boom: this candidate cannot be evaluated")
        return {"quality": float(sum((c + 1) ** 0.5 * (i + 1) for i, c in enumerate(candidate.genome)))}


class TrapEvaluator(Evaluator):
    """Hangs on ``hang_on`` and kills its own process on ``die_on`` (for executor tests)."""

    directions: dict[str, str] = {}
    cost = 5
    name = "trap"

    def __init__(self, hang_on: tuple[int, ...], die_on: tuple[int, ...]) -> None:
        self.hang_on, self.die_on = hang_on, die_on

    def evaluate(self, candidate: Candidate) -> dict[str, Any]:
        import os
        import time

        if tuple(candidate.genome) == self.hang_on:
            time.sleep(3600)
        if tuple(candidate.genome) == self.die_on:
            os._exit(3)
        return {}


class KillOnceEvaluator(Evaluator):
    """Kills the process evaluating ``genome`` the first time only (a marker file remembers): a
    worker lost mid-evaluation, as an out-of-memory kill would do."""

    directions: dict[str, str] = {}
    cost = 5
    name = "killer"

    def __init__(self, genome: tuple[int, ...], marker: str) -> None:
        self.genome, self.marker = genome, marker

    def evaluate(self, candidate: Candidate) -> dict[str, Any]:
        import os
        import signal

        if tuple(candidate.genome) == self.genome and not os.path.exists(self.marker):
            with open(self.marker, "w") as handle:
                handle.write(str(os.getpid()))
            os.kill(os.getpid(), signal.SIGKILL)
        return {}


class SlowEvaluator(Evaluator):
    """Takes ``seconds`` per candidate and, after ``hang_after`` candidates, hangs: a test then kills
    the search in the middle of a candidate for certain."""

    directions: dict[str, str] = {}
    cost = 5
    name = "slow"

    def __init__(self, seconds: float, hang_after: int | None = None) -> None:
        self.seconds, self.hang_after, self.calls = seconds, hang_after, 0

    def evaluate(self, candidate: Candidate) -> dict[str, Any]:
        import time

        self.calls += 1
        time.sleep(3600 if self.hang_after is not None and self.calls > self.hang_after else self.seconds)
        return {}
