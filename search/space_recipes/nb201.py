"""``--space nb201``: NAS-Bench-201's 15,625 cells, scored by looking them up in ``--table`` (no
network is built) and, for training-free scores, by building each cell."""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from search.space_recipes._base import SearchParts, SpaceRecipe
from spaces.errors import ArchpruneError

if TYPE_CHECKING:
    from evaluators._base import Evaluator
    from search.runs import RunHandle
    from search.settings import RunSettings
    from search.store import TrialRecord

CELL_IMGSZ = 32  # CIFAR-sized cells


class NB201Recipe(SpaceRecipe):
    summary = "--table"
    own_settings = ("table",)
    example = {"table": "../shared/data/nb201/nb201_cifar10.csv", "objectives": "test_acc_cifar10:max,lat_pixel3:min"}

    def check(self, settings: RunSettings) -> None:
        if not settings.table:
            raise ArchpruneError("the nb201 space is scored from a table: pass --table CSV "
                                 "(for example ../shared/data/nb201/nb201_cifar10.csv)")

    def run_source(self, settings: RunSettings) -> str:
        return settings.table or ""

    def known_metrics(self, settings: RunSettings) -> list[str]:
        from evaluators.table_lookup import table_columns
        from search.objectives import zero_shot_metrics

        return table_columns(settings.table) + zero_shot_metrics()

    def build(self, settings: RunSettings) -> SearchParts:
        from evaluators.table_lookup import TableEvaluator
        from evaluators.zero_shot_evaluator import ZeroShotEvaluator
        from search.objectives import zero_shot_metrics
        from spaces.nb201_space import NB201Space

        scores = set(settings.metric_names()) & set(zero_shot_metrics())
        names = {o.name: o.direction for o in settings.objective_list if o.name not in scores}
        names.update({c.name: "min" for c in settings.constraint_list if c.name not in names and c.name not in scores})
        evaluators: list[Evaluator] = [TableEvaluator(settings.table, names)] if names else []
        if scores:  # they build each cell's network and look at real CIFAR-10 images where ../shared has them
            evaluators.append(ZeroShotEvaluator(sorted(scores), seed=settings.seed, data="cifar10",
                                                entropy_weights=settings.entropy_weights))
        return SearchParts(NB201Space(), evaluators, CELL_IMGSZ, settings.constraint_list,
                           f"the nb201 cell space (15,625 cells) scored from {settings.table}")

    def check_export(self, handle: RunHandle) -> None:
        raise ArchpruneError(f"run {handle.name!r} searched the nb201 space, whose candidates are "
                             "table entries: their arch strings are in pareto.csv / pareto.json")

    def export(self, handle: RunHandle, record: TrialRecord, out: Path, say: Callable[[str], None],
               recalibrate_bn: bool = False) -> dict[str, Any]:
        self.check_export(handle)
        return {}
