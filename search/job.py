"""``archprune search`` as a function of its settings: check them, let the space's recipe
(``search.space_recipes``) load what they name and build the space and its evaluators, then run (or
resume) the search in ``results/<run>/``."""
from __future__ import annotations

import datetime
from pathlib import Path
from typing import Callable

from evaluators._base import Evaluator
from search.drivers import driver_shares_studies
from search.islands import Islands
from search.objectives import Constraint
from search.run_lock import run_lock, store_creation_lock
from search.runner import SearchResult, search
from search.settings import RunSettings, read_run_yaml, write_run_yaml
from spaces._base import SearchSpace
from spaces.errors import ArchpruneError
from spaces.output_files import write_text


def check_against_stored(settings: RunSettings) -> None:
    """Refuse to resume a run whose stored settings mean something else; one line lists the differences."""
    path = settings.run_dir() / "run.yaml"
    if not path.exists():
        return
    differs = settings.differences(read_run_yaml(path))
    if differs:
        raise ArchpruneError(f"run {settings.run_name()!r} exists with other settings ({'; '.join(differs)}); "
                             "rerun with the same settings to resume, or pass a new --run")


def file_logger(path: Path) -> Callable[[str], None]:
    path.parent.mkdir(parents=True, exist_ok=True)

    def log(line: str) -> None:
        stamp = datetime.datetime.now().isoformat(timespec="seconds")
        with path.open("a") as handle:  # reopened per line: a killed run keeps every line written
            handle.write(f"{stamp} {line}\n")

    return log


def _where(settings: RunSettings, evaluators: list[Evaluator]) -> str:
    if settings.dask:
        pinned = f", latency on workers with resource {settings.latency_resource}" if settings.latency_resource else ""
        return f"on Dask {settings.dask}{pinned}"
    if settings.workers > 1:
        return f"in {settings.workers} worker processes"
    from search.executors import resolve_executor

    inline = resolve_executor(settings.executor, evaluators) == "inline"
    return "in the search process" if inline else "in a worker process"


def run_search(settings: RunSettings, progress: bool = True, say: Callable[[str], None] = print,
               island: int = 0) -> SearchResult:
    """The search ``settings`` describe. With ``islands`` > 1 this process is island 0 and starts the
    others (``island`` 1..N-1: the same search with seed + island, started by island 0)."""
    from search.runs import check_store_file

    settings.check()
    check_against_stored(settings)
    if (settings.run_dir() / "run.yaml").exists():  # before the model loads: a lost store fails in a second
        check_store_file(settings.storage_url(), settings.run_name())
    parts = settings.recipe().build(settings)
    with run_lock(settings.run_dir(), settings.run_name(), shared=driver_shares_studies(settings.driver)):
        if island:
            return _search_island(settings, parts.space, parts.evaluators, parts.constraints, parts.imgsz, island)
        with Islands(settings) as islands:
            result = _search_held(settings, parts.space, parts.evaluators, parts.constraints, parts.imgsz,
                                  parts.description, progress, say, islands)
            return islands.join(result, file_logger(settings.run_dir() / "search.log"), say)


def open_run_store(settings: RunSettings) -> None:
    """Create the run's store before run.yaml says the run exists, so a run.yaml whose store is
    missing or empty always means lost trials (an error), never a new run."""
    from search.store import open_storage

    if settings.storage_url() != "memory":
        with store_creation_lock(settings.run_dir()):
            open_storage(settings.storage_url())


def _search_held(settings: RunSettings, space: SearchSpace, evaluators: list[Evaluator],
                 constraints: list[Constraint], imgsz: int, what: str, progress: bool,
                 say: Callable[[str], None], islands: Islands | None = None) -> SearchResult:
    """The search, once this process holds the run (island 0: the other islands start once the
    store and run.yaml exist)."""
    run_dir = settings.run_dir()
    open_run_store(settings)
    write_run_yaml(settings, run_dir / "run.yaml")
    log = file_logger(run_dir / "search.log")
    head = (f"run {settings.run_name()}: {settings.driver} over {what}; objectives {settings.objectives}"
            + (f"; constraints {', '.join(settings.constraints)}" if settings.constraints else "")
            + f"; store {settings.storage_url()}; evaluations {_where(settings, evaluators)}"
            + (f"; {settings.islands} islands (seeds {settings.seed}..{settings.seed + settings.islands - 1})"
               if settings.islands > 1 else ""))
    say(head)
    log(head)
    if islands is not None:
        islands.start()
    result = _search_call(settings, space, evaluators, constraints, imgsz, progress, log, island=0)
    if settings.latency.startswith("predict:") and settings.remeasure_front and result.front:
        remeasure_front(settings, space, imgsz, result, say, log)
    return result


def _search_call(settings: RunSettings, space: SearchSpace, evaluators: list[Evaluator],
                 constraints: list[Constraint], imgsz: int, progress: bool, log: Callable[[str], None],
                 island: int) -> SearchResult:
    options = {"population": settings.population, "offspring": settings.offspring,
               "crossover_prob": settings.crossover_prob, "mutation_rate": settings.mutation_rate,
               "island": island or None, "islands": settings.islands if settings.islands > 1 else None}
    options = {k: v for k, v in options.items() if v is not None}  # None: the driver's own default
    return search(space, evaluators, settings.objective_list, constraints, imgsz=imgsz,
                  driver=settings.driver, driver_options=options, storage=settings.storage_url(),
                  run=settings.run_name(), trials=settings.trials, time_budget_s=settings.time_budget_s,
                  seed=settings.seed + island, progress=progress, log=log, executor=settings.executor,
                  candidate_timeout_s=settings.candidate_timeout_s, workers=settings.workers,
                  dask=settings.dask, latency_resource=settings.latency_resource,
                  study_attrs=None if island else {"settings": settings.to_dict(), "imgsz": imgsz})


def _search_island(settings: RunSettings, space: SearchSpace, evaluators: list[Evaluator],
                   constraints: list[Constraint], imgsz: int, island: int) -> SearchResult:
    """Island ``island`` of a run island 0 started: the same search with seed + island, logged to the
    run's search.log with its island number."""
    log = file_logger(settings.run_dir() / "search.log")
    return _search_call(settings, space, evaluators, constraints, imgsz, False,
                        lambda line: log(f"[island {island}] {line}"), island)


def remeasure_front(settings: RunSettings, space: SearchSpace, imgsz: int, result: SearchResult,
                    say: Callable[[str], None], log: Callable[[str], None]) -> None:
    """Predicted latency chose the front; measure those candidates for real on this machine. The
    measurements go beside the predictions (trials are immutable once finished): into the study's
    ``remeasured`` attribute and ``results/<run>/remeasured.json``."""
    import json

    from evaluators._base import Candidate
    from evaluators.latency import LatencyEvaluator

    measure = LatencyEvaluator.measuring(settings)
    rows = {}
    for record in result.front:
        model = space.build(record.genome)
        measured = measure.evaluate(Candidate(model=model, imgsz=imgsz, genome=record.genome, config=record.config))
        predicted = float(record.metrics["latency_ms"])
        rows[str(record.number)] = {"predicted_ms": predicted, "measured_ms": measured["latency_ms"],
                                    "error": measured["latency_ms"] / predicted - 1.0,
                                    **{k: measured[k] for k in ("host", "cpu", "threads") if k in measured}}
        line = (f"re-measured trial {record.number}: predicted {predicted:.2f} ms, measured "
                f"{measured['latency_ms']:.2f} ms ({rows[str(record.number)]['error']:+.0%})")
        say(line)
        log(line)
    result.store.study.set_user_attr("remeasured", rows)
    write_text(settings.run_dir() / "remeasured.json", json.dumps(rows, indent=2))
