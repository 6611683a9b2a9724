"""The store: every evaluated candidate is a trial of an Optuna study in RDB storage.

params = the genome (one integer choice per gene), values = the objectives, user attributes =
every metric, the timings, the readable config and where the candidate came from; constraint
values go through Optuna's constraint attributes (positive = violated); a candidate whose
evaluation raised is a FAIL trial carrying the error text. Each trial is written whole in one
``add_trial`` call, so a process killed at any moment leaves no half-written trial behind.
"""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from typing import Any, Sequence

import optuna
from optuna.distributions import IntDistribution
from optuna.trial import TrialState

from search.objectives import Objective
from spaces._base import Gene, Genome
from spaces.errors import ArchpruneError

optuna.logging.set_verbosity(optuna.logging.WARNING)


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


def _make_record(number: int, genome: Genome, state: TrialState, values: Sequence[float] | None,
                 user_attrs: dict[str, Any], constraints: dict[str, float] | None) -> TrialRecord:
    """One way from a trial's stored fields to a record, for trials read and trials just written."""
    return TrialRecord(number=number, genome=tuple(genome), failed=state == TrialState.FAIL,
                       values=tuple(values or ()), metrics=dict(user_attrs.get("metrics", {})),
                       constraints=dict(constraints or {}), config=dict(user_attrs.get("config", {})),
                       source=str(user_attrs.get("source", "")), error=user_attrs.get("error"))


def open_storage(url: str) -> optuna.storages.BaseStorage:
    if url == "memory":
        return optuna.storages.InMemoryStorage()
    try:
        return optuna.storages.RDBStorage(url)
    except Exception as err:  # SQLAlchemy raises many kinds; the user needs the URL and the reason
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ArchpruneError(f"cannot open storage {url!r}: {reason}") from None


class Store:
    """A run's trials in an Optuna study named after the run."""

    def __init__(self, url: str, run: str, objectives: Sequence[Objective], genes: Sequence[Gene] | None) -> None:
        """``genes=None`` reads a finished run without rebuilding its space (the gene names and
        ranges come from the stored trials)."""
        self.url, self.run, self.objectives = url, run, list(objectives)
        self.storage = open_storage(url)
        directions = ["minimize" if o.direction == "min" else "maximize" for o in self.objectives]
        names = [o.name for o in self.objectives]
        self.study = optuna.create_study(study_name=run, storage=self.storage, directions=directions,
                                         load_if_exists=True)
        self._study_id = self.storage.get_study_id_from_name(run)
        stored = self.study.user_attrs.get("objectives")
        if stored is not None and stored != [str(o) for o in self.objectives]:
            raise ArchpruneError(f"storage {url!r} holds run {run!r} with objectives {','.join(stored)}, not "
                                 f"{','.join(str(o) for o in self.objectives)}; pick another --run")
        if stored is None:
            self.study.set_user_attr("objectives", [str(o) for o in self.objectives])
            with warnings.catch_warnings():  # experimental since Optuna 3.2, yet what the dashboard reads
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                self.study.set_metric_names(names)
        self.genes = list(genes) if genes is not None else self._stored_genes()
        self.distributions = {g.name: IntDistribution(0, len(g.choices) - 1) for g in self.genes}
        self._by_genome: dict[Genome, TrialRecord] = {}
        for trial in self.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.FAIL)):
            if trial.user_attrs.get("interrupted"):
                continue  # never finished: not a trial of the run (its candidate is asked again)
            record = self._record(trial)
            self._by_genome.setdefault(record.genome, record)

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
             constraints: dict[str, float] | None, asked: optuna.Trial | None = None) -> TrialRecord:
        if asked is not None:  # an Optuna driver asked for this trial: finish it rather than add another
            for key, value in user_attrs.items():
                asked.set_user_attr(key, value)
            for key, value in (constraints or {}).items():
                asked.set_constraint(key, value)
            self.study.tell(asked, values, state=state)
            number = asked.number
        else:
            params = {g.name: int(choice) for g, choice in zip(self.genes, genome)}
            trial = optuna.trial.create_trial(state=state, values=values, params=params,
                                              distributions=self.distributions, user_attrs=user_attrs,
                                              constraints=constraints or None)
            # Study.add_trial does not hand back the trial; the storage call it makes does (race-free
            # when several processes write to one study)
            trial_id = self.storage.create_new_trial(self._study_id, template_trial=trial)
            number = self.storage.get_trial_number_from_id(trial_id)
        record = _make_record(number, tuple(genome), state, values, user_attrs, constraints)
        self._by_genome.setdefault(record.genome, record)
        return record

    def add_complete(self, genome: Genome, metrics: dict[str, Any], constraints: dict[str, float],
                     config: dict[str, Any], timings: dict[str, float], source: str,
                     skipped: Sequence[str] = (), asked: optuna.Trial | None = None) -> TrialRecord:
        values = [float(metrics[o.name]) if o.name in metrics else o.worst for o in self.objectives]
        attrs = {"metrics": metrics, "config": config, "timings": timings, "source": source}
        if skipped:
            attrs["skipped"] = list(skipped)
        return self._add(genome, TrialState.COMPLETE, values, attrs, constraints, asked)

    def add_failed(self, genome: Genome, error: str, config: dict[str, Any], timings: dict[str, float],
                   source: str, asked: optuna.Trial | None = None) -> TrialRecord:
        attrs = {"error": error, "config": config, "timings": timings, "source": source}
        return self._add(genome, TrialState.FAIL, None, attrs, None, asked)

    # -- trials an Optuna driver asked for ---------------------------------------------------
    def close_duplicate(self, asked: optuna.Trial, record: TrialRecord) -> None:
        """An asked candidate already in the store: answered from it, so this trial is PRUNED (not counted)."""
        asked.set_user_attr("duplicate_of", record.number)
        self.study.tell(asked, state=TrialState.PRUNED)

    def abandon(self, asked: optuna.Trial, reason: str) -> None:
        """A trial asked but never evaluated (the search stopped): FAIL it as interrupted and queue
        its candidate to be asked first next time."""
        asked.set_user_attr("interrupted", reason)
        self.study.tell(asked, state=TrialState.FAIL)
        self.study.enqueue_trial(asked.params, user_attrs={"source": "retry"})

    def recover_interrupted(self) -> int:
        """RUNNING trials left by a killed search process (one process per run): FAIL them as
        interrupted and queue their candidates again. Returns how many."""
        stale = self.study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
        for trial in stale:
            self.storage.set_trial_user_attr(trial._trial_id, "interrupted", "the search process stopped during it")
            self.study.tell(trial.number, state=TrialState.FAIL)
            self.study.enqueue_trial(trial.params, user_attrs={"source": "retry"})
        return len(stale)
