"""Writing many finished trials to RDB storage in one transaction.

Optuna writes a trial with one ORM round trip per parameter and attribute (tens of milliseconds on
SQLite for a 16-gene block structure), and has no batch call. A zero-shot search scores a
structure in about a millisecond, so one-by-one writes would be most of its time. This writes
the same rows Optuna's own ``create_new_trial`` writes (into the tables of Optuna's ORM models, so
the schema stays Optuna's) for a whole batch, with SQLAlchemy Core bulk inserts (the ORM's unit of
work cost ~6 ms a trial, most of a zero-shot search's time) and a single commit, together with the batch's rows of
the store's own index (search/store_index.py), so the two never disagree. Anything that is not an
``RDBStorage`` takes the ordinary path.
"""
from __future__ import annotations

import functools
import json
from typing import Any, Callable, Sequence

import optuna
import sqlalchemy as sa
from optuna.distributions import distribution_to_json
from optuna.trial import FrozenTrial


IndexRows = Callable[[list[tuple[int, int]]], list[dict[str, Any]]]


def add_finished_trials(storage: optuna.storages.BaseStorage, study_id: int, trials: Sequence[FrozenTrial],
                        index_rows: IndexRows | None = None) -> list[tuple[int, int]]:
    """Add finished ``trials`` (built with ``optuna.trial.create_trial``); their (trial id, number)
    pairs, in order. ``index_rows`` turns those pairs into the index's rows, written in the same
    transaction (RDB storage only)."""
    if not isinstance(storage, optuna.storages.RDBStorage):
        ids = [storage.create_new_trial(study_id, template_trial=t) for t in trials]
        return [(i, storage.get_trial_number_from_id(i)) for i in ids]
    from search import store_index
    from optuna.storages._rdb import models
    from optuna.storages._rdb.storage import _create_scoped_session

    if not trials:
        return []
    with _create_scoped_session(storage.scoped_session) as session:
        conn = session.connection()  # Core statements inside the session's transaction
        trial_table = models.TrialModel.__table__
        inserted = conn.execute(
            trial_table.insert().returning(trial_table.c.trial_id, sort_by_parameter_order=True),
            [{"study_id": study_id, "number": None, "state": t.state, "datetime_start": t.datetime_start,
              "datetime_complete": t.datetime_complete} for t in trials])
        ids = [int(r[0]) for r in inserted]
        numbered = list(zip(ids, _numbers(conn, trial_table, study_id, ids)))
        conn.execute(trial_table.update().where(trial_table.c.trial_id == sa.bindparam("tid"))
                     .values(number=sa.bindparam("n")), [{"tid": i, "n": n} for i, n in numbered])
        values, params, user, system = [], [], [], []
        for trial_id, t in zip(ids, trials):
            for objective, value in enumerate(t.values or ()):
                stored, kind = models.TrialValueModel.value_to_stored_repr(value)
                values.append({"trial_id": trial_id, "objective": objective, "value": stored, "value_type": kind})
            for name, value in t.params.items():
                dist = t.distributions[name]
                params.append({"trial_id": trial_id, "param_name": name, "param_value": dist.to_internal_repr(value),
                               "distribution_json": _dist_json(dist)})
            user += [{"trial_id": trial_id, "key": k, "value_json": json.dumps(v)} for k, v in t.user_attrs.items()]
            system += [{"trial_id": trial_id, "key": k, "value_json": json.dumps(v)} for k, v in t.system_attrs.items()]
        for model, rows in ((models.TrialValueModel, values), (models.TrialParamModel, params),
                            (models.TrialUserAttributeModel, user), (models.TrialSystemAttributeModel, system)):
            if rows:
                conn.execute(model.__table__.insert(), rows)
        if index_rows is not None:
            store_index.insert_rows(conn, index_rows(numbered))
    return numbered


def _numbers(conn: sa.Connection, trial_table: sa.Table, study_id: int, ids: list[int]) -> list[int]:
    """Optuna's numbering: a trial's number is the count of the study's trials with a smaller id. That
    count is a scan that grows with the store, so it is made once for the batch's first id; ids
    consecutive with it follow (always on SQLite, which locks the file for the batch; a concurrent
    PostgreSQL writer can interleave ids, and then that trial is counted as Optuna would)."""
    def count_before(trial_id: int) -> int:
        return int(conn.execute(sa.select(sa.func.count(trial_table.c.trial_id)).where(
            trial_table.c.study_id == study_id, trial_table.c.trial_id < trial_id)).scalar_one())

    def after_previous(trial_id: int) -> int:
        # SQLite: the batch holds the file's write lock, so every earlier trial is committed with its
        # number, and numbers are dense (Optuna never deletes a trial): the previous one's number + 1
        # is the count, found through the study's index instead of counting 500,000 rows (15% of a
        # resumed search's time per trial at that size)
        previous = conn.execute(sa.select(trial_table.c.number).where(
            trial_table.c.study_id == study_id, trial_table.c.trial_id < trial_id)
            .order_by(trial_table.c.trial_id.desc()).limit(1)).first()
        if previous is None:
            return 0
        return int(previous[0]) + 1 if previous[0] is not None else count_before(trial_id)

    first = (after_previous if conn.dialect.name == "sqlite" else count_before)(ids[0])
    return [first + k if trial_id == ids[0] + k else count_before(trial_id) for k, trial_id in enumerate(ids)]


@functools.lru_cache(maxsize=256)
def _dist_json(dist: optuna.distributions.BaseDistribution) -> str:
    """Every trial of a space shares its distributions: serialised once, not once per gene per trial."""
    return distribution_to_json(dist)
