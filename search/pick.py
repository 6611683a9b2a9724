"""The pick: the one front candidate ``archprune pareto`` recommends, and why.

With an accuracy objective (an mAP, top-1 or accuracy metric that is maximised) the pick is the
cheapest front candidate on the first minimised objective whose accuracy is within ``max_drop``
(in that metric's own units) of the unpruned model's, as the front measures it. A run without an
unpruned trial (block space, nb201) is measured against the front's most accurate candidate.
Without an accuracy objective the pick is the knee. The knee is recommended only on the right side
of the max-drop line: the geometric knee of a front whose cheap end reads 0 mAP is no advice.

This module is plain data (like ``search.pareto``); the table, JSON, plots and ``export --pick``
all read one ``Pick``.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any, Sequence

from search.objectives import Objective, metric_unit
from search.pareto import ParetoFront, stored_pareto_front
from search.store import TrialRecord
from spaces.errors import ArchpruneError

DEFAULT_MAX_DROP = 0.02
# mAP (map50_95, map50, their _int8 twins), top-1 / top-5, and table columns like test_acc_cifar10
_ACCURACY = re.compile(r"map|acc|top1|top5", re.IGNORECASE)


def parse_max_drop(text: str | float | None) -> float:
    """``--max-drop``: a non-negative number, in the accuracy metric's own units."""
    if text is None:
        return DEFAULT_MAX_DROP
    try:
        value = float(text)
    except (TypeError, ValueError):
        raise ArchpruneError(f"--max-drop {text!r}: give a number, e.g. 0.02 (in the accuracy metric's units)"
                             ) from None
    if not math.isfinite(value) or value < 0:
        raise ArchpruneError(f"--max-drop {text!r}: give a non-negative number, e.g. 0.02")
    return value


def accuracy_index(objectives: Sequence[Objective]) -> int | None:
    """The first maximised objective named like an accuracy (mAP, top-1, *acc*)."""
    return next((i for i, o in enumerate(objectives) if o.direction == "max" and _ACCURACY.search(o.name)), None)


def cost_index(objectives: Sequence[Objective]) -> int | None:
    """The first minimised objective: what the pick saves."""
    return next((i for i, o in enumerate(objectives) if o.direction == "min"), None)


@dataclass
class Pick:
    trial: TrialRecord | None  # None only when no front candidate is within max_drop, or no front
    rule: str  # "max-drop" or "knee"
    note: str  # the one line `pareto` prints
    max_drop: float | None = None  # None under the knee rule
    accuracy: Objective | None = None
    cost: Objective | None = None
    reference: TrialRecord | None = None  # the unpruned trial, or the front's most accurate one
    reference_value: float | None = None
    line: float | None = None  # the max-drop line: reference_value - max_drop
    knee: TrialRecord | None = None  # the knee, only when it may be recommended

    @property
    def number(self) -> int | None:
        return self.trial.number if self.trial else None

    def rule_text(self) -> str:
        if self.rule == "knee":
            return "knee: the front point nearest the ideal corner (no accuracy objective to hold)"
        assert self.accuracy and self.cost
        against = "the unpruned model's" if self.reference and self.reference.source == "unpruned" else \
            "the front's best"
        return (f"cheapest {self.cost.name} on the front with {self.accuracy.name} within {self.max_drop:g} "
                f"of {against}")

    def as_json(self) -> dict[str, Any]:
        ref = None
        if self.reference is not None and self.accuracy is not None:
            ref = {"trial": self.reference.number, "source": self.reference.source,
                   self.accuracy.name: self.reference_value}
        return {"pick": self.number, "pick_rule": self.rule_text(), "max_drop": self.max_drop,
                "max_drop_line": self.line, "pick_reference": ref, "pick_note": self.note}


def _fmt(value: float, name: str, pf: ParetoFront) -> str:
    unit = pf.unit(name)
    return f"{value:.4g}" + (f" {unit}" if unit in ("ms", "GFLOPs", "M params") else "")


def _knee_pick(pf: ParetoFront, why: str) -> Pick:
    knee = pf.knee
    note = (f"pick: trial {knee.number} ({knee.source}), the knee: {why}, so the pick is the front point "
            "nearest the ideal corner" if knee else "no pick: no feasible candidate yet")
    return Pick(trial=knee, rule="knee", note=note, knee=knee)


def choose_pick(pf: ParetoFront, records: Sequence[TrialRecord], max_drop: float = DEFAULT_MAX_DROP) -> Pick:
    """The pick of ``pf``; ``records`` are all the run's trials (the unpruned one may be infeasible)."""
    a, c = accuracy_index(pf.objectives), cost_index(pf.objectives)
    if a is None:
        return _knee_pick(pf, "the run has no accuracy objective")
    if c is None:
        return _knee_pick(pf, "the run has no minimised (cost) objective")
    acc, cost = pf.objectives[a], pf.objectives[c]
    if not pf.front:
        return Pick(trial=None, rule="max-drop", note="no pick: no feasible candidate yet", max_drop=max_drop,
                    accuracy=acc, cost=cost)
    unpruned = next((r for r in records if r.source == "unpruned" and not r.failed and len(r.values) > a
                     and math.isfinite(r.values[a])), None)
    reference = unpruned or max(pf.front, key=lambda r: (r.values[a], -r.number))
    ref_value = reference.values[a]
    line = ref_value - max_drop
    tolerance = 1e-9 * max(1.0, abs(line))  # 0.845 - 0.02 must admit a reading of exactly 0.825

    def within(r: TrialRecord) -> bool:
        return r.values[a] >= line - tolerance

    qualified = [r for r in pf.front if within(r)]
    knee = pf.knee if pf.knee is not None and within(pf.knee) else None
    pick = min(qualified, key=lambda r: (r.values[c], -r.values[a], r.number)) if qualified else None
    why = ("the unpruned trial has no " + acc.name + " reading" if any(r.source == "unpruned" for r in records)
           else "the run has no unpruned trial")
    who = (f"the unpruned model (trial {reference.number}: {ref_value:.4g})" if unpruned else
           f"the front's most accurate candidate (trial {reference.number}: {ref_value:.4g}; {why})")
    if pick is None:  # only when the unpruned model itself is not on the front (infeasible)
        best = max(pf.front, key=lambda r: r.values[a])
        note = (f"no pick: no feasible front candidate has {acc.name} within {max_drop:g} of {who}; "
                f"the most accurate is trial {best.number} at {best.values[a]:.4g}")
    elif unpruned is not None and pick.number == unpruned.number and len(qualified) == 1:
        pruned = [r for r in pf.front if r.number != pick.number]
        nearest = max(pruned, key=lambda r: r.values[a]) if pruned else None
        note = (f"pick: trial {pick.number}, the unpruned model itself: no pruned front candidate has {acc.name} "
                f"within {max_drop:g} of it as the front measures it"
                + (f" (the nearest, trial {nearest.number}, is {ref_value - nearest.values[a]:.4g} below)"
                   if nearest else ""))
    else:
        note = (f"pick: trial {pick.number} ({pick.source}), the cheapest on {cost.name} "
                f"({_fmt(pick.values[c], cost.name, pf)}) of the {len(qualified)} front candidates with {acc.name} "
                f"within {max_drop:g} of {who}; it reads {pick.values[a]:.4g} as the front measures it")
    return Pick(trial=pick, rule="max-drop", note=note, max_drop=max_drop, accuracy=acc, cost=cost, reference=reference,
                reference_value=ref_value, line=line, knee=knee)


def pick_of_store(store: Any, max_drop: float = DEFAULT_MAX_DROP) -> Pick:
    """The pick of a run's store, as ``archprune pareto`` names it (the knee ignores --hv-ref)."""
    return choose_pick(stored_pareto_front(store), store.records_from("unpruned"), max_drop)


# -- where the pick prunes (pick.png) ---------------------------------------------------------

@dataclass
class Widths:
    """Kept channels per group of a channel-space run: the base, the pick and uniform pruning."""

    groups: list[str]
    base: list[int]
    pick: list[int]
    pick_trial: TrialRecord
    base_label: str
    uniform: list[int] | None = None
    uniform_trial: TrialRecord | None = None
    cost_name: str | None = None
    cost_unit: str = ""


def _groups(r: TrialRecord) -> dict[str, int] | None:
    groups = r.config.get("groups")
    # a channel-space config carries its group counts and its rounding (see ChannelSpace.to_config)
    return groups if isinstance(groups, dict) and groups and "round_to" in r.config else None


def _cost_of(r: TrialRecord, name: str | None) -> float | None:
    value = r.metrics.get(name) if name else None
    return float(value) if isinstance(value, (int, float)) and math.isfinite(value) else None


def _layer_order(name: str) -> list[tuple[int, int | str]]:
    """``model.2.m.0.cv1.conv`` before ``model.10.cv1.conv``: the graph lists groups in no useful
    order, and a width picture reads along the network."""
    return [(0, int(part)) if part.isdigit() else (1, part) for part in name.split(".")]


def pick_widths(pick: Pick, records: Sequence[TrialRecord], pf: ParetoFront | None = None) -> Widths | None:
    """What ``pick.png`` draws; None for a run that is not a channel-space run, or without a pick."""
    kept = _groups(pick.trial) if pick.trial is not None else None
    if pick.trial is None or kept is None:
        return None
    names = sorted(kept, key=_layer_order)
    stored = {r.number: g for r in records if (g := _groups(r)) is not None}
    unpruned = next((r for r in records if r.source == "unpruned" and r.number in stored), None)
    if unpruned is not None:
        base, label = stored[unpruned.number], f"base (trial {unpruned.number})"
    else:  # every channel driver starts from the unpruned model; an odd run still gets a picture
        base, label = {n: max(g.get(n, 0) for g in stored.values()) for n in names}, "widest stored"
    cost_name = pick.cost.name if pick.cost else "flops_g"  # the knee rule has no cost objective to follow
    target = _cost_of(pick.trial, cost_name)
    costs = {r.number: c for r in records if r.source.startswith("uniform-") and r.number in stored
             and (c := _cost_of(r, cost_name)) is not None}
    nearest = None
    if costs and target is not None:
        number = min(costs, key=lambda n: abs(costs[n] - target))
        nearest = next(r for r in records if r.number == number)
    return Widths(groups=names, base=[int(base.get(n, kept[n])) for n in names], pick=[int(kept[n]) for n in names],
                  pick_trial=pick.trial, base_label=label,
                  uniform=[int(stored[nearest.number].get(n, 0)) for n in names] if nearest else None,
                  uniform_trial=nearest, cost_name=cost_name,
                  cost_unit=metric_unit(cost_name, pf.units if pf is not None else None))
