"""The store's compact index (search/store_index.py) reads exactly what Optuna's own tables hold.

Every test compares the two read paths of one store: the index (what a run opens now) and Optuna's
ORM (what the store read before the index existed, and what the dashboard reads), on stores with
every kind of trial, written by several processes, or cut by SIGKILL mid-batch.
"""
from __future__ import annotations

import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from search.objectives import Objective
from search.store import Store
from search.store_index import TABLE_NAME
from tests.search_toys import ToySpace

OBJECTIVES = [Objective("size", "min"), Objective("quality", "max")]
GENES = ToySpace().genes
ROOT = Path(__file__).resolve().parents[1]


def _fields(store: Store) -> list[tuple]:
    return [(r.number, r.genome, r.failed, r.values, dict(r.metrics), dict(r.constraints), dict(r.config), r.source, r.error)
            for r in store.records()]


def _orm_fields(url: str, run: str, tmp_path: Path) -> list[tuple]:
    """The same store read through Optuna's ORM: a copy without the index, opened read-only."""
    copy = tmp_path / f"orm-{time.monotonic_ns()}.db"
    shutil.copy(url[len("sqlite:///"):], copy)
    with sqlite3.connect(copy) as db:
        db.execute(f"DROP TABLE {TABLE_NAME}")
    store = Store(f"sqlite:///{copy}", run, OBJECTIVES, genes=None, read_only=True)
    assert not store._indexed  # really the old path
    return _fields(store)


def _complete(store: Store, genome: tuple, size: float, quality: float, over: float = -1.0, **kw) -> None:
    store.add_complete(genome, {"size": size, "quality": quality}, {"size<=9": over},
                       {"groups": dict(zip([g.name for g in GENES], genome))}, {"total_s": 0.1}, "toy", **kw)


def _mixed_store(url: str, run: str = "mix") -> Store:
    store = Store(url, run, OBJECTIVES, GENES)
    _complete(store, (3, 3, 3, 3, 3), 15, 0.9, over=6.0)  # infeasible
    _complete(store, (1, 1, 1, 1, 1), 5, 0.5)
    store.add_failed((0, 1, 2, 3, 0), "RuntimeError: out of memory\ntraceback...", {"groups": {}}, {}, "random")
    for i in range(4):  # one batch, one transaction
        _complete(store, (2, i, 0, 0, 0), 2 + i, 0.1 * i, defer=True)
    store.flush()
    asked = store.ask()  # an Optuna driver's trial, finished by tell
    _complete(store, tuple(asked.params[g.name] for g in GENES), 7, 0.7, asked=asked)
    duplicate = store.ask()
    store.close_duplicate(duplicate, of=1)  # PRUNED: not a record
    store.ask()  # left RUNNING
    interrupted = store.ask()
    store.abandon(interrupted, "stopped")  # FAIL without error, and a WAITING retry
    return store


def test_the_index_reads_what_optuna_holds_for_every_kind_of_trial(tmp_path) -> None:
    url = f"sqlite:///{tmp_path / 'mix.db'}"
    writer = _mixed_store(url)
    states = {t.state for t in writer.study.get_trials()}
    assert states == {TrialState.COMPLETE, TrialState.FAIL, TrialState.PRUNED, TrialState.RUNNING,
                      TrialState.WAITING}
    reader = Store(url, "mix", OBJECTIVES, genes=None, read_only=True)
    assert reader._indexed
    fields = _fields(reader)
    assert len(fields) == 8 and sum(f[2] for f in fields) == 1  # 7 complete, 1 failed; no others
    assert fields == _orm_fields(url, "mix", tmp_path) == _fields(writer)
    assert [(r.number, r.genome) for r in reader.records() if not r.feasible] == [(0, (3, 3, 3, 3, 3)), (2, (0, 1, 2, 3, 0))]


def test_several_processes_on_one_store_read_alike(tmp_path) -> None:
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    Store(url, "shared", OBJECTIVES, GENES)  # created once (two processes creating one SQLite file race)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    workers = [subprocess.Popen([sys.executable, "-m", "tests.shared_study_worker", url, "shared", "12", "-",
                                 driver, "0.05"], cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True)
               for driver in ("optuna-tpe", "nsga2")]
    for worker in workers:
        assert worker.wait(timeout=300) == 0, worker.stdout.read()
    reader = Store(url, "shared", OBJECTIVES, genes=None, read_only=True)
    fields = _fields(reader)
    assert len(fields) >= 12 and len({f[1] for f in fields}) == len(fields)
    assert fields == _orm_fields(url, "shared", tmp_path)


_BATCH_WRITER = """
import sys, itertools
from search.objectives import Objective
from search.store import Store
from tests.search_toys import ToySpace
store = Store(sys.argv[1], "kill", [Objective("size", "min"), Objective("quality", "max")], ToySpace().genes)
genomes = itertools.product(range(4), repeat=5)
print("ready", flush=True)
for batch in range(10**6):
    for _ in range(50):
        g = next(genomes)
        store.add_complete(g, {"size": sum(g), "quality": 0.5}, {}, {"groups": {}}, {}, "toy", defer=True)
    store.flush()
"""


def test_a_sigkill_mid_batch_leaves_whole_batches_that_both_paths_read_alike(tmp_path) -> None:
    url = f"sqlite:///{tmp_path / 'kill.db'}"
    writer = subprocess.Popen([sys.executable, "-c", _BATCH_WRITER, url], cwd=ROOT,
                              env={**os.environ, "PYTHONPATH": str(ROOT)}, stdout=subprocess.PIPE, text=True)
    assert writer.stdout.readline().strip() == "ready"
    time.sleep(2.0)  # dozens of batches in, one of them being written
    writer.send_signal(signal.SIGKILL)
    writer.wait()
    reader = Store(url, "kill", OBJECTIVES, genes=None, read_only=True)
    fields = _fields(reader)
    assert fields and len(fields) % 50 == 0  # no half batch: trials and index rows commit together
    assert fields == _orm_fields(url, "kill", tmp_path)
    resumed = Store(url, "kill", OBJECTIVES, GENES)  # and a resume carries on from there
    assert len(resumed) == len(fields)


def test_a_trial_told_but_never_indexed_is_reconciled_on_open(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    url = f"sqlite:///{tmp_path / 'told.db'}"
    store = Store(url, "told", OBJECTIVES, GENES)
    _complete(store, (1, 1, 1, 1, 1), 5, 0.5)
    asked = store.ask()

    def killed(*_args) -> None:
        raise KeyboardInterrupt  # the process dies between Optuna's tell and the index row

    monkeypatch.setattr(Store, "_indexed_now", killed)
    with pytest.raises(KeyboardInterrupt):
        _complete(store, tuple(asked.params[g.name] for g in GENES), 7, 0.7, asked=asked)
    monkeypatch.undo()
    with sqlite3.connect(tmp_path / "told.db") as db:
        assert db.execute(f"SELECT count(*) FROM {TABLE_NAME}").fetchone()[0] == 1
    read_only = Store(url, "told", OBJECTIVES, genes=None, read_only=True)
    assert len(read_only) == 2 and _fields(read_only) == _orm_fields(url, "told", tmp_path)
    Store(url, "told", OBJECTIVES, GENES)  # a writable open indexes it
    with sqlite3.connect(tmp_path / "told.db") as db:
        assert db.execute(f"SELECT count(*) FROM {TABLE_NAME}").fetchone()[0] == 2


def test_a_store_written_before_the_index_is_read_then_indexed(tmp_path) -> None:
    url = f"sqlite:///{tmp_path / 'old.db'}"
    expected = _fields(_mixed_store(url))
    with sqlite3.connect(tmp_path / "old.db") as db:
        db.execute(f"DROP TABLE {TABLE_NAME}")
    assert _fields(Store(url, "mix", OBJECTIVES, genes=None, read_only=True)) == expected  # read, not written
    with sqlite3.connect(tmp_path / "old.db") as db:
        assert not db.execute("SELECT name FROM sqlite_master WHERE name = ?", (TABLE_NAME,)).fetchall()
    assert _fields(Store(url, "mix", OBJECTIVES, GENES)) == expected  # writable: indexed ...
    with sqlite3.connect(tmp_path / "old.db") as db:  # ... the interrupted trial too, as one to skip
        assert db.execute(f"SELECT count(*), sum(skip) FROM {TABLE_NAME}").fetchone() == (9, 1)


def test_genes_in_another_order_read_the_same_genomes(tmp_path) -> None:
    url = f"sqlite:///{tmp_path / 'order.db'}"
    _complete(Store(url, "o", OBJECTIVES, GENES), (0, 1, 2, 3, 0), 6, 0.2)
    reordered = Store(url, "o", OBJECTIVES, GENES[::-1])
    assert reordered.records()[0].genome == (0, 3, 2, 1, 0)
    other = ToySpace(n_genes=6).genes
    with pytest.raises(Exception, match="other genes"):
        Store(url, "o", OBJECTIVES, other)


def test_optuna_reads_a_study_the_index_path_wrote(tmp_path) -> None:
    """The dashboard and the samplers read Optuna's tables: those stay complete."""
    url = f"sqlite:///{tmp_path / 'mix.db'}"
    _mixed_store(url)
    study = optuna.load_study(study_name="mix", storage=url)
    complete = study.get_trials(states=(TrialState.COMPLETE,))
    assert len(complete) == 7 and all(t.user_attrs["metrics"] and t.params for t in complete)
    assert study.metric_names == ["size", "quality"]


def test_on_postgresql_the_index_reads_what_optuna_holds(monkeypatch: pytest.MonkeyPatch) -> None:
    """The bulk inserts, the on-conflict rule and the numbering on the distributed storage."""
    from tests.test_distributed import POSTGRES, _postgres_or_skip

    _postgres_or_skip()
    run = f"mix-{os.getpid()}-{time.monotonic_ns()}"
    writer = _mixed_store(POSTGRES, run)
    reader = Store(POSTGRES, run, OBJECTIVES, genes=None, read_only=True)
    assert reader._indexed
    fields = _fields(reader)
    monkeypatch.setattr("search.store_index.exists", lambda engine: False)
    orm = Store(POSTGRES, run, OBJECTIVES, genes=None, read_only=True)
    assert not orm._indexed
    assert len(fields) == 8 and fields == _fields(orm) == _fields(writer)
    assert sorted(t.number for t in writer.study.get_trials()) == list(range(12))  # Optuna's own numbering


def test_one_trial_is_read_alone_and_equals_the_whole_read(tmp_path) -> None:
    """`export --trial N` on a read-only run reads trial N's row, not the run."""
    url = f"sqlite:///{tmp_path / 'mix.db'}"
    writer = _mixed_store(url)
    whole = {r.number: r for r in Store(url, "mix", OBJECTIVES, genes=None, read_only=True).records()}
    for number, expected in whole.items():
        lazy = Store(url, "mix", OBJECTIVES, genes=None, read_only=True)
        got = lazy.record(number)
        assert not lazy._opened  # one row read
        assert (got.number, got.genome, got.failed, got.values, got.metrics, got.constraints, dict(got.config),
                got.source, got.error) == (expected.number, expected.genome, expected.failed, expected.values,
                                           expected.metrics, expected.constraints, dict(expected.config),
                                           expected.source, expected.error)
    interrupted = max(t.number for t in writer.study.get_trials() if t.state == TrialState.FAIL)
    lazy = Store(url, "mix", OBJECTIVES, genes=None, read_only=True)
    assert lazy.record(interrupted) is None and lazy.record(999) is None  # not records of the run


def test_rows_written_before_the_metrics_became_text_read_the_same(tmp_path) -> None:
    import json

    url = f"sqlite:///{tmp_path / 'mix.db'}"
    writer = _mixed_store(url)
    with sqlite3.connect(tmp_path / "mix.db") as db:  # rewrite every row as the older code wrote it
        rows = db.execute(f"SELECT seq, data FROM {TABLE_NAME}").fetchall()
        assert all(isinstance(json.loads(data)[4], str) for _, data in rows)  # now: metrics as JSON text
        old = [(json.dumps([*d[:4], json.loads(d[4]), *d[5:]]), seq) for seq, d in
               ((seq, json.loads(data)) for seq, data in rows)]
        db.executemany(f"UPDATE {TABLE_NAME} SET data = ? WHERE seq = ?", old)
    reader = Store(url, "mix", OBJECTIVES, genes=None, read_only=True)
    assert _fields(reader) == _fields(writer) == _orm_fields(url, "mix", tmp_path)
    assert [dict(r.metrics) for r in reader.records()] == [dict(r.metrics) for r in writer.records()]


def test_batched_trials_are_numbered_as_optuna_numbers_them_among_its_own(tmp_path) -> None:
    """Optuna's rule: a trial's number is the count of the study's trials with a smaller id, across
    studies sharing the database and trials Optuna itself created (an asked trial, a failed ask)."""
    url = f"sqlite:///{tmp_path / 'n.db'}"
    store, other = Store(url, "n", OBJECTIVES, GENES), Store(url, "other", OBJECTIVES, GENES)
    for step in range(3):
        for i in range(3):
            _complete(store, (step, i, 1, 1, 1), 2 + i, 0.1 * i, defer=True)
        store.flush()
        _complete(other, (step, 0, 0, 0, 0), 1, 0.5)  # ids of another study in between
        asked = store.study.ask()  # a trial Optuna numbers itself
        store.study.tell(asked, state=TrialState.FAIL)
    with sqlite3.connect(tmp_path / "n.db") as db:
        rows = db.execute("SELECT trial_id, study_id, number FROM trials ORDER BY trial_id").fetchall()
    for trial_id, study_id, number in rows:
        assert number == sum(1 for t, s, _ in rows if s == study_id and t < trial_id)
    assert sorted(r.number for r in store.records()) == [0, 1, 2, 4, 5, 6, 8, 9, 10]
