"""The pick: the rule on hand-made fronts, its marks in the outputs, pick.png, and ``export --pick``."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from search.cli import main
from search.objectives import Objective
from search.pareto import pareto_front
from search.pick import accuracy_index, choose_pick, parse_max_drop, pick_widths
from search.plots import plot_html, plot_png, plot_widths
from search.report import front_json, front_table, write_front_files
from search.store import TrialRecord
from spaces.errors import ArchpruneError

LAT_MAP = [Objective("latency_ms", "min"), Objective("map50_95", "max")]


def rec(n: int, values: tuple[float, ...], source: str = "nsga2-g1", feasible: bool = True,
        groups: dict[str, int] | None = None, **metrics: float) -> TrialRecord:
    config = {"groups": groups, "importance": "l1", "round_to": 8} if groups else {}
    return TrialRecord(number=n, genome=(n,), failed=False, values=values, source=source, config=config,
                       metrics=metrics, constraints={} if feasible else {"latency_ms<=2": 1.0})


def detector_front() -> list[TrialRecord]:
    """The unpruned model at 0.85 mAP; trials 1 and 2 within 0.02 of it; 3 is the knee, 0.15 below."""
    return [rec(0, (3.0, 0.85), "unpruned"), rec(1, (2.0, 0.84)), rec(2, (1.5, 0.83)), rec(3, (1.0, 0.70)),
            rec(4, (0.5, 0.0), "uniform-0.25"), rec(5, (2.5, 0.80))]  # 5 is dominated by 1


def test_pick_is_the_cheapest_front_candidate_within_max_drop_and_the_knee_below_the_line_is_withheld() -> None:
    records = detector_front()
    pf = pareto_front(records, LAT_MAP)
    assert pf.knee.number == 3  # the geometric knee exists ...
    pick = choose_pick(pf, records)
    assert pick.number == 2  # 0.83 is exactly 0.85 - 0.02: on the line counts as within
    assert pick.line == pytest.approx(0.83) and pick.reference.number == 0 and pick.max_drop == 0.02
    assert pick.knee is None  # ... but 0.70 is below the line: never recommended
    assert "trial 2" in pick.note and "unpruned model (trial 0" in pick.note and "as the front measures it" in pick.note
    assert choose_pick(pf, records, max_drop=0.2).number == 3  # a looser drop admits the knee, and it is cheaper
    assert choose_pick(pf, records, max_drop=0.2).knee.number == 3
    assert choose_pick(pf, records, max_drop=1.0).number == 4  # anything goes: the cheapest of all


def test_without_an_accuracy_objective_the_pick_is_the_knee() -> None:
    objectives = [Objective("flops_g", "min"), Objective("params_m", "min")]
    records = [rec(0, (1.0, 3.0), "unpruned"), rec(1, (2.0, 0.5)), rec(2, (3.0, 0.2)), rec(3, (1.2, 1.0))]
    pf = pareto_front(records, objectives)
    pick = choose_pick(pf, records, max_drop=0.0)
    assert pick.rule == "knee" and pick.number == pf.knee.number and pick.knee is pf.knee
    assert pick.line is None and pick.max_drop is None and "no accuracy objective" in pick.note
    report = front_json(pf, pick)
    assert report["pick"] == report["knee"] == pf.knee.number and report["max_drop"] is None


def test_when_only_the_unpruned_model_is_within_max_drop_it_is_the_pick_and_one_line_says_so() -> None:
    records = [rec(0, (3.0, 0.85), "unpruned"), rec(1, (1.0, 0.60)), rec(2, (0.5, 0.10))]
    pf = pareto_front(records, LAT_MAP)
    pick = choose_pick(pf, records)
    assert pick.number == 0 and pick.knee is None
    assert "\n" not in pick.note and "the unpruned model itself" in pick.note
    assert "the nearest, trial 1, is 0.25 below" in pick.note
    assert front_table(pf, pick).splitlines()[-1] == pick.note


def test_no_pick_when_the_unpruned_model_is_infeasible_and_nothing_feasible_is_within_max_drop() -> None:
    records = [rec(0, (3.0, 0.85), "unpruned", feasible=False), rec(1, (1.0, 0.60)), rec(2, (0.5, 0.10))]
    pf = pareto_front(records, LAT_MAP)
    pick = choose_pick(pf, records)
    assert pick.trial is None and pick.reference.number == 0 and pick.knee is None
    assert pick.note.startswith("no pick:") and "the most accurate is trial 1 at 0.6" in pick.note
    assert front_json(pf, pick)["pick"] is None


def test_a_run_without_an_unpruned_trial_is_measured_against_the_fronts_best() -> None:
    objectives = [Objective("test_acc_cifar10", "max"), Objective("lat_raspi4", "min")]  # nb201: percent
    records = [rec(0, (93.5, 50.0), "random"), rec(1, (92.9, 20.0), "random"), rec(2, (90.0, 8.0), "random")]
    pf = pareto_front(records, objectives)
    assert choose_pick(pf, records).number == 0  # 0.02 percentage points: only the best itself
    pick = choose_pick(pf, records, max_drop=1.0)
    assert pick.number == 1 and pick.reference.number == 0 and "no unpruned trial" in pick.note
    assert pick.cost.name == "lat_raspi4" and pick.accuracy.name == "test_acc_cifar10"


def test_accuracy_objectives_are_maximised_map_top1_or_acc_metrics() -> None:
    def index(*specs: str) -> int | None:
        return accuracy_index([Objective(*s.split(":")) for s in specs])

    assert index("latency_ms:min", "flops_g:min", "map50_95:max") == 2
    assert index("latency_int8_ms:min", "map50_95_int8:max") == 1
    assert index("top1:max", "params_m:min") == 0
    assert index("entropy:max", "flops_g:min") is None  # a zero-shot score is no accuracy
    assert index("map50_95:min", "flops_g:min") is None  # minimised: not an accuracy to hold


@pytest.mark.parametrize("text", ["-0.01", "abc", "nan", "inf"])
def test_max_drop_must_be_a_non_negative_number(text: str, capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(ArchpruneError, match="--max-drop"):
        parse_max_drop(text)
    assert main(["pareto", "no-such-run", "--max-drop", text]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("archprune: error: --max-drop")
    assert parse_max_drop("0") == 0.0 and parse_max_drop(None) == 0.02


def test_json_csv_table_and_plots_mark_the_pick(tmp_path: Path) -> None:
    records = detector_front()
    pf = pareto_front(records, LAT_MAP)
    pick = choose_pick(pf, records)
    paths = write_front_files(pf, pick, tmp_path)
    report = json.loads(paths["json"].read_text())
    assert report["pick"] == 2 and report["knee"] is None and report["max_drop"] == 0.02
    assert report["max_drop_line"] == pytest.approx(0.83) and report["pick_reference"]["trial"] == 0
    assert "latency_ms" in report["pick_rule"] and "map50_95" in report["pick_rule"]
    rows = list(csv.DictReader(paths["csv"].open()))
    assert [r["trial"] for r in rows if r["pick"] == "True"] == ["2"] and all(r["knee"] == "False" for r in rows)
    table = front_table(pf, pick)
    assert "nsga2-g1 (pick)" in table and "(knee)" not in table
    assert plot_png(pf, records, tmp_path / "pareto.png", "t", pick).stat().st_size > 0
    html = plot_html(pf, records, tmp_path / "pareto.html", "t", pick).read_text()
    assert "pick: trial 2" in html and "max-drop line" in html and '"name":"knee"' not in html


def channel_records() -> list[TrialRecord]:
    full = {"model.0.conv": 16, "model.1.conv": 32, "model.2.cv1.conv": 32}
    return [rec(0, (3.0, 0.85), "unpruned", groups=full, latency_ms=3.0),
            rec(1, (2.0, 0.80), "uniform-0.75", groups={k: v * 3 // 4 for k, v in full.items()}, latency_ms=2.0),
            rec(2, (1.0, 0.40), "uniform-0.5", groups={k: v // 2 for k, v in full.items()}, latency_ms=1.0),
            rec(3, (1.9, 0.84), groups={"model.0.conv": 8, "model.1.conv": 32, "model.2.cv1.conv": 16}, latency_ms=1.9)]


def test_pick_widths_hold_the_base_the_pick_and_the_uniform_baseline_of_equal_cost(tmp_path: Path) -> None:
    records = channel_records()
    pf = pareto_front(records, LAT_MAP)
    pick = choose_pick(pf, records)
    assert pick.number == 3
    widths = pick_widths(pick, records)
    assert widths.groups == ["model.0.conv", "model.1.conv", "model.2.cv1.conv"]
    assert widths.base == [16, 32, 32] and widths.pick == [8, 32, 16]
    assert widths.uniform_trial.number == 1 and widths.uniform == [12, 24, 24]  # latency 2.0 is nearest 1.9
    assert plot_widths(widths, tmp_path / "pick.png", "t").stat().st_size > 0
    table = [rec(0, (3.0, 0.8), "random"), rec(1, (1.0, 0.79), "random")]  # no channel groups: no picture
    assert pick_widths(choose_pick(pareto_front(table, LAT_MAP), table), table) is None


def test_export_needs_exactly_one_of_trial_or_pick(capsys: pytest.CaptureFixture) -> None:
    for args in ([], ["--trial", "3", "--pick"]):
        assert main(["export", "some-run", *args]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "give --trial N or --pick" in err


def test_pareto_writes_pick_png_and_export_pick_exports_the_pick(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    # a tiny channel run (FLOPs objectives: no accuracy, so the pick is the knee)
    assert main(["search", "--model", "yolov8n", "--imgsz", "64", "--objectives", "flops_g:min,params_m:min",
                 "--importance", "random", "--population", "4", "--offspring", "4", "--trials", "9", "--run", "p",
                 "--results", str(tmp_path), "--storage", f"sqlite:///{tmp_path / 'p.db'}", "--executor", "inline",
                 "--no-progress"]) == 0
    capsys.readouterr()
    url = f"sqlite:///{tmp_path / 'p.db'}"
    assert main(["pareto", "--storage", url, "--run", "p", "--out", str(tmp_path / "p"), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["pick"] is not None and report["pick"] == report["knee"] and "knee" in report["pick_rule"]
    assert (tmp_path / "p" / "pick.png").stat().st_size > 0
    out = tmp_path / "exported"
    assert main(["export", "--storage", url, "--run", "p", "--pick", "--out", str(out)]) == 0
    assert f"pick: trial {report['pick']}" in capsys.readouterr().out
    config = json.loads((out / "config.json").read_text())
    assert config["trial"] == report["pick"] and (out / "model.onnx").stat().st_size > 0
