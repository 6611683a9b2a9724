from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

torch.set_num_threads(2)  # the box has 2 cores; also what the reference outputs were made with

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def shared_path(*parts: str) -> Path:
    """A file under ../shared/data; skip (or fail in CI) when the shared folder is absent."""
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        if os.environ.get("CI") == "true":
            pytest.fail(f"shared test data missing in CI: {path}")
        pytest.skip(f"shared test data not found: {path}")
    return path


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep tests from writing into the user's ~/.cache (one cache shared by the session)."""
    if "ARCHPRUNE_CACHE" not in os.environ:
        monkeypatch.setenv("ARCHPRUNE_CACHE", str(tmp_path_factory.getbasetemp() / "archprune-cache"))
