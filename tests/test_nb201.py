"""The NAS-Bench-201 space, the table evaluator, table searches and the driver benchmark."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import torch

from evaluators._base import Candidate
from evaluators.table_lookup import Table, TableEvaluator
from search.cli import main
from search.driver_benchmark import true_front
from search.objectives import Objective
from spaces._base import InvalidGenome
from spaces.errors import ArchpruneError
from spaces.models.nb201_net import OPS
from spaces.nb201_space import NB201Space, arch_to_genome, genome_to_arch
from tests.conftest import shared_path

ALL_3X3 = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|nor_conv_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|"


def test_every_arch_string_of_the_benchmark_round_trips() -> None:
    table = shared_path("nb201", "nb201_cifar10.csv")
    with table.open(newline="") as handle:
        archs = [row["arch_str"] for row in csv.DictReader(handle)]
    assert len(archs) == 15625
    genomes = [arch_to_genome(a) for a in archs]
    assert [genome_to_arch(g) for g in genomes] == archs
    assert len(set(genomes)) == 15625  # the space is exactly the benchmark


def expected_params(ops: list[str]) -> int:
    """Parameter count from the paper's definition, written out independently of the network code."""
    def cell(c: int) -> int:
        per_op = {"nor_conv_3x3": 9 * c * c + 2 * c, "nor_conv_1x1": c * c + 2 * c}
        return sum(per_op.get(op, 0) for op in ops)

    def reduction(c: int) -> int:  # c -> 2c: 3x3 stride 2, 3x3, BN after each, 1x1 shortcut
        return 9 * c * 2 * c + 4 * c + 9 * 2 * c * 2 * c + 4 * c + c * 2 * c

    stem = 3 * 16 * 9 + 2 * 16
    return stem + 5 * (cell(16) + cell(32) + cell(64)) + reduction(16) + reduction(32) + 2 * 64 + 64 * 10 + 10


@pytest.mark.parametrize("arch", [
    ALL_3X3,
    "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|",
    "|nor_conv_1x1~0|+|skip_connect~0|avg_pool_3x3~1|+|nor_conv_3x3~0|none~1|nor_conv_1x1~2|",
])
def test_built_network_has_the_papers_parameter_count(arch: str) -> None:
    model = NB201Space().build(arch_to_genome(arch))
    ops = [OPS[g] for g in arch_to_genome(arch)]
    assert sum(p.numel() for p in model.parameters()) == expected_params(ops)
    with torch.no_grad():
        assert model(torch.rand(2, 3, 32, 32)).shape == (2, 10)
    if arch == ALL_3X3:
        assert expected_params(ops) == 1_531_546  # the benchmark's largest cell: 1.53 M parameters


def test_bad_arch_strings_are_named() -> None:
    with pytest.raises(InvalidGenome, match="conv_5x5"):
        arch_to_genome("|conv_5x5~0|+|none~0|none~1|+|none~0|none~1|none~2|")
    with pytest.raises(InvalidGenome, match="3 nodes"):
        arch_to_genome("|none~0|")


def write_table(path: Path, rows: list[dict[str, str]]) -> Path:
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


def arch(*ops: str) -> str:
    return genome_to_arch(tuple(OPS.index(op) for op in ops))


def test_table_evaluator_reads_columns_and_names_every_problem(tmp_path: Path) -> None:
    a, b = arch(*["nor_conv_3x3"] * 6), arch(*["none"] * 6)
    path = write_table(tmp_path / "t.csv", [{"arch_str": a, "acc": "91.5", "lat": "3.0"},
                                            {"arch_str": b, "acc": "10", "lat": "n/a"}])
    table = Table(path)
    space = NB201Space()
    evaluator = TableEvaluator(table, {"acc": "max", "lat": "min"})
    assert evaluator.evaluate(Candidate(None, 32, config={"arch_str": a})) == {"acc": 91.5, "lat": 3.0}
    with pytest.raises(ArchpruneError, match=r"column 'lat', arch .*none.*'n/a' is not a number"):
        evaluator.evaluate(Candidate(None, 32, config=space.to_config(arch_to_genome(b))))
    missing = arch(*["skip_connect"] * 6)
    with pytest.raises(ArchpruneError, match=r"arch '\|skip_connect~0.*' is not in table t.csv"):
        evaluator.evaluate(Candidate(None, 32, config={"arch_str": missing}))
    with pytest.raises(ArchpruneError, match="has no column 'latency'; its columns are acc, lat"):
        TableEvaluator(table, {"latency": "min"})
    (tmp_path / "bad.csv").write_text("arch,acc\nx,1\n")
    with pytest.raises(ArchpruneError, match="no 'arch_str' column"):
        Table(tmp_path / "bad.csv")


def test_true_front_of_a_hand_made_table(tmp_path: Path) -> None:
    rows = {arch(*["nor_conv_3x3"] * 6): ("94", "9"), arch(*["nor_conv_1x1"] * 6): ("90", "4"),
            arch(*["skip_connect"] * 6): ("80", "1"), arch(*["avg_pool_3x3"] * 6): ("70", "5"),  # dominated
            arch(*["none"] * 6): ("10", "1")}  # dominated by skip (same latency, worse accuracy)
    path = write_table(tmp_path / "t.csv", [{"arch_str": k, "acc": v[0], "lat": v[1]} for k, v in rows.items()])
    objectives = [Objective("acc", "max"), Objective("lat", "min")]
    truth = true_front(Table(path), objectives)
    assert sorted(r.config["arch_str"] for r in truth.front) == sorted(list(rows)[:3])
    assert truth.reference == [10.0, 9.0]
    # 80 x (9-1) + 10 x (9-4) ... as strips along latency: [1,4) acc 80, [4,9) acc 90 -> above 10
    assert truth.hypervolume == pytest.approx(3 * 70 + 5 * 80)


def test_search_on_the_table_and_its_front(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    table = str(shared_path("nb201", "nb201_cifar10.csv"))
    for driver in ("nsga2", "random"):
        assert main(["search", "--space", "nb201", "--table", table, "--objectives",
                     "test_acc_cifar10:max,lat_raspi4:min", "--driver", driver, "--trials", "60", "--run", driver,
                     "--results", str(tmp_path), "--no-progress"]) == 0
        capsys.readouterr()
        assert main(["pareto", str(tmp_path / driver), "--json", "--no-plots"]) == 0
        report = json.loads(capsys.readouterr().out)
        assert report["n_trials"] == 60 and report["front"]
        assert {"trial", "test_acc_cifar10", "lat_raspi4"} <= set(report["front"][0])
    assert main(["search", "--space", "nb201", "--table", table, "--objectives", "test_acc:max", "--trials", "5",
                 "--results", str(tmp_path)]) == 2
    assert "did you mean 'test_acc_cifar10'" in capsys.readouterr().err


def test_bench_drivers_reports_gap_and_recall_per_driver_and_budget(capsys: pytest.CaptureFixture) -> None:
    table = str(shared_path("nb201", "nb201_cifar10.csv"))
    assert main(["bench", "drivers", "--table", table, "--objectives", "test_acc_cifar10:max,lat_pixel3:min",
                 "--budgets", "50,150", "--seeds", "2", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert set(report) == {"nsga2", "random"} and set(report["nsga2"]) == {"50", "150"}
    for driver in report.values():
        for row in driver.values():
            assert 0.0 <= row["hv_gap"]["mean"] <= 1.0 and 0.0 <= row["front_recall"]["mean"] <= 1.0
            assert row["hv_gap"]["std"] >= 0 and row["seconds_per_trial"] > 0
        assert driver["150"]["hv_gap"]["mean"] <= driver["50"]["hv_gap"]["mean"]  # more budget, never worse
