"""TinyNAS-style backbone structures as a ``SearchSpace`` of fixed-length index genomes.

Genes, per block after the stem (``b<i>`` = block i): ``b<i>.out`` (multiples of 8 in the stage's
range), ``b<i>.btn`` (multiples of 8 from the smallest legal bottleneck to the range's top),
``b<i>.L`` (1..max_units) and ``b<i>.k`` (the kernel list). The stem, the block classes and the
strides are fixed by the initial structure. Not every index tuple is a legal structure (out >= in,
btn <= out): ``sample``, ``mutate`` and ``crossover`` only make legal ones, ``validate`` rejects the
rest with ``InvalidGenome``, and ``repair`` maps any genome to the nearest legal one (for drivers
such as Optuna's TPE that pick each gene on its own).

``DEFAULT_STRUCTURE`` is sized after YOLOv8n's backbone (stem 16, stages 32/64/128/256 at strides
2..32), counted with ``evaluators.flops`` (thop) at 640 px, nc=80:

=====================================  ==========  ==========  ======
model                                  GFLOPs      params (M)  layers
=====================================  ==========  ==========  ======
YOLOv8n backbone (layers 0-8)          3.092       1.108       29
YOLOv8n backbone + SPPF (layers 0-9)   3.224       1.273       31
DEFAULT_STRUCTURE backbone             3.072       1.054       13
YOLOv8n detector                       8.855       3.157
BlockDetector(DEFAULT_STRUCTURE)       8.836       3.104
=====================================  ==========  ==========  ======

(GFLOPs are 2 x thop's multiply-adds with BatchNorm counted, hence 8.86 and not Ultralytics' fused
8.7. The block detector's SPPF belongs to its neck. Layers are main-path convs; YOLOv8n's are its
Conv2d modules with C2f's cv1 split in two, as ``spaces.models`` builds it.) The default blocks are
k1kx, k=3, L = 1, 2, 2, 1 and btn = 16, 48, 128, 256, the closest of a grid scan to both numbers.
"""
from __future__ import annotations

from collections import OrderedDict
from typing import TYPE_CHECKING, Any, Hashable, Sequence

import numpy as np

from spaces._base import Gene, Genome, InvalidGenome, SearchSpace
from spaces.errors import ArchpruneError

from .analytic import analytic_entropy, as_blocks, detector_flops_params, structure_flops, structure_params
from .mutation import DIVISOR, SpaceLimits, btn_bounds
from .skeleton import check_detector_skeleton
from .structure import Block, Structure, count_layers, parse_structure, structure_to_dicts

if TYPE_CHECKING:
    from .detector import BlockDetector

DEFAULT_STRUCTURE: list[dict[str, Any]] = [
    {"class": "conv", "in": 3, "out": 16, "s": 2, "k": 3},
    {"class": "k1kx", "in": 16, "out": 32, "s": 2, "k": 3, "L": 1, "btn": 16},
    {"class": "k1kx", "in": 32, "out": 64, "s": 2, "k": 3, "L": 2, "btn": 48},
    {"class": "k1kx", "in": 64, "out": 128, "s": 2, "k": 3, "L": 2, "btn": 128},
    {"class": "k1kx", "in": 128, "out": 256, "s": 2, "k": 3, "L": 1, "btn": 256},
]


def structure_budgets(structure: Any, imgsz: int = 640, detector: bool = False, nc: int = 80) -> dict[str, float]:
    """The backbone's ``backbone_flops_g`` and ``backbone_params_m`` (with ``detector``: the whole
    detector's ``flops_g`` and ``params_m``), and ``layers`` (backbone main-path convs): the metric names
    the block space's evaluator reports them under."""
    blocks = as_blocks(structure)
    if detector:
        out = detector_flops_params(blocks, imgsz, nc=nc)
    else:
        out = {"backbone_flops_g": structure_flops(blocks, imgsz), "backbone_params_m": structure_params(blocks)}
    return {**out, "layers": count_layers(blocks)}


def default_budgets(imgsz: int = 640, detector: bool = False, nc: int = 80) -> dict[str, float]:
    """The budgets ``DEFAULT_STRUCTURE`` meets: a search started from it never needs more."""
    return structure_budgets(DEFAULT_STRUCTURE, imgsz, detector, nc)


class BlockSpace(SearchSpace):
    """Backbones grown from ``structure`` under a YOLOv8 neck and head with ``nc`` classes."""

    def __init__(self, structure: Any = DEFAULT_STRUCTURE, nc: int = 80, names: list[str] | None = None, *,
                 kernels: Sequence[int] = (3, 5), max_units: int = 6, max_layers: int | None = None,
                 channel_ranges: Sequence[tuple[int, int] | None] | None = None, neck_depth: int = 1,
                 mutations: int = 2, neck: str = "c2f") -> None:
        self.initial: Structure = as_blocks(structure)
        self.limits = SpaceLimits.around(self.initial, channel_ranges, kernels, max_units, max_layers)
        self.nc, self.names, self.neck_depth, self.mutations, self.neck = nc, names, neck_depth, mutations, neck
        check_detector_skeleton(self.initial, nc, names, neck)  # fail now, not per candidate, on a bad skeleton
        self._reset_caches()
        self.genes = []
        for i, (lo, hi) in enumerate(self.limits.ranges[1:], start=1):
            widths = tuple(range(lo, hi + 1, DIVISOR))
            self.genes += [Gene(f"b{i}.out", widths),
                           Gene(f"b{i}.btn", tuple(range(btn_bounds(lo)[0], hi + 1, DIVISOR))),
                           Gene(f"b{i}.L", tuple(range(1, self.limits.max_units + 1))),
                           Gene(f"b{i}.k", self.limits.kernels)]

    # -- genome <-> structure -------------------------------------------------------------------
    def _decode(self, genome: Genome) -> Structure:
        genome = super().validate(genome)  # length and index ranges only
        values = [g.choices[c] for g, c in zip(self.genes, genome)]
        blocks = [self.initial[0]]
        for i, b in enumerate(self.initial[1:]):
            cout, btn, L, k = values[4 * i: 4 * i + 4]
            blocks.append(Block(b.cls, blocks[-1].cout, cout, b.s, k, L, btn))
        return tuple(blocks)

    def _encode(self, blocks: Structure) -> Genome:
        genome = []
        for i, b in enumerate(blocks[1:]):
            for gene, value in zip(self.genes[4 * i: 4 * i + 4], (b.cout, b.btn, b.L, b.k)):
                if value not in gene.choices:
                    raise InvalidGenome(f"{gene.name}: {value} is not among the space's choices "
                                        f"{gene.choices[0]}..{gene.choices[-1]}")
                genome.append(gene.choices.index(value))
        return tuple(genome)

    def problems(self, genome: Genome) -> list[str]:
        """Why ``genome`` is not a legal structure (empty when it is)."""
        return self.limits.problems(self._decode(genome))

    def is_valid(self, genome: Genome) -> bool:
        try:
            return not self.problems(genome)
        except InvalidGenome:
            return False

    def validate(self, genome: Genome) -> Genome:
        genome = super().validate(genome)
        problems = self.problems(genome)
        if problems:
            raise InvalidGenome(f"not a legal structure: {problems[0]}" +
                                (f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""))
        return genome

    def repair(self, genome: Genome) -> Genome:
        """The nearest legal genome (widths raised to keep out >= in, bottlenecks and depth clipped)."""
        return self._encode(self.limits.repair(self._decode(genome)))

    def structure_of(self, genome: Genome) -> Structure:
        key = tuple(genome)
        hit = self._structures.get(key)
        if hit is None:
            hit = self._decode(self.validate(key))
            _remember(self._structures, key, hit)
        return hit

    # A zero-shot trial decodes and validates one genome five times (its mutation, the driver's budget
    # check, the evaluator, the store) and costs it twice: bounded caches of both halve its time.
    CACHE_SIZE = 4096

    def _reset_caches(self) -> None:
        self._structures: OrderedDict[Genome, Structure] = OrderedDict()
        self._metrics: OrderedDict[Hashable, dict[str, float]] = OrderedDict()

    def __getstate__(self) -> dict[str, Any]:  # a pickled space (sent to a worker) travels without its caches
        return {k: v for k, v in self.__dict__.items() if k not in ("_structures", "_metrics")}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._reset_caches()

    def genome_of(self, structure: Any) -> Genome:
        blocks = as_blocks(structure)
        problems = self.limits.problems(blocks)
        if problems:
            raise InvalidGenome(f"structure outside this space: {problems[0]}")
        return self._encode(blocks)

    def layers(self, genome: Genome) -> int:
        return count_layers(self.structure_of(genome))

    def analytic_metrics(self, genome: Genome, imgsz: int | None = None,
                         entropy_weights: str | Sequence[float] = "maedet") -> dict[str, float]:
        """The candidate detector's ``flops_g`` and ``params_m``, its backbone's ``backbone_flops_g``,
        ``backbone_params_m`` and ``layers``, and MAE-DET ``entropy``, all without building it (they match
        thop): what a zero-shot search runs on."""
        key = (tuple(genome), imgsz, entropy_weights if isinstance(entropy_weights, str) else tuple(entropy_weights))
        hit = self._metrics.get(key)
        if hit is None:
            structure = self.structure_of(genome)
            costs = detector_flops_params(structure, imgsz or 640, self.nc, self.neck_depth, self.neck)
            hit = {**costs, "layers": float(count_layers(structure)),
                   "entropy": analytic_entropy(structure, weights=entropy_weights)}
            _remember(self._metrics, key, hit)
        return dict(hit)  # the caller's to change

    # -- SearchSpace ----------------------------------------------------------------------------
    def build(self, genome: Genome) -> BlockDetector:
        from .detector import BlockDetector  # torch: imported only when a network is built

        return BlockDetector(self.structure_of(genome), self.nc, self.names, self.neck_depth, self.neck).eval()

    def to_config(self, genome: Genome) -> dict[str, Any]:
        return {"structure": structure_to_dicts(self.structure_of(genome))}

    def from_config(self, config: dict[str, Any] | list[Any]) -> Genome:
        """Inverse of ``to_config``; also takes the structure list itself or a YAML/JSON file path."""
        if isinstance(config, dict):
            if "structure" not in config:
                raise InvalidGenome("a blocks config needs 'structure': a list of blocks")
            config = config["structure"]
        try:
            blocks = parse_structure(config)
        except ArchpruneError as err:
            raise InvalidGenome(str(err)) from None
        return self.genome_of(blocks)

    def baselines(self) -> list[tuple[str, Genome]]:
        return [("initial", self._encode(self.initial))]

    def sample(self, rng: np.random.Generator) -> Genome:
        """A uniformly drawn legal structure, block by block (each width at least the one before)."""
        blocks = [self.initial[0]]
        for i, b in enumerate(self.initial[1:], start=1):
            lo, hi = self.limits.ranges[i]
            cin = blocks[-1].cout
            widths = [w for w in range(lo, hi + 1, DIVISOR) if w >= cin]
            cout = widths[int(rng.integers(len(widths)))]
            blo, bhi = btn_bounds(cout)
            btn = blo + DIVISOR * int(rng.integers((bhi - blo) // DIVISOR + 1))
            L = int(rng.integers(1, self.limits.max_units + 1))
            k = self.limits.kernels[int(rng.integers(len(self.limits.kernels)))]
            blocks.append(Block(b.cls, cin, cout, b.s, k, L, btn))
        return self._encode(self.limits.repair(blocks))  # only the layer budget can still bite

    def mutate(self, genome: Genome, rng: np.random.Generator, rate: float | None = None) -> Genome:
        """TinyNAS's mutation (``mutations`` block mutations, two by default); ``rate`` is not used."""
        return self._encode(self.limits.mutate(self.structure_of(genome), rng, self.mutations))

    def mutate_structure(self, structure: Any, rng: np.random.Generator) -> Any:
        """TinyNAS's mutation on a structure: Blocks in, Blocks out; dicts (or a file) in, dicts out."""
        blocks = as_blocks(structure)
        problems = self.limits.problems(blocks)
        if problems:
            raise ArchpruneError(f"cannot mutate a structure outside this space: {problems[0]}")
        child = self.limits.mutate(blocks, rng, self.mutations)
        given_blocks = isinstance(structure, (tuple, list)) and all(isinstance(b, Block) for b in structure)
        return child if given_blocks else structure_to_dicts(child)

    def crossover(self, a: Genome, b: Genome, rng: np.random.Generator) -> tuple[Genome, Genome]:
        """Whole blocks swap between the parents with probability 1/2; the children are repaired."""
        swap = np.repeat(rng.random(len(self.initial) - 1) < 0.5, 4)
        child_a = tuple(y if s else x for x, y, s in zip(a, b, swap))
        child_b = tuple(x if s else y for x, y, s in zip(a, b, swap))
        return self.repair(child_a), self.repair(child_b)


def _remember(cache: OrderedDict, key: Hashable, value: Any) -> None:
    """Insert into a bounded cache, dropping the oldest entry past ``BlockSpace.CACHE_SIZE``."""
    cache[key] = value
    if len(cache) > BlockSpace.CACHE_SIZE:
        cache.popitem(last=False)
