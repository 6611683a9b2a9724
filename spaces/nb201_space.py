"""The NAS-Bench-201 cell space: 6 edges, each one of 5 ops (15,625 cells).

Genomes convert to and from the benchmark's arch string
``|op~0|+|op~0|op~1|+|op~0|op~1|op~2|`` (node 1 from node 0; node 2 from 0, 1; node 3 from 0, 1, 2).
"""
from __future__ import annotations

import re
from typing import Any

from torch import nn

from spaces._base import Gene, Genome, InvalidGenome, SearchSpace
from spaces.models.nb201_net import EDGES, OPS, NB201Network

_NODE = re.compile(r"\|([^|]+)\|")


def genome_to_arch(genome: Genome) -> str:
    ops = [OPS[g] for g in genome]
    nodes, k = [], 0
    for i in (1, 2, 3):
        nodes.append("|" + "|".join(f"{ops[k + j]}~{j}" for j in range(i)) + "|")
        k += i
    return "+".join(nodes)


def arch_to_genome(arch: str) -> Genome:
    parts = str(arch).strip().split("+")
    if len(parts) != 3:
        raise InvalidGenome(f"arch string {arch!r}: expected 3 nodes joined by '+', like "
                            "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|none~1|skip_connect~2|")
    genome = []
    for i, part in enumerate(parts, start=1):
        items = part.strip("|").split("|")
        if len(items) != i:
            raise InvalidGenome(f"arch string {arch!r}: node {i} needs {i} inputs, got {len(items)}")
        for j, item in enumerate(items):
            op, _, source = item.partition("~")
            if op not in OPS or source != str(j):
                raise InvalidGenome(f"arch string {arch!r}: {item!r} is not '<op>~{j}' with op one of {', '.join(OPS)}")
            genome.append(OPS.index(op))
    return tuple(genome)


class NB201Space(SearchSpace):
    def __init__(self, num_classes: int = 10) -> None:
        self.num_classes = num_classes
        self.genes = [Gene(f"edge_{to}<-{src}", OPS) for to, src in EDGES]

    def build(self, genome: Genome) -> nn.Module:
        genome = self.validate(genome)
        return NB201Network(tuple(OPS[g] for g in genome), num_classes=self.num_classes).eval()

    def to_config(self, genome: Genome) -> dict[str, Any]:
        return {"arch_str": genome_to_arch(self.validate(genome))}

    def from_config(self, config: dict[str, Any]) -> Genome:
        if "arch_str" not in config:
            raise InvalidGenome("an nb201 config needs 'arch_str'")
        return arch_to_genome(config["arch_str"])
