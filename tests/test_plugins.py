"""A new evaluator and a new space are each one module plus one entry point (issue 15).

The two toy modules in tests/plugins/ are registered the way a package registers them: by entry
points in an installed distribution's metadata (written here into a folder on PYTHONPATH), with no
edit to archprune. A fresh ``python -m search.cli`` process then searches the toy space on the toy
score in a spawned worker process (``--executor process``: the toy score builds nothing, so the
default would score it in the search process) and on a local Dask cluster: the
worker processes find both parts by their import paths, as they would on another machine.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from search.objectives import Objective
from search.store import Store

ROOT = Path(__file__).resolve().parents[1]
PLUGINS = Path(__file__).resolve().parent / "plugins"
ENTRY_POINTS = """\
[archprune.evaluators]
toy-score = archprune_toy_score:ToyScoreEvaluator

[archprune.spaces]
toy = archprune_toy_space:ToyRecipe
"""


@pytest.fixture()
def plugin_env(tmp_path: Path) -> dict[str, str]:
    """An environment in which the toy plugins are installed (a dist-info folder on the path)."""
    site = tmp_path / "site"
    info = site / "archprune_toy-0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: archprune-toy\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(ENTRY_POINTS)
    path = os.pathsep.join([str(site), str(PLUGINS), str(ROOT), os.environ.get("PYTHONPATH", "")])
    return {**os.environ, "PYTHONPATH": path.rstrip(os.pathsep), "OMP_NUM_THREADS": "1"}


def archprune(env: dict[str, str], cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "search.cli", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=600)


@pytest.mark.parametrize("where", [["--executor", "process"], ["--dask", "local:1"]], ids=["worker-process", "dask"])
def test_a_plugin_space_and_evaluator_search_through_the_cli(plugin_env: dict[str, str], tmp_path: Path,
                                                             where: list[str]) -> None:
    done = archprune(plugin_env, tmp_path, "search", "--space", "toy", "--objectives", "toy_score:max,params_m:min",
                     "--constraint", "toy_score>=0.2", "--trials", "12", "--no-progress", *where)
    assert done.returncode == 0, done.stderr
    # this test process has no toy plugins installed: read the store without the space's recipe
    store = Store(f"sqlite:///{tmp_path / 'results' / 'toy-conv' / 'study.db'}", "toy-conv",
                  [Objective("toy_score", "max"), Objective("params_m", "min")], genes=None, read_only=True)
    records = store.records()  # the toy recipe named the run: toy-<its run_source>
    assert len(records) == 12 and not any(r.failed for r in records)
    for record in records:  # the plugin evaluator's value, and a built-in's on the plugin space's model
        assert record.metrics["toy_score"] == pytest.approx(sum(record.genome) / 12)
        assert record.metrics["params_m"] > 0
    assert any(not r.feasible for r in records) and any(r.feasible for r in records)  # the constraint was applied

    front = archprune(plugin_env, tmp_path, "pareto", "toy-conv", "--json", "--no-plots")
    assert front.returncode == 0, front.stderr
    best = json.loads(front.stdout)["front"][0]["trial"]
    exported = archprune(plugin_env, tmp_path, "export", "toy-conv", "--trial", str(best))
    assert exported.returncode == 0, exported.stderr
    files = list((tmp_path / "results" / "toy-conv" / "exports").glob("*/toy.json"))
    assert [json.loads(f.read_text())["trial"] for f in files] == [best]  # the recipe's own export


def test_the_cli_lists_plugins_and_knows_their_metrics(plugin_env: dict[str, str], tmp_path: Path) -> None:
    shown = archprune(plugin_env, tmp_path, "search", "--help")
    assert "toy (a toy space of single convolutions)" in " ".join(shown.stdout.split())
    typo = archprune(plugin_env, tmp_path, "search", "--space", "toy", "--objectives", "toy_scor:max", "--trials", "2")
    assert typo.returncode == 2 and "did you mean 'toy_score'" in typo.stderr
    assert len(typo.stderr.strip().splitlines()) == 1


def test_a_broken_entry_point_is_a_one_line_error(plugin_env: dict[str, str], tmp_path: Path) -> None:
    info = next(Path(p) for p in plugin_env["PYTHONPATH"].split(os.pathsep) if p.endswith("site"))
    (info / "archprune_toy-0.1.dist-info" / "entry_points.txt").write_text(
        ENTRY_POINTS + "\n[archprune.drivers]\nbroken = no_such_module:Driver\n")
    done = archprune(plugin_env, tmp_path, "search", "--space", "toy", "--objectives", "toy_score:max",
                     "--driver", "broken", "--trials", "2")
    assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1
    assert "driver 'broken' is registered as 'no_such_module:Driver', which does not import" in done.stderr
