"""Training-free scores: every score on a small CNN, NB201 cells and a detector; determinism; the caller's
model untouched; the properties each score should have (width, dead cells, distinct cells); the evaluator."""
from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from evaluators._base import Candidate
from evaluators.flops import FlopsEvaluator
from evaluators.latency import LatencyEvaluator
from evaluators.zero_shot import (
    DEFAULT_BATCH, SCORES, Minibatch, aggregate_entropy, cifar10_batch, forward_entropy, resolve_scores, score, synflow_score)
from evaluators.zero_shot_evaluator import ZeroShotEvaluator
from spaces.errors import ArchpruneError
from spaces.models import build_model
from spaces.models.nb201_net import OPS, NB201Network
from spaces.nb201_space import arch_to_genome
from tests.conftest import shared_path

BATCH = 8
CONV_CELL = "|nor_conv_3x3~0|+|nor_conv_1x1~0|skip_connect~1|+|avg_pool_3x3~0|nor_conv_3x3~1|none~2|"
OTHER_CELL = "|skip_connect~0|+|nor_conv_3x3~0|none~1|+|nor_conv_1x1~0|avg_pool_3x3~1|skip_connect~2|"
DEAD_CELL = "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|"


def nb201(arch: str) -> nn.Module:
    """A NAS-Bench-201 network of ``arch`` with one cell per stage (the scores' code paths, at a fifth of the cost)."""
    return NB201Network(tuple(OPS[g] for g in arch_to_genome(arch)), cells_per_stage=1).eval()


def fast(name: str) -> dict[str, int]:
    """Keyword arguments that keep a test quick: one repeat where a score averages several."""
    return {"repeats": 1} if name in ("entropy", "zen") else {}


def small_cnn() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8), nn.ReLU(),
        nn.Conv2d(8, 16, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(16), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 10))


def conv_chain(width: int, stages: int = 3) -> nn.Sequential:
    """Plain 3x3 convs, one stride-2 conv per stage (no BN, no activation)."""
    layers, c = [], 3
    for _ in range(stages):
        layers += [nn.Conv2d(c, width, 3, stride=2, padding=1), nn.Conv2d(width, width, 3, padding=1)]
        c = width
    return nn.Sequential(*layers)


def state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in model.state_dict().items()}


MODELS = {"small_cnn": small_cnn, "nb201": lambda: nb201(CONV_CELL)}


@pytest.mark.parametrize("model_name", MODELS)
@pytest.mark.parametrize("name", SCORES)
def test_score_is_finite_deterministic_and_leaves_the_model_alone(name: str, model_name: str) -> None:
    torch.manual_seed(0)
    model = MODELS[model_name]().eval()
    before = state(model)
    rng_before = torch.get_rng_state()
    first = score(name, model, 32, batch=BATCH, seed=3, **fast(name))
    torch.randn(100)  # a different global RNG state must not matter
    second = score(name, model, 32, batch=BATCH, seed=3, **fast(name))
    assert math.isfinite(first)
    assert first == second
    assert not model.training  # mode restored (the score ran on a copy)
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    torch.set_rng_state(rng_before)
    score(name, model, 32, batch=BATCH, seed=3, **fast(name))
    assert torch.equal(rng_before, torch.get_rng_state())  # the score forked the RNG: the caller's stream is untouched


@pytest.mark.parametrize("name", SCORES)
def test_score_depends_on_architecture_and_seed_not_on_the_callers_init(name: str) -> None:
    """Two builds of one cell (different random init) score the same; weights re-drawn from the seed."""
    torch.manual_seed(1)
    a = nb201(CONV_CELL)
    torch.manual_seed(2)
    b = nb201(CONV_CELL)
    kwargs = {"batch": BATCH, "seed": 0, **fast(name)}
    assert score(name, a, 32, **kwargs) == score(name, b, 32, **kwargs)


def test_scores_tell_distinct_cells_apart() -> None:
    data = cifar10_batch(BATCH, 0)  # real images where the shared sample is present, else the Gaussian fallback
    for name in ("naswot", "jacob_cov", "snip"):
        a = score(name, nb201(CONV_CELL), 32, batch=BATCH, data=data)
        b = score(name, nb201(OTHER_CELL), 32, batch=BATCH, data=data)
        assert math.isfinite(a) and math.isfinite(b)
        # scores are exactly reproducible, so any gap well above float noise tells the cells apart; jacob_cov
        # sits near its maximum -batch on small random-init batches, hence no larger margin
        assert abs(a - b) > 1e-6 * abs(a), name


def test_dead_cell_is_scored_without_crashing() -> None:
    dead = nb201(DEAD_CELL)
    assert forward_entropy(dead, 32, batch=BATCH, repeats=1) == -math.inf  # no path from the image: -inf, no NaN
    assert synflow_score(dead, 32) < synflow_score(nb201(CONV_CELL), 32)
    metrics = ZeroShotEvaluator(scores=("jacob_cov", "naswot"), batch=BATCH).evaluate(Candidate(dead, 32))
    assert metrics["jacob_cov"] == -math.inf and metrics["naswot"] == -math.inf
    assert "jacob_cov: NaN" in metrics["zero_shot_notes"]


def test_entropy_grows_with_width_and_layout_matches_the_analytic_form() -> None:
    narrow, wide = conv_chain(8), conv_chain(32)
    assert forward_entropy(wide, 32, batch=4, repeats=1) > forward_entropy(narrow, 32, batch=4, repeats=1) + 5

    # layout mode: each stage one unit of two convs; analytic = sum of 0.5*log(fan_in) per conv
    convs = [m for m in wide if isinstance(m, nn.Conv2d)]
    layout = [[[convs[2 * s], convs[2 * s + 1]]] for s in range(3)]
    analytic = aggregate_entropy([[sum(0.5 * math.log(c.in_channels * 9) for c in unit) for unit in stage]
                                  for stage in layout], [32, 32, 32])
    measured = forward_entropy(wide, 64, layout=layout, batch=4, repeats=2)
    assert measured == pytest.approx(analytic, rel=0.03)  # zero-padded borders lower the std a little
    assert measured < analytic
    # generic mode finds the same three stages in a plain chain (a stride change opens each)
    assert forward_entropy(wide, 64, batch=4, repeats=2) == pytest.approx(measured, rel=0.03)

    class WithLayout(nn.Module):  # a block-space model names its own layout
        def __init__(self) -> None:
            super().__init__()
            self.body = wide

        def entropy_layout(self) -> list[list[list[nn.Conv2d]]]:
            return layout

    assert forward_entropy(WithLayout(), 64, batch=4, repeats=2) == measured
    detector_like = nn.Sequential(WithLayout(), nn.Conv2d(32, 4, 1))  # a backbone's layout inside a bigger net
    assert forward_entropy(detector_like, 64, batch=4, repeats=2) == measured
    assert forward_entropy(wide, 64, layout=layout, weights="damo", batch=4, repeats=2) > measured


def test_entropy_layout_must_chain() -> None:
    convs = [m for m in conv_chain(8) if isinstance(m, nn.Conv2d)]
    with pytest.raises(ArchpruneError, match="chain"):
        forward_entropy(conv_chain(8), 32, layout=[[[convs[0], convs[0]]]], batch=2, repeats=1)


def test_aggregate_aligns_weights_with_the_last_stages() -> None:
    # three stages, weights [0,0,1,1,6] -> [1,1,6]; cumulative sums 1, 3, 6 plus log(width 1) = 0
    assert aggregate_entropy([[1.0], [2.0], [3.0]], [1, 1, 1]) == pytest.approx(1 + 3 + 6 * 6)
    assert aggregate_entropy([[1.0], [2.0], [3.0]], [1, 1, 1], weights="damo") == pytest.approx(1 + 3 + 16 * 6)
    assert aggregate_entropy([[-math.inf], [2.0]], [1, 1], weights=[0, 1]) == -math.inf


def test_unknown_score_names_the_valid_ones() -> None:
    with pytest.raises(ArchpruneError) as err:
        resolve_scores(["synflw"])
    message = str(err.value)
    assert "did you mean 'synflow'" in message
    assert all(name in message for name in SCORES)
    with pytest.raises(ArchpruneError, match="valid scores are entropy, zen"):
        ZeroShotEvaluator(scores="entropy,bogus")


@pytest.mark.parametrize("name", SCORES)
def test_scores_run_on_a_detector(name: str) -> None:
    torch.manual_seed(0)
    model = build_model("yolov8n", nc=10).eval()
    before = state(model)
    value = score(name, model, 64, batch=2, seed=0, **fast(name))
    assert math.isfinite(value)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_cifar10_batch_is_real_seeded_and_normalised() -> None:
    path = shared_path("cifar10", "cifar10_sample.npz")
    a, b = cifar10_batch(64, 5, path), cifar10_batch(64, 5, path)
    assert a.images.shape == (64, 3, 32, 32) and a.labels.dtype == torch.int64
    assert torch.equal(a.images, b.images) and torch.equal(a.labels, b.labels)
    assert len(set(a.labels.tolist())) >= 5  # shuffled: not the first class's rows
    assert abs(float(a.images.mean())) < 0.3 and 0.6 < float(a.images.std()) < 1.4
    assert "cifar10" in a.source
    assert cifar10_batch(4, 0, path, imgsz=64).images.shape == (4, 3, 64, 64)
    assert not torch.equal(cifar10_batch(64, 6, path).labels, a.labels)


def test_missing_cifar10_falls_back_to_gaussian_and_says_so(tmp_path) -> None:
    batch = cifar10_batch(4, 0, tmp_path / "missing.npz")
    assert batch.images.shape == (4, 3, 32, 32)
    assert "gaussian" in batch.source and "not found" in batch.source


def test_the_metric_table_names_every_score() -> None:
    from evaluators.choice_names import ZERO_SHOT_SCORES

    assert ZERO_SHOT_SCORES == tuple(SCORES), "name a new score in evaluators.choice_names.ZERO_SHOT_SCORES"
    assert ZeroShotEvaluator().batch == DEFAULT_BATCH


def test_evaluator_contract() -> None:
    evaluator = ZeroShotEvaluator(scores=("entropy", "synflow", "snip"), batch=4, seed=1,
                                  data=Minibatch(torch.randn(4, 3, 32, 32), torch.arange(4), "test batch"),
                                  entropy_repeats=1)
    assert evaluator.directions == {"entropy": "max", "synflow": "max", "snip": "max"}
    assert FlopsEvaluator.cost < evaluator.cost < LatencyEvaluator.cost
    assert evaluator.name == "zero_shot" and evaluator.needs_model
    model = nb201(CONV_CELL)
    metrics = evaluator.evaluate(Candidate(model, 32))
    assert all(isinstance(metrics[s], float) and math.isfinite(metrics[s]) for s in evaluator.directions)
    assert metrics["zero_shot_data"] == "test batch"
    assert metrics == evaluator.evaluate(Candidate(nb201(CONV_CELL), 32))


def test_forward_entropy_agrees_with_the_block_space_analytic_form() -> None:
    """The block space's backbone names its layout; the forward form then tracks 0.5*log(fan_in) closely."""
    import spaces.blocks as blocks
    narrow = [dict(b) for b in blocks.DEFAULT_STRUCTURE]
    wide = [{**b, **{key: 2 * b[key] for key in ("out", "btn") if key in b},
             **({"in": 2 * b["in"]} if i else {})} for i, b in enumerate(narrow)]
    analytic = [blocks.analytic_entropy(s) for s in (narrow, wide)]
    forward = [forward_entropy(blocks.BlockDetector(s, nc=2), 64, batch=2, repeats=1, seed=0) for s in (narrow, wide)]
    assert forward == pytest.approx(analytic, rel=0.03)
    assert forward[1] > forward[0]


def test_the_two_entropy_forms_rank_random_structures_the_same_way() -> None:
    import numpy as np
    from scipy.stats import kendalltau

    from spaces.blocks import BlockSpace, analytic_entropy

    space = BlockSpace(nc=2)
    rng = np.random.default_rng(0)
    genomes = list(dict.fromkeys(space.sample(rng) for _ in range(14)))
    analytic = [analytic_entropy(space.structure_of(g)) for g in genomes]
    forward = [forward_entropy(space.build(g), 64, batch=2, repeats=1, seed=0) for g in genomes]
    tau = kendalltau(analytic, forward).statistic
    assert len(genomes) >= 12 and tau >= 0.9, tau


def test_a_dead_branch_does_not_sink_zen_or_entropy() -> None:
    """A cell whose first edge is 'none' feeds zeros to a conv, yet its other paths carry the image
    (NAS-Bench-201 trains it to 92%): only a network whose output ignores the input scores -inf."""
    dead_branch = "|none~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|nor_conv_3x3~0|nor_conv_1x1~1|skip_connect~2|"
    net = nb201(dead_branch)
    assert math.isfinite(score("zen", net, 32, batch=8, seed=0))
    assert math.isfinite(forward_entropy(net, 32, batch=8, repeats=1, seed=0))
