"""The search loop: trials, dedupe, budgets cheapest-first, failures, resume; drivers; the front."""
from __future__ import annotations

import math
import os
import socket
import signal
import subprocess
import sys
import time

import numpy as np
import optuna
import pytest

from search.drivers import DRIVERS, NSGA2Driver, Proposal
from search.drivers._base import Driver
from search.objectives import Constraint, Objective
from search.pareto import pareto_front
from search.runner import search
from search.store import TrialRecord
from tests.search_toys import QualityEvaluator, SizeEvaluator, ToySpace

OBJECTIVES = [Objective("size", "min"), Objective("quality", "max")]


def run(storage: str = "memory", trials: int = 30, driver: str = "nsga2", constraints=(), fail_on=(), seed=0,
        name: str = "toy"):
    size, quality = SizeEvaluator(), QualityEvaluator(fail_on)
    result = search(ToySpace(), [quality, size], OBJECTIVES, constraints, imgsz=32, driver=driver, storage=storage,
                    run=name, trials=trials, seed=seed, progress=False,
                    driver_options={"population": 8, "offspring": 6})
    return result, size, quality


@pytest.mark.parametrize("driver", DRIVERS.names())  # the driver family's suite: every registered driver
def test_each_driver_counts_distinct_trials_and_starts_from_the_baselines(driver: str) -> None:
    result, size, quality = run(trials=25, driver=driver)
    records = result.store.records()
    assert len(records) == 25 == size.calls  # every trial evaluated exactly once
    assert len({r.genome for r in records}) == 25  # a re-proposed candidate is answered from the store
    assert [r.source for r in records[:2]] == ["unpruned", "uniform-0.5"]  # baselines first, counted as trials
    trials = result.store.study.get_trials()
    complete = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert len(complete) == 25  # Optuna drivers may also hold PRUNED trials: repeats answered from the store
    assert all(t.state == optuna.trial.TrialState.PRUNED and "duplicate_of" in t.user_attrs
               for t in trials if t not in complete)
    assert trials[0].params == {f"g{i}": 3 for i in range(5)} and "metrics" in trials[0].user_attrs


def test_nsga2_beats_random_on_the_toy_front() -> None:
    def hv(driver: str) -> float:  # mean over seeds: one seed can be lucky
        return sum(pareto_front(run(trials=60, driver=driver, seed=s)[0].store.records(), OBJECTIVES,
                                reference=[16.0, 0.0]).hypervolume for s in range(3)) / 3

    assert hv("nsga2") > hv("random")


def test_a_broken_budget_stops_before_the_expensive_evaluator() -> None:
    result, size, quality = run(trials=30, constraints=[Constraint("size", "<=", 6)])
    records = result.store.records()
    infeasible = [r for r in records if not r.feasible]
    assert infeasible and quality.calls == len(records) - len(infeasible)  # never reached the proxy
    for r in infeasible:
        assert r.constraints["size<=6"] > 0 and r.values[1] == -math.inf  # unreached objective: worst
        assert r.values[0] == r.metrics["size"]
    trial = result.store.study.trials[infeasible[0].number]
    assert trial.constraints == {"size<=6": infeasible[0].constraints["size<=6"]}
    assert all(r.metrics["size"] <= 6 for r in pareto_front(records, OBJECTIVES).front)


def test_a_failing_candidate_is_recorded_as_failed_and_the_search_goes_on() -> None:
    doomed = (2, 0, 2, 0, 2)

    class Proposer(Driver):  # proposes the doomed genome first, then the baselines, twice
        def ask(self):
            return [Proposal(doomed, "test"), *[Proposal(g, n) for n, g in self.space.baselines()]]

        def tell(self, proposals, records):
            pass

    size, quality = SizeEvaluator(), QualityEvaluator(fail_on=(doomed,))
    space = ToySpace()
    result = search(space, [size, quality], OBJECTIVES, imgsz=32, driver=Proposer(space, OBJECTIVES), trials=3,
                    progress=False)
    failed = [t for t in result.store.study.trials if t.state == optuna.trial.TrialState.FAIL]
    assert len(failed) == 1 and "boom" in failed[0].user_attrs["error"]
    assert len(result.store) == 3 and quality.calls == 3


def test_resuming_replays_the_same_search(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("search.runner.STALL_LIMIT", 2)  # replayed generations are not a stall
    whole = run(storage=f"sqlite:///{tmp_path / 'a.db'}", trials=40)[0].store.records()
    url = f"sqlite:///{tmp_path / 'b.db'}"
    first = run(storage=url, trials=17)[0]
    assert len(first.store) == 17
    second, size, _ = run(storage=url, trials=40)
    assert size.calls == 23  # the 17 finished trials were answered from the store
    assert [r.genome for r in second.store.records()] == [r.genome for r in whole]


def test_an_exhausted_space_ends_the_search() -> None:
    space = ToySpace(n_genes=2, n_choices=2)
    result = search(space, [SizeEvaluator(), QualityEvaluator()], OBJECTIVES, imgsz=32, trials=10, progress=False,
                    driver_options={"population": 4, "offspring": 4})
    assert result.stopped == "exhausted" and len(result.store) == 4


def test_store_refuses_other_objectives_for_the_same_run(tmp_path) -> None:
    from search.store import Store
    from spaces.errors import ArchpruneError

    url = f"sqlite:///{tmp_path / 's.db'}"
    Store(url, "r", OBJECTIVES, ToySpace().genes)
    with pytest.raises(ArchpruneError, match="holds run 'r' with objectives size:min,quality:max"):
        Store(url, "r", [Objective("size", "min")], ToySpace().genes)


def _rec(n: int, values: tuple[float, ...], feasible: bool = True) -> TrialRecord:
    return TrialRecord(number=n, genome=(n,), failed=False, values=values,
                       constraints={} if feasible else {"c": 1.0})


def test_front_hypervolume_reference_and_knee() -> None:
    objectives = [Objective("latency_ms", "min"), Objective("map50_95", "max")]
    records = [_rec(0, (1.0, 0.2)), _rec(1, (2.0, 0.5)), _rec(2, (3.0, 0.6)), _rec(3, (2.5, 0.4)),
               _rec(4, (0.5, 0.9), feasible=False)]
    pf = pareto_front(records, objectives)
    assert [r.number for r in pf.front] == [0, 1, 2]  # 3 is dominated by 1; 4 is infeasible
    # worst feasible (3.0, 0.2) widened by 10% of each range (2.0, 0.4)
    assert pf.reference_point == pytest.approx([3.2, 0.16])
    # strips against (3.2, 0.16): [1,2]x[0.16,0.2] + [2,3]x[0.16,0.5] + [3,3.2]x[0.16,0.6]
    assert pf.hypervolume == pytest.approx(1 * 0.04 + 1 * 0.34 + 0.2 * 0.44)
    assert pf.knee.number == 1  # scaled: (0,1), (0.5,0.25), (1,0) -> (0.5, 0.25) is nearest the ideal
    assert pareto_front(records, objectives, reference=[4.0, 0.0]).hypervolume == pytest.approx(
        1 * 0.2 + 1 * 0.5 + 1 * 0.6)


def test_nsga2_selection_prefers_feasible_then_least_violation() -> None:
    from search.drivers.nsga2 import Member, select_survivors

    pool = [Member((0,), _rec(0, (1.0, 0.1))), Member((1,), _rec(1, (0.1, 0.9), feasible=False)),
            Member((2,), TrialRecord(2, (2,), False, (0.2, 0.8), constraints={"c": 0.1}))]
    chosen = select_survivors(pool, 2, [Objective("latency_ms", "min"), Objective("map50_95", "max")])
    assert [m.genome for m in chosen] == [(0,), (2,)]  # the feasible one, then the smaller violation
    assert isinstance(NSGA2Driver(ToySpace(), OBJECTIVES).initial(4)[0], Proposal)


def test_process_executor_gives_the_same_search_as_inline() -> None:
    def genomes_and_values(executor: str) -> list[tuple]:
        result = search(ToySpace(), [SizeEvaluator(), QualityEvaluator()], OBJECTIVES, imgsz=32, trials=20,
                        progress=False, executor=executor, driver_options={"population": 8, "offspring": 6})
        return [(r.genome, r.values) for r in result.store.records()]

    assert genomes_and_values("process") == genomes_and_values("inline")


@pytest.mark.slow
def test_a_hung_candidate_times_out_and_a_dying_worker_costs_only_its_candidate() -> None:
    from tests.search_toys import TrapEvaluator

    hang, crash = (2, 0, 2, 0, 2), (0, 2, 0, 2, 0)

    class Proposer(Driver):
        def ask(self):
            return [Proposal(hang, "test"), Proposal(crash, "test"), *[Proposal(g, n) for n, g in self.space.baselines()]]

        def tell(self, proposals, records):
            pass

    space = ToySpace()
    result = search(space, [SizeEvaluator(), QualityEvaluator(), TrapEvaluator(hang, crash)], OBJECTIVES, imgsz=32,
                    driver=Proposer(space, OBJECTIVES), trials=4, progress=False, executor="process",
                    candidate_timeout_s=3)
    records = result.store.records()
    assert [r.genome for r in records] == [hang, crash, *[g for _, g in space.baselines()]]
    assert records[0].failed and "TimeoutError" in records[0].error and "3 s" in records[0].error
    assert records[1].failed and "WorkerDied" in records[1].error and "twice" in records[1].error  # re-run once
    assert not records[2].failed and not records[3].failed  # fresh workers went on


def test_optuna_driver_reruns_a_trial_its_killed_process_left_running(tmp_path) -> None:
    from search.store import Store

    url = f"sqlite:///{tmp_path / 'o.db'}"
    first, _, _ = run(storage=url, trials=6, driver="optuna-tpe", name="o")
    dead = subprocess.Popen(["true"])
    dead.wait()  # a process id that no longer exists on this host
    stale = first.store.study.ask(first.store.distributions)  # as if that process died mid-candidate
    stale.set_user_attr("worker", f"{socket.gethostname()}:{dead.pid}")
    genome = tuple(stale.params[g.name] for g in ToySpace().genes)
    again, size, _ = run(storage=url, trials=10, driver="optuna-tpe", name="o")
    states = {t.number: t for t in again.store.study.get_trials()}
    assert states[stale.number].state == optuna.trial.TrialState.FAIL and states[stale.number].user_attrs["interrupted"]
    records = again.store.records()
    assert len(records) == 10 and size.calls == 4 and stale.number not in {r.number for r in records}
    assert genome in {r.genome for r in records}  # asked again first, evaluated once
    assert len(Store(url, "o", OBJECTIVES, ToySpace().genes)) == 10

def test_a_process_killed_while_drawing_a_trials_genes_leaves_a_run_that_opens_and_goes_on(tmp_path) -> None:
    from search.store import Store

    url = f"sqlite:///{tmp_path / 'g.db'}"
    first, _, _ = run(storage=url, trials=4, driver="optuna-tpe", name="g")
    dead = subprocess.Popen(["true"])
    dead.wait()
    half = first.store.study.ask()  # the worker is written, then the process dies after one gene of five
    half.set_user_attr("worker", f"{socket.gethostname()}:{dead.pid}")
    half.suggest_int(ToySpace().genes[0].name, 0, len(ToySpace().genes[0].choices) - 1)
    again, _, _ = run(storage=url, trials=6, driver="optuna-tpe", name="g")  # fails it: no candidate to ask again
    states = {t.number: t for t in again.store.study.get_trials()}
    assert states[half.number].state == optuna.trial.TrialState.FAIL
    assert not any(t.user_attrs.get("retry_of") == half.number for t in states.values())
    assert len(again.store.records()) == 6
    assert len(Store(url, "g", OBJECTIVES, ToySpace().genes)) == 6  # its unindexed FAIL row is read, not a KeyError


def test_a_trial_whose_heartbeat_stops_is_recovered_by_another_process(tmp_path) -> None:
    from search.store import Store

    url = f"sqlite:///{tmp_path / 'h.db'}"
    lost = Store(url, "h", OBJECTIVES, ToySpace().genes, heartbeat_s=1)
    trial = lost.ask()
    trial.set_user_attr("worker", "a-machine-elsewhere:4242")  # its process cannot be checked from here
    lost._live.clear()  # ... and it stops beating, as a machine that lost power would
    survivor = Store(url, "h", OBJECTIVES, ToySpace().genes, heartbeat_s=1)
    assert survivor.recover_stale() == 0  # fresh heartbeat: still someone's work
    time.sleep(5)  # three heartbeats of silence (SQLite keeps whole seconds)
    assert survivor.recover_stale() == 1
    states = {t.number: t.state for t in survivor.study.get_trials()}
    assert states[trial.number] == optuna.trial.TrialState.FAIL
    retry = survivor.study.get_trials(states=(optuna.trial.TrialState.WAITING,))[0]
    assert retry.system_attrs["fixed_params"] == trial.params and retry.user_attrs["source"] == "retry"
    assert len(survivor) == 0  # the lost trial never counts as a finished candidate


@pytest.mark.slow
@pytest.mark.parametrize("driver", ["nsga2", "random", "zeroshot", "optuna-tpe"])
def test_sigterm_leaves_a_consistent_store_and_the_same_command_resumes(driver: str, tmp_path) -> None:
    from pathlib import Path

    url, root = f"sqlite:///{tmp_path / 't.db'}", Path(__file__).resolve().parents[1]
    command = [sys.executable, "-m", "tests.shared_study_worker", url, "t", "16", "-", driver, "0.15"]
    env = {**os.environ, "PYTHONPATH": str(root)}
    proc = subprocess.Popen(command, cwd=root, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        time.sleep(0.1)
        try:
            finished = [t for t in optuna.load_study(study_name="t", storage=url).get_trials()
                        if t.state == optuna.trial.TrialState.COMPLETE]
        except KeyError:  # no study yet
            continue
        if len(finished) >= 5:
            break
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0 and "stopping after the current candidate" in err, err
    trials = optuna.load_study(study_name="t", storage=url).get_trials()
    assert not [t for t in trials if t.state == optuna.trial.TrialState.RUNNING]  # nothing left half-done
    stopped_at = len([t for t in trials if t.state == optuna.trial.TrialState.COMPLETE])
    assert 5 <= stopped_at < 16
    again = subprocess.run(command, cwd=root, env=env, capture_output=True, text=True, timeout=120)
    assert again.returncode == 0, again.stderr
    assert f"evaluated {16 - stopped_at}" in again.stdout  # the rest, and nothing twice
    complete = [t for t in optuna.load_study(study_name="t", storage=url).get_trials()
                if t.state == optuna.trial.TrialState.COMPLETE]
    assert len(complete) == 16 == len({tuple(sorted(t.params.items())) for t in complete})


def test_optional_space_hooks_have_declared_defaults() -> None:
    """Drivers and the runner call ``repair`` and ``analytic_metrics`` on every space: a space that
    does not override them cannot repair and has no genome-only metrics."""
    space = ToySpace()
    genome = space.sample(np.random.default_rng(0))
    assert space.repair(genome) is None
    assert space.analytic_metrics(genome, 32) == {}


def test_the_auto_executor_keeps_in_process_only_scores_that_build_nothing() -> None:
    from evaluators.block_analytic import BlockAnalyticEvaluator
    from search.executors import resolve_executor

    analytic = BlockAnalyticEvaluator(space=None)
    assert resolve_executor("auto", [analytic]) == "inline"
    assert resolve_executor("auto", [analytic, SizeEvaluator()]) == "process"  # one built candidate: a worker
    assert resolve_executor("process", [analytic]) == "process" and resolve_executor("inline", [SizeEvaluator()]) == "inline"
