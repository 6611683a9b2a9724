"""Objectives (``name:min|max``) and hard constraints (``name<=value`` / ``name>=value``).

The metric names are those the registered evaluators declare (``evaluators.registry``); a typo
gets a one-line error with the nearest known name, before any model is loaded.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any, Iterable, Mapping

from evaluators.registry import metric_table, metrics_of
from spaces.errors import ArchpruneError, did_you_mean


def known_metrics() -> list[str]:
    """The project's metric names: every registered evaluator's (``evaluators.registry``)."""
    return list(metric_table())


def metric_unit(name: str, stored: Mapping[str, str] | None = None) -> str:
    """The unit axes and tables show for ``name`` ("" for scores and for a table's own columns):
    from ``stored`` (what a run's evaluators declared, kept in its store) when it has the name, else
    from the registry, whose import loads every evaluator and with them torch (~2 s `pareto` need not pay)."""
    if stored is not None and name in stored:
        return stored[name]
    metric = metric_table().get(name)
    return metric.unit if metric else ""


def zero_shot_metrics() -> list[str]:
    return metrics_of("zero-shot")


def check_metric(name: str, known: Iterable[str] | None = None) -> str:
    known = known_metrics() if known is None else list(known)
    if name not in known:
        raise ArchpruneError(f"unknown metric {name!r}{did_you_mean(name, known)}; known metrics are {', '.join(known)}")
    return name


@dataclass(frozen=True)
class Objective:
    name: str
    direction: str  # "min" or "max"

    @property
    def worst(self) -> float:
        """The value stored for an objective a candidate never reached (stopped by a budget)."""
        return math.inf if self.direction == "min" else -math.inf

    def __str__(self) -> str:
        return f"{self.name}:{self.direction}"


@dataclass(frozen=True)
class Constraint:
    name: str
    op: str  # "<=" or ">="
    bound: float

    def violation(self, value: float) -> float:
        """Optuna's convention: zero or less is satisfied, positive is by how much it is broken."""
        return value - self.bound if self.op == "<=" else self.bound - value

    def __str__(self) -> str:
        return f"{self.name}{self.op}{self.bound:g}"


def parse_objectives(spec: str | Iterable[str], known: Iterable[str] | None = None) -> list[Objective]:
    """``"latency_ms:min,map50_95:max"`` (or a list of such items) -> objectives, checked against
    ``known`` metric names (default: the project's metrics; a table search passes its columns)."""
    known = known_metrics() if known is None else list(known)
    items = [s.strip() for s in (spec.split(",") if isinstance(spec, str) else spec) if s and s.strip()]
    if not items:
        raise ArchpruneError("no objectives given: use for example --objectives latency_ms:min,map50_95:max")
    objectives = []
    for item in items:
        name, sep, direction = item.partition(":")
        name = check_metric(name.strip(), known)
        declared = None if sep else metric_table().get(name)  # a stored objective has its direction
        direction = direction.strip() if sep else (declared.direction if declared else "")
        if direction not in ("min", "max"):
            raise ArchpruneError(f"objective {item!r}: give a direction, {name}:min or {name}:max")
        objectives.append(Objective(name, direction))
    names = [o.name for o in objectives]
    if len(set(names)) != len(names):
        raise ArchpruneError(f"objective named twice in {','.join(names)}")
    return objectives


_CONSTRAINT = re.compile(r"^\s*([A-Za-z0-9_]+)\s*(<=|>=)\s*([-+0-9.eE]+)\s*$")


def parse_constraint(text: str, known: Iterable[str] | None = None) -> Constraint:
    match = _CONSTRAINT.match(text)
    if not match:
        raise ArchpruneError(f"constraint {text!r} is not 'name<=value' or 'name>=value' (for example latency_ms<=20)")
    name, op, raw = match.groups()
    check_metric(name, known)
    try:
        bound = float(raw)
    except ValueError:
        raise ArchpruneError(f"constraint {text!r}: {raw!r} is not a number") from None
    declared = metric_table().get(name)
    low, high = (declared.low, declared.high) if declared else (-math.inf, math.inf)
    if (op == "<=" and bound < low) or (op == ">=" and bound > high) or (op == "<=" and bound == low == 0.0):
        raise ArchpruneError(f"constraint {text!r} can never be met: {name} lies in [{low:g}, {high:g}]")
    return Constraint(name, op, bound)


def parse_constraints(items: Iterable[str] | str | None, known: Iterable[str] | None = None) -> list[Constraint]:
    if not items:
        return []
    if isinstance(items, str):
        items = [items]
    out = []
    for item in items:
        out.extend(parse_constraint(part, known) for part in str(item).split(",") if part.strip())
    _check_compatible(out)
    return out


def _check_compatible(constraints: list[Constraint]) -> None:
    """A lower bound above an upper bound on one metric: no candidate is feasible, and a search
    would spend its whole budget finding that out."""
    for low in (c for c in constraints if c.op == ">="):
        for high in (c for c in constraints if c.op == "<=" and c.name == low.name):
            if low.bound > high.bound:
                raise ArchpruneError(f"constraints {low} and {high} cannot both hold: no candidate is feasible; "
                                     "relax one of them")


def describe(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)
