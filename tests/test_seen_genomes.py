"""The set of genomes a search has seen: exact for what it was told, compact for half a million."""
from __future__ import annotations

import numpy as np

from search.seen_genomes import SeenGenomes
from tests.conftest import traced_growth


def test_membership_is_exact_across_merges() -> None:
    seen = SeenGenomes(merge_at=4)
    genomes = [(i, i % 7, 3) for i in range(50)]
    assert all(seen.add(g) for g in genomes[:25])  # 25 adds: six merges into the sorted part
    assert not any(seen.add(g) for g in genomes[:25])  # each seen once only, wherever it is held
    assert all(g in seen for g in genomes[:25]) and not any(g in seen for g in genomes[25:])
    seen.update(genomes[20:50] + genomes[20:30])  # overlaps the seen and itself
    assert len(seen) == 50 and all(g in seen for g in genomes)
    assert [5, 5, 3] in seen and (5, 5, 3) in seen  # a list and a tuple are one genome
    assert (50, 1, 3) not in seen


def test_genomes_cost_bytes_not_python_objects() -> None:
    """~8 bytes a genome (the old set of hashes: ~70), so a long search's memory stops growing by it."""
    rng = np.random.default_rng(0)
    genomes = [tuple(row) for row in rng.integers(0, 64, size=(200_000, 16)).tolist()]
    seen, grown_bytes = traced_growth(lambda: SeenGenomes(merge_at=4096), genomes, SeenGenomes.add)
    assert len(seen) == len(set(genomes))
    grown = grown_bytes / len(seen)
    assert grown < 16, f"{grown:.1f} bytes a genome"
    assert all(g in seen for g in genomes[::997])
