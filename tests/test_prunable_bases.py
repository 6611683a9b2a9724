"""Prunable bases: sparse training (Torch-Pruning's regularizers over the channel space's groups)
and elastic-width training (sandwich rule, in-place distillation, masked sub-networks)."""
from __future__ import annotations

import copy
import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from evaluators.data import DetectionDataset, build_digits_det, collate_detections
from evaluators.training import elastic as elastic_module
from evaluators.training.elastic import ElasticTrainer, frozen_bn_statistics
from evaluators.training.sparsity import REGULARIZERS, SparsityRegularizer
from evaluators.training.trainer import TrainSettings, _extension_for, train
from spaces.channel_masks import ChannelMasks
from spaces.channel_space import ChannelSpace
from spaces.errors import ArchpruneError
from spaces.models import build_model, load_model, save_checkpoint

ARCHPRUNE = Path(sys.executable).with_name("archprune")


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_digits_det(tmp_path_factory.mktemp("tiny") / "dd", seed=1, n_train=16, n_val=8, imgsz=64)


def _randomize_batchnorm(model: nn.Module, seed: int = 0) -> nn.Module:
    """Non-trivial BN statistics and affine terms, so a masked channel is not zero by accident."""
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            n = m.num_features
            m.running_mean.copy_(torch.randn(n, generator=g) * 0.5)
            m.running_var.copy_(torch.rand(n, generator=g) + 0.5)
            m.weight.data.copy_(torch.rand(n, generator=g) + 0.5)
            m.bias.data.copy_(torch.randn(n, generator=g) * 0.5)
    return model.eval()


def _batch(data: Path, n: int = 4) -> dict:
    files = sorted((data.parent / "images" / "train").iterdir())[:n]
    ds = DetectionDataset(files, 64, nc=10)
    return collate_detections([ds[i] for i in range(n)])


# -- sparse training ----------------------------------------------------------------------------

@pytest.mark.parametrize("kind", REGULARIZERS)
def test_each_regularizer_changes_the_gradients_of_the_space_groups_only(kind: str) -> None:
    model = _randomize_batchnorm(build_model("yolov8n", nc=10))
    keep = ("model.9",)  # the SPPF and the groups that reach it are not genes: nothing there may move
    reg = SparsityRegularizer(model, kind, 1e-3, batch=8, keep_layers=keep)
    space = ChannelSpace(model, keep_layers=keep)
    assert {reg_name(g, model) for g in reg.pruner._groups} == {gene.name for gene in space.genes}
    for p in model.parameters():
        p.grad = torch.zeros_like(p)
    reg.after_backward(model)
    moved = {name for name, p in model.named_parameters() if p.grad.abs().sum() > 0}
    touched = {name for g in reg.pruner._groups for item in g
               for name, m in model.named_modules() if m is item.dep.target.module}
    for gene in space.genes:  # every gene's group is pulled towards zero somewhere
        members = {name for g in reg.pruner._groups if reg_name(g, model) == gene.name for item in g
                   for name, m in model.named_modules() if m is item.dep.target.module}
        assert any(p.rsplit(".", 1)[0] in members for p in moved), f"{kind} left group {gene.name} alone"
    outside = {p for p in moved if p.rsplit(".", 1)[0] not in touched}
    assert not outside, f"{kind} changed parameters outside the space's groups: {sorted(outside)[:5]}"
    assert not any(p.startswith("model.9.") for p in moved)
    if kind == "slim":  # Network Slimming penalises BatchNorm scales only
        assert all(p.endswith("bn.weight") for p in moved)


def reg_name(group, model: nn.Module) -> str:
    root = group[0].dep.target.module
    return next(name for name, m in model.named_modules() if m is root)


def test_sparse_training_writes_a_sparsity_column_and_an_ordinary_checkpoint(tiny_data: Path, tmp_path: Path) -> None:
    settings = TrainSettings(model="yolov8n", data=str(tiny_data), imgsz=64, epochs=2, out=str(tmp_path / "run"),
                             batch=8, seed=3, sparsity="group-norm", sparsity_weight=0.05)
    train(settings, log=lambda _: None)
    with (tmp_path / "run" / "results.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert [0.0 <= float(r["sparsity"]) <= 1.0 for r in rows] == [True, True]
    model = load_model(tmp_path / "run" / "last.pt")
    assert model.channel_order is None and ChannelSpace(model).genes  # a plain model source


# -- elastic training ---------------------------------------------------------------------------

def test_a_masked_forward_equals_the_physically_built_candidate() -> None:
    model = _randomize_batchnorm(build_model("yolov8n", nc=10))
    space = ChannelSpace(model)
    masked_model = copy.deepcopy(model)
    masks = ChannelMasks(masked_model, space)
    x = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    rng = np.random.default_rng(0)
    genomes = [tuple(0 for _ in space.genes), space.uniform(0.5), space.sample(rng), space.sample(rng)]
    with torch.no_grad():
        full = masked_model(x)
        for genome in genomes:
            built = space.build(genome)(x)
            masks.set(genome)
            torch.testing.assert_close(masked_model(x), built, rtol=1e-4, atol=1e-4)
            masks.set(None)
            assert not torch.allclose(masked_model(x), built, atol=1e-3)  # the masks did the work
        torch.testing.assert_close(masked_model(x), full)


@pytest.mark.parametrize("name", ["yolov8n", "yolo11n"])
def test_a_masked_forward_with_depth_genes_equals_the_physically_built_candidate(name: str) -> None:
    model = _randomize_batchnorm(build_model(name, nc=10))
    space = ChannelSpace(model, depth=True)
    assert any(u.kind == "c3k" for u in space.depth_units) == (name == "yolo11n")  # both kinds of chain
    masked_model = copy.deepcopy(model)
    masks = ChannelMasks(masked_model, space)
    x = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    rng = np.random.default_rng(1)
    baselines = dict(space.baselines())
    genomes = [space.canonical(tuple(0 for _ in space.genes)), baselines["depth-0"], baselines["depth-1"]]
    genomes += [space.sample(rng) for _ in range(3)]
    assert any(min(space.depth(g).values()) == 0 for g in genomes[3:])  # samples drop blocks too
    with torch.no_grad():
        for genome in genomes:
            built = space.build(genome)(x)
            masks.set(genome)
            torch.testing.assert_close(masked_model(x), built, rtol=1e-4, atol=1e-4)
        masks.set(None)
        torch.testing.assert_close(masked_model(x), model(x))


def test_an_elastic_step_with_depth_trains_depth_pruned_subnetworks(tiny_data: Path) -> None:
    model = build_model("yolov8n", nc=10)
    trainer = ElasticTrainer(model, samples=4, seed=2, depth=True)
    assert set(trainer.space.depth(trainer.smallest()).values()) == {0}  # the smallest keeps no block
    batch = _batch(tiny_data)
    model.train()
    trainer.forward_backward(model, batch, lambda b, f: (f[0].sum() * 0 + f[0].mean(), torch.zeros(4)), 0, 0)
    depths = [trainer.space.depth(g) for g in trainer.last_step[1:]]
    full = {u.name: u.blocks for u in trainer.space.depth_units}
    assert any(d != full for d in depths[1:])  # random sub-networks sample depth as well as width
    with pytest.raises(ArchpruneError, match="add --elastic"):
        _extension_for(model, TrainSettings(model="m", data="d", imgsz=64, epochs=1, out="o", elastic_depth=True))


def test_an_elastic_step_trains_largest_smallest_and_n_samples_distilling_from_the_largest(
        tiny_data: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    model = build_model("yolov8n", nc=10)
    trainer = ElasticTrainer(model, samples=3, seed=5)
    batch = _batch(tiny_data)
    model.train()
    with torch.no_grad(), frozen_bn_statistics(model):
        largest = [f.clone() for f in model(batch["img"])]
    teachers, subnet_outputs = [], []
    real_kd = elastic_module.head_kd_loss

    def spy(student, teacher, nc, reg_max, temperature=1.0):
        teachers.append([t.clone() for t in teacher])
        subnet_outputs.append([s.detach().clone() for s in student])
        return real_kd(student, teacher, nc, reg_max, temperature)

    monkeypatch.setattr(elastic_module, "head_kd_loss", spy)
    calls = []

    def step_loss(b, feats):
        calls.append(1)
        loss, parts = trainer.loss_fn(feats, b["batch_idx"], b["cls"], b["boxes"])
        return loss, torch.cat((parts, torch.zeros(1)))

    parts = trainer.forward_backward(model, batch, step_loss, epoch=0, index=0)
    smallest = trainer.smallest()
    assert trainer.last_step[0] is None and trainer.last_step[1] == smallest and len(trainer.last_step) == 5
    assert trainer.last_step[2:] == trainer.subnets(0, 0)[1:]  # the same draw for the same (seed, epoch, step)
    assert len(set(trainer.last_step[1:])) == 4 and space_unpruned(trainer) not in trainer.last_step
    assert calls == [1] and len(teachers) == 4 and parts.shape == (4,) and parts[3] > 0
    for teacher in teachers:  # every sub-network distils from this step's largest network
        for t, ref in zip(teacher, largest):
            torch.testing.assert_close(t, ref, rtol=1e-4, atol=1e-4)
    for outputs in subnet_outputs:  # and each is a different (masked) network
        assert not all(torch.allclose(o, ref, atol=1e-3) for o, ref in zip(outputs, largest))
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())


def space_unpruned(trainer: ElasticTrainer) -> tuple:
    return trainer.space.unpruned()


def test_an_elastic_base_records_its_order_and_a_space_on_it_keeps_prefixes(tmp_path: Path) -> None:
    model = build_model("yolov8n", nc=10)
    order = ChannelSpace(model, importance="random", seed=7).channel_order()
    model.channel_order = order
    path = save_checkpoint(model, tmp_path / "elastic.pt")
    loaded = load_model(path)
    assert loaded.channel_order == order
    space = ChannelSpace(loaded, importance="l1")  # the recorded order wins over --importance
    assert space.order_source == "recorded"
    genome = space.sample(np.random.default_rng(1))
    for name, kept in space.kept_indices(genome).items():
        assert kept == sorted(order[name][:len(kept)])
    assert space.build(genome).channel_order is None  # a pruned model keeps no stale order


@pytest.mark.parametrize("flags", [["--sparsity", "growing-reg"], ["--elastic", "--elastic-samples", "1"]],
                         ids=["growing-reg", "elastic"])
def test_sigkill_mid_run_then_resume_matches_an_uninterrupted_run(tiny_data: Path, tmp_path: Path,
                                                                  flags: list[str]) -> None:
    epochs = 4
    common = [str(ARCHPRUNE), "train", "--model", "yolov8n", "--data", str(tiny_data), "--imgsz", "64",
              "--epochs", str(epochs), "--batch", "8", "--seed", "3", *flags]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    reference = tmp_path / "reference"
    done = subprocess.run(common + ["--out", str(reference)], capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stderr
    run = tmp_path / "killed"
    proc = subprocess.Popen(common + ["--out", str(run)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    deadline = time.monotonic() + 300
    while not (run / "results.csv").exists() and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)  # in the middle of the next epoch
    proc.wait()
    with (run / "results.csv").open() as f:
        assert 1 <= len(list(csv.DictReader(f))) < epochs, "the kill should land before the run finishes"
    resumed = subprocess.run(common + ["--out", str(run), "--resume"], capture_output=True, text=True, env=env,
                             timeout=600)
    assert resumed.returncode == 0, resumed.stderr
    a = torch.load(reference / "last.pt", weights_only=True)
    b = torch.load(run / "last.pt", weights_only=True)
    for key in a["state_dict"]:
        torch.testing.assert_close(b["state_dict"][key], a["state_dict"][key], rtol=1e-4, atol=1e-5,
                                   msg=f"{key} differs after resume")
    assert a["meta"].get("channel_order") == b["meta"].get("channel_order")
    if "--elastic" in flags:
        assert b["meta"]["channel_order"]


@pytest.mark.parametrize("argv, message", [
    (["--elastic", "--sparsity", "slim"], "choose one"),
    (["--sparsity-weight", "1e-4"], "--sparsity-weight needs --sparsity"),
    (["--sparsity", "slim", "--sparsity-weight", "2"], "--sparsity-weight must be in (0, 1)"),
])
def test_bad_sparse_or_elastic_flags_give_one_line_errors(tiny_data: Path, tmp_path: Path, argv: list[str],
                                                          message: str) -> None:
    proc = subprocess.run([str(ARCHPRUNE), "train", "--model", "yolov8n", "--data", str(tiny_data), "--imgsz", "64",
                           "--epochs", "1", "--out", str(tmp_path / "r"), *argv], capture_output=True, text=True)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], proc.stderr
