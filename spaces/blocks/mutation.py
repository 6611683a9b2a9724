"""The search space's limits on a structure, and TinyNAS's mutations that always respect them.

Limits: the stem and every block's class and stride are fixed; each later block's ``out`` is a
multiple of 8 inside its stage's range and >= its ``in``; ``btn`` is a multiple of 8 in
[max(8, out/10 rounded to 8), out]; ``L`` is in 1..max_units and the main-path conv count stays
within ``max_layers``; ``k`` is one of ``kernels``. ``repair`` maps any structure of the right
skeleton to the nearest one inside the limits, so a mutation or crossover can never leave them.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Sequence

import numpy as np

from spaces.errors import ArchpruneError

from .structure import CONVS_PER_UNIT, Block, Structure, count_layers, stage_of_blocks, with_block

FACTORS = (2.0, 1.5, 1.25, 0.8, 0.6, 0.5)  # TinyNAS's width multipliers
L_STEPS = (-2, -1, 1, 2)
DIVISOR = 8


def clamp(value: float, lo: float, hi: float) -> float:
    """``np.clip`` for one number (hi wins when lo > hi, as there): np.clip on a Python scalar costs
    ~25 us, a tenth of a zero-shot trial's time over its few dozen calls."""
    return min(max(value, lo), hi)


def round8(x: float) -> int:
    """Nearest multiple of 8, at least 8."""
    return max(DIVISOR, int(round(x / DIVISOR)) * DIVISOR)


def btn_bounds(out: int) -> tuple[int, int]:
    """Bottleneck range for a block of width ``out``: [out/10 rounded to 8 (min 8), out]."""
    return min(round8(out / 10), out), out


def default_ranges(blocks: Sequence[Block]) -> list[tuple[int, int]]:
    """Per stage: half the stage's narrowest width to twice its widest (multiples of 8), never
    below an earlier stage's range."""
    stages = stage_of_blocks(blocks)
    ranges = [(0, 0)]
    for s in range(stages[-1] + 1):
        widths = [b.cout for b, st in zip(blocks, stages) if st == s]
        ranges.append((max(round8(min(widths) / 2), ranges[-1][0]), max(round8(max(widths) * 2), ranges[-1][1])))
    return ranges[1:]


@dataclass(frozen=True)
class SpaceLimits:
    """What a structure of this space may be; ``ranges`` are per block (stem's is its own width)."""

    skeleton: tuple[tuple[str, int], ...]  # (class, stride) per block
    stem: Block
    ranges: tuple[tuple[int, int], ...]
    kernels: tuple[int, ...] = (3, 5)
    max_units: int = 6
    max_layers: int | None = None

    @classmethod
    def around(cls, blocks: Sequence[Block], channel_ranges: Sequence[tuple[int, int] | None] | None = None,
               kernels: Sequence[int] = (3, 5), max_units: int = 6, max_layers: int | None = None) -> "SpaceLimits":
        """Limits of a space grown from ``blocks``; ``channel_ranges`` gives (lo, hi) per stage (None: default)."""
        stages = stage_of_blocks(blocks)
        derived = default_ranges(blocks)
        given = list(channel_ranges) if channel_ranges is not None else [None] * len(derived)
        if len(given) != len(derived):
            raise ArchpruneError(f"channel ranges: {len(given)} given for {len(derived)} stages; give one per "
                                 "stage, the stem's first")
        per_stage = [tuple(g) if g is not None else d for g, d in zip(given, derived)]
        used = sorted({st for b, st in zip(blocks, stages) if not b.is_stem})  # stages with searched blocks
        for n, s in enumerate(used):
            lo, hi = per_stage[s]
            if lo % DIVISOR or hi % DIVISOR or not 0 < lo <= hi:
                raise ArchpruneError(f"channel ranges: stage {s}'s ({lo}, {hi}) must be multiples of 8 with 8 <= lo <= hi")
            prev = per_stage[used[n - 1]] if n else None
            if prev is not None and (lo < prev[0] or hi < prev[1]):
                raise ArchpruneError(f"channel ranges: stage {s}'s ({lo}, {hi}) is below stage {used[n - 1]}'s "
                                     f"{prev}; ranges must not shrink with depth")
        ranges = tuple((b.cout, b.cout) if b.is_stem else per_stage[st] for b, st in zip(blocks, stages))
        kernels = tuple(sorted({int(k) for k in kernels}))
        if not kernels or any(k < 1 or k % 2 == 0 for k in kernels):
            raise ArchpruneError(f"kernels {kernels}: give one or more odd kernel sizes, e.g. (3, 5)")
        if max_units < 1:
            raise ArchpruneError(f"max_units {max_units}: must be at least 1")
        limits = cls(tuple((b.cls, b.s) for b in blocks), blocks[0], ranges, kernels, max_units, max_layers)
        floor = sum(CONVS_PER_UNIT[b.cls] for b in blocks)
        if max_layers is not None and max_layers < floor:
            raise ArchpruneError(f"max_layers {max_layers}: even one unit per block needs {floor} layers; raise it")
        if blocks[0].cout > ranges[1][1]:
            raise ArchpruneError(f"channel ranges: block 1's {ranges[1]} is below the stem width {blocks[0].cout}")
        problems = limits.problems(blocks)
        if problems:
            raise ArchpruneError(f"the initial structure breaks the space's limits: {problems[0]}")
        return limits

    def max_L(self, blocks: Sequence[Block], i: int) -> int:
        """Most units block ``i`` may have given the others (layer budget and max_units)."""
        cap = self.max_units
        if self.max_layers is not None:
            others = count_layers(blocks) - blocks[i].layers
            cap = min(cap, (self.max_layers - others) // CONVS_PER_UNIT[blocks[i].cls])
        return max(cap, 1)

    def problems(self, blocks: Sequence[Block]) -> list[str]:
        """Every way ``blocks`` leaves the limits, each naming the block, the key and the fix."""
        if tuple((b.cls, b.s) for b in blocks) != self.skeleton:
            return [f"block classes/strides {[(b.cls, b.s) for b in blocks]} differ from the space's {list(self.skeleton)}"]
        out: list[str] = []
        if blocks[0] != self.stem:
            out.append(f"block 0: the stem is fixed at {self.stem.to_dict()}")
        for i, (b, (lo, hi)) in enumerate(zip(blocks, self.ranges)):
            if i == 0:
                continue
            if b.cin != blocks[i - 1].cout:
                out.append(f"block {i} ('in'): {b.cin} should be block {i - 1}'s out {blocks[i - 1].cout}")
            if b.cout % DIVISOR or not lo <= b.cout <= hi:
                out.append(f"block {i} ('out'): {b.cout} must be a multiple of 8 in [{lo}, {hi}]")
            if b.cout < b.cin:
                out.append(f"block {i} ('out'): {b.cout} < in {b.cin}; widths may not shrink, set out >= {b.cin}")
            blo, bhi = btn_bounds(b.cout)
            if b.btn % DIVISOR or not blo <= b.btn <= bhi:
                out.append(f"block {i} ('btn'): {b.btn} must be a multiple of 8 in [{blo}, {bhi}] for out {b.cout}")
            if not 1 <= b.L <= self.max_units:
                out.append(f"block {i} ('L'): {b.L} must be in 1..{self.max_units}")
            if b.k not in self.kernels:
                out.append(f"block {i} ('k'): {b.k} must be one of {self.kernels}")
        if self.max_layers is not None and count_layers(blocks) > self.max_layers:
            out.append(f"{count_layers(blocks)} layers exceed the budget of {self.max_layers}; lower some block's L")
        return out

    def repair(self, blocks: Sequence[Block]) -> Structure:
        """The nearest structure inside the limits (widths raised to the chain, values clipped)."""
        if tuple((b.cls, b.s) for b in blocks) != self.skeleton:
            raise ArchpruneError(f"cannot repair: block classes/strides {[(b.cls, b.s) for b in blocks]} differ "
                                 f"from the space's {list(self.skeleton)}")
        fixed = [self.stem]
        for b, (lo, hi) in zip(blocks[1:], self.ranges[1:]):
            cin = fixed[-1].cout
            cout = int(clamp(round8(b.cout), max(lo, cin), hi))
            btn = int(clamp(round8(b.btn), *btn_bounds(cout)))
            k = b.k if b.k in self.kernels else min(self.kernels, key=lambda c: (abs(c - b.k), c))
            fixed.append(replace(b, cin=cin, cout=cout, btn=btn, k=k, L=int(clamp(b.L, 1, self.max_units))))
        while self.max_layers is not None and count_layers(fixed) > self.max_layers:
            i = max(range(1, len(fixed)), key=lambda j: (fixed[j].L, j))  # trim the deepest block first
            fixed[i] = replace(fixed[i], L=fixed[i].L - 1)
        return tuple(fixed)

    def mutate_once(self, blocks: Structure, rng: np.random.Generator) -> Structure:
        """One TinyNAS block mutation: one of out / btn / L / k of one non-stem block."""
        i = int(rng.integers(1, len(blocks)))
        b = blocks[i]
        keys = ["out", "btn", "L"] + (["k"] if len(self.kernels) > 1 else [])
        key = keys[int(rng.integers(len(keys)))]
        if key == "out":
            lo, hi = self.ranges[i]
            upper = min(hi, blocks[i + 1].cout) if i + 1 < len(blocks) else hi  # the next block keeps out >= in
            cout = int(clamp(round8(b.cout * FACTORS[int(rng.integers(len(FACTORS)))]), max(lo, b.cin), upper))
            btn = int(clamp(b.btn, *btn_bounds(cout)))
            return with_block(blocks, i, cout=cout, btn=btn)
        if key == "btn":
            btn = int(clamp(round8(b.btn * FACTORS[int(rng.integers(len(FACTORS)))]), *btn_bounds(b.cout)))
            return with_block(blocks, i, btn=btn)
        if key == "L":
            L = int(clamp(b.L + L_STEPS[int(rng.integers(len(L_STEPS)))], 1, self.max_L(blocks, i)))
            return with_block(blocks, i, L=L)
        others = [k for k in self.kernels if k != b.k]
        return with_block(blocks, i, k=others[int(rng.integers(len(others)))])

    def mutate(self, blocks: Structure, rng: np.random.Generator, mutations: int = 2, tries: int = 10) -> Structure:
        """``mutations`` block mutations (TinyNAS: two per child); retried until the child differs."""
        child = blocks
        for _ in range(tries):
            child = blocks
            for _ in range(mutations):
                child = self.mutate_once(child, rng)
            if child != blocks:
                break
        child = self.repair(child)  # a no-op on a valid parent; kept as the guarantee
        return child
