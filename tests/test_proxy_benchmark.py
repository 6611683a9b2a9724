"""``archprune bench proxies``: the report's shape, the resumable cache, the accuracy-column error, and
that the parameter count (the baseline every score must beat) ranks NAS-Bench-201 cells as published.

Cheap settings throughout (one cell per stage, batch 8, a dozen cells): the code paths, not the numbers.
"""
from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import pytest
import torch

import search.proxy_benchmark as pb
from search.cli_bench_proxies import add_proxies_parser
from spaces.errors import ArchpruneError
from tests.conftest import shared_path

ACC = "test_acc_cifar10"
FAST = dict(batch=8, cells_per_stage=1, progress=False, say=lambda line: None)


@pytest.fixture(autouse=True)
def _one_thread() -> object:
    """The nets here are tiny: a second thread buys nothing and, on a busy 2-core box, spin-waits for seconds."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def table() -> Path:
    return shared_path("nb201", "nb201_cifar10.csv")


def test_report_shape_and_ranges(table: Path, tmp_path: Path) -> None:
    report = pb.benchmark_proxies(table, ACC, samples=12, seed=0, scores="params_m,flops_g,grad_norm",
                                  cache_dir=tmp_path, **FAST)
    assert list(report) == ["params_m", "flops_g", "grad_norm"]
    for row in report.values():
        assert {"spearman", "kendall", "seconds_per_model"} <= set(row)
        assert -1.0 <= row["spearman"] <= 1.0 and -1.0 <= row["kendall"] <= 1.0
        assert row["seconds_per_model"] >= 0 and row["cells"] == 12
    assert report["grad_norm"]["batch"] == 8
    json.dumps(report, allow_nan=False)  # strict JSON: the CLI's --json output
    assert "| grad_norm | 8 |" in pb.format_proxy_report(report)


def test_second_run_comes_from_the_cache(table: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []
    real = pb.measure

    def counting(name: str, *args: object, **kwargs: object) -> float:
        calls.append(name)
        return real(name, *args, **kwargs)

    monkeypatch.setattr(pb, "measure", counting)
    run = dict(seed=1, scores="params_m,grad_norm", cache_dir=tmp_path, **FAST)
    first = pb.benchmark_proxies(table, ACC, samples=12, **run)
    assert len(calls) == 24
    calls.clear()
    second = pb.benchmark_proxies(table, ACC, samples=12, **run)
    assert calls == [] and second == first
    # a longer run with the same seed starts with the same cells: only the new ones are scored
    pb.benchmark_proxies(table, ACC, samples=15, **run)
    assert len(calls) == 6


def test_an_interrupted_cache_line_is_skipped(tmp_path: Path) -> None:
    cache = pb.ScoreCache(tmp_path / "c.jsonl")
    cache.put(("a", "snip", 8, 0, "cifar10", 1), -math.inf, 0.5)
    with (tmp_path / "c.jsonl").open("a") as handle:
        handle.write('{"key": ["b", "snip"')  # killed mid-write
    again = pb.ScoreCache(tmp_path / "c.jsonl")
    assert again.entries == {("a", "snip", 8, 0, "cifar10", 1): {"value": -math.inf, "seconds": 0.5}}


def test_nonfinite_scores_rank_lowest_and_are_counted() -> None:
    rho, tau = pb.rank_correlations([math.nan, -math.inf, 1.0, 2.0], [1.0, 1.0, 2.0, 3.0])
    assert rho == pytest.approx(1.0) and tau == pytest.approx(1.0)
    assert pb.summarise("x", [math.nan, 1.0, 2.0], [0.1] * 3, [1.0, 2.0, 3.0], 8)["nonfinite"] == 1
    assert pb.rank_correlations([1.0, 1.0, 1.0], [1.0, 2.0, 3.0]) == (None, None)  # constant: undefined


def test_wrong_accuracy_column_is_one_line_naming_the_columns(tmp_path: Path) -> None:
    csv = tmp_path / "t.csv"
    csv.write_text("arch_str,test_acc_cifar10,lat_raspi4\n|none~0|+|none~0|none~1|+|none~0|none~1|none~2|,10,1\n")
    with pytest.raises(ArchpruneError) as err:
        pb.benchmark_proxies(csv, "test_acc_cifar", samples=2, cache_dir=tmp_path, **FAST)
    message = str(err.value)
    assert "\n" not in message and "test_acc_cifar10, lat_raspi4" in message
    assert "did you mean 'test_acc_cifar10'" in message


def test_unknown_score_and_bad_sample_count(table: Path, tmp_path: Path) -> None:
    with pytest.raises(ArchpruneError, match="did you mean 'synflow'"):
        pb.resolve_proxies("synflo")
    with pytest.raises(ArchpruneError, match="--samples 1"):
        pb.benchmark_proxies(table, ACC, samples=1, cache_dir=tmp_path, **FAST)


def test_batches_follow_the_papers_unless_overridden() -> None:
    assert [pb.score_batch(s, None) for s in ("naswot", "snip", "synflow", "params_m")] == [128, 64, 1, 0]
    assert [pb.score_batch(s, 32) for s in ("naswot", "snip", "synflow", "params_m")] == [32, 32, 1, 0]


def test_params_rank_cells_like_the_benchmark(table: Path, tmp_path: Path) -> None:
    """Published Spearman of the parameter count is 0.74 over all cells; 30 cells are noisy, so > 0.3."""
    report = pb.benchmark_proxies(table, ACC, samples=30, seed=0, scores="params_m", cache_dir=tmp_path,
                                  progress=False, say=lambda line: None)
    assert report["params_m"]["spearman"] > 0.3


def test_cli_json(table: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                  capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("ARCHPRUNE_CACHE", str(tmp_path))
    parser = argparse.ArgumentParser()
    add_proxies_parser(parser.add_subparsers(dest="bench"))
    args = parser.parse_args(["proxies", "--table", str(table), "--accuracy", ACC, "--samples", "12",
                              "--scores", "params_m", "--json"])
    assert args.func(args) == 0
    out = json.loads(capsys.readouterr().out)
    assert set(out) == {"params_m"} and out["params_m"]["cells"] == 12
    assert (tmp_path / pb.CACHE_FILE).exists()
