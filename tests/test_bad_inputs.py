"""Bad input a user can give: each ends in one line on stderr naming the problem and the fix, exit
code 2, and nothing written (issue 14; more cases join this suite)."""
from __future__ import annotations

from pathlib import Path

import pytest

from search.cli import main


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


@pytest.mark.parametrize("run", [".", "..", "..."])
def test_search_refuses_run_names_that_are_folders(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                   run: str) -> None:
    results = tmp_path / "results"
    results.mkdir()
    (tmp_path / "keep.txt").write_text("the user's file above results/")
    before = _files(tmp_path)
    code = main(["search", "--model", "yolov8n", "--data", "digits-det", "--trials", "1", "--run", run,
                 "--results", str(results), "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and "Traceback" not in err
    assert f"run name {run!r}" in err and "letter or digit" in err
    assert _files(tmp_path) == before
