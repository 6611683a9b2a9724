"""``archprune search / pareto / export / apply`` end to end on a real YOLOv8n (FLOPs objectives: fast)."""
from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from search.cli import main

FAST = ["--model", "yolov8n", "--imgsz", "64", "--objectives", "flops_g:min,params_m:min", "--importance", "random",
        "--population", "6", "--offspring", "6"]


def archprune(*args: str, cwd: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    return subprocess.Popen([sys.executable, "-m", "search.cli", *args], cwd=cwd, env=env, start_new_session=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finished_trials(db: Path) -> list[tuple]:
    if not db.exists():
        return []
    try:
        with sqlite3.connect(db) as con:
            rows = con.execute("SELECT t.number, t.state, group_concat(p.param_value, ',') FROM trials t "
                               "LEFT JOIN trial_params p ON p.trial_id = t.trial_id GROUP BY t.trial_id "
                               "ORDER BY t.number").fetchall()
    except sqlite3.OperationalError:  # tables not created yet
        return []
    return [r for r in rows if r[1] in ("COMPLETE", "FAIL")]


@pytest.mark.slow
def test_sigkill_mid_run_then_rerun_finishes_without_evaluating_anything_twice(tmp_path: Path) -> None:
    args = ["search", *FAST, "--trials", "30", "--run", "k", "--no-progress"]
    proc = archprune(*args, cwd=tmp_path)
    db = tmp_path / "results" / "k" / "study.db"
    deadline = time.monotonic() + 120
    while len(finished_trials(db)) < 8 and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.1)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    killed_at = len(finished_trials(db))
    assert 8 <= killed_at < 30, "the search was not killed mid-run"

    again = archprune(*args, cwd=tmp_path)
    out, err = again.communicate(timeout=300)
    assert again.returncode == 0, err
    rows = finished_trials(db)
    assert [r[0] for r in rows] == list(range(30))  # every trial kept, none lost, 30 in all
    genomes = [r[2] for r in rows]
    assert len(set(genomes)) == 30  # no finished candidate evaluated twice
    log = (tmp_path / "results" / "k" / "search.log").read_text()
    assert f"resuming run 'k': {killed_at} trials already in the store" in log
    # the resumed run is the run an uninterrupted search makes
    whole = archprune(*args[:-3], "--run", "whole", "--no-progress", cwd=tmp_path)
    whole.communicate(timeout=300)
    assert [r[2] for r in finished_trials(tmp_path / "results" / "whole" / "study.db")] == genomes


def test_ctrl_c_stops_after_the_current_candidate_and_says_how_to_resume(tmp_path: Path) -> None:
    proc = archprune("search", *FAST, "--trials", "500", "--run", "c", "--no-progress", cwd=tmp_path)
    db = tmp_path / "results" / "c" / "study.db"
    deadline = time.monotonic() + 120
    while len(finished_trials(db)) < 3 and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.1)
    os.killpg(proc.pid, signal.SIGINT)  # as a terminal's Ctrl-C does: the evaluation worker gets it too
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "stopping after the current candidate" in err and "run the same command again to resume" in err
    rows = finished_trials(db)
    assert 3 <= len(rows) < 500 and f"{len(rows)} in the run" in out
    assert all(state == "COMPLETE" for _, state, _ in rows)  # nothing left half-written


@pytest.mark.slow
def test_sigkill_of_an_optuna_driven_search_loses_nothing_and_reruns_the_killed_candidate(tmp_path: Path) -> None:
    args = ["search", *FAST, "--driver", "optuna-tpe", "--trials", "20", "--run", "o", "--no-progress"]
    proc = archprune(*args, cwd=tmp_path)
    db = tmp_path / "results" / "o" / "study.db"
    deadline = time.monotonic() + 120
    while len(finished_trials(db)) < 6 and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.1)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    before = {r[0]: r for r in finished_trials(db)}
    again = archprune(*args, cwd=tmp_path)
    out, err = again.communicate(timeout=300)
    assert again.returncode == 0, err
    with sqlite3.connect(db) as con:
        interrupted = {n for (n,) in con.execute(
            "SELECT t.number FROM trials t JOIN trial_user_attributes a ON a.trial_id = t.trial_id "
            "WHERE a.key = 'interrupted'")}
    rows = [r for r in finished_trials(db) if r[0] not in interrupted]
    complete = [r for r in rows if r[1] == "COMPLETE"]
    assert all(before[n] == r for n, r in ((r[0], r) for r in rows) if n in before)  # nothing finished was lost
    assert len(complete) == 20 and len({r[2] for r in complete}) == 20  # 20 distinct candidates, none twice


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("cli")
    cwd = os.getcwd()
    os.chdir(root)
    try:
        assert main(["search", *FAST, "--trials", "14", "--run", "r", "--no-progress"]) == 0
    finally:
        os.chdir(cwd)
    return root / "results" / "r"


def test_pareto_json_and_files(finished_run: Path, capsys: pytest.CaptureFixture) -> None:
    capsys.readouterr()
    assert main(["pareto", str(finished_run), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert set(report) >= {"objectives", "front", "hypervolume", "reference_point", "n_trials"}
    assert report["objectives"] == [{"name": "flops_g", "direction": "min"}, {"name": "params_m", "direction": "min"}]
    assert report["n_trials"] == 14 and report["front"] and report["hypervolume"] > 0
    assert set(report["front"][0]) >= {"trial", "flops_g", "params_m"}
    for name in ("pareto.csv", "pareto.json", "pareto.png", "pareto.html"):
        assert (finished_run / name).stat().st_size > 0
    assert main(["pareto", str(finished_run), "--json", "--hv-ref", "100,100", "--no-plots"]) == 0
    assert json.loads(capsys.readouterr().out)["reference_point"] == [100.0, 100.0]
    url = f"sqlite:///{finished_run / 'study.db'}"  # the same run straight from its storage URL
    assert main(["pareto", "--storage", url, "--run", "r", "--json", "--no-plots", "--out", str(finished_run)]) == 0
    assert json.loads(capsys.readouterr().out)["front"] == report["front"]


def test_pareto_reads_a_run_without_importing_torch(finished_run: Path, tmp_path: Path) -> None:
    """Reading a front needs no model: the run keeps its metrics' units, so `pareto` (plots included)
    skips the evaluator registry and torch (~2 s of every open of a large store)."""
    code = ("import sys; from search.cli import main; "
            f"code = main(['pareto', {str(finished_run)!r}, '--out', {str(tmp_path)!r}]); "
            "print(code, sorted(m for m in ('torch', 'torch_pruning', 'onnxruntime') if m in sys.modules))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().endswith("0 []"), proc.stdout
    assert "units: flops_g GFLOPs, params_m M params" in proc.stdout  # read from the store
    assert (tmp_path / "pareto.png").stat().st_size > 0


def test_export_then_apply_rebuilds_the_same_model_bit_for_bit(finished_run: Path, tmp_path: Path) -> None:
    out = tmp_path / "export"
    assert main(["export", str(finished_run), "--trial", "9", "--out", str(out)]) == 0
    config = json.loads((out / "config.json").read_text())
    assert config["trial"] == 9 and config["importance"] == "random" and config["kept_indices"]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["latency_ms"] > 0 and summary["params_m"] < 3.2
    assert (out / "model.onnx").stat().st_size > 0
    assert main(["apply", str(out / "config.json"), "--weights", "yolov8n", "--out", str(tmp_path / "again.pt")]) == 0
    exported = torch.load(out / "pruned.pt", weights_only=True)["state_dict"]
    rebuilt = torch.load(tmp_path / "again.pt", weights_only=True)["state_dict"]
    assert exported.keys() == rebuilt.keys()
    assert all(torch.equal(exported[k], rebuilt[k]) for k in exported)
    assert sum(v.numel() for k, v in rebuilt.items() if k.endswith("weight")) < 3_100_000  # really pruned


def test_apply_refuses_other_base_weights(finished_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "export"
    assert main(["export", str(finished_run), "--trial", "3", "--out", str(out)]) == 0
    capsys.readouterr()
    assert main(["apply", str(out / "config.json"), "--weights", "yolov8s", "--out", str(tmp_path / "x.pt")]) == 2
    assert "is not the base model" in capsys.readouterr().err


def test_rerun_with_other_settings_is_refused_and_more_trials_extend(finished_run: Path,
                                                                      capsys: pytest.CaptureFixture) -> None:
    results = str(finished_run.parent)
    capsys.readouterr()
    assert main(["search", *FAST, "--trials", "14", "--run", "r", "--results", results, "--seed", "3",
                 "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "seed: 0 -> 3" in err
    assert main(["search", *FAST, "--trials", "15", "--run", "r", "--results", results, "--no-progress"]) == 0
    assert "1 new trials, 15 in the run" in capsys.readouterr().out


BAD_INPUTS = {
    "missing model file": (["--model", "missing/model.pt"], "model not found: missing/model.pt"),
    "unknown driver": (["--driver", "nsga3"], "unknown driver 'nsga3'"),
    "objective typo": (["--objectives", "latncy_ms:min"], "did you mean 'latency_ms'"),
    "missing dataset": (["--data", "missing/data.yaml", "--objectives", "map50_95:max"], "missing/data.yaml"),
    "impossible constraint": (["--constraint", "flops_g<=0.00001"], "can never be met"),
    "min-keep of nothing": (["--min-keep", "0"], "give a share of a group's channels in (0, 1]"),
    "width grid of no steps": (["--width-steps", "0"], "width-steps must be at least 1"),
    "out-of-range constraint": (["--constraint", "map50_95>=1.5"], "can never be met"),
    "malformed constraint": (["--constraint", "latency_ms<20"], "is not 'name<=value'"),
    "unreachable storage": (["--storage", "sqlite:////nonexistent-dir/x/study.db"], "cannot open storage"),
    "no workers": (["--workers", "0"], "--workers 0: give at least 1"),
    "unreachable dask": (["--dask", "tcp://127.0.0.1:9"], "cannot reach the Dask scheduler at tcp://127.0.0.1:9"),
    "latency resource without dask": (["--latency-resource", "PHONE"], "use it with --dask"),
}


def test_a_storage_holding_the_run_with_other_objectives_is_refused(tmp_path: Path,
                                                                     capsys: pytest.CaptureFixture) -> None:
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    assert main(["search", *FAST, "--trials", "2", "--storage", url, "--run", "night", "--results", str(tmp_path),
                 "--no-progress", "--executor", "inline"]) == 0
    capsys.readouterr()
    assert main(["search", *FAST, "--objectives", "flops_g:min", "--trials", "2", "--storage", url, "--run", "night",
                 "--results", str(tmp_path / "elsewhere"), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "holds run 'night' with objectives flops_g:min,params_m:min" in err, err


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_bad_input_gives_one_line(case: str, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    extra, message = BAD_INPUTS[case]
    argv = ["search", *FAST, "--trials", "2", "--results", str(tmp_path), "--no-progress"]
    for flag, value in zip(extra[::2], extra[1::2]):  # later flags win
        argv += [flag, value]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("archprune: error: ") and err.count("\n") == 1 and message in err, err


def test_malformed_yaml_config_gives_one_line(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    config = tmp_path / "run.yaml"
    config.write_text("model: yolov8n\nobjectives: [flops_g:min\n")
    assert main(["search", "--config", str(config)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "not valid YAML" in err and "run.yaml" in err
    config.write_text("model: yolov8n\nobjectivs: flops_g:min\n")
    assert main(["search", "--config", str(config)]) == 2
    assert "unknown key(s) objectivs" in capsys.readouterr().err


def test_a_flops_budget_adds_starts_bisected_to_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from search.runs import open_run

    monkeypatch.chdir(tmp_path)
    args = [*FAST[:-6], "--importance", "l1", "--population", "6", "--offspring", "6", "--constraint", "flops_g<=0.045"]
    assert main(["search", *args, "--trials", "16", "--run", "b", "--no-progress"]) == 0
    records = {r.source: r for r in open_run("results/b").store.records()}
    budget = records["global-budget"]
    assert budget.feasible and budget.metrics["flops_g"] <= 0.045
    fixed = [r.metrics["flops_g"] for name, r in records.items() if name.startswith("global-0") and r.feasible]
    assert fixed and budget.metrics["flops_g"] > max(fixed)  # closer to the budget than any fixed start


def test_a_latency_budget_starts_from_the_global_allocation_measured_to_it(tmp_path: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    from search.runs import open_run
    from search.space_recipes.channels import LATENCY_STARTS_FILE

    monkeypatch.chdir(tmp_path)
    args = ["--model", "yolov8n", "--imgsz", "64", "--objectives", "params_m:min", "--importance", "l1",
            "--constraint", "latency_ratio<=0.8", "--population", "4", "--offspring", "4", "--executor", "inline",
            "--run", "lat", "--no-progress"]
    assert main(["search", *args, "--trials", "14"]) == 0  # the starts come after the 12 fixed baselines
    stored = tmp_path / "results" / "lat" / LATENCY_STARTS_FILE
    genome = json.loads(stored.read_text())["latency_ratio<=0.8"]
    starts = [r for r in open_run("results/lat").store.records() if r.source == "global-latency"]
    assert len(starts) == 1 and list(starts[0].genome) == genome
    assert starts[0].metrics["latency_ratio"] < 1.0  # narrower than the unpruned model it is paired with
    # a resume asks the stored start again rather than measuring a new one (its first population replays)
    before = stored.stat().st_mtime_ns
    assert main(["search", *args, "--trials", "18"]) == 0
    records = open_run("results/lat").store.records()
    assert stored.stat().st_mtime_ns == before and len(records) == 18
    assert [r.number for r in records if r.source == "global-latency"] == [starts[0].number]


def test_a_flops_budget_starts_from_torch_prunings_global_lamp_at_it() -> None:
    from evaluators.flops import count_flops_params
    from search.baseline_pruning import prune_to_flops
    from search.space_recipes.channels import LAMP_SHRINKS, add_lamp_start
    from spaces.channel_space import ChannelSpace
    from spaces.models import build_model

    space = ChannelSpace(build_model("yolov8n", nc=10), importance="l1")
    flops = lambda genome: count_flops_params(space.build(genome), 64)["flops_g"]  # noqa: E731
    bound = 0.5 * flops(space.unpruned())
    genome = add_lamp_start(space, flops, bound, 64)
    assert genome is not None and flops(genome) <= bound and genome in dict(space.baselines()).values()
    lamp = [space.genome_of_widths(prune_to_flops(space.base, 64, 0.5 * s, importance="lamp", global_pruning=True,
                                                  round_to=space.round_to)[0]) for s in LAMP_SHRINKS]
    assert genome == next(g for g in lamp if flops(g) <= bound)  # the largest LAMP prune the space can hold


def test_a_lamp_ordered_space_on_a_fine_grid_starts_from_torch_prunings_own_lamp_model() -> None:
    """With --importance lamp and every multiple of --round-to a choice (--width-steps 32 up to 256
    channels), the start is not an approximation: it is Torch-Pruning's pruned model, weight for weight."""
    from evaluators.flops import count_flops_params
    from search.baseline_pruning import prune_to_flops
    from search.space_recipes.channels import add_lamp_start
    from spaces.channel_space import ChannelSpace, keep_ratios
    from spaces.models import build_model

    space = ChannelSpace(build_model("yolov8n", nc=10), importance="lamp", ratios=keep_ratios(0.0625, 32))
    flops = lambda genome: count_flops_params(space.build(genome), 64)["flops_g"]  # noqa: E731
    bound = 0.6 * flops(space.unpruned())
    genome = add_lamp_start(space, flops, bound, 64)
    lamp, _ = prune_to_flops(space.base, 64, 0.6, importance="lamp", global_pruning=True, round_to=space.round_to)
    assert genome is not None and flops(genome) <= bound
    ours, theirs = space.build(genome).state_dict(), lamp.state_dict()
    assert list(ours) == list(theirs) and all(torch.equal(ours[k], theirs[k]) for k in ours)


def test_config_file_and_flags_merge(tmp_path: Path) -> None:
    from search.cli import build_parser
    from search.cli_search import settings_from_args

    config = tmp_path / "run.yaml"
    config.write_text("model: yolov8n\ntrials: 50\nkeep-layers: model.9,model.8\nconstraints: [flops_g<=2]\n")
    settings = settings_from_args(build_parser().parse_args(["search", "--config", str(config), "--trials", "7"]))
    assert settings.trials == 7 and settings.keep_layers == ["model.9", "model.8"]
    assert settings.constraints == ["flops_g<=2"] and settings.driver == "nsga2"


@pytest.mark.slow
def test_a_search_on_predicted_latency_remeasures_its_front(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    lut = tmp_path / "lut.json"
    assert main(["latency-table", "--target", "this-box", "--quick", "--imgsz", "64", "--out", str(lut)]) == 0
    assert main(["search", *FAST, "--objectives", "latency_ms:min,params_m:min", "--latency", f"predict:{lut}",
                 "--trials", "8", "--run", "p", "--results", str(tmp_path), "--no-progress",
                 "--executor", "inline"]) == 0
    out = capsys.readouterr().out
    rows = json.loads((tmp_path / "p" / "remeasured.json").read_text())
    assert rows and all(row["measured_ms"] > 0 and row["predicted_ms"] > 0 for row in rows.values())
    assert out.count("re-measured trial") == len(rows)
    db = tmp_path / "p" / "study.db"
    with sqlite3.connect(db) as con:
        sources = {json.loads(v)["latency_source"] for (v,) in con.execute(
            "SELECT value_json FROM trial_user_attributes WHERE key = 'metrics'")}
    assert sources == {"predicted:lut.json"}  # every trial was predicted; only the front was measured


def test_predicted_latency_needs_an_existing_table(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["search", *FAST, "--objectives", "latency_ms:min", "--latency", "predict:nope.json", "--trials", "2",
                 "--results", str(tmp_path), "--no-progress"]) == 2
    assert "no latency table at nope.json" in capsys.readouterr().err
