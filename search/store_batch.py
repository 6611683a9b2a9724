"""Writing many finished trials to RDB storage in one transaction.

Optuna writes a trial with one ORM round trip per parameter and attribute (tens of milliseconds on
SQLite for a 16-gene block structure), and has no batch call. A zero-shot search scores a
structure in about a millisecond, so one-by-one writes would be most of its time. This writes
the same rows Optuna's own ``create_new_trial`` writes (through Optuna's ORM models, so the
schema stays Optuna's) for a whole batch, with a single commit, together with the batch's rows of
the store's own index (search/store_index.py), so the two never disagree. Anything that is not an
``RDBStorage`` takes the ordinary path.
"""
from __future__ import annotations

import json
from typing import Any, Callable, Sequence

import optuna
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

    rows = []
    with _create_scoped_session(storage.scoped_session) as session:
        for t in trials:
            row = models.TrialModel(study_id=study_id, number=None, state=t.state,
                                    datetime_start=t.datetime_start, datetime_complete=t.datetime_complete)
            for objective, value in enumerate(t.values or ()):
                stored, kind = models.TrialValueModel.value_to_stored_repr(value)
                row.values.append(models.TrialValueModel(objective=objective, value=stored, value_type=kind))
            for name, value in t.params.items():
                dist = t.distributions[name]
                row.params.append(models.TrialParamModel(param_name=name, param_value=dist.to_internal_repr(value),
                                                         distribution_json=distribution_to_json(dist)))
            for key, value in t.user_attrs.items():
                row.user_attributes.append(models.TrialUserAttributeModel(key=key, value_json=json.dumps(value)))
            for key, value in t.system_attrs.items():
                row.system_attributes.append(models.TrialSystemAttributeModel(key=key, value_json=json.dumps(value)))
            session.add(row)
            rows.append(row)
        session.flush()  # trial ids assigned; a trial's number counts the study's trials before it
        # Optuna numbers a trial by counting the study's trials before it, a scan that grows with
        # the store: count once for the batch's first row, then rows with consecutive ids follow it
        # (always on SQLite, which locks the file for the batch; a concurrent PostgreSQL writer can
        # interleave ids, and then that row is counted as Optuna would)
        for k, row in enumerate(rows):
            consecutive = k > 0 and row.trial_id == rows[0].trial_id + k
            row.number = rows[0].number + k if consecutive else row.count_past_trials(session)
        numbered = [(int(row.trial_id), int(row.number)) for row in rows]
        if index_rows is not None:
            store_index.insert_rows(session.connection(), index_rows(numbered))
    return numbered
