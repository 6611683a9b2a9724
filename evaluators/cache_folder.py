"""archprune's per-user cache folder and the exclusive file lock its shared files are updated under."""
from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path
from typing import Iterator


def cache_folder() -> Path:
    """``$ARCHPRUNE_CACHE``, else ``~/.cache/archprune`` (tests point the variable at a temporary folder)."""
    return Path(os.environ.get("ARCHPRUNE_CACHE") or Path.home() / ".cache" / "archprune")


@contextlib.contextmanager
def exclusive_lock(path: Path) -> Iterator[None]:
    """Hold an exclusive flock on ``path`` (created with its folder), blocking until it is free."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
