from __future__ import annotations

import os
import tracemalloc
from pathlib import Path
from typing import Any, Callable, Iterable, TypeVar

import pytest
import torch

torch.set_num_threads(2)  # the box has 2 cores; also what the reference outputs were made with

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


T = TypeVar("T")


def traced_growth(make: Callable[[], T], items: Iterable[Any], add: Callable[[T, Any], Any]) -> tuple[T, int]:
    """``make()``, then ``add(made, item)`` for each item, under tracemalloc: what was made and the bytes
    its contents grew by (what ``make`` allocates up front, e.g. a fixed bitmap, not counted)."""
    tracemalloc.start()
    try:
        made = make()
        empty, _ = tracemalloc.get_traced_memory()
        for item in items:
            add(made, item)
        held, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return made, held - empty


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
