"""Channel-pruning search space over the dependency groups of a real network.

Torch-Pruning's DependencyGraph ties together every channel that must go at once (convs joined
by residual adds, concats, the BatchNorms behind them): one gene per group, choosing how many of
its channels to keep. Which channels go is fixed per group by an importance criterion scored
once on the unpruned model, so a genome always means the same channels whatever the order of
pruning, and ``kept_indices`` replays it exactly.
"""
from __future__ import annotations

import copy
import math
from typing import Any, Callable, Iterable

import numpy as np
import torch
from torch import nn

from spaces._base import Gene, Genome, InvalidGenome, SearchSpace
from spaces.channel_groups import channel_groups
from spaces.errors import ArchpruneError
from spaces.depth_pruning import depth_units, with_depth
from spaces.importances import make_importance, needs_gradients
from spaces.tp_compat import CalibrationLoss, accumulate_gradients, dependency_graph

DEFAULT_RATIOS = tuple(k / 16 for k in range(4, 17))  # keep 25% ... 100% in steps of 1/16


def keep_ratios(min_keep: float, steps: int = 16) -> tuple[float, ...]:
    """``min_keep``, then every 1/``steps`` above it up to 1 (0.25 and 16 give DEFAULT_RATIOS)."""
    above = [k / steps for k in range(1, steps + 1) if k / steps > min_keep + 1e-9]
    return (float(min_keep), *above) if min_keep < 1 else (1.0,)


def kept_counts(full: int, ratios: Iterable[float], round_to: int) -> tuple[int, ...]:
    """Distinct channel counts to keep: each ratio of ``full`` rounded to ``round_to``, at least
    ``round_to`` (or all of a smaller group) and at most ``full``."""
    step = max(1, round_to)
    counts = {min(full, max(min(step, full), int(round(r * full / step)) * step)) for r in ratios}
    return tuple(sorted(counts))


class ChannelSpace(SearchSpace):
    """Genes = dependency groups of ``model``; choices = channel counts to keep. With ``depth``, one more
    gene per block chain (C2f, C3k2, residual C3k: ``spaces.depth_pruning``) chooses how many of its
    blocks to keep, after the width genes; a candidate is width-pruned, then its trailing blocks go.

    The final prediction convs and the DFL keep their outputs (Torch-Pruning's ignored layers);
    groups that touch a module named in ``keep_layers`` (or inside an attention block, whose head
    layout pruning would break) are left whole and are not genes.

    One model, one genome: the width genes of a group that lies wholly inside a dropped block (and the
    depth gene of a chain inside one) do not change the model, so a canonical genome holds them at
    their top choice; ``validate`` refuses any other value and ``repair`` sets it.
    """

    def __init__(self, model: nn.Module, example_inputs: torch.Tensor | None = None, importance: str = "l1",
                 ratios: Iterable[float] = DEFAULT_RATIOS, round_to: int = 8, keep_layers: Iterable[str] = (),
                 seed: int = 0, calibration_loss: CalibrationLoss | None = None, depth: bool = False) -> None:
        self.base = copy.deepcopy(model).eval()
        self.example = example_inputs if example_inputs is not None else torch.zeros(1, 3, 64, 64)
        self.importance, self.round_to, self.ratios = importance, round_to, tuple(ratios)
        self.keep_layers = tuple(keep_layers)
        # An elastic base was trained so that every genome keeps a prefix of a recorded channel
        # order; any other order would pick channels it never trained together. Its order wins
        # over ``importance`` (which is then only recorded).
        recorded: dict[str, list[int]] = getattr(model, "channel_order", None) or {}
        self.order_source = "recorded" if recorded else importance
        # random scores come from our seeded generator: Torch-Pruning's random uses the global RNG
        scorer = None if importance == "random" or recorded else make_importance(importance)
        _, groups = channel_groups(self.base, self.example, self.keep_layers)
        if needs_gradients(importance) and not recorded:
            accumulate_gradients(self.base, scorer, importance, calibration_loss)
        rng = np.random.default_rng(seed)
        self.genes: list[Gene] = []
        self._full: dict[str, int] = {}
        self._order: dict[str, np.ndarray] = {}  # channel indices, least important first
        self._scores: dict[str, np.ndarray] = {}  # the criterion's score per channel (none when recorded/random)
        self._outputs: dict[str, list[tuple[str, list[int], list[int]]]] = {}
        self._budget_starts: list[tuple[str, Genome]] = []  # see add_budget_starts
        for g in groups:
            counts = kept_counts(g.full, self.ratios, round_to)
            if len(counts) < 2:
                continue  # nothing to choose: the group stays whole
            if recorded:
                self._order[g.name] = _recorded_order(recorded, g.name, g.full)
            else:
                scores = rng.random(g.full) if scorer is None else scorer(g.group).detach().cpu().numpy()
                self._order[g.name] = np.argsort(scores, kind="stable")
                if scorer is not None:
                    self._scores[g.name] = np.asarray(scores, dtype=np.float64)
            self.genes.append(Gene(g.name, counts))
            self._full[g.name] = g.full
            self._outputs[g.name] = g.outputs
        self.base.zero_grad(set_to_none=True)  # gradient importances leave .grad behind: builds copy the base
        if not self.genes:
            raise ArchpruneError("the model has no prunable channel groups (all are protected or kept)")
        self.width_genes = list(self.genes)
        self.depth_units = depth_units(self.base) if depth else []
        self.genes += [Gene(f"depth:{u.name}", u.choices()) for u in self.depth_units]

    def channel_order(self) -> dict[str, list[int]]:
        """Each group's channels, most important first (what an elastic base records)."""
        return {name: order[::-1].tolist() for name, order in self._order.items()}

    def output_members(self, name: str) -> list[tuple[str, list[int], list[int]]]:
        """The layers whose outputs are group ``name``'s channels (what a channel mask zeroes)."""
        return self._outputs[name]

    # -- genome <-> channels -------------------------------------------------------------
    def counts(self, genome: Genome) -> dict[str, int]:
        genome = self.validate(genome)
        return {gene.name: gene.choices[i] for gene, i in zip(self.width_genes, genome)}

    def depth(self, genome: Genome) -> dict[str, int]:
        """Blocks each chain keeps ({} without depth genes)."""
        genome = tuple(genome)
        start = len(self.width_genes)
        return {u.name: u.choices()[i] for u, i in zip(self.depth_units, genome[start:])}

    def canonical(self, genome: Genome) -> Genome:
        """``genome`` with the genes that cannot change the model (inside dropped blocks) at their top choice."""
        dropped = [f"{name}.m.{j}." for name, keep in self.depth(genome).items()
                   for j in range(keep, len(self.base.get_submodule(name).m))]
        if not dropped:
            return tuple(genome)
        inside = lambda layer: any(layer.startswith(prefix) for prefix in dropped)  # noqa: E731
        out = list(genome)
        for i, gene in enumerate(self.width_genes):
            if all(inside(member) for member, _, _ in self._outputs[gene.name]):
                out[i] = len(gene.choices) - 1
        for k, unit in enumerate(self.depth_units):
            if inside(unit.name + "."):
                out[len(self.width_genes) + k] = len(self.genes[len(self.width_genes) + k].choices) - 1
        return tuple(out)

    def validate(self, genome: Genome) -> Genome:
        genome = super().validate(genome)
        if self.depth_units and self.canonical(genome) != genome:
            raise InvalidGenome("a gene inside a dropped block is not at its top choice (repair() sets it)")
        return genome

    def repair(self, genome: Genome) -> Genome | None:
        if not self.depth_units:
            return None
        try:
            return self.canonical(super().validate(genome))
        except InvalidGenome:
            return None

    def kept_indices(self, genome: Genome) -> dict[str, list[int]]:
        """The exact channels each group keeps (what an export records so any criterion replays)."""
        return {name: sorted(self._order[name][self._full[name] - count:].tolist())
                for name, count in self.counts(genome).items()}

    def unpruned(self) -> Genome:
        return tuple(len(g.choices) - 1 for g in self.genes)

    def _full_depth(self) -> tuple[int, ...]:
        return tuple(len(g.choices) - 1 for g in self.genes[len(self.width_genes):])

    def uniform(self, ratio: float) -> Genome:
        """Every group at the choice nearest ``ratio`` of its channels (the uniform baselines)."""
        return tuple(self._nearest_choice(g, ratio) for g in self.width_genes) + self._full_depth()

    def _nearest_choice(self, gene: Gene, ratio: float) -> int:
        """Index of the channel count nearest ``ratio`` of the group's full width."""
        return int(np.argmin([abs(c - ratio * self._full[gene.name]) for c in gene.choices]))

    def sample(self, rng: np.random.Generator) -> Genome:
        """A random genome spread over model sizes: one keep ratio per candidate (uniform in
        [min ratio, 1]) jittered per group. Independent uniform genes would put nearly every sample
        at the same mid size (the average of many independent choices), leaving small and
        near-unpruned models unexplored."""
        centre = rng.uniform(min(self.ratios), 1.0)
        width = tuple(self._nearest_choice(g, float(np.clip(centre + rng.normal(0.0, 0.1), 0.0, 1.0)))
                      for g in self.width_genes)
        if not self.depth_units:
            return width
        depth = tuple(int(rng.integers(len(g.choices))) for g in self.genes[len(self.width_genes):])
        return self.canonical(width + depth)

    def mutate(self, genome: Genome, rng: np.random.Generator, rate: float | None = None) -> Genome:
        """Each gene moves with probability ``rate`` (default 1 / number of genes) one or two choices
        up or down. The choices are ordered channel (or block) counts, and the base's jump to any
        choice mostly breaks a good allocation: under 50% of the sparse base's FLOPs most NSGA-II
        children read 0.70-0.81 (fine-tune proxy) where their starts read 0.83-0.84; stepping, three
        of the four best of 48 trials were children (BENCHMARKS.md)."""
        rate = 1.0 / max(len(self.genes), 1) if rate is None else rate
        out = list(genome)
        for i, gene in enumerate(self.genes):
            top = len(gene.choices) - 1
            if top > 0 and rng.random() < rate:
                step = (1 if top == 1 or rng.random() < 2 / 3 else 2) * (1 if rng.random() < 0.5 else -1)
                out[i] = out[i] + step if 0 <= out[i] + step <= top else out[i] - step  # reflect at an end
        return self.canonical(tuple(out)) if self.depth_units else tuple(out)

    def baselines(self) -> list[tuple[str, Genome]]:
        """The unpruned model, uniform keep ratios 87.5% ... 25%, and LAMP-style global allocations
        keeping 80% ... 40% of all channels: every search starts from them, and the plots mark the
        uniform ones, so a searched candidate is always compared with uniform pruning. The global
        ones matter: at 70% of YOLOv8n-digits' FLOPs Torch-Pruning's global LAMP scores 0.60 after
        adaptive BN where uniform L1 scores 0.10, and 200 NSGA-II trials started from the uniform
        genomes alone found nothing above 0.12 (BENCHMARKS.md)."""
        out: list[tuple[str, Genome]] = [("unpruned", self.unpruned())]
        for ratio in (0.875, 0.75, 0.625, 0.5, 0.375, 0.25):
            genome = self.uniform(ratio)
            if all(genome != g for _, g in out):
                out.append((f"uniform-{ratio:g}", genome))
        if len(self._scores) == len(self.width_genes):  # the criterion scored every group (not recorded, not random)
            for keep in (0.8, 0.7, 0.6, 0.5, 0.4):
                genome = self.global_allocation(keep)
                if all(genome != g for _, g in out):
                    out.append((f"global-{keep:g}", genome))
        for name, genome in self._budget_starts:
            if all(genome != g for _, g in out):
                out.append((name, genome))
        deepest = max((u.blocks for u in self.depth_units), default=0)
        for keep in range(deepest - 1, -1, -1):  # depth only: every chain at its first ``keep`` blocks
            depth = tuple(u.choices().index(max(u.minimum, min(keep, u.blocks))) for u in self.depth_units)
            genome = self.canonical(tuple(len(g.choices) - 1 for g in self.width_genes) + depth)
            if all(genome != g for _, g in out):
                out.append((f"depth-{keep}", genome))
        return out

    def add_budget_starts(self, measure: Callable[[Genome], float], bound: float) -> list[tuple[str, Genome]]:
        """Add to the baselines the uniform and the global allocation that keep the most channels with
        ``measure(genome) <= bound`` (a FLOPs or params budget); returns those added. The fixed starts
        land wherever their keep ratios put them: under 50% of yolov8n-digits-sparse's FLOPs the nearest
        global start within it has 36.7% (keep 40%; keep 50% has 50.07%), bisected it has 49.99%. Torch-
        Pruning's global LAMP, bisected to that budget, recovered 1.1 points above every searched pick
        of a search without this start (BENCHMARKS.md). ``measure`` must grow with the channels kept."""
        makers = [("uniform-budget", self.uniform)]
        if len(self._scores) == len(self.width_genes):
            makers.append(("global-budget", self.global_allocation))
        added = []
        for name, make in makers:
            genome = _largest_within(make, measure, bound)
            if genome is not None and self.add_start(name, genome):
                added.append((name, genome))
        return added

    def global_within(self, measure: Callable[[Genome], float], bound: float, steps: int = 14) -> Genome | None:
        """The global allocation that keeps the most channels with ``measure(genome) <= bound`` (bisected
        in ``steps`` measurements at most), or None when the criterion did not score every group or even
        the smallest breaks it. ``measure`` may be a measured latency: noisy, but growing with the channels."""
        if len(self._scores) != len(self.width_genes):
            return None
        return _largest_within(self.global_allocation, measure, bound, steps)

    def add_start(self, name: str, genome: Genome) -> bool:
        """``genome`` joins the baselines as ``name`` unless one of them is it already."""
        genome = self.validate(genome)
        if any(genome == g for _, g in self.baselines()):
            return False
        self._budget_starts.append((name, genome))
        return True

    def genome_of_widths(self, pruned: nn.Module) -> Genome:
        """The genome nearest a model pruned from this space's base by other means (Torch-Pruning's
        own pruners): each group's kept count is its root layer's width in ``pruned``, at the nearest
        choice (the channels kept are then the space's, by its importance order); blocks all kept."""
        genome = []
        for gene in self.width_genes:
            layer = pruned.get_submodule(gene.name)  # a group is named after its root conv / linear
            count = getattr(layer, "out_channels", None) or layer.out_features
            genome.append(int(np.argmin([abs(c - count) for c in gene.choices])))
        return tuple(genome) + self._full_depth()

    def global_allocation(self, keep: float) -> Genome:
        """Keep the ``keep`` fraction of all channels ranked across groups by LAMP's normalised score
        (Lee et al., ICLR 2021: a channel's squared score over the sum of the squared scores of the
        channels of its group at least as important), each group's count at its nearest choice.
        Torch-Pruning's global pruning does the same on layers; here it is done on the space's own
        groups and scores, so the result is a genome of this space. A group gets at least its
        smallest choice (the space never empties a group)."""
        lamp: dict[str, np.ndarray] = {}
        for name, scores in self._scores.items():
            squared = np.sort(np.abs(scores)) ** 2  # ascending
            tail = np.cumsum(squared[::-1])[::-1]  # sum over this channel and every more important one
            lamp[name] = squared / np.maximum(tail, 1e-30)
        pooled = np.concatenate(list(lamp.values()))
        n_keep = max(1, int(round(keep * pooled.size)))
        threshold = np.sort(pooled)[::-1][n_keep - 1]
        genome = []
        for gene in self.width_genes:
            kept = int((lamp[gene.name] >= threshold).sum())
            genome.append(int(np.argmin([abs(c - kept) for c in gene.choices])))
        return tuple(genome) + self._full_depth()

    def to_config(self, genome: Genome) -> dict[str, Any]:
        config = {"groups": self.counts(genome), "importance": self.importance, "round_to": self.round_to}
        if self.depth_units:
            config["depth"] = self.depth(genome)
        return config

    def from_config(self, config: dict[str, Any]) -> Genome:
        groups, depth = config.get("groups", {}), config.get("depth", {})
        genome = []
        for unit in self.depth_units:
            keep = depth.get(unit.name, unit.blocks)
            if keep not in unit.choices():
                raise InvalidGenome(f"chain {unit.name!r}: keeping {keep} blocks is not a choice {unit.choices()}")
        for gene in self.width_genes:
            count = groups.get(gene.name, self._full[gene.name])
            if count <= 0:
                raise InvalidGenome(f"group {gene.name!r}: keeping {count} channels would empty it")
            if count not in gene.choices:
                raise InvalidGenome(f"group {gene.name!r}: {count} channels is not a choice {gene.choices}")
            genome.append(gene.choices.index(count))
        genome += [u.choices().index(depth.get(u.name, u.blocks)) for u in self.depth_units]
        return self.validate(tuple(genome))

    # -- building ---------------------------------------------------------------------------
    def build(self, genome: Genome) -> nn.Module:
        return self.apply_depth(self.apply_indices(self.kept_indices(genome)), self.depth(genome))

    @staticmethod
    def apply_depth(model: nn.Module, depth: dict[str, int]) -> nn.Module:
        """``model`` with each named chain's trailing blocks dropped (itself when nothing is dropped)."""
        return with_depth(model, depth) if depth else model

    def apply_indices(self, kept: dict[str, list[int]]) -> nn.Module:
        """A physically smaller copy of the base model keeping exactly ``kept`` channels per group."""
        unknown = sorted(set(kept) - set(self._full))
        if unknown:
            raise InvalidGenome(f"{unknown[0]!r} is not a channel group of this model")
        return prune_kept_channels(copy.deepcopy(self.base), kept, self.example)

    def n_choices(self) -> float:
        """log10 of the number of distinct genomes (for the log: how big the space is)."""
        return sum(math.log10(len(g.choices)) for g in self.genes)


def _recorded_order(recorded: dict[str, list[int]], name: str, full: int) -> np.ndarray:
    """A recorded most-important-first order as this space's least-important-first one."""
    order = recorded.get(name)
    if order is None or sorted(order) != list(range(full)):
        raise ArchpruneError(f"the model's recorded channel order does not cover group {name!r} ({full} channels): "
                             "it was recorded on another architecture; load the elastic base it came with")
    return np.asarray(order[::-1])


def prune_kept_channels(model: nn.Module, kept: dict[str, list[int]], example: torch.Tensor | None = None) -> nn.Module:
    """Remove, in place, every channel of each named group's root layer except ``kept[name]``.

    Indices refer to the unpruned model; groups are disjoint, so the order of pruning does not
    matter and the same base weights always give the same state dict (what ``archprune apply``
    relies on).
    """
    import torch_pruning as tp

    model.eval()
    graph = dependency_graph(model, example if example is not None else torch.zeros(1, 3, 64, 64))
    for name, keep in kept.items():
        try:
            module = model.get_submodule(name)
        except AttributeError:
            raise InvalidGenome(f"{name!r} is not a layer of this model") from None
        full = module.out_channels if isinstance(module, nn.Conv2d) else module.out_features
        if not keep:
            raise InvalidGenome(f"group {name!r}: keeping no channels would empty it")
        if min(keep) < 0 or max(keep) >= full:
            raise InvalidGenome(f"group {name!r}: kept channel indices must lie in 0..{full - 1}")
        remove = sorted(set(range(full)) - set(keep))
        if remove:
            prune = tp.prune_conv_out_channels if isinstance(module, nn.Conv2d) else tp.prune_linear_out_channels
            graph.get_pruning_group(module, prune, idxs=remove).prune()
    if getattr(model, "channel_order", None):
        model.channel_order = None  # recorded for the unpruned widths: meaningless once channels are gone
    return model.eval()


def _largest_within(make: Callable[[float], Genome], measure: Callable[[Genome], float], bound: float,
                    steps: int = 14) -> Genome | None:
    """The genome ``make(x)`` of the largest x in [0, 1] whose measure is within ``bound`` (bisection:
    ``make`` and ``measure`` both grow with x), or None when even ``make(0)`` breaks it."""
    cache: dict[Genome, float] = {}

    def fits(genome: Genome) -> bool:
        if genome not in cache:
            cache[genome] = measure(genome)
        return cache[genome] <= bound

    lo, hi = 0.0, 1.0
    if not fits(make(lo)):
        return None
    if fits(make(hi)):
        return make(hi)
    for _ in range(steps):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if fits(make(mid)) else (lo, mid)
    return make(lo)
