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

import contextlib
import datetime
import functools
import gc
import math
import os
import re
import socket
import sys
import threading
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Iterator, Sequence

import numpy as np
import optuna
from optuna.distributions import IntDistribution
from optuna.trial import TrialState

from search import store_index
from search.objectives import Objective
from search.record_table import NOT_WRITTEN, RecordTable, StoredPart
from search.shared_keys import KeyTuples
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


def _requeue(study: optuna.Study, trial: optuna.trial.FrozenTrial, genes: int | None = None) -> None:
    """A trial that never finished: ask its candidate again, first. A trial whose process died while
    its genes were drawn (fewer than ``genes``) was never a candidate: nothing to ask again."""
    if genes is not None and len(trial.params) < genes:
        return
    study.enqueue_trial(trial.params, user_attrs={"source": "retry", "retry_of": trial.number})


EMPTY: Mapping[str, Any] = MappingProxyType({})


def _table_record(number: int, genome: Genome, failed: bool, values: tuple[float, ...], metrics: Mapping[str, Any],
                  constraints: Mapping[str, float], config: Mapping[str, Any], source: str, error: str | None,
                  violation: float) -> TrialRecord:
    return TrialRecord(number, genome, failed, values, metrics, constraints, config, source, error,
                       None if failed else violation)


@dataclass(slots=True)
class TrialRecord:
    """One finished candidate as the drivers, the front and the plots see it."""

    number: int
    genome: Genome
    failed: bool
    values: tuple[float, ...] = ()
    metrics: Mapping[str, Any] = field(default_factory=dict)  # read from the index: shared-key mappings
    constraints: Mapping[str, float] = field(default_factory=dict)
    config: Mapping[str, Any] = field(default_factory=dict)
    source: str = ""
    error: str | None = None
    # the violation as the store's columns hold it: a record built from them reads no constraints
    known_violation: float | None = field(default=None, repr=False, compare=False)

    @property
    def violation(self) -> float:
        """Total constraint violation (0 when feasible, inf when the candidate failed)."""
        if self.failed:
            return math.inf
        if self.known_violation is not None:
            return self.known_violation
        return sum(max(0.0, v) for v in self.constraints.values())

    @property
    def feasible(self) -> bool:
        # loops, not sum()/all() over generators: a front of 500,000 trials asks this of each
        if self.failed:
            return False
        if self.known_violation is not None:
            if self.known_violation > 0.0:
                return False
        else:
            for v in self.constraints.values():
                if v > 0.0:
                    return False
        isfinite = math.isfinite
        for v in self.values:
            if not isfinite(v):
                return False
        return True

    @property
    def reason(self) -> str | None:
        """Why the candidate failed, in one line (the error's first), or None without error text."""
        lines = (self.error or "").strip().splitlines()
        return lines[0] if lines else None


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """No cyclic garbage collection while a run's records are built: each collection walks every
    object alive, and reading 500,000 trials allocates millions of (acyclic) containers; with the
    collector on, decoding took 2.5x as long."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


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


def open_storage(url: str, heartbeat_s: int = HEARTBEAT_S, read_only: bool = False,
                 genes: int | None = None) -> optuna.storages.BaseStorage:
    if url == "memory":
        return optuna.storages.InMemoryStorage()
    if read_only:
        url = read_only_url(url)
    try:
        with warnings.catch_warnings():  # heartbeats are "experimental" since Optuna 2.9, and what we need
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return optuna.storages.RDBStorage(url, heartbeat_interval=heartbeat_s, grace_period=3 * heartbeat_s,
                                              heartbeat_stale_trial_callback=functools.partial(_requeue, genes=genes))
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
        self.storage = open_storage(url, heartbeat_s, read_only=read_only, genes=len(genes) if genes else None)
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
        # the compact index (search/store_index.py): RDB storage only; a read-only open of a store
        # written before the index existed reads Optuna's tables as before
        self._engine = self.storage.engine if isinstance(self.storage, optuna.storages.RDBStorage) else None
        if self._engine is not None and not read_only:
            store_index.create(self._engine)
        self._indexed = self._engine is not None and (not read_only or store_index.exists(self._engine))
        # SQLite commits one writer at a time, so its seq order is commit order: nothing to re-read
        self._reread = 0 if self._engine is not None and self._engine.dialect.name == "sqlite" else store_index.REREAD
        self._writable = not read_only
        self.genes = list(genes) if genes is not None else self._stored_genes()
        self.distributions = {g.name: IntDistribution(0, len(g.choices) - 1) for g in self.genes}
        self._order = self._index_order() if self._indexed else None
        narrow = all(len(g.choices) <= 256 for g in self.genes)
        self._table = RecordTable(len(self.objectives), narrow, self._read_part if self._indexed else None,
                                  _table_record)
        self._loaded: set[int] = set()  # trial numbers read through Optuna (store without index)
        self._seq = 0  # the last index row read
        self._keys = KeyTuples()  # the key tuples the records' metrics and constraints share
        self._pending: list[tuple[optuna.trial.FrozenTrial, TrialRecord]] = []
        # a read-only indexed run is read when something asks for its trials: `export --trial N`
        # reads one row, not 500,000
        self._opened = False
        if not (read_only and self._indexed):
            self._open()

    def _open(self) -> None:
        self._opened = True
        if self._indexed:
            self._read_index()
            self._reconcile()
        else:
            self.refresh()

    def _ensure_open(self) -> None:
        if not self._opened:
            self._open()

    def refresh(self) -> int:
        """Load trials finished since the last look (by other processes sharing the study); how many."""
        if not self._opened:
            self._open()
            return len(self._table)
        return len(self.refresh_records())

    def refresh_records(self) -> list[TrialRecord]:
        """The records of candidates other processes sharing the study finished since the last look
        (a candidate this process holds already is not new, whoever finished it)."""
        if not self._opened:
            self._open()
            return self.records()
        if self._indexed:
            return [self._table.get(genome) for genome in self._read_index()]
        fresh = []
        for trial in self.study.get_trials(deepcopy=False, states=FINISHED):
            if trial.number in self._loaded:
                continue
            self._loaded.add(trial.number)
            if trial.state == TrialState.FAIL and "error" not in trial.user_attrs:
                continue  # never finished (interrupted, stale): not a trial of the run; asked again
            record = self._record(trial)
            if record.genome not in self._table:
                self._hold(record)
                fresh.append(record)
        return fresh

    @property
    def cheap_refresh(self) -> bool:
        """Whether ``refresh`` reads only what is new (the index of an RDB store), not every trial."""
        return self._indexed

    def _stored_genes(self) -> list[Gene]:
        stored = self.storage.get_study_system_attrs(self._study_id).get(store_index.GENES_ATTR) if self._indexed else None
        if stored:
            return [Gene(name, tuple(range(int(n)))) for name, n in stored]
        if self._engine is not None:  # the first trial's distributions, without reading every trial
            with self._engine.connect() as conn:
                first = store_index.first_trial_id(conn, self._study_id)
            trials = [self.storage.get_trial(first)] if first is not None else []
        else:
            trials = self.study.get_trials(deepcopy=False)
        for trial in trials:
            if trial.distributions:
                return [Gene(name, tuple(range(int(d.high) + 1))) for name, d in trial.distributions.items()]
        return []

    # -- the index ---------------------------------------------------------------------------
    def _index_order(self) -> list[int] | None:
        """Where each of this store's genes sits in the genomes the index holds (None: the same
        order). The first writer records its gene names with the study."""
        names = [g.name for g in self.genes]
        stored = self.storage.get_study_system_attrs(self._study_id).get(store_index.GENES_ATTR)
        if stored is None:
            if self._writable and names:
                self.storage.set_study_system_attr(self._study_id, store_index.GENES_ATTR,
                                                   [[g.name, len(g.choices)] for g in self.genes])
            return None
        stored_names = [name for name, _ in stored]
        if stored_names == names:
            return None
        if sorted(stored_names) != sorted(names):
            raise ArchpruneError(f"run {self.run!r} in {self.url!r} was searched over other genes "
                                 f"({len(stored_names)} genes, e.g. {stored_names[:3]}) than this space's "
                                 f"({len(names)}, e.g. {names[:3]}); pick another --run")
        return [stored_names.index(name) for name in names]

    def _stored_genome(self, genome: Genome) -> list[int]:
        if self._order is None:
            return list(genome)
        out = [0] * len(genome)
        for mine, theirs in enumerate(self._order):
            out[theirs] = int(genome[mine])
        return out

    def _read_config(self, trial_id: int) -> dict[str, Any]:
        with self._engine.connect() as conn:
            return store_index.config_of(conn, trial_id)

    def _row_genome(self, row: store_index.IndexedTrial) -> Genome:
        return row.genome if self._order is None else tuple(row.genome[i] for i in self._order)

    def _row_record(self, row: store_index.IndexedTrial, genome: Genome) -> TrialRecord:
        return TrialRecord(row.number, genome, row.failed, row.values, row.metrics, row.constraints,
                           StoredPart(self._read_part, row.trial_id, "config"), row.source, row.error)

    def _read_part(self, trial_id: int, part: str) -> Mapping[str, Any]:
        """A written trial's metrics, constraints or config, for a record built from the columns."""
        if part == "config":
            return self._read_config(trial_id)
        with self._engine.connect() as conn:
            row = store_index.row_of_trial(conn, trial_id, self._keys)
        if row is None:
            return {}
        return row.metrics if part == "metrics" else row.constraints

    def _hold(self, record: TrialRecord, trial_id: int = NOT_WRITTEN) -> bool:
        """Keep a finished candidate in the columns (its parts stay readable from the store once
        ``trial_id`` is written there); False when an earlier trial of its genome is held."""
        return self._table.put(record.number, record.genome, record.failed, record.values, record.metrics,
                               record.constraints, record.config, record.source, record.error, trial_id)

    def _read_index(self) -> list[Genome]:
        """Read the index rows not read before; the genomes new to this process."""
        fresh = []
        table, order, intern = self._table, self._order, sys.intern
        with self._engine.connect() as conn, gc_paused():
            # plain decoded rows, no record objects: a record is built only when asked for
            for (seq, trial_id, skip, _), (number, failed, genome, values, _metrics, constraints, source, error) \
                    in store_index.read_since(conn, self._study_id, self._seq, self._reread):
                self._seq = max(self._seq, seq)
                if skip:
                    continue
                if order is not None:
                    genome = [genome[i] for i in order]
                held = len(table)
                # a genome finished twice (two processes): the first trial is the record, as Optuna's
                # tables read in trial order; rows come in seq order, which other writers can interleave
                table.put(number, genome, failed, values, EMPTY, constraints, EMPTY, intern(source), error, trial_id)
                if len(table) > held:  # a genome new to this process (not an earlier trial of a held one)
                    fresh.append(tuple(genome))
        return fresh

    def _index_row(self, trial_id: int, record: TrialRecord, skip: bool = False) -> dict[str, Any]:
        data = store_index.encode(record.number, record.failed, self._stored_genome(record.genome), record.values,
                                  record.metrics, record.constraints, record.source, record.error)
        return {"trial_id": trial_id, "study_id": self._study_id, "skip": skip, "data": data}

    def _reconcile(self) -> None:
        """Finished trials without an index row (a process killed between Optuna's ``tell`` and its
        row, or a store older than the index): read through Optuna, indexed when writable."""
        with self._engine.connect() as conn:
            missing = store_index.unindexed_finished(conn, self._study_id)
        if not missing:
            return
        if len(missing) > 100:  # e.g. a store older than the index: one query, not one per trial
            wanted = set(missing)
            trials = [t for t in self.storage.get_all_trials(self._study_id, deepcopy=False, states=FINISHED)
                      if t._trial_id in wanted]
        else:
            trials = [self.storage.get_trial(trial_id) for trial_id in missing]
        rows = []
        for trial in sorted(trials, key=lambda t: t.number):
            interrupted = trial.state == TrialState.FAIL and "error" not in trial.user_attrs
            record = self._interrupted_record(trial) if interrupted else self._record(trial)
            if not interrupted:  # read-only: no row is written, so the record keeps its parts
                self._hold(record, trial._trial_id if self._writable else NOT_WRITTEN)
            rows.append(self._index_row(trial._trial_id, record, skip=interrupted))
        if self._writable:
            for start in range(0, len(rows), 1000):
                with self._engine.begin() as conn:
                    store_index.insert_rows(conn, rows[start:start + 1000])

    def _indexed_now(self, trial_id: int, record: TrialRecord) -> None:
        """A trial finished through Optuna (``tell``): its index row, in a transaction of its own."""
        with self._engine.begin() as conn:
            store_index.insert_rows(conn, [self._index_row(trial_id, record)])

    def _trials_in(self, state: TrialState) -> list[optuna.trial.FrozenTrial]:
        """The study's trials in ``state`` (RUNNING, WAITING: a few), without reading every trial."""
        if self._engine is None:
            return self.study.get_trials(deepcopy=False, states=(state,))
        with self._engine.connect() as conn:
            ids = store_index.trial_ids_in_state(conn, self._study_id, state)
        return [self.storage.get_trial(trial_id) for trial_id in ids]

    # -- reading ---------------------------------------------------------------------------
    def _record(self, trial: optuna.trial.FrozenTrial) -> TrialRecord:
        genome = tuple(int(trial.params[g.name]) for g in self.genes)
        return _make_record(trial.number, genome, trial.state, trial.values, trial.user_attrs, trial.constraints)

    def _interrupted_record(self, trial: optuna.trial.FrozenTrial) -> TrialRecord:
        """A trial that never finished, for its skip row: its process may have died while drawing its
        genes, so a gene it never drew reads -1 (the row is never read back as a candidate)."""
        genome = tuple(int(trial.params.get(g.name, -1)) for g in self.genes)
        return _make_record(trial.number, genome, trial.state, trial.values, trial.user_attrs, trial.constraints)

    def lookup(self, genome: Genome) -> TrialRecord | None:
        self._ensure_open()
        return self._table.get(genome)

    def keep_metric_units(self, units: dict[str, str]) -> None:
        """Store what the run's evaluators declare as units, so reading the run (``pareto``) needs
        neither the evaluator registry nor torch; a later run's declarations add to them."""
        stored = self.study.user_attrs.get("metric_units")
        merged = {**(stored if isinstance(stored, dict) else {}), **units}
        if merged != stored:
            self.study.set_user_attr("metric_units", merged)

    def metric_units(self) -> dict[str, str] | None:
        """metric -> unit as the run stored them; None for a run stored before units were kept."""
        stored = self.study.user_attrs.get("metric_units")
        return dict(stored) if isinstance(stored, dict) else None

    def records(self) -> list[TrialRecord]:
        """Every record, by trial number, built now: a search asks the columns instead
        (``counts``, ``feasible_values``), which build none."""
        self._ensure_open()
        with gc_paused():
            return list(self._table.records())

    def counts(self) -> tuple[int, int, int]:
        """(trials, feasible, failed) of the run as this process has read it."""
        self._ensure_open()
        return len(self._table), len(self._table.feasible_rows()), self._table.failed_count()

    def feasible_values(self) -> tuple[np.ndarray, np.ndarray]:
        """The feasible records' rows and their objective values (rows x objectives), for a front
        computed without building a record per trial."""
        self._ensure_open()
        rows = self._table.feasible_rows()
        return rows, self._table.values_of(rows)

    def records_of(self, rows: Sequence[int]) -> list[TrialRecord]:
        return list(self._table.records([int(r) for r in rows]))

    def records_from(self, *sources: str) -> list[TrialRecord]:
        """The records whose source starts with one of ``sources`` (e.g. the unpruned model and the
        uniform baselines a pick is compared with), by trial number."""
        self._ensure_open()
        return list(self._table.records(self._table.rows_from(sources)))

    def failed_records(self) -> list[TrialRecord]:
        self._ensure_open()
        return list(self._table.records(self._table.failed_rows()))

    def record(self, number: int) -> TrialRecord | None:
        """Trial ``number``'s record, or None. A read-only run not yet read whole reads that one row
        (a later trial of a genome finished twice then answers too: the same model)."""
        if not self._opened:
            with self._engine.connect() as conn:
                row = store_index.row_of_number(conn, self._study_id, number, self._keys)
            if row is not None and not row.skip:
                return self._row_record(row, self._row_genome(row))
            self._open()  # not indexed yet (reconciling decides) or not a record
        return self._table.by_number(number)

    def __len__(self) -> int:
        self._ensure_open()
        return len(self._table)

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
            self._hold(record)  # answers repeats at once, written or not
            if not defer:
                self.flush()
            return record
        record = _make_record(number, tuple(genome), state, values, user_attrs, constraints)
        if self._indexed:
            self._indexed_now(asked._trial_id, record)
            self._hold(record, asked._trial_id)
        else:
            self._hold(record)
            self._loaded.add(number)
        return record

    @property
    def pending(self) -> int:
        """Finished trials held for the next ``flush``."""
        return len(self._pending)

    def flush(self) -> None:
        """Write the held trials in one transaction (with their index rows); their records get their
        trial numbers."""
        if not self._pending:
            return
        records = [r for _, r in self._pending]

        def index_rows(numbered: list[tuple[int, int]]) -> list[dict[str, Any]]:
            for (_, number), record in zip(numbered, records):
                record.number = number
            return [self._index_row(trial_id, record) for (trial_id, _), record in zip(numbered, records)]

        numbered = add_finished_trials(self.storage, self._study_id, [t for t, _ in self._pending],
                                       index_rows if self._indexed else None)
        for (trial_id, number), record in zip(numbered, records):
            record.number = number
            if self._table.number_of(record.genome) == -1:  # held as this batch's record, not numbered yet
                self._table.written(record.genome, number, trial_id)
            if not self._indexed:
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
        earlier = sum(t.number < asked.number for t in self._trials_in(TrialState.RUNNING))
        return len(self) + earlier >= trials

    def running_elsewhere(self, genome: Genome) -> int | None:
        """The number of a RUNNING trial of another worker on this candidate (shared studies), if any."""
        params = {g.name: int(c) for g, c in zip(self.genes, genome)}
        for trial in self._trials_in(TrialState.RUNNING):
            if trial._trial_id not in self._live and trial.params == params:
                return trial.number
        return None

    def running_others(self) -> int:
        """RUNNING trials of other processes sharing this study."""
        return sum(t._trial_id not in self._live for t in self._trials_in(TrialState.RUNNING))

    def other_workers(self) -> set[str]:
        """Workers of other live processes with RUNNING trials in this study."""
        mine = worker_id()
        return {str(t.user_attrs.get("worker")) for t in self._trials_in(TrialState.RUNNING)
                if t.user_attrs.get("worker") not in (None, mine) and not _process_gone(str(t.user_attrs["worker"]))}

    def recover_stale(self) -> int:
        """Fail and re-queue RUNNING trials nobody is working on: their worker is a dead process on
        this host, (RDB storage) their heartbeat went stale, or they never got a worker and are older
        than three heartbeats. How many."""
        recovered = 0
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            before = len(self._trials_in(TrialState.WAITING))
            self._beat_once()  # our own trials are alive, whatever the heartbeat thread managed lately
            optuna.storages.fail_stale_trials(self.study)  # heartbeats: any host; re-queued by _requeue
            recovered += len(self._trials_in(TrialState.WAITING)) - before
        for trial in self._trials_in(TrialState.RUNNING):
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
            _requeue(self.study, trial, len(self.genes))
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
