"""Evaluation on many workers: a local pool, Dask, and several search processes on one PostgreSQL study."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from pathlib import Path

import optuna
import pytest

from search.objectives import Objective
from search.runner import search
from tests.search_toys import KillOnceEvaluator, QualityEvaluator, SizeEvaluator, ToySpace

OBJECTIVES = [Objective("size", "min"), Objective("quality", "max")]
# the README's URL form: a plain postgresql:// URL (SQLAlchemy 2.1 maps it to psycopg 3)
POSTGRES = os.environ.get("ARCHPRUNE_TEST_POSTGRES", "postgresql://archprune:archprune@127.0.0.1:5432/archprune_test")
ROOT = Path(__file__).resolve().parents[1]


def front_of(**executor: object) -> list[tuple]:
    result = search(ToySpace(), [SizeEvaluator(), QualityEvaluator()], OBJECTIVES, imgsz=32, trials=24, seed=5,
                    progress=False, driver=executor.pop("driver"), driver_options={"population": 8, "offspring": 6},
                    **executor)
    assert len(result.store) == 24
    return sorted((r.genome, r.values) for r in result.front)


@pytest.mark.slow
@pytest.mark.parametrize("driver", ["nsga2", "random"])
def test_dask_and_a_worker_pool_find_the_same_front_as_one_process(driver: str) -> None:
    alone = front_of(driver=driver, executor="inline")
    assert front_of(driver=driver, dask="local:2") == alone
    assert front_of(driver=driver, workers=2) == alone


@pytest.mark.slow
def test_a_dask_worker_killed_mid_evaluation_does_not_lose_its_candidate(tmp_path: Path) -> None:
    victim = (3, 3, 3, 3, 3)  # the unpruned baseline: always proposed first
    marker = tmp_path / "killed"
    result = search(ToySpace(), [SizeEvaluator(), KillOnceEvaluator(victim, str(marker)), QualityEvaluator()],
                    OBJECTIVES, imgsz=32, trials=10, progress=False, driver="random", dask="local:2",
                    candidate_timeout_s=120)
    assert marker.exists()  # a worker did die under the candidate
    records = {r.genome: r for r in result.store.records()}
    assert len(records) == 10 and not any(r.failed for r in records.values())
    assert records[victim].values == (15.0, pytest.approx(sum(2 * (i + 1) for i in range(5))))  # re-run elsewhere


def test_unknown_dask_address_forms_are_one_line_errors() -> None:
    from search.executors.dask_cluster import connect
    from spaces.errors import ArchpruneError

    for address, message in (("local:0", "number of local workers"), ("myhost:8786", "tcp://HOST:8786")):
        with pytest.raises(ArchpruneError, match=message):
            connect(address)


# -- many processes on one PostgreSQL study ------------------------------------------------------
def _postgres_or_skip() -> None:
    import sqlalchemy

    try:
        sqlalchemy.create_engine(POSTGRES, connect_args={"connect_timeout": 3}).connect().close()
    except Exception as err:
        reason = f"no PostgreSQL at {POSTGRES} ({str(err).splitlines()[0]}); start one with .ci/start-postgres"
        if os.environ.get("CI"):
            pytest.fail(reason)  # CI starts the server: missing there is a broken setup, not a skip
        pytest.skip(reason)


def _search_process(run: str, trials: int, hang_after: int | None = None) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    extra = [str(hang_after)] if hang_after is not None else []
    return subprocess.Popen([sys.executable, "-m", "tests.shared_study_worker", POSTGRES, run, str(trials), *extra],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _trials(run: str) -> list[optuna.trial.FrozenTrial]:
    return optuna.load_study(study_name=run, storage=POSTGRES).get_trials(deepcopy=False)


@pytest.mark.slow
def test_two_processes_share_a_postgres_study_and_a_killed_one_loses_nothing() -> None:
    _postgres_or_skip()
    run, trials = f"shared-{uuid.uuid4().hex[:8]}", 24
    first = _search_process(run, trials, hang_after=4)  # hangs in its 5th candidate: killed there
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not any(t.state.is_finished() for t in _safe_trials(run)):
        time.sleep(0.2)
    second = _search_process(run, trials)
    mine = f":{first.pid}"
    while time.monotonic() < deadline:
        ours = [t for t in _safe_trials(run) if str(t.user_attrs.get("worker", "")).endswith(mine)]
        if len(ours) == 5 and ours[-1].state == optuna.trial.TrialState.RUNNING and len(ours[-1].params) == 5:
            break  # killed in its candidate's evaluation (a kill while drawing genes: test_search_runner)
        time.sleep(0.1)
    first.send_signal(signal.SIGKILL)
    first.wait()
    killed = ours[-1].number
    kept = {t.number: t.params for t in _trials(run) if t.state == optuna.trial.TrialState.COMPLETE}
    restarted = _search_process(run, trials)
    for proc in (second, restarted):
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err
    final = _trials(run)
    complete = [t for t in final if t.state == optuna.trial.TrialState.COMPLETE]
    by_number = {t.number: t for t in final}
    try:
        assert all(by_number[n].state == optuna.trial.TrialState.COMPLETE and by_number[n].params == p
                   for n, p in kept.items())  # every finished trial kept
        assert by_number[killed].state == optuna.trial.TrialState.FAIL  # the killed one never counts ...
        reruns = [t for t in complete if t.params == by_number[killed].params]
        assert len(reruns) == 1  # ... and its candidate was evaluated again, once
        genomes = Counter(tuple(sorted(t.params.items())) for t in complete)
        assert max(genomes.values()) == 1  # no duplicated finished work
        assert len(complete) == trials
    finally:
        optuna.delete_study(study_name=run, storage=POSTGRES)


def _safe_trials(run: str) -> list[optuna.trial.FrozenTrial]:
    try:
        return _trials(run)
    except KeyError:  # the study does not exist yet
        return []
