"""A toy search space as a plugin: the space, its recipe (``archprune.spaces``) and its export in one
module. Its candidates are single convolutions whose width the genes set."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable

from torch import nn

from search.space_recipes import SearchParts, SpaceRecipe
from spaces._base import Gene, Genome, SearchSpace


class ToyConvSpace(SearchSpace):
    def __init__(self) -> None:
        self.genes = [Gene(f"g{i}", (0, 1, 2, 3)) for i in range(4)]

    def build(self, genome: Genome) -> nn.Module:
        self.validate(genome)
        return nn.Conv2d(3, 4 + sum(genome), 3)

    def to_config(self, genome: Genome) -> dict[str, Any]:
        return {"widths": list(genome)}

    def from_config(self, config: dict[str, Any]) -> Genome:
        return tuple(config["widths"])


class ToyRecipe(SpaceRecipe):
    summary = "a toy space of single convolutions"

    def run_source(self, settings: Any) -> str:
        return "conv"

    def build(self, settings: Any) -> SearchParts:
        from evaluators.registry import evaluators_for

        evaluators = evaluators_for(settings.metric_names(), settings, None, 32)
        return SearchParts(ToyConvSpace(), evaluators, 32, settings.constraint_list, "a toy space of 256 convs")

    def export(self, handle: Any, record: Any, out: Path, say: Callable[[str], None],
               recalibrate_bn: bool = False) -> dict[str, Any]:
        out.mkdir(parents=True, exist_ok=True)
        summary = {"trial": record.number, "widths": list(record.genome)}
        (out / "toy.json").write_text(json.dumps(summary))
        say(f"exported toy trial {record.number} to {out}")
        return summary
