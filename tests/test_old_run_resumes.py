"""A run written by older code still resumes (issue 15): ``tests/fixtures/old-run`` is a 14-trial
search committed as it was written by commit 2d39033 (its README has the command). Resuming a copy
to 18 trials with today's code must keep the 14 stored trials exactly and add 4 new candidates; a
setting that changes what the trials mean is still refused in one line.

The resume uses the default executor ("process": one spawned evaluation worker), as a user's rerun
would; it costs a few seconds more than --executor inline, and covers the worker reading an old run's
settings too. The old run itself was written with --executor inline (an operational setting, free to
change between resumes)."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from search.cli import main
from search.runs import open_run
from search.store import TrialRecord

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "old-run"
STORED_TRIALS = 14
RUN_FILES = ("run.yaml", "study.db", "search.log", "pareto.json", "pareto.csv")
# the command that wrote the fixture, less --trials, --results and --executor
SAME_SETTINGS = ["--model", "yolov8n-digits", "--imgsz", "160", "--objectives", "flops_g:min,params_m:min",
                 "--driver", "nsga2", "--population", "4", "--offspring", "4", "--run", "old-run", "--no-progress"]


def _cli(capsys: pytest.CaptureFixture[str], argv: list[str]) -> tuple[int, str, str]:
    try:
        code = main(argv)
    except SystemExit as stop:  # argparse errors
        code = int(stop.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def _records(run_dir: Path) -> list[TrialRecord]:
    """The run's trials through the project's own read-only reader (what ``pareto`` and ``export`` use)."""
    return open_run(str(run_dir)).store.records()


def _files(root: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(root.iterdir()) if p.is_file()}


@pytest.fixture
def results(tmp_path: Path) -> Path:
    """A results folder holding a copy of the fixture (the committed files are never written)."""
    shutil.copytree(FIXTURE, tmp_path / "results" / "old-run", ignore=shutil.ignore_patterns("README.md"))
    return tmp_path / "results"


def test_the_fixture_is_what_the_old_code_wrote() -> None:
    assert {p.name for p in FIXTURE.iterdir()} == {*RUN_FILES, "README.md"}
    old = _records(FIXTURE)
    assert [r.number for r in old] == list(range(STORED_TRIALS)) and not any(r.failed for r in old)
    assert [r.source for r in old[-2:]] == ["nsga2-g1", "nsga2-g1"]  # it stops mid-generation


def test_a_run_written_before_the_change_still_resumes(results: Path, capsys: pytest.CaptureFixture[str]) -> None:
    fixture_bytes = _files(FIXTURE)
    old = _records(FIXTURE)

    code, out, err = _cli(capsys, ["search", *SAME_SETTINGS, "--trials", "18", "--results", str(results)])

    assert code == 0, err
    assert "done: 4 new trials, 18 in the run" in out, out
    run = results / "old-run"
    now = _records(run)
    assert [r.number for r in now] == list(range(18))
    assert now[:STORED_TRIALS] == old  # genomes, objective values, metrics, configs, sources: as stored
    assert len({r.genome for r in now}) == 18  # the replay knew the stored candidates: none evaluated twice
    assert not any(r.failed for r in now)
    log = (run / "search.log").read_text()
    assert log.startswith((FIXTURE / "search.log").read_text())  # the old log is kept, the resume appended
    assert f"resuming run 'old-run': {STORED_TRIALS} trials already in the store" in log
    assert _files(FIXTURE) == fixture_bytes  # reading the committed fixture wrote nothing to it


def test_resuming_it_with_other_objectives_is_refused_in_one_line(results: Path,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    before = _files(results / "old-run")
    argv = ["search", *SAME_SETTINGS, "--trials", "18", "--results", str(results), "--executor", "inline"]
    argv[argv.index("flops_g:min,params_m:min")] = "params_m:min"

    code, out, err = _cli(capsys, argv)

    assert code == 2, err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert "run 'old-run' exists with other settings (objectives: 'flops_g:min,params_m:min' -> 'params_m:min')" in err
    assert _files(results / "old-run") == before  # refused before anything was written


def test_its_front_reads_as_it_was_written(results: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    written = json.loads((FIXTURE / "pareto.json").read_text())

    code, out, err = _cli(capsys, ["pareto", str(results / "old-run"), "--json", "--no-plots", "--out", str(tmp_path)])

    assert code == 0, err
    report = json.loads(out)
    assert report["front"] == written["front"] and report["n_trials"] == written["n_trials"] == STORED_TRIALS
    assert report["hypervolume"] == pytest.approx(written["hypervolume"], rel=1e-9)
