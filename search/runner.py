"""The search loop and the Python entry point: ``search(space, evaluators, objectives, ...)``.

The driver proposes; each proposal is answered from the store when it was evaluated before
(never evaluated twice, never counted twice), otherwise scored by the pipeline and written to
the store as one whole trial. Because the drivers are seeded and replay through the store, running
the same search again resumes it exactly where it stopped.
"""
from __future__ import annotations

import collections
import contextlib
import math
import signal
import sys
import threading
import time
from concurrent.futures import FIRST_COMPLETED, Future, wait
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Sequence

import optuna
from tqdm import tqdm

from evaluators._base import Evaluator
from search.drivers import Driver, Proposal, make_driver
from search.executors import Executor, make_executor
from search.objectives import Constraint, Objective, describe
from search.pareto import stored_front
from search.pipeline import EvaluationPipeline, Outcome
from search.seen_genomes import SeenGenomes
from search.store import Store, TrialRecord, storage_failure
from spaces._base import Genome, InvalidGenome, SearchSpace
from spaces.errors import ArchpruneError

STALL_LIMIT = 50  # asks in a row with nothing new: the driver only re-proposes what it proposed before
FAST_CANDIDATE_S = 0.05  # candidates quicker than this are written in batches ...
MAX_PENDING, MAX_PENDING_S = 256, 1.0  # ... of at most this many, or this many seconds of work


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


def search(space: SearchSpace, evaluators: Sequence[Evaluator], objectives: Sequence[Objective],
           constraints: Sequence[Constraint] = (), *, imgsz: int, driver: str | Driver = "nsga2",
           driver_options: dict[str, Any] | None = None, storage: str = "memory", run: str = "search",
           trials: int | None = None, time_budget_s: float | None = None, seed: int = 0,
           progress: bool = True, log: Callable[[str], None] | None = None,
           study_attrs: dict[str, Any] | None = None, executor: str = "inline",
           candidate_timeout_s: float | None = None, workers: int = 1, dask: str | None = None,
           latency_resource: str | None = None) -> SearchResult:
    """Search ``space`` for candidates that are good on ``objectives`` and meet ``constraints``.

    Stops when the store holds ``trials`` trials, after ``time_budget_s`` seconds of this call, or
    on Ctrl-C / SIGTERM (after the candidates in flight). Running it again with the same arguments
    and storage resumes. ``executor="process"`` evaluates in a worker process that is killed when a
    candidate runs past ``candidate_timeout_s`` (the space and evaluators must pickle);
    ``workers=N`` keeps N such processes busy; ``dask="local:N"`` or ``"tcp://HOST:8786"``
    evaluates on a Dask cluster, latency on workers with ``latency_resource`` when given.
    """
    if trials is None and time_budget_s is None:
        raise ArchpruneError("give trials or a time budget: a search needs a stopping rule")
    pipeline = EvaluationPipeline(space, evaluators, objectives, constraints, imgsz)
    store = Store(storage, run, objectives, space.genes)  # before the workers start: a bad URL fails fast
    for evaluator in pipeline.evaluators:  # before the workers get their copies: e.g. a latency scale
        for key, value in evaluator.bind_run(dict(store.study.user_attrs), len(store) > 0, imgsz).items():
            store.study.set_user_attr(key, value)
    store.keep_metric_units({m.name: m.unit for e in pipeline.evaluators for m in e.metrics})
    runner = make_executor(executor, pipeline, candidate_timeout_s, workers=workers, dask=dask,
                           latency_resource=latency_resource)
    try:
        return _Loop(space, objectives, store, runner, log or (lambda line: None)).run(
            driver, driver_options, constraints, trials, time_budget_s, seed, progress, study_attrs, imgsz)
    except optuna.exceptions.StorageInternalError as err:  # Optuna's wrapper for every failed database write
        raise storage_failure(storage, err) from None
    finally:
        runner.close()


@dataclass
class _Batch:
    """One ``ask``: its proposals wait for their records, then the driver is told."""

    proposals: list[Proposal]
    records: list[TrialRecord | None]
    new: int  # proposals this driver never made before (a replay counts, a repeat does not)

    @property
    def complete(self) -> bool:
        return all(r is not None for r in self.records)


class _Loop:
    """Keeps ``executor.capacity`` candidates in flight and writes each to the store as it finishes.

    A generational driver (DEAP NSGA-II, random) is asked again only once its whole batch is
    told, so its results do not depend on which worker finishes first; an asynchronous one
    (Optuna) is asked whenever a worker is free.
    """

    def __init__(self, space: SearchSpace, objectives: Sequence[Objective], store: Store, executor: Executor,
                 log: Callable[[str], None]) -> None:
        self.space, self.objectives, self.store, self.executor, self.log = space, objectives, store, executor, log
        self.inflight: dict[Future[Outcome], tuple[Genome, Proposal]] = {}
        self.queued: collections.deque[tuple[Genome, Proposal]] = collections.deque()
        self.waiting: dict[Genome, list[tuple[_Batch, int]]] = {}  # candidate -> batch slots it answers
        self.batches: list[_Batch] = []
        self.proposed = SeenGenomes()  # every genome this call's driver proposed (replay included)
        self.evaluated = self.stalled = 0
        self.trials: int | None = None
        self.blocked_by_others = False  # the run's last trials are being evaluated by other processes
        self.postfix_at, self.postfix_every = 0.0, 2.0
        self.flushed_at = time.monotonic()
        self.unlogged: list[Callable[[], str]] = []  # log lines of trials not yet written (numbers pending)

    def run(self, driver: str | Driver, driver_options: dict[str, Any] | None, constraints: Sequence[Constraint],
            trials: int | None, time_budget_s: float | None, seed: int, progress: bool,
            study_attrs: dict[str, Any] | None, imgsz: int | None = None) -> SearchResult:
        store, log = self.store, self.log
        for key, value in (study_attrs or {}).items():
            store.study.set_user_attr(key, value)
        # the run's image size goes with the options: the zero-shot driver counts FLOPs at it
        self.driver = driver if isinstance(driver, Driver) else make_driver(
            driver, self.space, self.objectives, seed, {"imgsz": imgsz, **(driver_options or {})})
        self.driver.bind(store, constraints)
        self.trials = trials
        flag = _StopFlag(lambda text: tqdm.write(text, file=sys.stderr))  # tqdm.write keeps a live bar intact
        start = time.monotonic()
        if len(store):
            log(f"resuming run {store.run!r}: {len(store)} trials already in the store")
        self.bar = tqdm(total=trials, initial=min(len(store), trials or len(store)), unit="cand",
                        disable=not progress, dynamic_ncols=True, file=sys.stderr, desc="search")
        _set_postfix(self.bar, store)
        stopped: str | None = None
        with _signals(flag):
            while True:
                stopped = stopped or _should_stop(flag, store, trials, time_budget_s, start)
                if not stopped:
                    stopped = self._fill(trials)
                if not self.inflight:
                    if stopped:
                        break
                    if self.blocked_by_others:  # the last trials are other processes': see how they end
                        time.sleep(1.0)
                        store.recover_stale()  # ... or whether their process died
                        store.refresh()
                    continue
                finished, _ = wait(self.inflight, timeout=1.0, return_when=FIRST_COMPLETED)
                for future in finished:
                    self._finish(future)
                if self.store.pending and time.monotonic() - self.flushed_at >= MAX_PENDING_S:
                    self._flush()
        self._flush()
        for genome, proposal in self.queued:  # asked but never evaluated: asked again next time
            self.driver.withdraw(proposal, stopped or "stopped")
        self.bar.close()
        front = stored_front(store)
        summary = self.driver.report()
        if summary:
            log(summary)
        log(f"stopped ({stopped}) after {self.evaluated} new trials; {len(store)} trials in the store, "
            f"front of {len(front)}")
        return SearchResult(store=store, evaluated=self.evaluated, stopped=stopped or "trials", front=front)

    def _fill(self, trials: int | None) -> str | None:
        """Submit work until every worker is busy; a reason to stop when the driver has nothing new."""
        self.blocked_by_others = False
        while len(self.inflight) < self.executor.capacity and not self.blocked_by_others:
            if trials is not None and len(self.store) + len(self.inflight) >= trials:
                return None
            if trials is not None and self.driver.asynchronous and not self.queued:
                # processes sharing the study: their running trials count too, or the run overshoots
                others = self.store.running_others()
                if others and len(self.store) + len(self.inflight) + others >= trials:
                    self.blocked_by_others = not self.inflight
                    return None
            if self.queued:
                genome, proposal = self.queued.popleft()
                self.inflight[self.executor.submit(genome)] = (genome, proposal)
                continue
            if self.batches and not self.driver.asynchronous:
                return None  # a generation is still being evaluated
            self._ask()
            if self.stalled >= STALL_LIMIT:
                self.log(f"the driver proposed only known candidates {STALL_LIMIT} times in a row: stopping")
                return "exhausted"
        return None

    def _ask(self) -> None:
        proposals = self.driver.ask()
        batch = _Batch(list(proposals), [None] * len(proposals), 0)
        shared = self.driver.asynchronous  # may share its study with other processes (Optuna)
        if shared:
            self.store.refresh()  # what the other processes finished meanwhile
        for index, proposal in enumerate(proposals):
            if shared and self.driver.surplus(proposal, self.trials):
                # another process asked the last trial of the run first: this one was given back
                batch.records[index] = _placeholder(tuple(proposal.genome))
                self.blocked_by_others = not self.inflight
                continue
            genome, proposal = self._legal(proposal)
            batch.new += self.proposed.add(genome)
            record = self.store.lookup(genome)
            if record is not None:
                self.driver.duplicate(proposal, record)
                batch.records[index] = record
            elif genome in self.waiting:  # already queued or in flight: answered when that one finishes
                first_batch, first_index = self.waiting[genome][0]
                self.driver.duplicate(proposal, first_batch.proposals[first_index])
                self.waiting[genome].append((batch, index))
            elif shared and self.driver.taken_elsewhere(proposal, genome):  # another process is on it
                batch.records[index] = _placeholder(genome)
            else:
                self.waiting[genome] = [(batch, index)]
                self.queued.append((genome, proposal))
        self.batches.append(batch)
        self._tell_complete()

    def _legal(self, proposal: Proposal) -> tuple[Genome, Proposal]:
        """The proposal as a legal genome. A sampler that picks genes one by one (Optuna's) can propose
        an illegal block structure: the space repairs it, and the asked trial (whose params cannot
        change) is closed as PRUNED, the repaired candidate evaluated as a trial of its own."""
        try:
            return self.space.validate(proposal.genome), proposal
        except InvalidGenome:
            repaired = self.space.repair(proposal.genome)
            if repaired is None:
                raise
            genome = self.space.validate(repaired)
            self.driver.repaired(proposal, genome)
            return genome, Proposal(genome, proposal.source)

    def _finish(self, future: Future[Outcome]) -> None:
        genome, proposal = self.inflight.pop(future)
        outcome = future.result()
        # candidates scored in milliseconds (zero-shot, table lookups) are written a batch at a time;
        # anything slower is written as it finishes, so a crash never costs real work
        asked = self.driver.asked(proposal)  # an asked trial is finished in the study as it comes
        fast = outcome.timings.get("total_s", math.inf) < FAST_CANDIDATE_S and asked is None
        record = _store_outcome(outcome, self.store, genome, proposal.source, self.log, self.objectives,
                                asked, defer=fast, unlogged=self.unlogged)
        if self.store.pending and (not fast or self.store.pending >= MAX_PENDING
                                   or time.monotonic() - self.flushed_at >= MAX_PENDING_S):
            self._flush()
        self.evaluated += 1
        self.bar.update(max(0, min(len(self.store), self.trials or len(self.store)) - self.bar.n))  # islands add too
        if time.monotonic() - self.postfix_at > self.postfix_every:  # the front of a big run is not free to recount
            took = time.monotonic()
            _set_postfix(self.bar, self.store)
            self.postfix_at = time.monotonic()
            # at most ~5% of the search: recounting 500,000 trials' front takes about a second
            self.postfix_every = max(2.0, 20.0 * (self.postfix_at - took))
        for batch, index in self.waiting.pop(genome, []):
            batch.records[index] = record
        self._tell_complete()

    def _flush(self) -> None:
        self.store.flush()
        self.flushed_at = time.monotonic()
        for line in self.unlogged:
            self.log(line())
        self.unlogged = []

    def _tell_complete(self) -> None:
        while self.batches and self.batches[0].complete:  # in ask order: a driver hears back in sequence
            self._flush()  # the driver sees trial numbers (tie-breaks), as a resumed replay will
            batch = self.batches.pop(0)
            self.driver.tell(batch.proposals, [r for r in batch.records if r is not None])
            self.stalled = 0 if batch.new else self.stalled + 1


def _placeholder(genome: Genome) -> TrialRecord:
    """Stands for a candidate another process is evaluating (only asynchronous drivers see it; they ignore it)."""
    return TrialRecord(number=-1, genome=genome, failed=True, error="evaluated by another process")


def _should_stop(flag: _StopFlag, store: Store, trials: int | None, time_budget_s: float | None,
                 start: float) -> str | None:
    if flag.reason:
        return flag.reason
    if trials is not None and len(store) >= trials:
        return "trials"
    if time_budget_s is not None and time.monotonic() - start >= time_budget_s:
        return "time-budget"
    return None


def _store_outcome(outcome: Outcome, store: Store, genome: Genome, source: str, log: Callable[[str], None],
                   objectives: Sequence[Objective], asked: Any = None, defer: bool = False,
                   unlogged: list[Callable[[], str]] | None = None) -> TrialRecord:
    config = outcome.config
    timings = {k: round(v, 4) for k, v in outcome.timings.items()}
    if outcome.error is not None:
        record = store.add_failed(genome, outcome.error, config, timings, source, asked, defer=defer)
        line = lambda: f"trial {record.number} {source}: {_summary(record, objectives)}\n{outcome.traceback.rstrip()}"
    else:
        record = store.add_complete(genome, outcome.metrics, outcome.constraints, config, timings, source,
                                    outcome.skipped, asked, defer=defer)
        line = lambda: f"trial {record.number} {source}: {_summary(record, objectives)} ({timings['total_s']:.2f} s)"
    if defer and unlogged is not None:
        unlogged.append(line)  # logged once written, with its trial number
    else:
        log(line())
    return record


def _set_postfix(bar: tqdm, store: Store) -> None:
    if bar.disable:
        return
    _, feasible, failed = store.counts()  # from the store's columns: no record is built but the front's
    bar.set_postfix(feasible=feasible, front=len(stored_front(store)), failed=failed, refresh=False)
