"""The TinyNAS-style block space: parsing, limits, mutations, analytic costs and entropy, and the
detector it builds (trains, exports to ONNX)."""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from evaluators.flops import count_flops_params
from evaluators.onnx_export import export_onnx, onnx_session
from evaluators.training.loss import DetectionLoss
from spaces._base import InvalidGenome
from spaces.blocks import (DEFAULT_STRUCTURE, Block, BlockBackbone, BlockDetector, BlockSpace, analytic_entropy,
                           count_layers, default_budgets, detector_flops_params, parse_structure, stage_entropies,
                           structure_flops, structure_params)
from spaces.errors import ArchpruneError
from spaces.models import build_model

TINYNAS = [
    {"class": "ConvKXBNRELU", "in": 3, "out": 16, "s": 2, "k": 3},
    {"class": "SuperResK1KX", "in": 16, "out": 32, "s": 2, "k": 3, "L": 1, "btn": 16},
    {"class": "SuperResKXKX", "in": 32, "out": 48, "s": 2, "k": 3, "L": 1, "btn": 24},
    {"class": "SuperResK1KXK1", "in": 48, "out": 64, "s": 1, "k": 5, "L": 2, "btn": 32},
    {"class": "SuperResK1DWK1", "in": 64, "out": 96, "s": 2, "k": 3, "L": 2, "btn": 48},
    {"class": "k1kx", "in": 96, "out": 128, "s": 2, "k": 3, "L": 1, "btn": 64},
]

#: re-parameterizable units (issue 18): every block of the default structure as two RepConvs
REP = [b if b["class"] == "conv" else {**b, "class": "repkxkx"} for b in DEFAULT_STRUCTURE]
REP[2] = {**REP[2], "in": 32, "out": 32, "s": 1, "btn": 32}  # equal widths, stride 1: identity branches too
REP[3] = {**REP[3], "in": 32}


@pytest.fixture(scope="module")
def space() -> BlockSpace:
    return BlockSpace(nc=3)


def _bad(**changes) -> list[dict]:
    s = [dict(b) for b in DEFAULT_STRUCTURE]
    for key, value in changes.items():
        index, field = key.split("_", 1)
        if value is None:
            del s[int(index[1:])][field]
        else:
            s[int(index[1:])][field] = value
    return s


# -- parsing ---------------------------------------------------------------------------------------
def test_json_yaml_python_and_tinynas_aliases_parse_to_the_same_blocks(tmp_path: Path) -> None:
    import yaml

    expected = parse_structure(TINYNAS)
    assert [b.cls for b in expected] == ["conv", "k1kx", "kxkx", "k1kxk1", "k1dwk1", "k1kx"]
    (tmp_path / "s.json").write_text(json.dumps(TINYNAS))
    (tmp_path / "s.yaml").write_text(yaml.safe_dump({"structure": TINYNAS}))
    assert parse_structure(tmp_path / "s.json") == expected
    assert parse_structure(str(tmp_path / "s.yaml")) == expected
    assert parse_structure(yaml.safe_dump(TINYNAS)) == expected  # YAML text
    assert parse_structure(json.dumps(TINYNAS)) == expected  # JSON text
    assert parse_structure(expected) == expected
    assert expected[3] == Block("k1kxk1", 48, 64, 1, 5, 2, 32)
    assert count_layers(expected) == 1 + 2 + 2 + 2 * 3 + 2 * 3 + 2


@pytest.mark.parametrize("structure, message", [
    (_bad(b1_class="SuperResK1KY"), r"block 1 \('class'\): unknown block class 'SuperResK1KY'; did you mean 'k1kx'"),
    (_bad(b2_in=48), r"block 2 \('in'\): 48 differs from block 1's out 32; set in to 32"),
    (_bad(b3_btn=None), r"block 3 \(k1kx\): missing key 'btn'"),
    (_bad(b1_class=None), r"block 1: missing key 'class'"),
    (_bad(b2_out=0), r"block 2 \('out'\): 0 is not a positive integer"),
    (_bad(b4_L=-1), r"block 4 \('L'\): -1 is not a positive integer"),
    (_bad(b1_s=3), r"block 1 \('s'\): stride 3 is not supported; use 1 or 2"),
    (_bad(b1_k=4), r"block 1 \('k'\): kernel 4 is even"),
    (_bad(b1_kernel=3), r"block 1 \('kernel'\): unknown key; did you mean 'k'"),
    (_bad(b0_class="k1kx"), r"block 0 \(k1kx\): missing key 'L'"),
    (DEFAULT_STRUCTURE[1:], r"block 0 \('class'\): the first block must be the stem"),
    (DEFAULT_STRUCTURE[:1], r"a stem alone is no backbone"),
])
def test_bad_structures_name_the_block_the_key_and_the_fix(structure, message) -> None:
    with pytest.raises(ArchpruneError, match=message):
        parse_structure(structure)


def test_bad_files_and_space_limits_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(ArchpruneError, match="structure file .*nope.yaml not found"):
        parse_structure(tmp_path / "nope.yaml")
    (tmp_path / "bad.yaml").write_text("[{class: k1kx, in: 3")
    with pytest.raises(ArchpruneError, match="bad.yaml: not valid YAML/JSON"):
        parse_structure(tmp_path / "bad.yaml")
    (tmp_path / "bad.json").write_text('[{"class": "conv", "in": 3,')
    with pytest.raises(ArchpruneError, match="bad.json: not valid YAML/JSON"):
        parse_structure(str(tmp_path / "bad.json"))
    (tmp_path / "wrong.json").write_text(json.dumps(_bad(b2_in=48)))
    with pytest.raises(ArchpruneError, match=r"wrong.json: block 2 \('in'\): 48 differs"):
        parse_structure(tmp_path / "wrong.json")
    with pytest.raises(ArchpruneError, match="structure: expected a list of blocks, got int"):
        parse_structure("42")
    shrinking = _bad(b2_out=24, b3_in=24)  # well formed, but a width goes down
    with pytest.raises(ArchpruneError, match=r"block 2 \('out'\): 24 < in 32; widths may not shrink"):
        BlockSpace(shrinking)
    with pytest.raises(ArchpruneError, match=r"block 4 \('btn'\): 512 must be a multiple of 8 in \[24, 256\]"):
        BlockSpace(_bad(b4_btn=512))
    with pytest.raises(ArchpruneError, match=r"block 1 \('out'\): 36 must be a multiple of 8"):
        BlockSpace(_bad(b1_out=36, b2_in=36))
    with pytest.raises(ArchpruneError, match="max_layers 5: even one unit per block needs 9 layers"):
        BlockSpace(max_layers=5)
    with pytest.raises(ArchpruneError, match="needs at least 3 backbone stages"):
        BlockSpace(DEFAULT_STRUCTURE[:2])


@pytest.mark.parametrize("structure,kwargs,message", [
    (DEFAULT_STRUCTURE[:2], {}, "needs at least 3 backbone stages"),
    (DEFAULT_STRUCTURE, {"nc": 0}, "nc must be at least 1"),
    (DEFAULT_STRUCTURE, {"nc": 2, "names": ["a"]}, "1 class names given for nc=2"),
    (DEFAULT_STRUCTURE, {"neck": "gfpn"}, "unknown neck 'gfpn'; use c2f or rep"),
])
def test_the_space_refuses_a_skeleton_the_detector_cannot_carry_without_building_it(structure, kwargs, message) -> None:
    """BlockSpace checks its initial structure from the blocks alone (a search never builds a network
    to start), and says exactly what BlockDetector would."""
    with pytest.raises(ArchpruneError, match=message):
        BlockDetector(structure, **kwargs)
    with pytest.raises(ArchpruneError, match=message):
        BlockSpace(structure, **kwargs)


# -- genomes, mutation, sampling -----------------------------------------------------------------------
def test_baseline_is_the_initial_structure_and_configs_round_trip(space: BlockSpace, tmp_path: Path) -> None:
    (name, genome), = space.baselines()
    assert name == "initial" and space.to_config(genome) == {"structure": DEFAULT_STRUCTURE}
    assert len(space.genes) == 4 * (len(DEFAULT_STRUCTURE) - 1)
    rng = np.random.default_rng(0)
    for _ in range(50):
        g = space.sample(rng)
        config = json.loads(json.dumps(space.to_config(g)))  # plain data: survives a JSON store
        assert space.from_config(config) == g
        assert space.from_config(config["structure"]) == g
    (tmp_path / "s.json").write_text(json.dumps(DEFAULT_STRUCTURE))
    assert space.from_config(str(tmp_path / "s.json")) == genome
    with pytest.raises(InvalidGenome, match=r"outside this space: block 1 \('out'\): 128 must be a multiple of 8 in \[16, 64\]"):
        space.from_config(_bad(b1_out=128, b2_in=128, b2_out=128, b3_in=128, b3_out=128, b4_in=128))


def test_invalid_genomes_are_rejected_and_repaired(space: BlockSpace) -> None:
    genome = list(space.baselines()[0][1])
    genome[4] = 0  # b2.out = 32 (legal: in is 32) ...
    genome[5] = len(space.genes[5].choices) - 1  # ... but b2.btn = 128 > out
    assert not space.is_valid(tuple(genome))
    with pytest.raises(InvalidGenome, match=r"block 2 \('btn'\): 128 must be a multiple of 8 in \[8, 32\]"):
        space.validate(tuple(genome))
    with pytest.raises(InvalidGenome, match="genome has 3 genes"):
        space.validate((0, 0, 0))
    rng = np.random.default_rng(1)
    for _ in range(200):  # what Optuna's independent sampling proposes: any index tuple
        raw = tuple(int(rng.integers(len(g.choices))) for g in space.genes)
        fixed = space.repair(raw)
        assert space.is_valid(fixed)
        if space.is_valid(raw):
            assert fixed == raw


def test_cached_decoding_and_metrics_answer_as_fresh_ones(space: BlockSpace) -> None:
    import pickle

    rng = np.random.default_rng(3)
    genomes = [space.sample(rng) for _ in range(20)]
    first = [space.analytic_metrics(g, 320) for g in genomes]
    first[0]["entropy"] = -1.0  # the caller's copy: the cache keeps its own
    fresh = pickle.loads(pickle.dumps(space))  # a worker's copy starts without the caches
    assert not fresh._structures and not fresh._metrics
    for g, cached in zip(genomes, [space.analytic_metrics(g, 320) for g in genomes]):
        assert cached == fresh.analytic_metrics(g, 320) and space.structure_of(g) == fresh.structure_of(g)
    assert space.analytic_metrics(genomes[0], 640) != space.analytic_metrics(genomes[0], 320)  # keyed by size
    bad = list(space.baselines()[0][1])
    bad[4], bad[5] = 0, len(space.genes[5].choices) - 1
    for _ in range(2):  # an illegal genome is refused every time, never cached
        with pytest.raises(InvalidGenome):
            space.structure_of(tuple(bad))


@pytest.mark.parametrize("options", [{}, {"kernels": (3,), "max_units": 3, "max_layers": 16}])
def test_mutation_always_gives_a_valid_different_structure(options: dict) -> None:
    space = BlockSpace(nc=3, **options)
    initial = space.baselines()[0][1]
    changed = set()
    for seed in range(300):
        rng = np.random.default_rng(seed)
        parent = initial if seed % 2 else space.sample(rng)
        child = space.mutate(parent, rng)
        assert space.is_valid(child), space.problems(child)
        assert child != parent
        structure = space.structure_of(child)
        assert all(b.cout >= b.cin and b.cout % 8 == 0 for b in structure[1:])
        if "max_layers" in options:
            assert count_layers(structure) <= options["max_layers"]
        diffs = [i for i, (a, b) in enumerate(zip(space.structure_of(parent), structure)) if a != b]
        assert 1 <= len(diffs) <= 4  # two block mutations (an out change also moves the next block's in)
        changed.update(g.name.split(".")[1] for g, a, b in zip(space.genes, parent, child) if a != b)
        a, b = space.crossover(parent, child, rng)
        assert space.is_valid(a) and space.is_valid(b)
    assert changed == ({"out", "btn", "L", "k"} if not options else {"out", "btn", "L"})


def test_mutate_structure_works_on_plain_structures(space: BlockSpace) -> None:
    rng = np.random.default_rng(5)
    child = space.mutate_structure(DEFAULT_STRUCTURE, rng)
    assert isinstance(child, list) and child != DEFAULT_STRUCTURE and space.is_valid(space.from_config(child))
    blocks = parse_structure(DEFAULT_STRUCTURE)
    child_blocks = space.mutate_structure(blocks, rng)
    assert isinstance(child_blocks, tuple) and all(isinstance(b, Block) for b in child_blocks)
    with pytest.raises(ArchpruneError, match="outside this space"):
        space.mutate_structure(_bad(b4_btn=8), rng)


def test_samples_are_valid_and_varied(space: BlockSpace) -> None:
    rng = np.random.default_rng(2)
    samples = [space.sample(rng) for _ in range(100)]
    assert all(space.is_valid(g) for g in samples)
    assert len(set(samples)) == 100


# -- analytic costs and entropy --------------------------------------------------------------------------
def test_default_structure_is_yolov8n_sized() -> None:
    v8n = build_model("yolov8n", nc=80)
    backbone = count_flops_params(nn.Sequential(*v8n.model[:9]), 640)
    whole = count_flops_params(v8n, 640)
    ours = default_budgets(640)
    assert ours["layers"] == 13
    assert ours["backbone_flops_g"] == pytest.approx(backbone["flops_g"], rel=0.05)
    assert ours["backbone_params_m"] == pytest.approx(backbone["params_m"], rel=0.06)
    assert default_budgets(640, detector=True)["flops_g"] == pytest.approx(whole["flops_g"], rel=0.01)


@pytest.mark.parametrize("which", ["default", "tinynas", "sample0", "sample1", "rep"])
def test_analytic_flops_and_params_match_thop(which: str, space: BlockSpace) -> None:
    rng = np.random.default_rng(7)
    samples = {f"sample{i}": space.to_config(space.sample(rng))["structure"] for i in range(2)}
    structure = {"default": DEFAULT_STRUCTURE, "tinynas": TINYNAS, "rep": REP, **samples}[which]
    imgsz = 320
    thop_bb = count_flops_params(BlockBackbone(parse_structure(structure)), imgsz)
    assert structure_flops(structure, imgsz) == pytest.approx(thop_bb["flops_g"], rel=1e-6)
    assert structure_params(structure) == pytest.approx(thop_bb["params_m"], rel=1e-9)
    thop_det = count_flops_params(BlockDetector(structure, nc=3), imgsz)
    analytic = detector_flops_params(structure, imgsz, nc=3)
    assert analytic["flops_g"] == pytest.approx(thop_det["flops_g"], rel=1e-6)
    assert analytic["params_m"] == pytest.approx(thop_det["params_m"], rel=1e-9)
    assert (analytic["backbone_flops_g"], analytic["backbone_params_m"]) == \
        pytest.approx((thop_bb["flops_g"], thop_bb["params_m"]), rel=1e-6)


def test_entropy_layout_matches_stages_layers_and_the_analytic_entropy() -> None:
    for structure in (DEFAULT_STRUCTURE, TINYNAS, REP):
        blocks = parse_structure(structure)
        layout = BlockBackbone(blocks).entropy_layout()
        assert len(layout) == sum(b.s == 2 for b in blocks)  # a stage per stride-2 block (stem included)
        assert sum(len(unit) for stage in layout for unit in stage) == count_layers(blocks)
        assert all(isinstance(c, nn.Conv2d) for stage in layout for unit in stage for c in unit)
        # the analytic form is the fan-ins of exactly these convs
        total, from_modules = 0.0, []
        for stage in layout:
            total += sum(0.5 * math.log(c.in_channels // c.groups * c.kernel_size[0] ** 2)
                         for unit in stage for c in unit)
            from_modules.append(total + math.log(stage[-1][-1].out_channels))
        assert stage_entropies(blocks) == pytest.approx(from_modules)
    assert len(BlockBackbone(parse_structure(TINYNAS)).entropy_layout()[2]) == 3  # kxkx unit + 2 k1kxk1 units


def test_analytic_entropy_weights() -> None:
    scores = stage_entropies(DEFAULT_STRUCTURE)
    assert len(scores) == 5
    assert analytic_entropy(DEFAULT_STRUCTURE) == pytest.approx(scores[2] + scores[3] + 6 * scores[4])
    assert analytic_entropy(DEFAULT_STRUCTURE, weights="damo") == pytest.approx(scores[2] + scores[3] + 16 * scores[4])
    stem = 0.5 * math.log(3 * 9)
    assert scores[0] == pytest.approx(stem + math.log(16))
    unit1 = 0.5 * math.log(16) + 0.5 * math.log(16 * 9)  # k1kx 16 -> 32, btn 16
    assert scores[1] == pytest.approx(stem + unit1 + math.log(32))
    four = DEFAULT_STRUCTURE[:4]  # 4 stages: the last 4 weights (0, 1, 1, 6)
    s4 = stage_entropies(four)
    assert analytic_entropy(four) == pytest.approx(s4[1] + s4[2] + 6 * s4[3])
    assert analytic_entropy(DEFAULT_STRUCTURE, weights=(1, 0, 0, 0, 0, 0, 0)) == 0.0  # the deepest weights align
    assert analytic_entropy(DEFAULT_STRUCTURE, weights=(2,)) == pytest.approx(2 * scores[4])  # zeros padded in front
    assert analytic_entropy(DEFAULT_STRUCTURE, weights="0, 0, 1,1,1") == pytest.approx(sum(scores[2:]))  # as typed
    wider = [dict(b) for b in DEFAULT_STRUCTURE]
    wider[4]["btn"] = 128
    assert analytic_entropy(wider) < analytic_entropy(DEFAULT_STRUCTURE)


# -- the detector ---------------------------------------------------------------------------------------------
def test_detector_trains_a_few_steps(space: BlockSpace) -> None:
    torch.manual_seed(0)
    model = space.build(space.mutate(space.baselines()[0][1], np.random.default_rng(3))).train()
    assert isinstance(model.backbone, BlockBackbone) and model.nc == 3 and model.stride.tolist() == [8, 16, 32]
    images = torch.rand(2, 3, 64, 64)
    batch_idx = torch.tensor([0, 1, 1])
    cls = torch.tensor([0.0, 1.0, 2.0])
    boxes = torch.tensor([[8.0, 8.0, 40.0, 40.0], [4.0, 10.0, 30.0, 60.0], [32.0, 32.0, 60.0, 56.0]])
    loss_fn = DetectionLoss(model.head)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    losses = []
    for _ in range(3):
        feats = model(images)
        assert [f.shape[-1] for f in feats] == [8, 4, 2] and feats[0].shape[1] == 64 + 3
        loss, parts = loss_fn(feats, batch_idx, cls, boxes)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert all(math.isfinite(v) for v in losses)
    changed = [k for k, v in model.state_dict().items() if v.is_floating_point() and not torch.equal(v, before[k])]
    assert any(k.startswith("backbone.") for k in changed) and any(k.startswith("detect.") for k in changed)


def test_detector_exports_to_onnx_and_onnxruntime_agrees(space: BlockSpace, tmp_path: Path) -> None:
    model = space.build(space.baselines()[0][1])
    path = export_onnx(model, tmp_path / "blocks.onnx", imgsz=96)
    x = torch.rand(1, 3, 96, 96)
    with torch.no_grad():
        expected = model(x).numpy()
    assert expected.shape == (1, 4 + 3, 12 * 12 + 6 * 6 + 3 * 3)
    session = onnx_session(path, threads=1)
    (got,) = session.run(None, {"images": x.numpy()})
    np.testing.assert_allclose(got, expected, rtol=1e-3, atol=1e-3)


def test_a_block_detector_round_trips_through_a_checkpoint_and_loads_from_its_structure_file(tmp_path) -> None:
    import torch
    import yaml

    from spaces.models import load_model
    from spaces.models.checkpoint import save_checkpoint

    structure = tmp_path / "backbone.yaml"
    structure.write_text(yaml.safe_dump(DEFAULT_STRUCTURE, sort_keys=False))
    fresh = load_model(str(structure), nc=3)  # a structure file builds like a model name: random init
    assert isinstance(fresh, BlockDetector) and fresh.nc == 3
    fresh.imgsz = 160
    loaded = load_model(save_checkpoint(fresh, tmp_path / "b.pt"))
    assert isinstance(loaded, BlockDetector) and loaded.structure == fresh.structure and loaded.imgsz == 160
    assert all(torch.equal(a, b) for a, b in zip(fresh.state_dict().values(), loaded.state_dict().values()))
