"""Score ensembles on NAS-Bench-201 (issue 19, item 4): chosen on one set of cells, reported on 1,000 others.

The cells are one seeded permutation of the table, as ``archprune bench proxies`` draws them: the
first ``--test`` (1,000) are the cells of the single-score table in BENCHMARKS.md, the next
``--select`` (200) are where an ensemble is chosen. Every (cell, score) value comes from the
proxies benchmark's cache (computed there when missing, so run this after
``archprune bench proxies --samples 1200 --scores ...`` or let it fill the gaps).

Candidates, each a combination of the ``--scores``:

- rank average: the mean of each score's rank among the cells being ranked (NaN / -inf lowest, as in
  the single-score table), for every subset of 2 to ``--max-size`` scores;
- majority vote: for every pair of cells each score votes for the one it rates higher and the
  majority decides; a cell's ensemble score is how many pairs it wins (Copeland's rule), for every
  subset of 3 scores. Abdelfattah et al. (ICLR 2021) vote with synflow, jacob_cov and snip; their
  notebook sorts with the majority as comparator, whose order depends on the sort when the votes
  are cyclic. Counting wins gives one order.

The candidate with the best Spearman rho on the selection cells is the pick; the report gives its
rho on the test cells with a bootstrap 95% interval, next to every single score and to the ICLR vote
(fixed in advance, not chosen), and the top candidates by selection rho with their test rho (how
much the choice over-fits).

    OMP_NUM_THREADS=1 python bench/nb201_ensemble.py --table ../shared/data/nb201/nb201_cifar10.csv \\
        --cache-dir bench/runs/nb201-scores [--json]
"""
from __future__ import annotations

import argparse
import itertools
import json
from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy import stats

from evaluators.table_lookup import Table
from search.proxy_benchmark import ScoreCache, cache_path, resolve_proxies, sample_cells, score_cells

ICLR_VOTE = ("synflow", "jacob_cov", "snip")
DEFAULT_SCORES = "synflow,naswot,jacob_cov,snip,entropy,params_m,flops_g"


def ranks(values: Sequence[float]) -> np.ndarray:
    """Average ranks, NaN as -inf (lowest), as the single-score table ranks."""
    v = np.asarray(values, dtype=float)
    v[np.isnan(v)] = -np.inf
    return stats.rankdata(v)


def rank_average(columns: Sequence[Sequence[float]]) -> np.ndarray:
    return np.mean([ranks(c) for c in columns], axis=0)


def majority_vote(columns: Sequence[Sequence[float]]) -> np.ndarray:
    """Copeland wins: how many other cells each cell beats by a majority of the scores (ties: half)."""
    votes = np.zeros((len(columns[0]),) * 2)
    for column in columns:
        r = ranks(column)
        votes += np.sign(r[:, None] - r[None, :])  # +1 where this score rates the row's cell higher
    return (votes > 0).sum(axis=1) + 0.5 * (votes == 0).sum(axis=1)


def spearman(score: np.ndarray, accuracy: np.ndarray) -> float:
    return float(stats.spearmanr(score, accuracy).statistic)


def bootstrap_interval(score: np.ndarray, accuracy: np.ndarray, rounds: int = 1000, seed: int = 0) -> list[float]:
    rng = np.random.default_rng(seed)
    n = len(score)
    draws = [spearman(score[i], accuracy[i]) for i in (rng.integers(0, n, n) for _ in range(rounds))]
    return [float(np.percentile(draws, 2.5)), float(np.percentile(draws, 97.5))]


def candidates(names: Sequence[str], max_size: int) -> list[tuple[str, tuple[str, ...]]]:
    out = [("rank average", combo) for size in range(2, max_size + 1) for combo in itertools.combinations(names, size)]
    return out + [("majority vote", combo) for combo in itertools.combinations(names, 3)]


def combine(kind: str, combo: Sequence[str], values: dict[str, np.ndarray]) -> np.ndarray:
    columns = [values[name] for name in combo]
    return rank_average(columns) if kind == "rank average" else majority_vote(columns)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--table", required=True)
    parser.add_argument("--accuracy", default="test_acc_cifar10")
    parser.add_argument("--scores", default=DEFAULT_SCORES)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--test", type=int, default=1000, help="cells the ensemble is reported on (the first ones)")
    parser.add_argument("--select", type=int, default=200, help="cells the ensemble is chosen on (the next ones)")
    parser.add_argument("--max-size", type=int, default=4, help="largest rank-average subset (default 4)")
    parser.add_argument("--cache-dir", default=None, help="the proxies benchmark's cache folder")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    names = resolve_proxies(args.scores)
    table = Table(args.table)
    archs = sample_cells(table, args.test + args.select, args.seed)
    cache = ScoreCache(cache_path(args.cache_dir))
    raw, _, cached = score_cells(archs, names, None, args.seed, cache, progress=False)
    accuracy = np.array([table.value(a, args.accuracy) for a in archs])
    test, select = slice(0, args.test), slice(args.test, args.test + args.select)
    split = {part: ({n: np.asarray(raw[n], dtype=float)[s] for n in names}, accuracy[s])
             for part, s in (("test", test), ("select", select))}

    def rho(part: str, kind: str, combo: Sequence[str]) -> tuple[float, np.ndarray]:
        values, acc = split[part]
        score = ranks(values[combo[0]]) if kind == "single" else combine(kind, combo, values)
        return spearman(score, acc), score

    rows: list[dict[str, Any]] = []
    pool = [("single", (n,)) for n in names] + candidates(names, args.max_size)
    for kind, combo in pool:
        chosen_on, _ = rho("select", kind, combo)
        on_test, score = rho("test", kind, combo)
        rows.append({"kind": kind, "scores": list(combo), "select_rho": chosen_on, "test_rho": on_test,
                     "test_ci": bootstrap_interval(score, split["test"][1]) if kind == "single" else None})
    pick = max((r for r in rows if r["kind"] != "single"), key=lambda r: r["select_rho"])
    for row in rows:
        if row is pick or (row["kind"] == "majority vote" and tuple(row["scores"]) == ICLR_VOTE):
            row["test_ci"] = bootstrap_interval(rho("test", row["kind"], row["scores"])[1], split["test"][1])
    report = {"cells": {"test": args.test, "select": args.select, "seed": args.seed}, "from_cache": cached,
              "pick": pick, "rows": rows}
    if args.json:
        print(json.dumps(report, indent=1))
        return
    print(f"{args.test} test cells (the single-score table's), {args.select} selection cells; "
          f"{cached} of {len(archs) * len(names)} values from the cache\n")
    print("| ensemble | scores | ρ, selection cells | ρ, test cells | 95% interval (test) |")
    print("|---|---|---:|---:|---|")
    shown = [r for r in rows if r["kind"] == "single"]
    shown += [r for r in rows if r["kind"] == "majority vote" and tuple(r["scores"]) == ICLR_VOTE]
    shown += sorted((r for r in rows if r["kind"] != "single"), key=lambda r: -r["select_rho"])[:5]
    seen: set[tuple[str, tuple[str, ...]]] = set()
    for r in shown:
        key = (r["kind"], tuple(r["scores"]))
        if key in seen:
            continue
        seen.add(key)
        ci = "" if r["test_ci"] is None else f"{r['test_ci'][0]:.3f}–{r['test_ci'][1]:.3f}"
        mark = " (**pick**)" if r is pick else ""
        print(f"| {r['kind']}{mark} | {', '.join(r['scores'])} | {r['select_rho']:.3f} | {r['test_rho']:.3f} | {ci} |")
    best_test = max((r for r in rows if r["kind"] != "single"), key=lambda r: r["test_rho"])
    print(f"\nbest on the test cells (not a pick: chosen on them): {best_test['kind']} of "
          f"{', '.join(best_test['scores'])}, ρ {best_test['test_rho']:.3f}")


if __name__ == "__main__":
    main()
