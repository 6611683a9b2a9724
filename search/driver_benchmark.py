"""``archprune bench drivers``: how close each driver gets to a table's true Pareto front.

The table (NAS-Bench-201: every cell with its trained accuracy and measured latencies) gives the
true front. Each driver runs for the largest budget once per seed, in memory, and is scored at
every budget on the prefix of its trials: a run stopped at B trials is exactly the first B trials
of a longer run with the same seed (the drivers are seeded and the stopping rule only counts).
"""
from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from typing import Any, Callable, Sequence

from evaluators.table_lookup import Table, TableEvaluator
from search.objectives import Objective, parse_objectives
from search.pareto import hypervolume, non_dominated
from search.runner import search
from search.store import TrialRecord
from spaces.errors import ArchpruneError
from spaces.nb201_space import NB201Space, arch_to_genome


@dataclass
class TrueFront:
    objectives: list[Objective]
    records: list[TrialRecord]  # every row of the table
    front: list[TrialRecord]
    reference: list[float]  # the worst value of each objective over the whole table
    hypervolume: float


def true_front(table: Table, objectives: Sequence[Objective]) -> TrueFront:
    records = [TrialRecord(number=i, genome=arch_to_genome(arch), failed=False,
                           values=tuple(table.value(arch, o.name) for o in objectives), config={"arch_str": arch})
               for i, arch in enumerate(table.rows)]
    reference = [max(r.values[i] for r in records) if o.direction == "min" else min(r.values[i] for r in records)
                 for i, o in enumerate(objectives)]
    front = non_dominated(records, objectives)
    return TrueFront(list(objectives), records, front, reference, hypervolume(front, objectives, reference))


def _stats(values: list[float]) -> dict[str, float]:
    return {"mean": statistics.fmean(values), "std": statistics.stdev(values) if len(values) > 1 else 0.0}


def benchmark_drivers(table_path: str, objectives_spec: str, budgets: Sequence[int], seeds: int,
                      drivers: Sequence[str], driver_options: dict[str, Any] | None = None,
                      say: Callable[[str], None] = lambda line: None) -> dict[str, Any]:
    table = Table(table_path)
    objectives = parse_objectives(objectives_spec, table.columns)
    if len(objectives) < 2:
        raise ArchpruneError("a driver benchmark needs at least two objectives (a front)")
    if not budgets or min(budgets) < 1 or seeds < 1:
        raise ArchpruneError("budgets and --seeds must be positive")
    truth = true_front(table, objectives)
    if truth.hypervolume <= 0:
        raise ArchpruneError("the table's true front has zero hypervolume against its worst values")
    on_front = {r.genome for r in truth.front}
    say(f"{table.path.name}: {len(truth.records)} cells, true front of {len(truth.front)} over "
        f"{','.join(str(o) for o in objectives)}; reference {truth.reference}")
    evaluator = TableEvaluator(table, {o.name: o.direction for o in objectives})
    space = NB201Space()
    report: dict[str, Any] = {}
    for driver in drivers:
        gaps: dict[int, list[float]] = {b: [] for b in budgets}
        recalls: dict[int, list[float]] = {b: [] for b in budgets}
        per_trial: list[float] = []
        for seed in range(seeds):
            start = time.perf_counter()
            result = search(space, [evaluator], objectives, imgsz=32, driver=driver, driver_options=driver_options,
                            storage="memory", run=f"{driver}-{seed}", trials=max(budgets), seed=seed, progress=False)
            records = result.store.records()
            per_trial.append((time.perf_counter() - start) / max(len(records), 1))
            for b in budgets:
                prefix = records[:b]
                found = non_dominated(prefix, objectives)
                gaps[b].append(1.0 - hypervolume(found, objectives, truth.reference) / truth.hypervolume)
                recalls[b].append(len({r.genome for r in prefix} & on_front) / len(on_front))
        report[driver] = {str(b): {"hv_gap": _stats(gaps[b]), "front_recall": _stats(recalls[b]),
                                   "seconds_per_trial": statistics.fmean(per_trial)} for b in budgets}
        say(f"{driver}: " + "; ".join(f"{b}: hv gap {report[driver][str(b)]['hv_gap']['mean']:.4f}, recall "
                                      f"{report[driver][str(b)]['front_recall']['mean']:.3f}" for b in budgets)
            + f" ({statistics.fmean(per_trial) * 1000:.1f} ms a trial)")
    return report


def format_report(report: dict[str, Any]) -> str:
    lines = [f"{'driver':>8} {'budget':>7} {'hv gap mean':>12} {'± std':>8} {'recall mean':>12} {'± std':>8} "
             f"{'ms/trial':>9}"]
    for driver, budgets in report.items():
        for budget, row in budgets.items():
            lines.append(f"{driver:>8} {budget:>7} {row['hv_gap']['mean']:>12.4f} {row['hv_gap']['std']:>8.4f} "
                         f"{row['front_recall']['mean']:>12.3f} {row['front_recall']['std']:>8.3f} "
                         f"{row['seconds_per_trial'] * 1000:>9.2f}")
    return "\n".join(lines)
