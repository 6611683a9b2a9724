"""The search loop and the Python entry point: ``search(space, evaluators, objectives, ...)``.

The driver proposes; each proposal is answered from the store when it was evaluated before
(never evaluated twice, never counted twice), otherwise scored by the pipeline and written to
the store as one whole trial. Because the drivers are seeded and replay through the store, running
the same search again resumes it exactly where it stopped.
"""
from __future__ import annotations

import contextlib
import signal
import sys
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Sequence

from tqdm import tqdm

from evaluators._base import Evaluator
from search.drivers import DRIVERS, Driver
from search.executors import Executor, make_executor
from search.objectives import Constraint, Objective, describe
from search.pareto import non_dominated
from search.pipeline import EvaluationPipeline
from search.store import Store, TrialRecord
from spaces._base import SearchSpace
from spaces.errors import ArchpruneError

STALL_LIMIT = 50  # asks in a row with nothing new: the driver only re-proposes what it proposed before


@dataclass
class SearchResult:
    store: Store
    evaluated: int  # new trials this call
    stopped: str  # why the loop ended
    front: list[TrialRecord]


class _StopFlag:
    """First Ctrl-C (or SIGTERM): stop after the current candidate. Second Ctrl-C: stop now."""

    def __init__(self, say: Callable[[str], None]) -> None:
        self.reason: str | None = None
        self._say = say

    def __call__(self, signum: int, frame: Any) -> None:
        if self.reason is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.reason = "interrupted" if signum == signal.SIGINT else "terminated"
        self._say("stopping after the current candidate (Ctrl-C again to stop at once); "
                  "run the same command again to resume")


@contextlib.contextmanager
def _signals(flag: _StopFlag) -> Iterator[None]:
    if threading.current_thread() is not threading.main_thread():
        yield  # signal handlers can only be set from the main thread
        return
    previous = {s: signal.signal(s, flag) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


def _summary(record: TrialRecord, objectives: Sequence[Objective]) -> str:
    if record.failed:
        return f"FAILED {record.error}"
    shown = [o.name for o in objectives] + [m for m in ("flops_g", "params_m") if m not in {o.name for o in objectives}]
    parts = [f"{m}={describe(record.metrics[m])}" for m in shown if m in record.metrics]
    state = "feasible" if record.feasible else "infeasible (" + ", ".join(
        k for k, v in record.constraints.items() if v > 0) + ")"
    return f"{state} " + " ".join(parts)


def make_driver(name: str, space: SearchSpace, objectives: Sequence[Objective], seed: int,
                options: dict[str, Any] | None = None) -> Driver:
    if name not in DRIVERS:
        raise ArchpruneError(f"unknown driver {name!r}; choose one of {', '.join(DRIVERS)}")
    options = dict(options or {})
    if name == "random":
        options = {"batch": options.get("offspring", options.get("batch", 16))}
    return DRIVERS[name](space, objectives, seed=seed, **options)


def search(space: SearchSpace, evaluators: Sequence[Evaluator], objectives: Sequence[Objective],
           constraints: Sequence[Constraint] = (), *, imgsz: int, driver: str | Driver = "nsga2",
           driver_options: dict[str, Any] | None = None, storage: str = "memory", run: str = "search",
           trials: int | None = None, time_budget_s: float | None = None, seed: int = 0,
           progress: bool = True, log: Callable[[str], None] | None = None,
           study_attrs: dict[str, Any] | None = None, executor: str = "inline",
           candidate_timeout_s: float | None = None) -> SearchResult:
    """Search ``space`` for candidates that are good on ``objectives`` and meet ``constraints``.

    Stops when the store holds ``trials`` trials, after ``time_budget_s`` seconds of this call, or
    on Ctrl-C / SIGTERM (after the current candidate). Running it again with the same arguments and
    storage resumes. ``executor="process"`` evaluates in a worker process that is killed when a
    candidate runs past ``candidate_timeout_s`` (the space and evaluators must pickle).
    """
    if trials is None and time_budget_s is None:
        raise ArchpruneError("give trials or a time budget: a search needs a stopping rule")
    pipeline = EvaluationPipeline(space, evaluators, objectives, constraints, imgsz)
    runner = make_executor(executor, pipeline, candidate_timeout_s)
    try:
        return _search_loop(space, objectives, constraints, runner, driver, driver_options, storage, run, trials,
                            time_budget_s, seed, progress, log or (lambda line: None), study_attrs)
    finally:
        runner.close()


def _search_loop(space: SearchSpace, objectives: Sequence[Objective], constraints: Sequence[Constraint],
                 runner: Executor, driver: str | Driver,
                 driver_options: dict[str, Any] | None, storage: str, run: str, trials: int | None,
                 time_budget_s: float | None, seed: int, progress: bool, log: Callable[[str], None],
                 study_attrs: dict[str, Any] | None) -> SearchResult:
    store = Store(storage, run, objectives, space.genes)
    for key, value in (study_attrs or {}).items():
        store.study.set_user_attr(key, value)
    the_driver = driver if isinstance(driver, Driver) else make_driver(driver, space, objectives, seed, driver_options)
    the_driver.bind(store, constraints)
    flag = _StopFlag(lambda text: tqdm.write(text, file=sys.stderr))  # tqdm.write keeps a live bar intact
    start, evaluated, stalled = time.monotonic(), 0, 0
    proposed: set[tuple[int, ...]] = set()  # genomes this call's driver has proposed (replay included)
    if len(store):
        log(f"resuming run {run!r}: {len(store)} trials already in the store")
    bar = tqdm(total=trials, initial=min(len(store), trials or len(store)), unit="cand", disable=not progress,
               dynamic_ncols=True, file=sys.stderr, desc="search")
    _set_postfix(bar, store, objectives)
    stopped = "trials"
    with _signals(flag):
        while True:
            if trials is not None and len(store) >= trials:
                stopped = "trials"
                break
            proposals = the_driver.ask()
            records: list[TrialRecord] = []
            new_in_batch = 0  # proposals this driver never made before: replayed ones count, repeats do not
            for index, proposal in enumerate(proposals):
                genome = space.validate(proposal.genome)
                new_in_batch += genome not in proposed
                proposed.add(genome)
                record = store.lookup(genome)
                if record is not None and proposal.trial is not None:
                    store.close_duplicate(proposal.trial, record)
                if record is None:
                    stop = _should_stop(flag, store, trials, time_budget_s, start)
                    if stop:
                        stopped = stop
                        for left in proposals[index:]:  # asked but never evaluated: asked again next time
                            if left.trial is not None:
                                store.abandon(left.trial, stop)
                        break
                    record = _evaluate_and_store(runner, store, genome, proposal.source, log, objectives,
                                                 proposal.trial)
                    evaluated += 1
                    bar.update(1)
                    _set_postfix(bar, store, objectives)
                records.append(record)
            else:
                the_driver.tell(proposals, records)
                stalled = 0 if new_in_batch else stalled + 1
                if stalled >= STALL_LIMIT:
                    stopped = "exhausted"
                    log(f"the driver proposed only known candidates {STALL_LIMIT} times in a row: stopping")
                    break
                continue
            break  # the inner loop broke: a stopping rule fired mid-batch
    bar.close()
    front = non_dominated(store.records(), objectives)
    log(f"stopped ({stopped}) after {evaluated} new trials; {len(store)} trials in the store, front of {len(front)}")
    return SearchResult(store=store, evaluated=evaluated, stopped=stopped, front=front)


def _should_stop(flag: _StopFlag, store: Store, trials: int | None, time_budget_s: float | None,
                 start: float) -> str | None:
    if flag.reason:
        return flag.reason
    if trials is not None and len(store) >= trials:
        return "trials"
    if time_budget_s is not None and time.monotonic() - start >= time_budget_s:
        return "time-budget"
    return None


def _evaluate_and_store(runner: Executor, store: Store, genome: tuple[int, ...], source: str,
                        log: Callable[[str], None], objectives: Sequence[Objective], asked: Any = None) -> TrialRecord:
    outcome = runner.evaluate(genome)
    config = outcome.config
    timings = {k: round(v, 4) for k, v in outcome.timings.items()}
    if outcome.error is not None:
        record = store.add_failed(genome, outcome.error, config, timings, source, asked)
        log(f"trial {record.number} {source}: {_summary(record, objectives)}\n{outcome.traceback.rstrip()}")
    else:
        record = store.add_complete(genome, outcome.metrics, outcome.constraints, config, timings, source,
                                    outcome.skipped, asked)
        log(f"trial {record.number} {source}: {_summary(record, objectives)} ({timings['total_s']:.2f} s)")
    return record


def _set_postfix(bar: tqdm, store: Store, objectives: Sequence[Objective]) -> None:
    if bar.disable:
        return
    records = store.records()
    feasible = sum(r.feasible for r in records)
    bar.set_postfix(feasible=feasible, front=len(non_dominated(records, objectives)),
                    failed=sum(r.failed for r in records), refresh=False)
