"""One search process per run, unless its driver shares studies.

Two ``archprune search`` processes resuming one NSGA-II run both "finished" and stored trials beyond
``--trials``: a generational driver keeps its population in memory, so a second process cannot
join it. An Optuna driver asks and tells through the storage, so any number of processes may share
a run (``shares_studies``). The lock is an advisory ``flock`` on ``<run>/search.lock`` (exclusive
for a driver that does not share, shared for one that does); the kernel releases it when the
process dies, so a killed search never leaves a stale lock. It guards processes on one machine; a
run shared across machines goes through a shared storage URL and an Optuna driver.
"""
from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path
from typing import Iterator

from spaces.errors import ArchpruneError

LOCK_NAME = "search.lock"
STORE_LOCK_NAME = "store.lock"


@contextlib.contextmanager
def _lock_file(run_dir: Path, name: str) -> Iterator[int]:
    """An open descriptor on ``run_dir/name``; closing it at the end drops any flock taken on it."""
    run_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(run_dir / name, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        yield fd
    finally:
        os.close(fd)


@contextlib.contextmanager
def run_lock(run_dir: Path, run: str, shared: bool) -> Iterator[None]:
    """Hold ``run_dir``'s search lock for the block; another holder is a one-line error."""
    with _lock_file(run_dir, LOCK_NAME) as fd:
        try:
            fcntl.flock(fd, (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "?"
            how = ("a search whose driver does not share runs" if shared else "another search")
            raise ArchpruneError(f"run {run!r} is held by {how} (pid {holder}); wait for it to finish or stop it "
                                 "(only the optuna-* drivers let several processes work on one run)") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        yield


@contextlib.contextmanager
def store_creation_lock(run_dir: Path) -> Iterator[None]:
    """Serialise opening (and so creating) the run's store: two processes creating one new SQLite
    store at once made the second die with an alembic IntegrityError."""
    with _lock_file(run_dir, STORE_LOCK_NAME) as fd:
        fcntl.flock(fd, fcntl.LOCK_EX)  # blocking: the other process is done in a moment
        yield
