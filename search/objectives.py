"""Objectives (``name:min|max``) and hard constraints (``name<=value`` / ``name>=value``).

The metric names are the project's conventions; a typo gets a one-line error with the nearest
known name, before any model is loaded.
"""
from __future__ import annotations

import difflib
import math
import re
from dataclasses import dataclass
from typing import Any, Iterable

from spaces.errors import ArchpruneError

#: metric -> (natural direction, unit for axes and tables)
METRICS: dict[str, tuple[str, str]] = {
    "latency_ms": ("min", "ms"),
    "latency_p90_ms": ("min", "ms"),
    "flops_g": ("min", "GFLOPs"),
    "params_m": ("min", "M params"),
    "map50_95": ("max", "mAP50-95"),
    "map50": ("max", "mAP50"),
    "top1": ("max", "top-1"),
    "layers": ("min", "layers"),
    # a block-space detector's backbone alone (the searched part; flops_g / params_m are the whole detector)
    "backbone_flops_g": ("min", "GFLOPs"),
    "backbone_params_m": ("min", "M params"),
    # training-free scores (evaluators/zero_shot): higher is better, no unit
    "entropy": ("max", ""),
    "zen": ("max", ""),
    "naswot": ("max", ""),
    "synflow": ("max", ""),
    "snip": ("max", ""),
    "grad_norm": ("max", ""),
    "jacob_cov": ("max", ""),
}
ZERO_SHOT_METRICS = ("entropy", "zen", "naswot", "synflow", "snip", "grad_norm", "jacob_cov")
# values a metric can take at all: a constraint outside them can never be met
_RANGES: dict[str, tuple[float, float]] = {
    "latency_ms": (0.0, math.inf), "latency_p90_ms": (0.0, math.inf), "flops_g": (0.0, math.inf),
    "params_m": (0.0, math.inf), "map50_95": (0.0, 1.0), "map50": (0.0, 1.0), "top1": (0.0, 1.0),
    "layers": (1.0, math.inf), "backbone_flops_g": (0.0, math.inf), "backbone_params_m": (0.0, math.inf),
}


def check_metric(name: str, known: Iterable[str] = METRICS) -> str:
    known = list(known)
    if name not in known:
        close = difflib.get_close_matches(name, known, n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        raise ArchpruneError(f"unknown metric {name!r}: {hint}known metrics are {', '.join(known)}")
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
    known = list(METRICS if known is None else known)
    items = [s.strip() for s in (spec.split(",") if isinstance(spec, str) else spec) if s and s.strip()]
    if not items:
        raise ArchpruneError("no objectives given: use for example --objectives latency_ms:min,map50_95:max")
    objectives = []
    for item in items:
        name, sep, direction = item.partition(":")
        name = check_metric(name.strip(), known)
        direction = direction.strip() if sep else METRICS.get(name, ("",))[0]
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
    check_metric(name, METRICS if known is None else known)
    try:
        bound = float(raw)
    except ValueError:
        raise ArchpruneError(f"constraint {text!r}: {raw!r} is not a number") from None
    low, high = _RANGES.get(name, (-math.inf, math.inf))
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
