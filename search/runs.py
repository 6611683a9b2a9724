"""Finding a run again: by name under ``results/``, by folder, or by ``--storage URL --run NAME``."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import optuna

from search.objectives import Objective, parse_objectives
from search.settings import RunSettings, read_run_yaml
from search.store import Store, open_storage
from spaces.errors import ArchpruneError


def stored_objectives(settings: RunSettings) -> list[Objective]:
    """The run's objectives as stored: reading a finished run needs neither its model nor its table."""
    names = [item.split(":")[0].strip() for item in settings.objectives.split(",") if item.strip()]
    return parse_objectives(settings.objectives, known=names)


@dataclass
class RunHandle:
    name: str
    settings: RunSettings
    store: Store
    folder: Path  # where pareto / export write (the run folder, or results/<run> for a remote store)
    imgsz: int | None


def open_run(ref: str, storage: str | None = None, results: str = "results") -> RunHandle:
    if storage:
        return _from_storage(ref, storage, results)
    folder = Path(ref)
    if not (folder / "run.yaml").is_file():
        folder = Path(results) / ref
    if not (folder / "run.yaml").is_file():
        known = sorted(p.parent.name for p in Path(results).glob("*/run.yaml"))
        listing = f"runs there: {', '.join(known)}" if known else "there are none yet"
        raise ArchpruneError(f"no run {ref!r}: neither a run folder nor a run under {results}/ ({listing})")
    settings = read_run_yaml(folder / "run.yaml")
    url = settings.storage or f"sqlite:///{(folder / 'study.db').as_posix()}"
    check_store_file(url, ref)
    name = settings.run_name()
    store = Store(url, name, stored_objectives(settings), genes=None, read_only=True)
    return RunHandle(name, settings, store, folder, store.study.user_attrs.get("imgsz", settings.imgsz))


def check_store_file(url: str, run: str) -> None:
    """A run with a run.yaml has a store: a missing or empty SQLite file is lost trials, never a new
    run (a 0-byte study.db once became an empty study and `pareto` overwrote the front files)."""
    if not url.startswith("sqlite:///"):
        return
    path = Path(url[len("sqlite:///"):])
    if path.is_dir():
        raise ArchpruneError(f"run {run!r}: its store {path} is a folder, not a SQLite file")
    if not path.exists():
        raise ArchpruneError(f"run {run!r} has a run.yaml but no store ({path} is missing): restore study.db, "
                             "or start again under a new --run")
    if path.stat().st_size == 0:
        raise ArchpruneError(f"run {run!r}: its store {path} is empty (0 bytes; a crash while it was created, or "
                             "a bad copy): restore study.db from a backup, or start again under a new --run")
    with path.open("rb") as handle:
        if handle.read(16) != b"SQLite format 3\x00":
            raise ArchpruneError(f"run {run!r}: its store {path} is not a SQLite database; restore study.db")


def _from_storage(run: str, url: str, results: str) -> RunHandle:
    storage = open_storage(url, read_only=True)  # reading a run never writes its store
    names = [s.study_name for s in optuna.get_all_study_summaries(storage)]
    if run not in names:
        raise ArchpruneError(f"storage {url!r} has no run {run!r} (it has: {', '.join(names) or 'none'})")
    study = optuna.load_study(study_name=run, storage=storage)
    stored = study.user_attrs.get("settings")
    if stored is None:
        raise ArchpruneError(f"run {run!r} in {url!r} was not written by archprune search (no settings stored)")
    settings = RunSettings.from_dict(stored, source=f"{url} {run}")
    store = Store(url, run, stored_objectives(settings), genes=None, read_only=True)
    return RunHandle(run, settings, store, Path(results) / run, study.user_attrs.get("imgsz", settings.imgsz))
