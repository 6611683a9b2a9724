"""Bad input a user can give (issue 14), one parametrized suite per subcommand family: each error
ends in exit code 2 and one line on stderr naming the problem and the fix, and leaves every file
as it was; where the fix is to make the input work, it works. Read-only folders and full disks are
simulated by injecting the OS errors (the suite runs as root in CI, where permissions do not bite)."""
from __future__ import annotations

import errno
import json
import shutil
import sqlite3
from pathlib import Path
from typing import Any, Callable

import optuna
import pytest
import sqlalchemy.exc

from search.cli import main
from search.objectives import Objective
from search.run_lock import run_lock
from search.store import Store
from tests.conftest import shared_path
from tests.fault_injection import inject_write_errors

TABLE = shared_path("nb201", "nb201_cifar10.csv")
OBJECTIVES = "test_acc_cifar10:max,lat_raspi4:min"
STORED = [Objective("test_acc_cifar10", "max"), Objective("lat_raspi4", "min")]
JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00\xff\xdb\x00C\x00\x08\x06\x06\x07"


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _cli(capsys: pytest.CaptureFixture[str], argv: list[str]) -> tuple[int, str, str]:
    """Exit code, stdout, stderr of one ``archprune`` call (argparse errors exit through SystemExit)."""
    try:
        code = main(argv)
    except SystemExit as stop:
        code = int(stop.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def _assert_one_line_error(code: int, err: str, needle: str) -> None:
    assert code == 2, err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert needle in err, err


def _search(results: Path, *extra: str) -> list[str]:
    """A table search: no network is built, so each case takes well under a second."""
    return ["search", "--space", "nb201", "--table", str(TABLE), "--objectives", OBJECTIVES, "--trials", "6",
            "--results", str(results), "--executor", "inline", "--no-progress", *extra]


def _table(path: Path, rows: int, acc: str | None = None) -> Path:
    """The first ``rows`` rows of the NB201 table, with every accuracy replaced by ``acc`` if given."""
    lines = TABLE.read_text().splitlines()
    head = lines[0].split(",")
    body = [line.split(",") for line in lines[1:rows + 1]]
    if acc is not None:
        column = head.index("test_acc_cifar10")
        for row in body:
            row[column] = acc
    path.write_text("\n".join(",".join(r) for r in [head, *body]) + "\n")
    return path


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished six-trial table run (results/<run>/ with run.yaml, study.db and the front files)."""
    results = tmp_path_factory.mktemp("results")
    assert main(_search(results, "--run", "done")) == 0
    return results / "done"


@pytest.fixture
def run_copy(finished_run: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "results" / "done"
    shutil.copytree(finished_run, copy)
    return copy


# -- search ------------------------------------------------------------------------------------

def _config(tmp: Path, text: str | bytes) -> list[str]:
    path = tmp / "run.yaml"
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    return ["--config", str(path)]


def _held(tmp: Path) -> list[str]:
    return ["--run", "held"]  # the test holds results/held's lock while the search starts


SEARCH_CASES: dict[str, tuple[Callable[[Path], list[str]], str]] = {
    "run named .": (lambda t: ["--run", "."], "run name '.' names a folder"),
    "run named ..": (lambda t: ["--run", ".."], "run name '..' names a folder"),
    "imgsz 0": (lambda t: ["--imgsz", "0"], "argument --imgsz: 0 is outside 32..4096 pixels"),
    "imgsz -64": (lambda t: ["--imgsz=-64"], "argument --imgsz: -64 is outside 32..4096 pixels"),
    "imgsz 100000": (lambda t: ["--imgsz", "100000"], "100000 is outside 32..4096"),
    "imgsz off-stride": (lambda t: ["--imgsz", "100"], "100 is not a multiple of 32"),
    "config trials: four": (lambda t: _config(t, 'trials: "four"\n'), "key 'trials' must be a whole number or null, got 'four'"),
    "config seed: [1, 2]": (lambda t: _config(t, "seed: [1, 2]\n"), "key 'seed' must be a whole number, got [1, 2]"),
    "config imgsz in file": (lambda t: _config(t, "imgsz: 0\n"), "--imgsz: 0 is outside 32..4096"),
    "config is a JPEG": (lambda t: _config(t, JPEG), "is not text (binary data"),
    "config is a folder": (lambda t: ["--config", str(t)], "is a folder; pass the run.yaml inside it"),
    "table is a JPEG": (lambda t: ["--table", str(t / "x.jpg")], "is not a text CSV"),
    "table is a folder": (lambda t: ["--table", str(t)], "is a folder; pass the CSV file inside it"),
    "table has no rows": (lambda t: ["--table", str(_table(t / "head.csv", 0))], "has a header but no rows"),
    "contradictory constraints": (lambda t: ["--constraint", "lat_raspi4<=5", "--constraint", "lat_raspi4>=10"],
                                  "lat_raspi4>=10 and lat_raspi4<=5 cannot both hold"),
    "run held by another search": (_held, "run 'held' is held by another search"),
    "islands 0": (lambda t: ["--islands", "0"], "--islands 0: give at least 1 search process"),
    "islands with nsga2": (lambda t: ["--islands", "2", "--driver", "nsga2"],
                           "the nsga2 driver keeps its population in one process; use a driver that shares runs"),
    "islands in memory": (lambda t: ["--islands", "2", "--driver", "zeroshot", "--storage", "memory"],
                          "--storage memory lives in one process"),
}


@pytest.mark.parametrize("case", SEARCH_CASES)
def test_search_refuses_bad_input_and_writes_nothing(case: str, tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    results = tmp_path / "results"
    results.mkdir()
    (tmp_path / "x.jpg").write_bytes(JPEG)
    (tmp_path / "keep.txt").write_text("the user's file beside results/")
    make_argv, needle = SEARCH_CASES[case]
    extra = make_argv(tmp_path)
    with run_lock(results / "held", "held", shared=False):
        before = _files(tmp_path)
        code, _, err = _cli(capsys, _search(results, *extra))
        after = _files(tmp_path)
    _assert_one_line_error(code, err, needle)
    assert after == before


def test_a_search_whose_every_trial_fails_exits_2_with_the_first_reason(tmp_path: Path,
                                                                        capsys: pytest.CaptureFixture[str]) -> None:
    table = _table(tmp_path / "broken.csv", 15625, acc="n/a")
    code, _, err = _cli(capsys, _search(tmp_path / "results", "--table", str(table), "--run", "broken"))
    _assert_one_line_error(code, err, "6 of 6 trials failed: ")
    assert "'n/a' is not a number" in err and "start a new --run" in err
    # nothing evaluated is lost: the failures are in the store, and `pareto` says why
    code, out, _ = _cli(capsys, ["pareto", str(tmp_path / "results" / "broken"), "--json", "--no-plots"])
    report = json.loads(out)
    assert code == 0 and report["n_trials"] == report["n_failed"] == 6
    assert sum(report["failures"].values()) == 6  # reason -> trials (here each names its own cell)
    assert all("'n/a' is not a number" in reason for reason in report["failures"])


def test_pareto_counts_failed_trials_and_names_the_reason(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    table = _table(tmp_path / "some.csv", 15625)
    lines = table.read_text().splitlines()
    column = lines[0].split(",").index("lat_raspi4")
    rows = [line.split(",") for line in lines]
    for row in rows[1::2]:  # every other cell has no latency
        row[column] = ""
    table.write_text("\n".join(",".join(r) for r in rows) + "\n")
    assert _cli(capsys, _search(tmp_path / "results", "--table", str(table), "--run", "some", "--trials", "30"))[0] == 0
    code, out, _ = _cli(capsys, ["pareto", str(tmp_path / "results" / "some"), "--no-plots"])
    failed = next(line for line in out.splitlines() if "trials failed" in line)
    assert code == 0 and failed.startswith(tuple(f"{n} of 30 trials failed" for n in range(1, 30)))
    assert "column 'lat_raspi4'" in failed and "is not a number" in failed


def test_two_searches_on_one_run_need_a_driver_that_shares_it(tmp_path: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    results = tmp_path / "results"
    with run_lock(results / "shared", "shared", shared=True):  # another optuna-* process is on the run
        code, _, err = _cli(capsys, _search(results, "--run", "shared", "--driver", "optuna-random"))
        assert code == 0, err  # an Optuna driver asks and tells through the store: it may join
        code, _, err = _cli(capsys, _search(results, "--run", "other", "--driver", "nsga2"))
        assert code == 0, err  # another run is not held
    with run_lock(results / "solo", "solo", shared=True):
        code, _, err = _cli(capsys, _search(results, "--run", "solo"))  # nsga2 keeps its population in memory
    _assert_one_line_error(code, err, "run 'solo' is held by another search (pid ")
    with run_lock(results / "solo", "solo", shared=False):
        code, _, err = _cli(capsys, _search(results, "--run", "solo", "--driver", "optuna-random"))
    _assert_one_line_error(code, err, "run 'solo' is held by a search whose driver does not share runs")
    assert not (results / "solo" / "run.yaml").exists()


def test_a_store_that_cannot_be_written_ends_the_search_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    results = tmp_path / "results"
    assert main(_search(results, "--run", "full", "--trials", "3")) == 0
    capsys.readouterr()

    def disk_full(*args: Any, **kwargs: Any) -> list[int]:
        cause = sqlalchemy.exc.OperationalError("INSERT INTO trials", {}, sqlite3.OperationalError("database or disk is full"))
        raise optuna.exceptions.StorageInternalError("An exception is raised during the commit.") from cause

    monkeypatch.setattr("search.store.add_finished_trials", disk_full)
    code, _, err = _cli(capsys, _search(results, "--run", "full"))
    _assert_one_line_error(code, err, "cannot write the run's store sqlite:///")
    assert "database or disk is full" in err and "free space on its disk" in err
    monkeypatch.undo()
    assert len(Store(f"sqlite:///{results / 'full' / 'study.db'}", "full", STORED, None, read_only=True)) == 3


@pytest.mark.parametrize("damage,needle", [
    ("empty", "is empty (0 bytes"), ("missing", "has a run.yaml but no store"), ("not sqlite", "is not a SQLite database"),
])
@pytest.mark.parametrize("command", ["search", "pareto", "export"])
def test_a_run_whose_store_is_lost_is_an_error_not_a_new_run(run_copy: Path, capsys: pytest.CaptureFixture[str],
                                                             damage: str, needle: str, command: str) -> None:
    store = run_copy / "study.db"
    if damage == "missing":
        store.unlink()
    else:
        store.write_bytes(b"" if damage == "empty" else b"garbage from a bad copy")
    before = _files(run_copy.parent)
    argv = {"search": _search(run_copy.parent, "--run", "done"), "pareto": ["pareto", str(run_copy)],
            "export": ["export", str(run_copy), "--trial", "0"]}[command]
    code, _, err = _cli(capsys, argv)
    _assert_one_line_error(code, err, needle)
    assert _files(run_copy.parent) == before


# -- pareto and export: reading a run ----------------------------------------------------------

READ_CASES: dict[str, tuple[Callable[[Path], list[str]], str]] = {
    "two runs given": (lambda r: ["pareto", str(r), "--run", "other"], "two runs given"),
    "pareto --out onto a file": (lambda r: ["pareto", str(r), "--out", str(r / "run.yaml")],
                                 "it is a file, not a folder"),
    "pareto on a read-only disk": (lambda r: ["pareto", str(r)], "the file system is read-only; write somewhere else"),
    "pareto on a full disk": (lambda r: ["pareto", str(r)],
                              "/pareto.json: no space left on the disk; free some and run the command again "
                              "(the file there before is as it was)"),
}


@pytest.mark.parametrize("case", READ_CASES)
def test_reading_a_run_refuses_bad_input_and_changes_no_file(case: str, run_copy: Path, monkeypatch: pytest.MonkeyPatch,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    make_argv, needle = READ_CASES[case]
    before = _files(run_copy)
    if "read-only" in case:
        inject_write_errors(monkeypatch, run_copy, errno.EROFS)
    elif "full disk" in case:
        inject_write_errors(monkeypatch, run_copy, errno.ENOSPC)
    code, _, err = _cli(capsys, make_argv(run_copy))
    monkeypatch.undo()
    _assert_one_line_error(code, err, needle)
    assert _files(run_copy) == before  # pareto.html and the rest not truncated, no temporary file left


def test_pareto_reads_the_store_without_writing_it(run_copy: Path, tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    before = _files(run_copy)
    code, out, err = _cli(capsys, ["pareto", str(run_copy), "--out", str(tmp_path / "elsewhere"), "--json"])
    assert code == 0, err and json.loads(out)["n_trials"] == 6
    assert _files(run_copy) == before
    store = Store(f"sqlite:///{run_copy / 'study.db'}", "done", STORED, None, read_only=True)
    with pytest.raises(optuna.exceptions.StorageInternalError):  # opened read-only: SQLite refuses any write
        store.study.set_user_attr("written", True)


# -- training, evaluation, data and latency tables ------------------------------------------------

TRAIN = ["--model", "yolov8n", "--data", "digits-det", "--epochs", "1"]
OTHER_CASES: dict[str, tuple[list[str], str]] = {
    "eval --imgsz 100000": (["eval", "--model", "yolov8n-digits", "--data", "digits-det", "--imgsz", "100000"],
                            "100000 is outside 32..4096"),
    "eval --imgsz 0": (["eval", "--model", "yolov8n-digits", "--data", "digits-det", "--imgsz", "0"], "0 is outside"),
    "train --imgsz -64": (["train", *TRAIN, "--imgsz=-64", "--out", "OUT"], "-64 is outside"),
    "finetune --imgsz 33": (["finetune", *TRAIN, "--imgsz", "33"], "33 is not a multiple of 32"),
    "finetune --kd-weight -1": (["finetune", *TRAIN, "--kd-weight=-1"], "argument --kd-weight: must be a finite number"),
    "finetune --warmup-epochs -0.5": (["finetune", *TRAIN, "--warmup-epochs=-0.5"], "argument --warmup-epochs"),
    "finetune --feature-kd-weight nan": (["finetune", *TRAIN, "--feature-kd-weight", "nan"], "--feature-kd-weight"),
    "data --imgsz 0": (["data", "digits-det", "--out", "OUT", "--imgsz", "0"], "0 is outside"),
    "latency-table --imgsz 0": (["latency-table", "--target", "t", "--out", "OUT/lut.json", "--imgsz", "0"],
                                "0 is outside"),
    "latency-table --out a folder": (["latency-table", "--target", "t", "--out", "OUT", "--quick"],
                                     "is a folder; give the table's file"),
}


@pytest.mark.parametrize("case", OTHER_CASES)
def test_other_subcommands_refuse_bad_input_in_one_line(case: str, tmp_path: Path,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    argv, needle = OTHER_CASES[case]
    out = tmp_path / "out"
    out.mkdir()
    before = _files(tmp_path)
    code, _, err = _cli(capsys, [str(out) if a == "OUT" else a.replace("OUT", str(out)) for a in argv])
    _assert_one_line_error(code, err, needle)
    assert _files(tmp_path) == before


def test_bench_drivers_on_a_header_only_table_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    table = _table(tmp_path / "head.csv", 0)
    code, _, err = _cli(capsys, ["bench", "drivers", "--table", str(table), "--objectives", OBJECTIVES,
                                 "--budgets", "10", "--seeds", "1"])
    _assert_one_line_error(code, err, f"table {table} has a header but no rows")
