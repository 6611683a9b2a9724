"""The command line as a user meets it: real commands, JSON output, one-line errors."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from search.cli import main
from tests.conftest import shared_path

ARCHPRUNE = Path(sys.executable).with_name("archprune")


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_console_script_is_installed_and_evaluates_a_checkpoint() -> None:
    assert ARCHPRUNE.exists(), "pip install -e . should create the archprune console script"
    proc = subprocess.run(
        [str(ARCHPRUNE), "eval", "--model", str(shared_path("ultralytics", "yolov8n-rand.pt")),
         "--data", str(shared_path("coco8", "coco8.yaml")), "--imgsz", "320", "--json"],
        capture_output=True, text=True, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "2"},
    )
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert set(result) == {"map50_95", "map50", "images", "images_per_s", "nms"}
    assert result["nms"] == "multi-label"  # `yolo val`'s rule by default
    assert result["images"] == 4 and 0.0 <= result["map50_95"] <= result["map50"] <= 1.0
    assert result["images_per_s"] > 0


def test_the_command_line_is_built_without_importing_torch() -> None:
    """Every command's parser and its help come up without torch (~2-3 s of a 5 s `--help` before):
    the choices they offer live in torch-free modules (evaluators.choice_names), and a command imports
    what it runs only when it runs."""
    code = ("import sys, search.cli; search.cli.build_parser(); "
            "print(sorted(m for m in ('torch', 'torch_pruning', 'onnxruntime') if m in sys.modules))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


def test_a_zero_shot_block_search_and_its_resume_never_import_torch(tmp_path: Path) -> None:
    """Structures are scored analytically, so neither the search nor a resume (which only re-reads its
    store: ~2 s of a 500,000-trial run's 10 s open was importing torch) needs torch; the metric table,
    the data config and the space's skeleton check are torch-free."""
    argv = ["search", "--space", "blocks", "--driver", "zeroshot", "--objectives", "entropy:max", "--data",
            "digits-det", "--imgsz", "64", "--trials", "12", "--seed", "0", "--run", "zs", "--results",
            str(tmp_path), "--no-progress"]
    code = ("import sys, search.cli; code = search.cli.main(sys.argv[1:]); "
            "print('TORCH' if 'torch' in sys.modules else 'NO TORCH'); sys.exit(code)")
    for _ in ("search", "resume"):
        proc = subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout.strip().splitlines()[-1] == "NO TORCH"
    assert "0 new trials, 12 in the run" in proc.stdout


def test_the_python_entry_point_is_still_search_search() -> None:
    from search import SearchResult, search
    from search.runner import SearchResult as runner_result, search as runner_search

    assert search is runner_search and SearchResult is runner_result


def test_eval_prints_a_readable_line(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(capsys, "eval", "--model", "yolo11n", "--data", str(shared_path("coco8", "coco8.yaml")),
                           "--imgsz", "64")
    assert code == 0
    assert "mAP50-95" in out and "images 4" in out and "imgsz 64" in out


def test_data_command_writes_a_loadable_set(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from evaluators.data import load_data_config

    code, out, _ = run_cli(capsys, "data", "digits-det", "--out", str(tmp_path / "dd"), "--train", "12",
                           "--val", "4", "--imgsz", "96")
    assert code == 0 and "data.yaml" in out
    config = load_data_config(tmp_path / "dd" / "data.yaml")
    assert len(config.images("train")) == 12 and len(config.images("val")) == 4 and config.nc == 10


@pytest.mark.parametrize("argv,needle", [
    (["eval", "--model", "missing.pt", "--data", "COCO8"], "model not found: missing.pt"),
    (["eval", "--model", "yolov8n", "--data", "/no/such/data.yaml"], "/no/such/data.yaml does not exist"),
    (["eval", "--model", "YOLO8", "--data", "COCO8"], "known model name"),
    (["eval", "--model", "CKPT", "--data", "DIGITS"], "predicts 80 classes"),
])
def test_bad_input_is_one_line_on_stderr(capsys: pytest.CaptureFixture[str], tmp_path: Path, argv: list[str],
                                         needle: str) -> None:
    coco8 = str(shared_path("coco8", "coco8.yaml"))
    digits = tmp_path / "digits"
    if "DIGITS" in argv:
        main(["data", "digits-det", "--out", str(digits), "--train", "2", "--val", "2", "--imgsz", "64"])
        capsys.readouterr()
    swap = {"COCO8": coco8, "DIGITS": str(digits / "data.yaml"), "CKPT": str(shared_path("ultralytics", "yolov8n-rand.pt"))}
    code, out, err = run_cli(capsys, *[swap.get(a, a) for a in argv])
    assert code == 2 and out == ""
    assert err.startswith("archprune: error: ") and needle in err
    assert err.count("\n") == 1 and "Traceback" not in err


@pytest.mark.slow
def test_demo_searches_and_writes_the_front(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(capsys, "demo", "--out", str(tmp_path / "demo"), "--trials", "10")
    assert code == 0
    for step in ("[1/3] data", "[2/3] search", "[3/3] front", "hypervolume"):
        assert step in out
    report = json.loads((tmp_path / "demo" / "pareto.json").read_text())
    assert report["n_trials"] == 10 and report["front"]
    assert [o["name"] for o in report["objectives"]] == ["latency_ms", "flops_g", "map50_95"]
    assert (tmp_path / "demo" / "pareto.png").stat().st_size > 10_000
    unpruned = next(f for f in report["front"] if f["source"] == "unpruned")  # best mAP: always on the front
    assert unpruned["map50_95"] >= 0.5 and unpruned["flops_g"] == pytest.approx(0.513, abs=0.001)
    assert 0 < unpruned["latency_ms"] < 100
