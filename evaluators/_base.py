"""The one-method interface every evaluator implements.

An evaluator scores a built candidate and returns named metrics; ``directions`` says which way
each metric is better, and ``cost`` orders evaluators so cheap ones run first (a candidate that
breaks a hard budget never reaches the expensive proxy).
"""
from __future__ import annotations

import abc
from dataclasses import dataclass, field
from typing import Any

from torch import nn


@dataclass
class Candidate:
    """A built candidate: the network, the genome it came from and its readable config."""

    model: nn.Module | None  # None when no evaluator of the run needs the network
    imgsz: int
    genome: tuple[int, ...] = ()
    config: dict[str, Any] = field(default_factory=dict)


class Evaluator(abc.ABC):
    #: metric name -> "min" or "max" (which way is better)
    directions: dict[str, str] = {}
    #: relative cost; evaluators run in increasing order
    cost: int = 0
    #: short name for logs and timings ("flops" -> timings["flops_s"])
    name: str = "evaluator"
    #: False for evaluators that never look at the network (table lookups): the pipeline then
    #: skips building it
    needs_model: bool = True
    #: optional finer split of the last evaluate() call's time, e.g. {"export_s": 0.7}
    last_timings: dict[str, float] = {}

    @abc.abstractmethod
    def evaluate(self, candidate: Candidate) -> dict[str, Any]:
        """Named metrics (floats), plus any provenance strings worth storing beside them."""

    @property
    def metric_names(self) -> list[str]:
        return list(self.directions)
