"""The store's columns (search/record_table.py): records built from them are the records written,
the whole-run questions a search asks (counts, the front) agree with the records, and a run's
metrics stay readable after the process that wrote them is gone."""
from __future__ import annotations

import math

import pytest

from search.objectives import Objective
from search.pareto import non_dominated, pareto_front, stored_front, stored_pareto_front
from search.pick import choose_pick
from search.report import front_json
from search.store import Store
from spaces._base import Gene
from tests.search_toys import ToySpace

OBJECTIVES = [Objective("size", "min"), Objective("quality", "max")]


def _complete(store: Store, genome: tuple, size: float, quality: float, over: float = -1.0, **kw) -> None:
    store.add_complete(genome, {"size": size, "quality": quality, "note": f"g{genome}"}, {"size<=9": over},
                       {"groups": {"g0": genome[0]}}, {"total_s": 0.1}, "toy", **kw)


def _filled(store: Store) -> Store:
    _complete(store, (3, 3, 3, 3, 3), 15, 0.9, over=6.0)  # infeasible
    _complete(store, (1, 1, 1, 1, 1), 5, 0.5)
    _complete(store, (1, 2, 1, 1, 1), 6, 0.4)  # dominated by the one above
    _complete(store, (0, 0, 0, 0, 1), math.inf, 0.7)  # a value that is not finite: not feasible
    store.add_failed((0, 1, 2, 3, 0), "RuntimeError: out of memory\ntraceback...", {"groups": {}}, {}, "random")
    for i in range(4):  # one batch, one transaction
        _complete(store, (2, i, 0, 0, 0), 2 + i, 0.1 * i, defer=True)
    store.flush()
    return store


@pytest.mark.parametrize("url", ["memory", "sqlite"])
def test_the_columns_answer_what_the_records_say(url: str, tmp_path) -> None:
    store = _filled(Store(f"sqlite:///{tmp_path / 's.db'}" if url == "sqlite" else url, "t", OBJECTIVES,
                          ToySpace().genes))
    records = store.records()
    assert [r.number for r in records] == sorted(r.number for r in records)
    assert store.counts() == (len(records), sum(r.feasible for r in records), sum(r.failed for r in records)) == (9, 6, 1)
    assert [r.number for r in stored_front(store)] == [r.number for r in non_dominated(records, OBJECTIVES)]
    infeasible = store.lookup((3, 3, 3, 3, 3))
    assert infeasible.violation == 6.0 and not infeasible.feasible
    assert store.lookup((0, 1, 2, 3, 0)).violation == math.inf and store.lookup((0, 1, 2, 3, 0)).values == ()


def test_a_reopened_run_reads_each_records_metrics_constraints_and_config_from_the_store(tmp_path) -> None:
    url = f"sqlite:///{tmp_path / 's.db'}"
    _filled(Store(url, "t", OBJECTIVES, ToySpace().genes))
    again = Store(url, "t", OBJECTIVES, ToySpace().genes, read_only=True)
    record = again.lookup((2, 3, 0, 0, 0))
    assert dict(record.metrics) == {"size": 5, "quality": pytest.approx(0.3), "note": "g(2, 3, 0, 0, 0)"}
    assert dict(record.constraints) == {"size<=9": -1.0} and dict(record.config) == {"groups": {"g0": 2}}
    assert again.record(record.number).genome == (2, 3, 0, 0, 0) and again.record(10_000) is None


def test_genes_of_more_than_256_choices_are_held_whole(tmp_path) -> None:
    genes = [Gene("wide", tuple(range(300))), Gene("narrow", (0, 1))]
    store = Store(f"sqlite:///{tmp_path / 'w.db'}", "w", OBJECTIVES, genes)
    store.add_complete((299, 1), {"size": 1.0, "quality": 0.5}, {}, {}, {}, "toy")
    store.add_complete((43, 1), {"size": 2.0, "quality": 0.4}, {}, {}, {}, "toy")  # 299 % 256 == 43
    assert len(store) == 2 and store.lookup((299, 1)).values == (1.0, 0.5) and store.lookup((43, 1)).values == (2.0, 0.4)


def test_a_genome_finished_twice_keeps_the_earlier_trial(tmp_path) -> None:
    url = f"sqlite:///{tmp_path / 'twice.db'}"
    first, second = Store(url, "t", OBJECTIVES, ToySpace().genes), Store(url, "t", OBJECTIVES, ToySpace().genes)
    _complete(first, (1, 1, 1, 1, 1), 5, 0.5)
    _complete(second, (1, 1, 1, 1, 1), 7, 0.1)  # the other process had not seen it yet
    reader = Store(url, "t", OBJECTIVES, ToySpace().genes, read_only=True)
    assert len(reader) == 1 and reader.lookup((1, 1, 1, 1, 1)).values == (5.0, 0.5)


def test_the_front_report_from_the_columns_is_the_report_from_every_record(tmp_path) -> None:
    store = _filled(Store(f"sqlite:///{tmp_path / 's.db'}", "t", OBJECTIVES, ToySpace().genes))
    store.add_complete((0, 0, 0, 0, 0), {"size": 20, "quality": 0.95}, {}, {}, {}, "unpruned")
    records = store.records()
    whole, columns = pareto_front(records, OBJECTIVES), stored_pareto_front(store)
    wanted = front_json(whole, choose_pick(whole, records))
    assert front_json(columns, choose_pick(columns, store.records_from("unpruned", "uniform-"))) == wanted
    assert wanted["n_feasible"] == 7 and wanted["n_failed"] == 1 and wanted["failures"]
    assert [r.number for r in store.records_from("unpruned")] == [9]
