"""Scoring one candidate: build it, run the evaluators cheapest first, stop at a broken budget.

A candidate that breaks a hard constraint after a cheap evaluator never reaches the expensive
ones; the objectives it did not reach are stored as their worst value. An exception anywhere
becomes a failed outcome carrying the error text, so the search records it and goes on.
"""
from __future__ import annotations

import time
import traceback
from dataclasses import dataclass, field
from typing import Any, Sequence

from evaluators._base import Candidate, Evaluator
from search.objectives import Constraint, Objective
from spaces._base import Genome, SearchSpace
from spaces.errors import ArchpruneError


@dataclass
class Outcome:
    config: dict[str, Any] = field(default_factory=dict)  # the space's readable description
    metrics: dict[str, Any] = field(default_factory=dict)
    constraints: dict[str, float] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)  # metrics never computed (a budget stopped it)
    error: str | None = None
    traceback: str = ""


class EvaluationPipeline:
    def __init__(self, space: SearchSpace, evaluators: Sequence[Evaluator], objectives: Sequence[Objective],
                 constraints: Sequence[Constraint], imgsz: int) -> None:
        self.space, self.imgsz = space, imgsz
        self.evaluators = sorted(evaluators, key=lambda e: e.cost)  # cheapest first
        self.objectives, self.constraints = list(objectives), list(constraints)
        provided = {m for e in self.evaluators for m in e.metric_names}
        self.builds_model = any(e.needs_model for e in self.evaluators)  # a table lookup never builds the net
        for name in [o.name for o in self.objectives] + [c.name for c in self.constraints]:
            if name not in provided:
                raise ArchpruneError(f"no evaluator computes {name!r}; the evaluators give {', '.join(sorted(provided))}")

    def evaluate(self, genome: Genome) -> Outcome:
        out = Outcome()
        start = time.perf_counter()
        try:
            out.config = self.space.to_config(genome)
            tick = time.perf_counter()
            model = self.space.build(genome) if self.builds_model else None
            out.timings["build_s"] = time.perf_counter() - tick
            candidate = Candidate(model=model, imgsz=self.imgsz, genome=tuple(genome), config=out.config)
            for index, evaluator in enumerate(self.evaluators):
                tick = time.perf_counter()
                evaluator.last_timings = {}
                out.metrics.update(evaluator.evaluate(candidate))
                out.timings[f"{evaluator.name}_s"] = time.perf_counter() - tick
                out.timings.update(evaluator.last_timings)
                for c in self.constraints:
                    if str(c) not in out.constraints and c.name in out.metrics:
                        out.constraints[str(c)] = float(c.violation(float(out.metrics[c.name])))
                if any(v > 0 for v in out.constraints.values()):
                    out.skipped = [m for e in self.evaluators[index + 1:] for m in e.metric_names]
                    break
        except KeyboardInterrupt:
            raise
        except Exception as err:  # a failing candidate is recorded as failed; the search goes on
            text = str(err).strip().splitlines()[0] if str(err).strip() else ""
            out.error = f"{type(err).__name__}: {text}" if text else type(err).__name__
            out.traceback = traceback.format_exc()
        out.timings["total_s"] = time.perf_counter() - start
        return out
