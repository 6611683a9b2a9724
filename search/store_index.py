"""A compact index of a run's finished trials, kept in the study's own database.

Optuna spreads a trial over ~26 rows in six tables (one per parameter, value and attribute) and
reads them back through its ORM: opening a 50,000-trial zero-shot store took 45 s, and the
cached FrozenTrials held ~6 KiB a trial. A search needs of each finished trial only its number,
genome, values, metrics, constraints, source and error, so each finished trial also gets one row
here, holding those as one JSON text; opening a run reads this table alone (SQLAlchemy Core, no
ORM objects) and the config, which only a plot or an export needs, is read per trial on demand.

The index is kept in step with Optuna's tables, which stay the truth (the dashboard, the samplers
and older archprune read those):
- a batch of trials the store writes itself gets its rows in the same transaction as the trials;
- a trial an Optuna driver asked for is finished by ``tell`` and indexed just after; a process
  killed between the two leaves a finished trial without a row, and every open *reconciles*:
  finished trials with no row are read through Optuna and indexed (so is a store written before
  this index existed, once);
- rows are numbered by ``seq`` in insertion order, so a refresh reads only rows it has not seen.
  Concurrent writers on PostgreSQL may commit seq numbers out of order; a refresh re-reads a window
  of ``REREAD`` rows before its last seq and skips what it already has (SQLite, one writer at a
  time, commits in seq order and re-reads nothing).
"""
from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from typing import Any, Iterable, Iterator, Mapping, Sequence

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from optuna.storages._rdb import models
from optuna.trial import TrialState

from search.shared_keys import JsonMapping, KeyTuples, SharedKeyMapping

TABLE_NAME = "archprune_records"
GENES_ATTR = "archprune:genes"  # study system attribute: the gene names, in the order rows store genomes
REREAD = 1000
DECODE_CHUNK = 5000

METADATA = sa.MetaData()
RECORDS = sa.Table(
    TABLE_NAME, METADATA,
    sa.Column("seq", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("trial_id", sa.Integer, nullable=False, unique=True),
    sa.Column("study_id", sa.Integer, nullable=False, index=True),
    # an interrupted trial (FAIL without error text): not a record of the run, indexed so that
    # reconciling does not read it through Optuna again at every open
    sa.Column("skip", sa.Boolean, nullable=False, default=False),
    # [number, failed, genome, values, metrics (JSON text; an object in rows written before), constraints, source, error]
    sa.Column("data", sa.Text, nullable=False),
)
TRIALS = models.TrialModel.__table__


@dataclass(slots=True)
class IndexedTrial:
    """One index row, decoded."""

    seq: int
    trial_id: int
    skip: bool
    number: int
    failed: bool
    genome: tuple[int, ...]
    values: tuple[float, ...]
    metrics: SharedKeyMapping | JsonMapping
    constraints: SharedKeyMapping
    source: str
    error: str | None


def encode(number: int, failed: bool, genome: Sequence[int], values: Sequence[float] | None,
           metrics: Mapping[str, Any], constraints: Mapping[str, float] | None, source: str,
           error: str | None) -> str:
    # the metrics as a JSON text inside the row: decoded only when read (shared_keys.JsonMapping)
    return json.dumps([number, bool(failed), [int(c) for c in genome], list(values or ()),
                       json.dumps(dict(metrics), separators=(",", ":")),
                       dict(constraints or {}), source, error], separators=(",", ":"))


def decode_rows(result: sa.CursorResult) -> Iterator[tuple[tuple[Any, ...], list[Any]]]:
    """((seq, trial_id, skip, data), [number, failed, genome, values, metrics, constraints, source,
    error]) per row, decoded in chunks (fetched by ``fetchmany``), each chunk one ``json.loads`` of
    a JSON array: a call per row cost more than the parsing, and one parse shares the key strings
    of all the rows it holds."""
    for chunk in result.partitions(DECODE_CHUNK):
        yield from zip(chunk, json.loads("[" + ",".join([r[3] for r in chunk]) + "]"))


def decode_all(result: sa.CursorResult, keys: KeyTuples) -> Iterator[IndexedTrial]:
    mapping, intern = keys.mapping, sys.intern
    for (seq, trial_id, skip, _), (number, failed, genome, values, metrics, constraints, source, error) \
            in decode_rows(result):
        # rows written before the metrics became text hold them as an object
        yield IndexedTrial(seq, trial_id, skip, number, failed, tuple(genome), tuple(values),
                           JsonMapping(metrics, keys) if isinstance(metrics, str) else mapping(metrics),
                           mapping(constraints), intern(source), error)


def row_of_number(conn: sa.Connection, study_id: int, number: int, keys: KeyTuples) -> IndexedTrial | None:
    """The row of the study's trial ``number``, or None when it has none."""
    query = (sa.select(RECORDS.c.seq, RECORDS.c.trial_id, RECORDS.c.skip, RECORDS.c.data)
             .join(TRIALS, TRIALS.c.trial_id == RECORDS.c.trial_id)
             .where(TRIALS.c.study_id == study_id, TRIALS.c.number == number))
    return next(decode_all(conn.execute(query), keys), None)


def row_of_trial(conn: sa.Connection, trial_id: int, keys: KeyTuples) -> IndexedTrial | None:
    """The row of trial ``trial_id``, or None when it has none (yet)."""
    query = sa.select(RECORDS.c.seq, RECORDS.c.trial_id, RECORDS.c.skip, RECORDS.c.data).where(
        RECORDS.c.trial_id == trial_id)
    return next(decode_all(conn.execute(query), keys), None)


def exists(engine: sa.Engine) -> bool:
    return sa.inspect(engine).has_table(TABLE_NAME)


def create(engine: sa.Engine) -> None:
    METADATA.create_all(engine, checkfirst=True)


def insert_rows(conn: sa.Connection, rows: Iterable[dict[str, Any]]) -> None:
    """Insert rows, ignoring any whose trial is indexed already (another process reconciled it)."""
    rows = list(rows)
    if not rows:
        return
    dialect = conn.dialect.name
    if dialect in ("sqlite", "postgresql"):
        insert = (sqlite.insert if dialect == "sqlite" else postgresql.insert)(RECORDS)
        conn.execute(insert.on_conflict_do_nothing(index_elements=["trial_id"]), rows)
    elif dialect in ("mysql", "mariadb"):
        conn.execute(RECORDS.insert().prefix_with("IGNORE"), rows)
    else:  # no portable upsert: one at a time, a duplicate skipped
        for row in rows:
            try:
                with conn.begin_nested():
                    conn.execute(RECORDS.insert(), [row])
            except sa.exc.IntegrityError:
                pass


def read_since(conn: sa.Connection, study_id: int, after_seq: int,
               reread: int = REREAD) -> Iterator[tuple[tuple[Any, ...], list[Any]]]:
    """The study's rows after ``after_seq`` (minus the ``reread`` window), in seq order, decoded as
    they are read (``decode_rows``: a 500,000-trial run's rows are never all in memory at once)."""
    query = (sa.select(RECORDS.c.seq, RECORDS.c.trial_id, RECORDS.c.skip, RECORDS.c.data)
             .where(RECORDS.c.study_id == study_id, RECORDS.c.seq > max(0, after_seq - reread))
             .order_by(RECORDS.c.seq))
    return decode_rows(conn.execute(query))


def unindexed_finished(conn: sa.Connection, study_id: int) -> list[int]:
    """Trial ids of the study's finished trials that have no row (killed between tell and index, or
    written before the index existed)."""
    indexed = sa.select(RECORDS.c.trial_id).where(RECORDS.c.trial_id == TRIALS.c.trial_id)
    query = (sa.select(TRIALS.c.trial_id)
             .where(TRIALS.c.study_id == study_id,
                    TRIALS.c.state.in_([TrialState.COMPLETE, TrialState.FAIL]), ~indexed.exists())
             .order_by(TRIALS.c.trial_id))
    return [int(r[0]) for r in conn.execute(query)]


def trial_ids_in_state(conn: sa.Connection, study_id: int, state: TrialState) -> list[int]:
    query = (sa.select(TRIALS.c.trial_id).where(TRIALS.c.study_id == study_id, TRIALS.c.state == state)
             .order_by(TRIALS.c.trial_id))
    return [int(r[0]) for r in conn.execute(query)]


def first_trial_id(conn: sa.Connection, study_id: int) -> int | None:
    row = conn.execute(sa.select(sa.func.min(TRIALS.c.trial_id)).where(TRIALS.c.study_id == study_id)).first()
    return None if row is None or row[0] is None else int(row[0])


def config_of(conn: sa.Connection, trial_id: int) -> dict[str, Any]:
    """A trial's config (its user attribute), read when a plot or an export asks for it."""
    table = models.TrialUserAttributeModel.__table__
    row = conn.execute(sa.select(table.c.value_json)
                       .where(table.c.trial_id == trial_id, table.c.key == "config")).first()
    return dict(json.loads(row[0])) if row is not None else {}
