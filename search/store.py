"""The store: every evaluated candidate is a trial of an Optuna study in RDB storage.

params = the genome (one integer choice per gene), values = the objectives, user attributes =
every metric, the timings, the readable config and where the candidate came from; constraint
values go through Optuna's constraint attributes (positive = violated); a candidate whose
evaluation raised is a FAIL trial carrying the error text. Each trial is written whole in one
``add_trial`` call, so a process killed at any moment leaves no half-written trial behind.

Trials an Optuna driver asks for are RUNNING while they are evaluated. Several search processes
may share one study (``--storage postgresql://...``): each asked trial names its worker
(``host:pid``) and, in RDB storage, carries a heartbeat. A RUNNING trial whose worker is a dead
process on this host, or whose heartbeat went stale, never finished: it is failed and its candidate
queued to be asked again ("retry"), so a killed process costs only the candidate it was on. A FAIL
trial without an ``error`` attribute is such a trial, not a failed candidate, and is never loaded.
"""
from __future__ import annotations

import datetime
import math
import os
import re
import socket
import threading
import warnings
from dataclasses import dataclass, field
from typing import Any, Sequence

import optuna
from optuna.distributions import IntDistribution
from optuna.trial import TrialState

from search.objectives import Objective
from search.store_batch import add_finished_trials
from spaces._base import Gene, Genome
from spaces.errors import ArchpruneError

optuna.logging.set_verbosity(optuna.logging.WARNING)

HEARTBEAT_S = 20  # a RUNNING trial silent for 3 heartbeats belongs to a lost process
FINISHED = (TrialState.COMPLETE, TrialState.FAIL)


def worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def _process_gone(worker: str) -> bool:
    """True for a worker of this host whose process no longer exists (other hosts: heartbeats decide)."""
    host, _, pid = worker.rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, another user's
        return False
    return False


def _requeue(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
    """A trial that never finished: ask its candidate again, first."""
    study.enqueue_trial(trial.params, user_attrs={"source": "retry", "retry_of": trial.number})


@dataclass
class TrialRecord:
    """One finished candidate as the drivers, the front and the plots see it."""

    number: int
    genome: Genome
    failed: bool
    values: tuple[float, ...] = ()
    metrics: dict[str, Any] = field(default_factory=dict)
    constraints: dict[str, float] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)
    source: str = ""
    error: str | None = None

    @property
    def violation(self) -> float:
        """Total constraint violation (0 when feasible, inf when the candidate failed)."""
        if self.failed:
            return math.inf
        return sum(max(0.0, v) for v in self.constraints.values())

    @property
    def feasible(self) -> bool:
        return not self.failed and self.violation == 0.0 and all(math.isfinite(v) for v in self.values)

    @property
    def reason(self) -> str | None:
        """Why the candidate failed, in one line (the error's first), or None without error text."""
        lines = (self.error or "").strip().splitlines()
        return lines[0] if lines else None


def _make_record(number: int, genome: Genome, state: TrialState, values: Sequence[float] | None,
                 user_attrs: dict[str, Any], constraints: dict[str, float] | None) -> TrialRecord:
    """One way from a trial's stored fields to a record, for trials read and trials just written."""
    return TrialRecord(number=number, genome=tuple(genome), failed=state == TrialState.FAIL,
                       values=tuple(values or ()), metrics=dict(user_attrs.get("metrics", {})),
                       constraints=dict(constraints or {}), config=dict(user_attrs.get("config", {})),
                       source=str(user_attrs.get("source", "")), error=user_attrs.get("error"))


def read_only_url(url: str) -> str:
    """A SQLite file URL opened read-only (SQLite's URI ``mode=ro``): reading a run then cannot write
    its store, whatever a library does on open, and works on a read-only disk. Other URLs as given."""
    if not url.startswith("sqlite:///") or "?" in url:
        return url
    return f"sqlite:///file:{url[len('sqlite:///'):]}?mode=ro&uri=true"


def open_storage(url: str, heartbeat_s: int = HEARTBEAT_S, read_only: bool = False) -> optuna.storages.BaseStorage:
    if url == "memory":
        return optuna.storages.InMemoryStorage()
    if read_only:
        url = read_only_url(url)
    try:
        with warnings.catch_warnings():  # heartbeats are "experimental" since Optuna 2.9, and what we need
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return optuna.storages.RDBStorage(url, heartbeat_interval=heartbeat_s, grace_period=3 * heartbeat_s,
                                              heartbeat_stale_trial_callback=_requeue)
    except Exception as err:  # SQLAlchemy raises many kinds; the user needs the URL and the reason
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ArchpruneError(f"cannot open storage {url!r}: {reason}") from None


def storage_failure(url: str, err: BaseException) -> ArchpruneError:
    """A write to the store failed (a full disk, a read-only folder, the database went away): one
    line with the database's own reason, which Optuna and SQLAlchemy bury under 70 lines."""
    cause = err.__cause__ or err
    reason = str(getattr(cause, "orig", None) or cause).strip().splitlines()
    text = reason[0] if reason else type(cause).__name__
    hint = ("free space on its disk" if any(w in text.lower() for w in ("full", "i/o", "no space"))
            else "make it writable" if "readonly" in text.lower() or "read-only" in text.lower()
            else "check the storage")
    shown = re.sub(r"(://[^:/@]+):[^@]*@", r"\1:***@", url)  # never print a database password
    return ArchpruneError(f"cannot write the run's store {shown}: {text}; the trials written before are kept: "
                          f"{hint}, then run the same command to resume")


class Store:
    """A run's trials in an Optuna study named after the run."""

    def __init__(self, url: str, run: str, objectives: Sequence[Objective], genes: Sequence[Gene] | None,
                 heartbeat_s: int = HEARTBEAT_S, read_only: bool = False) -> None:
        """``genes=None`` reads a finished run without rebuilding its space (the gene names and
        ranges come from the stored trials). ``read_only``: the run must exist and is never written
        (``pareto``, ``export``)."""
        self.url, self.run, self.objectives = url, run, list(objectives)
        self.storage = open_storage(url, heartbeat_s, read_only=read_only)
        self.heartbeat_s = heartbeat_s
        self._live: set[int] = set()  # trial ids this process asked for and has not finished
        self._beating: threading.Thread | None = None
        directions = ["minimize" if o.direction == "min" else "maximize" for o in self.objectives]
        names = [o.name for o in self.objectives]
        if read_only:
            try:
                self.study = optuna.load_study(study_name=run, storage=self.storage)
            except KeyError:
                raise ArchpruneError(f"storage {url!r} has no run {run!r}: its store was replaced or emptied; "
                                     "restore its study.db") from None
        else:
            self.study = optuna.create_study(study_name=run, storage=self.storage, directions=directions,
                                             load_if_exists=True)
        self._study_id = self.storage.get_study_id_from_name(run)
        stored = self.study.user_attrs.get("objectives")
        if stored is not None and stored != [str(o) for o in self.objectives]:
            raise ArchpruneError(f"storage {url!r} holds run {run!r} with objectives {','.join(stored)}, not "
                                 f"{','.join(str(o) for o in self.objectives)}; pick another --run")
        if stored is None and not read_only:
            self.study.set_user_attr("objectives", [str(o) for o in self.objectives])
            with warnings.catch_warnings():  # experimental since Optuna 3.2, yet what the dashboard reads
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                self.study.set_metric_names(names)
        self.genes = list(genes) if genes is not None else self._stored_genes()
        self.distributions = {g.name: IntDistribution(0, len(g.choices) - 1) for g in self.genes}
        self._by_genome: dict[Genome, TrialRecord] = {}
        self._loaded: set[int] = set()
        self._pending: list[tuple[optuna.trial.FrozenTrial, TrialRecord]] = []
        self.refresh()

    def refresh(self) -> int:
        """Load trials finished since the last look (by other processes sharing the study); how many."""
        before = len(self._by_genome)
        for trial in self.study.get_trials(deepcopy=False, states=FINISHED):
            if trial.number in self._loaded:
                continue
            self._loaded.add(trial.number)
            if trial.state == TrialState.FAIL and "error" not in trial.user_attrs:
                continue  # never finished (interrupted, stale): not a trial of the run; asked again
            record = self._record(trial)
            self._by_genome.setdefault(record.genome, record)
        return len(self._by_genome) - before

    def _stored_genes(self) -> list[Gene]:
        for trial in self.study.get_trials(deepcopy=False):
            if trial.distributions:
                return [Gene(name, tuple(range(int(d.high) + 1))) for name, d in trial.distributions.items()]
        return []

    # -- reading ---------------------------------------------------------------------------
    def _record(self, trial: optuna.trial.FrozenTrial) -> TrialRecord:
        genome = tuple(int(trial.params[g.name]) for g in self.genes)
        return _make_record(trial.number, genome, trial.state, trial.values, trial.user_attrs, trial.constraints)

    def lookup(self, genome: Genome) -> TrialRecord | None:
        return self._by_genome.get(tuple(genome))

    def records(self) -> list[TrialRecord]:
        return sorted(self._by_genome.values(), key=lambda r: r.number)

    def __len__(self) -> int:
        return len(self._by_genome)

    # -- writing ---------------------------------------------------------------------------
    def _add(self, genome: Genome, state: TrialState, values: list[float] | None, user_attrs: dict[str, Any],
             constraints: dict[str, float] | None, asked: optuna.Trial | None = None,
             defer: bool = False) -> TrialRecord:
        """Write one finished trial; ``defer`` holds it for the next ``flush`` (one transaction for many)."""
        if asked is not None and self._finish_asked(asked, state, values, user_attrs, constraints):
            number = asked.number
        else:
            params = {g.name: int(choice) for g, choice in zip(self.genes, genome)}
            trial = optuna.trial.create_trial(state=state, values=values, params=params,
                                              distributions=self.distributions, user_attrs=user_attrs,
                                              constraints=constraints or None)
            record = _make_record(-1, tuple(genome), state, values, user_attrs, constraints)
            self._pending.append((trial, record))
            self._by_genome.setdefault(record.genome, record)  # answers repeats at once, written or not
            if not defer:
                self.flush()
            return record
        record = _make_record(number, tuple(genome), state, values, user_attrs, constraints)
        self._loaded.add(number)
        self._by_genome.setdefault(record.genome, record)
        return record

    @property
    def pending(self) -> int:
        """Finished trials held for the next ``flush``."""
        return len(self._pending)

    def flush(self) -> None:
        """Write the held trials in one transaction; their records get their trial numbers."""
        if not self._pending:
            return
        numbers = add_finished_trials(self.storage, self._study_id, [t for t, _ in self._pending])
        for number, (_, record) in zip(numbers, self._pending):
            record.number = number
            self._loaded.add(number)
        self._pending = []

    def _finish_asked(self, asked: optuna.Trial, state: TrialState, values: list[float] | None,
                      user_attrs: dict[str, Any], constraints: dict[str, float] | None) -> bool:
        """Finish the trial an Optuna driver asked for; False when it is no longer ours to finish
        (another process judged it stale, e.g. after a long pause): the caller adds a new trial."""
        self._live.discard(asked._trial_id)
        try:
            for key, value in user_attrs.items():
                asked.set_user_attr(key, value)
            for key, value in (constraints or {}).items():
                asked.set_constraint(key, value)
            self.study.tell(asked, values, state=state)
        except (RuntimeError, ValueError, optuna.exceptions.UpdateFinishedTrialError):
            if self.storage.get_trial(asked._trial_id).state != TrialState.FAIL:
                raise
            return False
        return True

    def add_complete(self, genome: Genome, metrics: dict[str, Any], constraints: dict[str, float],
                     config: dict[str, Any], timings: dict[str, float], source: str,
                     skipped: Sequence[str] = (), asked: optuna.Trial | None = None,
                     defer: bool = False) -> TrialRecord:
        values = [float(metrics[o.name]) if o.name in metrics else o.worst for o in self.objectives]
        attrs = {"metrics": metrics, "config": config, "timings": timings, "source": source}
        if skipped:
            attrs["skipped"] = list(skipped)
        return self._add(genome, TrialState.COMPLETE, values, attrs, constraints, asked, defer)

    def add_failed(self, genome: Genome, error: str, config: dict[str, Any], timings: dict[str, float],
                   source: str, asked: optuna.Trial | None = None, defer: bool = False) -> TrialRecord:
        attrs = {"error": error, "config": config, "timings": timings, "source": source}
        return self._add(genome, TrialState.FAIL, None, attrs, None, asked, defer)

    # -- trials an Optuna driver asked for ---------------------------------------------------
    def ask(self) -> optuna.Trial:
        """A new (or queued) trial for this process, marked with its worker and kept alive by heartbeats."""
        self.recover_stale()
        with warnings.catch_warnings():  # Optuna would like heartbeats only inside Study.optimize
            warnings.simplefilter("ignore")
            trial = self.study.ask()
        # the worker is written before the genes are drawn (one write each): a process killed in
        # between leaves a trial another process can tell is dead, not an anonymous one
        trial.set_user_attr("worker", worker_id())
        self._live.add(trial._trial_id)
        self._start_heartbeat()
        for name, dist in self.distributions.items():
            trial.suggest_int(name, int(dist.low), int(dist.high))
        return trial

    def close_duplicate(self, asked: optuna.Trial, of: int | None) -> None:
        """An asked candidate already in the store, or being evaluated: answered from there, so this
        trial is PRUNED (not counted)."""
        self._live.discard(asked._trial_id)
        if of is not None:
            asked.set_user_attr("duplicate_of", of)
        self.study.tell(asked, state=TrialState.PRUNED)

    def abandon(self, asked: optuna.Trial, reason: str, requeue: bool = True) -> None:
        """A trial asked but never evaluated (the search stopped): FAIL it as interrupted and queue
        its candidate to be asked first next time."""
        self._live.discard(asked._trial_id)
        asked.set_user_attr("interrupted", reason)
        self.study.tell(asked, state=TrialState.FAIL)
        if requeue:
            self.study.enqueue_trial(asked.params, user_attrs={"source": "retry"})

    def surplus(self, asked: optuna.Trial, trials: int | None) -> bool:
        """True when the run's ``trials`` are already finished or running in trials asked before this
        one (several processes on one study): the earliest asks win, so the run does not overshoot."""
        if trials is None:
            return False
        self.refresh()
        earlier = sum(t.number < asked.number
                      for t in self.study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)))
        return len(self) + earlier >= trials

    def running_elsewhere(self, genome: Genome) -> int | None:
        """The number of a RUNNING trial of another worker on this candidate (shared studies), if any."""
        params = {g.name: int(c) for g, c in zip(self.genes, genome)}
        for trial in self.study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            if trial._trial_id not in self._live and trial.params == params:
                return trial.number
        return None

    def running_others(self) -> int:
        """RUNNING trials of other processes sharing this study."""
        return sum(t._trial_id not in self._live
                   for t in self.study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)))

    def other_workers(self) -> set[str]:
        """Workers of other live processes with RUNNING trials in this study."""
        mine = worker_id()
        return {str(t.user_attrs.get("worker")) for t in self.study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
                if t.user_attrs.get("worker") not in (None, mine) and not _process_gone(str(t.user_attrs["worker"]))}

    def recover_stale(self) -> int:
        """Fail and re-queue RUNNING trials nobody is working on: their worker is a dead process on
        this host, (RDB storage) their heartbeat went stale, or they never got a worker and are older
        than three heartbeats. How many."""
        recovered = 0
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            before = len(self.study.get_trials(deepcopy=False, states=(TrialState.WAITING,)))
            self._beat_once()  # our own trials are alive, whatever the heartbeat thread managed lately
            optuna.storages.fail_stale_trials(self.study)  # heartbeats: any host; re-queued by _requeue
            recovered += len(self.study.get_trials(deepcopy=False, states=(TrialState.WAITING,))) - before
        for trial in self.study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            worker = trial.user_attrs.get("worker")
            if trial._trial_id in self._live:
                continue
            if worker is None:  # asked a moment ago (the worker is written right after), or by old code
                started = trial.datetime_start or datetime.datetime.now()
                if (datetime.datetime.now() - started).total_seconds() < 3 * self.heartbeat_s:
                    continue
            elif not _process_gone(str(worker)):
                continue
            try:
                self.storage.set_trial_user_attr(trial._trial_id, "interrupted", f"its worker {worker} is gone")
                if not self.storage.set_trial_state_values(trial._trial_id, state=TrialState.FAIL):
                    continue
            except (RuntimeError, optuna.exceptions.UpdateFinishedTrialError):
                continue  # another process recovered it first
            _requeue(self.study, trial)
            recovered += 1
        return recovered

    def _start_heartbeat(self) -> None:
        if self._beating is not None or not isinstance(self.storage, optuna.storages.RDBStorage):
            return
        self._beat_once()
        self._beating = threading.Thread(target=self._beat_forever, name="archprune-heartbeat", daemon=True)
        self._beating.start()

    def _beat_once(self) -> None:
        for trial_id in list(self._live):
            try:
                self.storage.record_heartbeat(trial_id)
            except Exception:  # a trial finished meanwhile, or the database blinked: the next beat retries
                pass

    def _beat_forever(self) -> None:
        while True:  # daemon thread: ends with the process, which is what a heartbeat must do
            threading.Event().wait(self.heartbeat_s / 2)
            self._beat_once()
