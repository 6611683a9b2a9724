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

    def then(self, later: Outcome) -> Outcome:
        """This stage's outcome followed by a later stage's (the config and the first error win)."""
        timings = dict(self.timings)
        for key, value in later.timings.items():
            timings[key] = timings.get(key, 0.0) + value if key in ("build_s", "total_s") else value
        return Outcome(config=self.config or later.config, metrics={**self.metrics, **later.metrics},
                       constraints={**self.constraints, **later.constraints}, timings=timings,
                       skipped=self.skipped + later.skipped, error=self.error or later.error,
                       traceback=self.traceback or later.traceback)


class EvaluationPipeline:
    def __init__(self, space: SearchSpace, evaluators: Sequence[Evaluator], objectives: Sequence[Objective],
                 constraints: Sequence[Constraint], imgsz: int) -> None:
        self.space, self.imgsz = space, imgsz
        self.evaluators = sorted(evaluators, key=lambda e: e.cost)  # cheapest first
        self.objectives, self.constraints = list(objectives), list(constraints)
        provided = {m for e in self.evaluators for m in e.metric_names}
        for name in [o.name for o in self.objectives] + [c.name for c in self.constraints]:
            if name not in provided:
                raise ArchpruneError(f"no evaluator computes {name!r}; the evaluators give {', '.join(sorted(provided))}")

    def stages(self) -> list[tuple[list[str], bool]]:
        """The evaluator names in cost order, cut wherever ``on_target`` changes, each stage with whether
        it must run on the target device: how a cluster runs a measured latency on the device and the
        rest anywhere, stage by stage."""
        stages: list[tuple[list[str], bool]] = []
        for evaluator in self.evaluators:
            if stages and stages[-1][1] == evaluator.on_target:
                stages[-1][0].append(evaluator.name)
            else:
                stages.append(([evaluator.name], evaluator.on_target))
        return stages

    def evaluate(self, genome: Genome, only: Sequence[str] | None = None) -> Outcome:
        """Score ``genome`` with every evaluator, or with the ones named in ``only`` (one stage)."""
        out = Outcome()
        start = time.perf_counter()
        evaluators = self.evaluators if only is None else [e for e in self.evaluators if e.name in only]
        try:
            out.config = self.space.to_config(genome)
            tick = time.perf_counter()
            model = self.space.build(genome) if any(e.needs_model for e in evaluators) else None
            out.timings["build_s"] = time.perf_counter() - tick
            candidate = Candidate(model=model, imgsz=self.imgsz, genome=tuple(genome), config=out.config)
            for index, evaluator in enumerate(evaluators):
                tick = time.perf_counter()
                evaluator.last_timings = {}
                out.metrics.update(evaluator.evaluate(candidate))
                out.timings[f"{evaluator.name}_s"] = time.perf_counter() - tick
                out.timings.update(evaluator.last_timings)
                for c in self.constraints:
                    if str(c) not in out.constraints and c.name in out.metrics:
                        out.constraints[str(c)] = float(c.violation(float(out.metrics[c.name])))
                if any(v > 0 for v in out.constraints.values()):
                    out.skipped = [m for e in evaluators[index + 1:] for m in e.metric_names]
                    break
        except KeyboardInterrupt:
            raise
        except Exception as err:  # a failing candidate is recorded as failed; the search goes on
            text = str(err).strip().splitlines()[0] if str(err).strip() else ""
            out.error = f"{type(err).__name__}: {text}" if text else type(err).__name__
            out.traceback = traceback.format_exc()
        out.timings["total_s"] = time.perf_counter() - start
        return out
