"""The small base of a space recipe: how ``archprune search`` turns settings into a search of one space.

A recipe checks the settings its space needs or refuses, builds the search's parts (the space, its
evaluators, the image size, the budgets and a line that describes it), exports a chosen trial, and
gives the latency-table CLI the candidates to calibrate on. ``search.space_recipes`` registers them
by the ``--space`` name.
"""
from __future__ import annotations

import abc
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from spaces.errors import ArchpruneError

if TYPE_CHECKING:
    from evaluators._base import Evaluator
    from search.objectives import Constraint
    from search.runs import RunHandle
    from search.settings import RunSettings
    from search.store import TrialRecord
    from spaces._base import SearchSpace


@dataclass
class SearchParts:
    space: SearchSpace
    evaluators: list[Evaluator]
    imgsz: int
    constraints: list[Constraint]
    description: str  # "24 channel groups (10^31 candidates, importance l1) of yolov8n-digits at 160px"


class SpaceRecipe(abc.ABC):
    #: the words after the name in ``--space``'s help: "channels (default: prune --model)"
    summary: str = ""
    #: settings only this space reads (``init`` for blocks): another space refuses them
    own_settings: tuple[str, ...] = ()
    #: the settings of a small search of this space (seconds): the space family's test suite runs it
    example: dict[str, Any] = {}

    def check(self, settings: RunSettings) -> None:
        """What this space needs from, or refuses in, settings that pass every general check."""

    def run_source(self, settings: RunSettings) -> str:
        """What a run's default name is made from (``channels-yolov8n-digits``): the model by default."""
        return settings.model

    def known_metrics(self, settings: RunSettings) -> list[str] | None:
        """The metric names objectives may use, when not the registered evaluators' (a table's columns)."""
        return None

    @abc.abstractmethod
    def build(self, settings: RunSettings) -> SearchParts:
        """Load what the settings name and build the search's parts; each bad input a one-line error."""

    def check_export(self, handle: RunHandle) -> None:
        """Refuse, in one line, a run whose candidates cannot be exported as files."""

    @abc.abstractmethod
    def export(self, handle: RunHandle, record: TrialRecord, out: Path, say: Callable[[str], None],
               recalibrate_bn: bool = False) -> dict[str, Any]:
        """Write the chosen trial to ``out`` (files that rebuild it exactly); its summary. ``recalibrate_bn``:
        also write a copy whose BatchNorm statistics are re-estimated on the run's images, where it has any."""

    def calibration_space(self, source: str, nc: int) -> SearchSpace:
        """The space whose candidates calibrate a latency table, for ``--calibrate NAME[:SOURCE]``."""
        raise ArchpruneError(f"--calibrate: the {type(self).__name__} space has no candidates to calibrate on")

    def calibration_description(self, source: str) -> str:
        """What ``calibration_space(source)``'s candidates are, for the latency-table CLI's report."""
        return "its first baseline and random candidates"
