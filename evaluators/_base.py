"""The one-method interface every evaluator implements.

An evaluator scores a built candidate and returns named metrics. Its class declares every metric it
can yield (``metrics``: direction, unit, range), whether it must run on the target device
(``on_target``), and how a search builds it from its settings (``for_run``); ``cost`` orders
evaluators so cheap ones run first (a candidate that breaks a hard budget never reaches the
expensive proxy). ``evaluators.registry`` lists the evaluators by name.
"""
from __future__ import annotations

import abc
import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the CLI lists evaluators and metrics without importing torch
    from torch import nn


@dataclass
class Candidate:
    """A built candidate: the network, the genome it came from and its readable config."""

    model: nn.Module | None  # None when no evaluator of the run needs the network
    imgsz: int
    genome: tuple[int, ...] = ()
    config: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Metric:
    """A metric an evaluator yields: which way is better, its unit (for axes and tables) and the
    values it can take at all (a constraint outside them can never be met)."""

    name: str
    direction: str  # "min" or "max"
    unit: str = ""
    low: float = -math.inf
    high: float = math.inf


@dataclass(frozen=True)
class RunContext:
    """What ``Evaluator.for_run`` builds from: a search's settings (``search.settings.RunSettings``),
    its data (a ``DataConfig`` or None), its image size, and the metrics wanted from this evaluator."""

    settings: Any
    data: Any
    imgsz: int
    wanted: frozenset[str]
    space: Any = None  # the run's SearchSpace (a latency evaluator's reference is its first baseline)


class Evaluator(abc.ABC):
    #: every metric this kind of evaluator can yield (the registry's metric table is built from these)
    metrics: tuple[Metric, ...] = ()
    #: metric name -> "min" or "max", for the metrics this instance yields (default: all declared)
    directions: dict[str, str] = {}
    #: True: measures the target device itself, so a cluster runs it on a worker marked as the target
    on_target: bool = False
    #: True: scores accuracy on the run's images, so a search that wants its metrics needs --data
    needs_data: bool = False
    #: relative cost; evaluators run in increasing order
    cost: int = 0
    #: short name for logs and timings ("flops" -> timings["flops_s"])
    name: str = "evaluator"
    #: False for evaluators that never look at the network (table lookups): the pipeline then
    #: skips building it
    needs_model: bool = True
    #: optional finer split of the last evaluate() call's time, e.g. {"export_s": 0.7}
    last_timings: dict[str, float] = {}

    def bind_run(self, stored: dict[str, Any], resumed: bool, imgsz: int) -> dict[str, Any]:
        """Called once in the search process before any candidate, with the run's stored attributes
        (``resumed``: the run already holds trials); what it returns is stored with the run. A latency
        evaluator takes its scale here, so a resume and every worker measure on the same one."""
        return {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "metrics" in cls.__dict__ and "directions" not in cls.__dict__:
            cls.directions = {m.name: m.direction for m in cls.metrics}

    @classmethod
    def for_run(cls, run: RunContext) -> "Evaluator | None":
        """This evaluator built for a search that wants ``run.wanted`` of its metrics, or None when the
        run's settings choose another evaluator for them (default: None, built by a space's recipe)."""
        return None

    @abc.abstractmethod
    def evaluate(self, candidate: Candidate) -> dict[str, Any]:
        """Named metrics (floats), plus any provenance strings worth storing beside them."""

    @property
    def metric_names(self) -> list[str]:
        return list(self.directions)
