"""Evaluations in the search process: simplest to debug, but a hung candidate hangs the search."""
from __future__ import annotations

from concurrent.futures import Future

from search.executors._base import Executor, done
from search.pipeline import EvaluationPipeline, Outcome
from spaces._base import Genome


class InlineExecutor(Executor):
    def __init__(self, pipeline: EvaluationPipeline) -> None:
        self.pipeline = pipeline

    def submit(self, genome: Genome) -> Future[Outcome]:
        return done(self.pipeline.evaluate(genome))
