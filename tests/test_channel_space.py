"""The channel space on YOLOv8n, YOLO11n and a ResNet-style classifier."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from spaces._base import InvalidGenome
from spaces.channel_space import DEFAULT_RATIOS, ChannelSpace, kept_counts, keep_ratios
from spaces.importances import IMPORTANCES, gradient_importances, needs_gradients
from spaces.errors import ArchpruneError
from spaces.models import build_model


class Block(nn.Module):
    def __init__(self, c: int) -> None:
        super().__init__()
        self.c1, self.b1 = nn.Conv2d(c, c, 3, padding=1, bias=False), nn.BatchNorm2d(c)
        self.c2, self.b2 = nn.Conv2d(c, c, 3, padding=1, bias=False), nn.BatchNorm2d(c)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(x + self.b2(self.c2(torch.relu(self.b1(self.c1(x))))))


def resnet_like() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(), Block(32), Block(32),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(32, 10)).eval()


MODELS = {
    "yolov8n": (lambda: build_model("yolov8n", nc=10), (1, 3, 96, 96)),
    "yolo11n": (lambda: build_model("yolo11n", nc=10), (1, 3, 96, 96)),
    "resnet": (resnet_like, (2, 3, 32, 32)),
}


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@pytest.fixture(scope="module", params=sorted(MODELS))
def case(request: pytest.FixtureRequest):
    make, shape = MODELS[request.param]
    model = make()
    example = torch.zeros(1, *shape[1:])
    return request.param, model, ChannelSpace(model, example_inputs=example), shape


def test_candidates_are_smaller_working_networks(case) -> None:
    name, model, space, shape = case
    x = torch.rand(shape)
    rng = np.random.default_rng(0)
    genomes = [g for g in (space.sample(rng) for _ in range(20)) if g != space.unpruned()][:3]
    assert len(genomes) == 3
    for genome in genomes:
        pruned = space.build(genome)
        with torch.no_grad():
            assert pruned(x).shape == model(x).shape
        assert n_params(pruned) < n_params(model)
    with torch.no_grad():  # the unpruned genome is the model itself, exactly
        assert torch.equal(space.build(space.unpruned())(x), model(x))


def test_invalid_genomes_are_rejected_with_the_gene_named(case) -> None:
    _, _, space, _ = case
    genome = space.unpruned()
    with pytest.raises(InvalidGenome, match="genes"):
        space.build(genome[:-1])
    bad = (len(space.genes[0].choices),) + genome[1:]
    with pytest.raises(InvalidGenome, match=space.genes[0].name):
        space.build(bad)
    with pytest.raises(InvalidGenome, match="would empty it"):
        space.from_config({"groups": {space.genes[0].name: 0}})
    with pytest.raises(InvalidGenome, match="would empty it"):
        space.apply_indices({space.genes[0].name: []})


def test_config_and_kept_indices_round_trip_exactly(case) -> None:
    _, _, space, shape = case
    genome = space.sample(np.random.default_rng(1))
    assert space.from_config(space.to_config(genome)) == genome
    a, b = space.build(genome), space.apply_indices(space.kept_indices(genome))
    assert all(torch.equal(p, q) for p, q in zip(a.state_dict().values(), b.state_dict().values()))


def test_mutation_and_crossover_stay_inside_the_space(case) -> None:
    _, _, space, _ = case
    rng = np.random.default_rng(2)
    a, b = space.sample(rng), space.sample(rng)
    for child in (space.mutate(a, rng), *space.crossover(a, b, rng)):
        assert space.validate(child) == child
    assert space.mutate(a, rng, rate=1.0) != a


def test_mutation_steps_a_gene_to_a_neighbouring_count(case) -> None:
    """Channel counts are ordered: a mutated gene moves one or two choices, both ways, and never
    jumps across the range (which from a good allocation mostly lands on a broken one)."""
    _, _, space, _ = case
    rng = np.random.default_rng(4)
    parent = space.uniform(0.5)
    steps: set[int] = set()
    for _ in range(40):
        child = space.mutate(parent, rng, rate=1.0)
        moved = [c - p for c, p, gene in zip(child, parent, space.genes) if len(gene.choices) > 1]
        assert all(1 <= abs(d) <= 2 for d in moved)
        steps.update(moved)
    assert {-1, 1} <= steps and steps & {-2, 2}
    top = space.unpruned()  # at the top of every gene a mutation can only go down
    assert all(c < t for c, t, gene in zip(space.mutate(top, rng, rate=1.0), top, space.genes) if len(gene.choices) > 1)


def test_keep_ratios_take_a_finer_grid() -> None:
    assert keep_ratios(0.25) == DEFAULT_RATIOS
    assert keep_ratios(0.0625, steps=32) == (0.0625, *(k / 32 for k in range(3, 33)))


def test_residual_adds_share_one_gene() -> None:
    model = build_model("yolov8n", nc=10)
    space = ChannelSpace(model)
    names = [g.name for g in space.genes]
    # model.4 is a C2f with two residual bottlenecks: cv1b and both bottleneck outputs are one group
    tied = [n for n in names if n.startswith("model.4.") and ("cv1b" in n or n.endswith("cv2.conv") and ".m." in n)]
    assert len(tied) == 1
    genome = list(space.unpruned())
    genome[names.index(tied[0])] = 0
    pruned = space.build(tuple(genome))
    c2f = pruned.model[4]
    widths = {c2f.cv1b.conv.out_channels, c2f.m[0].cv2.conv.out_channels, c2f.m[1].cv2.conv.out_channels}
    assert widths == {space.genes[names.index(tied[0])].choices[0]}


def test_head_predictions_are_never_pruned() -> None:
    model = build_model("yolov8n", nc=10)
    space = ChannelSpace(model)
    pruned = space.build(tuple(0 for _ in space.genes))  # everything at its minimum
    for before, after in zip(list(model.head.cv2) + list(model.head.cv3), list(pruned.head.cv2) + list(pruned.head.cv3)):
        assert before[-1].out_channels == after[-1].out_channels
    assert pruned.head.dfl.conv.in_channels == 16


def test_keep_layers_and_importances() -> None:
    model = build_model("yolov8n", nc=10)
    full = ChannelSpace(model)
    kept = ChannelSpace(model, keep_layers=["model.9"])  # the SPPF stays whole
    assert len(kept.genes) < len(full.genes)
    assert not any(g.name.startswith("model.9.") for g in kept.genes)
    with pytest.raises(ArchpruneError, match="'model.99'"):
        ChannelSpace(model, keep_layers=["model.99"])
    genome = full.uniform(0.5)
    data_free = [imp for imp in IMPORTANCES if not needs_gradients(imp)]  # every registered criterion
    chosen = {imp: ChannelSpace(model, importance=imp).kept_indices(genome) for imp in data_free}
    assert chosen["l1"] != chosen["random"] and chosen["l1"] != chosen["fpgm"]
    assert ChannelSpace(model, importance="random", seed=3).kept_indices(genome) == \
        ChannelSpace(model, importance="random", seed=3).kept_indices(genome)
    with pytest.raises(ArchpruneError, match="calibration data"):
        ChannelSpace(model, importance="taylor")


def test_kept_counts_round_to_multiples() -> None:
    assert kept_counts(64, [0.25, 0.5, 1.0], 8) == (16, 32, 64)
    assert kept_counts(16, [k / 16 for k in range(4, 17)], 8) == (8, 16)
    assert kept_counts(4, [0.25, 1.0], 8) == (4,)  # a group smaller than round_to is never emptied


@pytest.mark.parametrize("name", gradient_importances())
def test_gradient_importances_score_channels_from_a_calibration_loss(name: str) -> None:
    model = resnet_like()
    x = torch.rand(4, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    y = torch.tensor([0, 1, 2, 3])
    before = {k: v.clone() for k, v in model.state_dict().items()}
    calls = []

    def loss(m: nn.Module) -> list[torch.Tensor]:
        calls.append(1)
        return [nn.functional.cross_entropy(m(x[i:i + 1]), y[i:i + 1]) for i in range(4)]

    example = torch.zeros(1, 3, 32, 32)
    space = ChannelSpace(model, example_inputs=example, importance=name, calibration_loss=loss)
    genome = space.uniform(0.5)
    assert calls and space.kept_indices(genome) != ChannelSpace(model, example_inputs=example).kept_indices(genome)
    assert all(p.grad is None for p in space.base.parameters())  # no gradients left in what builds copy
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())  # the caller's model untouched
    assert space.build(genome)(x).shape == (4, 10)


def test_detection_calibration_loss_reads_but_never_updates_batchnorm(tmp_path) -> None:
    from evaluators.calibration_loss import detection_calibration_loss
    from evaluators.data import build_digits_det, load_data_config

    data = load_data_config(build_digits_det(tmp_path / "dd", seed=1, n_train=8, n_val=4, imgsz=64))
    model = build_model("yolov8n", nc=10)
    stats = {k: v.clone() for k, v in model.state_dict().items() if "running" in k}
    space = ChannelSpace(model, importance="taylor", calibration_loss=detection_calibration_loss(data, 64, images=4))
    assert all(torch.equal(space.base.state_dict()[k], v) for k, v in stats.items())
    assert space.kept_indices(space.uniform(0.5)) != ChannelSpace(model).kept_indices(space.uniform(0.5))


def test_global_baselines_keep_the_channels_that_matter_across_groups() -> None:
    model = resnet_like()
    with torch.no_grad():  # half of block 3's inner channels nearly dead; block 4's all alive
        for layer in (model[3].c1, model[3].b1, model[3].c2):
            w = layer.weight
            (w[:16] if layer is not model[3].c2 else w[:, :16]).mul_(1e-3)
    space = ChannelSpace(model, example_inputs=torch.zeros(1, 3, 32, 32), round_to=4)
    names = [name for name, _ in space.baselines()]
    assert names[0] == "unpruned" and {"global-0.8", "global-0.6"} <= set(names)
    for keep in (0.8, 0.6):
        counts = space.counts(space.global_allocation(keep))
        # a global ranking takes the dead channels first, which one ratio for every group cannot
        assert counts["3.c1"] <= 16 < counts["4.c1"]
    sizes = [sum(space.counts(space.global_allocation(k)).values()) for k in (0.8, 0.6, 0.4)]
    assert sizes == sorted(sizes, reverse=True) and sizes[0] > sizes[-1]  # keeping less keeps fewer
    assert not any(n.startswith("global-") for n in dict(ChannelSpace(model, importance="random").baselines()))


def test_budget_starts_are_the_largest_allocations_within_the_budget() -> None:
    space = ChannelSpace(resnet_like(), example_inputs=torch.zeros(1, 3, 32, 32), round_to=4)
    params = lambda genome: n_params(space.build(genome))  # noqa: E731
    kept = lambda genome: sum(space.counts(genome).values())  # noqa: E731
    bound = 0.55 * params(space.unpruned())
    added = dict(space.add_budget_starts(params, bound))
    assert "global-budget" in added and set(added) <= {"uniform-budget", "global-budget"}
    starts = dict(space.baselines())
    assert list(starts.items())[-len(added):] == list(added.items())  # they join the starts
    for make in (space.uniform, space.global_allocation):  # the largest within: a start (added, or one already)
        within = [g for g in map(make, np.linspace(0, 1, 201)) if params(g) <= bound]
        largest = max(within, key=kept)
        assert any(kept(g) == kept(largest) and params(g) <= bound and g in within for g in starts.values())
    assert space.add_budget_starts(params, 1.0) == []  # even the smallest candidate breaks it: no start


@pytest.mark.parametrize("name", ["yolov8n", "resnet"])
def test_a_pruned_model_maps_back_to_its_genome(name: str) -> None:
    make, shape = MODELS[name]
    space = ChannelSpace(make(), example_inputs=torch.zeros(*shape))
    rng = np.random.default_rng(0)
    for genome in [space.sample(rng) for _ in range(3)] + [space.uniform(0.5)]:
        assert space.genome_of_widths(space.build(genome)) == genome  # widths alone name the genome


def test_a_lower_min_keep_offers_the_narrow_groups_a_global_criterion_makes() -> None:
    assert keep_ratios(0.25) == DEFAULT_RATIOS and keep_ratios(0.1) == (0.1, *(k / 16 for k in range(2, 17)))
    model = build_model("yolov8n", nc=10)
    narrow = ChannelSpace(model, example_inputs=torch.zeros(1, 3, 64, 64), ratios=keep_ratios(1 / 16))
    default = ChannelSpace(model, example_inputs=torch.zeros(1, 3, 64, 64))
    wide = {g.name: g for g in narrow.genes}
    for gene in default.genes:  # the same groups; every old choice is still one, and a 256-wide group goes to 16
        assert set(gene.choices) <= set(wide[gene.name].choices)
    assert min(c for g in narrow.genes if g.choices[-1] == 256 for c in g.choices) == 16
    assert min(c for g in default.genes if g.choices[-1] == 256 for c in g.choices) == 64
