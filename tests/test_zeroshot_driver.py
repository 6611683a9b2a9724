"""The zero-shot evolutionary driver: TinyNAS's steady-state search on training-free scores."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from evaluators.block_analytic import BlockAnalyticEvaluator
from search.cli import main
from search.objectives import parse_constraints, parse_objectives
from search.runner import search
from spaces.blocks import BlockSpace, count_layers, default_budgets, detector_flops_params


def test_the_zeroshot_driver_respects_every_budget_and_raises_the_score() -> None:
    space = BlockSpace()
    budgets = parse_constraints(["flops_g<=2.0", "params_m<=2.5", "layers<=20"])
    result = search(space, [BlockAnalyticEvaluator(space)], parse_objectives("entropy:max"), budgets, imgsz=320,
                    driver="zeroshot", driver_options={"population": 32, "offspring": 16}, trials=300, seed=1,
                    progress=False)
    records = result.store.records()
    assert len(records) == 300 and not any(r.failed for r in records)
    children = [r for r in records if r.source.startswith("zeroshot")]
    assert len(children) == 299  # the initial structure, then mutants only
    for record in children:  # every stored child meets every budget, recomputed from its structure
        structure = space.structure_of(record.genome)
        costs = detector_flops_params(structure, 320, space.nc)
        assert costs["flops_g"] <= 2.0 and costs["params_m"] <= 2.5 and count_layers(structure) <= 20
    start = next(r for r in records if r.source == "initial").metrics["entropy"]
    assert max(r.metrics["entropy"] for r in records) > start + 10  # the search climbs
    assert result.front[0].metrics["entropy"] == max(r.metrics["entropy"] for r in children)


def test_the_zeroshot_driver_also_searches_the_channel_and_nb201_spaces() -> None:
    from tests.search_toys import QualityEvaluator, SizeEvaluator, ToySpace

    result = search(ToySpace(), [SizeEvaluator(), QualityEvaluator()], parse_objectives("quality:max", ["quality"]),
                    parse_constraints(["size<=8"], ["size"]), imgsz=32, driver="zeroshot",
                    driver_options={"population": 8, "offspring": 8}, trials=60, progress=False)
    best = result.front[0]
    assert best.metrics["size"] <= 8 and best.values[0] >= max(r.values[0] for r in result.store.records()
                                                                if r.feasible)


@pytest.mark.slow
def test_blocks_zeroshot_search_runs_with_no_other_flag(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    argv = ["search", "--space", "blocks", "--driver", "zeroshot", "--objectives", "entropy:max", "--trials", "200",
            "--results", str(tmp_path), "--no-progress"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "evaluations in the search process" in out  # analytic scores: the default executor is inline
    # the YOLOv8n-sized defaults, said out loud: the backbone's FLOPs, the detector's FLOPs and params, layers
    assert "budgets backbone_flops_g<=3.07" in out and "flops_g<=8.8" in out and "layers<=29" in out
    assert main(["pareto", str(tmp_path / "blocks-default"), "--json", "--no-plots"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["n_trials"] == 200 and report["front"][0]["flops_g"] <= 8.84
    assert report["n_feasible"] == 200  # the initial structure meets the budgets taken from it (exact, not rounded)
    log = (tmp_path / "blocks-default" / "search.log").read_text()
    assert "children dropped by the analytic budget check" in log
    best = report["front"][0]
    assert main(["export", str(tmp_path / "blocks-default"), "--trial", str(best["trial"])]) == 0
    exported = tmp_path / "blocks-default" / "exports" / f"trial-{best['trial']}"
    summary = json.loads((exported / "summary.json").read_text())
    assert summary["flops_g"] == pytest.approx(best["flops_g"], rel=1e-6)  # thop on the built model = analytic
    assert summary["backbone_flops_g"] <= default_budgets(640)["backbone_flops_g"]  # YOLOv8n's backbone: 3.09
    assert {p.name for p in exported.iterdir()} >= {"structure.yaml", "model.pt", "model.onnx"}


def test_blocks_search_keeps_to_the_width_ranges_kernels_and_entropy_weights_asked(
        tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from spaces.blocks import analytic_entropy

    argv = ["search", "--space", "blocks", "--driver", "zeroshot", "--objectives", "entropy:max", "--trials", "150",
            "--channel-ranges", "*,*,64:128,128:256,256:512", "--kernels", "3", "--entropy-weights", "0,0,1,1,1",
            "--results", str(tmp_path), "--run", "priors", "--no-progress"]
    assert main(argv) == 0
    assert "widths 16-64, 64-128, 128-256, 256-512, kernels 3" in capsys.readouterr().out
    from search.runs import open_run

    records = [r for r in open_run(str(tmp_path / "priors")).store.records() if not r.failed]
    assert len(records) == 150
    space = BlockSpace(channel_ranges=[None, None, (64, 128), (128, 256), (256, 512)], kernels=(3,))
    outs = set()
    for record in records:
        structure = space.structure_of(record.genome)  # raises on a genome outside the narrower space
        outs.add(structure[2].cout)
        assert 64 <= structure[2].cout <= 128 and 128 <= structure[3].cout and all(b.k == 3 for b in structure)
        assert record.metrics["entropy"] == pytest.approx(analytic_entropy(structure, weights=(0, 0, 1, 1, 1)))
    assert len(outs) > 1  # the search moved inside the range


@pytest.mark.parametrize("flags, message", [
    (["--channel-ranges", "*,*,64-128,*,*"], "'64-128' is not lo:hi"),
    (["--channel-ranges", "*,*,64:128"], "3 given for 5 stages"),
    (["--channel-ranges", "*,*,72:128,*,*"], "ranges must not shrink with depth"),
    (["--kernels", "3,4"], "give odd kernel sizes"),
    (["--entropy-weights", "0,0,x"], "unknown entropy weights"),
    (["--entropy-weights", "0,0,0"], "not all 0"),
])
def test_bad_block_priors_are_one_line_errors(flags: list[str], message: str, tmp_path: Path,
                                               capsys: pytest.CaptureFixture) -> None:
    argv = ["search", "--space", "blocks", "--driver", "zeroshot", "--objectives", "entropy:max", "--trials", "2",
            *flags, "--results", str(tmp_path), "--no-progress"]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1


def test_blocks_refuse_map_objectives(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["search", "--space", "blocks", "--objectives", "map50_95:max", "--trials", "2", "--results",
                 str(tmp_path), "--no-progress"]) == 2
    assert "untrained" in capsys.readouterr().err


def test_batched_writes_store_exactly_what_was_scored_and_a_resume_replays_it(tmp_path: Path) -> None:
    from search.store import Store

    space = BlockSpace()
    objectives, budgets = parse_objectives("entropy:max"), parse_constraints(["flops_g<=2.0"])

    def go(url: str, trials: int):
        return search(space, [BlockAnalyticEvaluator(space)], objectives, budgets, imgsz=320, driver="zeroshot",
                      driver_options={"population": 16, "offspring": 32}, trials=trials, seed=3, progress=False,
                      storage=url, run="z")

    straight = go(f"sqlite:///{tmp_path / 'a.db'}", 200).store.records()
    assert [r.number for r in straight] == list(range(200))  # every trial written, numbered in order
    reread = Store(f"sqlite:///{tmp_path / 'a.db'}", "z", objectives, space.genes).records()
    assert [(r.number, r.genome, r.values, r.metrics) for r in reread] == \
        [(r.number, r.genome, r.values, r.metrics) for r in straight]
    url = f"sqlite:///{tmp_path / 'b.db'}"
    go(url, 90)
    resumed = go(url, 200).store.records()
    assert [(r.genome, r.values) for r in resumed] == [(r.genome, r.values) for r in straight]


def test_an_island_takes_what_the_others_stored_into_its_population(tmp_path: Path) -> None:
    from search.drivers import ZeroShotDriver
    from search.store import Store

    space, objectives = BlockSpace(), parse_objectives("entropy:max")
    url = f"sqlite:///{tmp_path / 'study.db'}"
    mine, theirs = Store(url, "z", objectives, space.genes), Store(url, "z", objectives, space.genes)
    driver = ZeroShotDriver(space, objectives, seed=0, population=4, offspring=16, imgsz=320, island=0, islands=2)
    driver.bind(mine, [])
    start = driver.ask()  # island 0 starts from the baselines
    driver.tell(start, [mine.add_complete(p.genome, {"entropy": 1.0}, {}, {}, {}, p.source) for p in start])
    rng = np.random.default_rng(5)
    found = next(g for g in (space.mutate(start[0].genome, rng) for _ in range(100)) if hash(g) % 2 == 1)
    theirs.add_complete(found, {"entropy": 1000.0}, {}, {}, {}, "zeroshot-i1-s1")  # island 1's best, stored
    children = driver.ask()
    assert driver.population[0].genome == found and driver.heard == 1  # heard through the store, now a parent
    assert children and all(hash(c.genome) % 2 == 0 for c in children)  # only island 0's share of the genomes
    assert found not in {c.genome for c in children}


@pytest.mark.slow
def test_islands_share_one_run_and_never_score_a_candidate_twice(tmp_path: Path,
                                                                  capsys: pytest.CaptureFixture) -> None:
    import optuna

    trials = 1500
    argv = ["search", "--space", "blocks", "--driver", "zeroshot", "--objectives", "entropy:max", "--trials",
            str(trials), "--islands", "2", "--results", str(tmp_path), "--no-progress"]
    assert main(argv) == 0
    assert "2 islands (seeds 0..1)" in capsys.readouterr().out
    study = optuna.load_study(study_name="blocks-default", storage=f"sqlite:///{tmp_path / 'blocks-default' / 'study.db'}")
    genomes = [tuple(sorted(t.params.items())) for t in study.get_trials()]
    assert len(genomes) == len(set(genomes))  # no candidate scored by both islands
    assert trials <= len(genomes) <= trials + 64  # each island stops at --trials; one batch may be in flight
    sources = [t.user_attrs["source"] for t in study.get_trials()]
    assert sources.count("initial") == 1  # island 1 starts from what island 0 stored, not the baselines again
    log = (tmp_path / "blocks-default" / "search.log").read_text()
    assert f"2 islands: {len(genomes)} trials in the store" in log
    assert main(["pareto", str(tmp_path / "blocks-default"), "--json", "--no-plots"]) == 0
    assert json.loads(capsys.readouterr().out)["n_trials"] == len(genomes)
