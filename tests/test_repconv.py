"""Re-parameterizable convs (issue 18, item 4): the fused conv equals the three branches in eval
mode, the branches train, and a fused model is plain convs only."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from spaces.errors import ArchpruneError
from spaces.models.repconv import RepConv, fuse_repconvs


def _randomize(module: nn.Module, seed: int) -> nn.Module:
    g = torch.Generator().manual_seed(seed)
    for m in module.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.5)
            m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.weight.data.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.bias.data.copy_(torch.randn(m.num_features, generator=g) * 0.5)
    return module.eval()


@pytest.mark.parametrize("c1,c2,k,s,branches", [(8, 8, 3, 1, 3), (8, 16, 3, 1, 2), (8, 8, 3, 2, 2), (6, 6, 5, 1, 3)])
def test_the_fused_conv_equals_the_branches_in_eval_mode(c1: int, c2: int, k: int, s: int, branches: int) -> None:
    block = _randomize(RepConv(c1, c2, k, s), seed=c1 + c2 + k + s)
    assert (block.identity is not None) == (branches == 3)  # identity only where the shapes allow
    x = torch.randn(2, c1, 17, 19, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        unfused = block(x)
        fuse_repconvs(block)
        fused = block(x)
    torch.testing.assert_close(fused, unfused, rtol=1e-4, atol=1e-4)
    assert [type(m) for m in block.modules() if isinstance(m, (nn.Conv2d, nn.BatchNorm2d))] == [nn.Conv2d]
    assert block.fused.kernel_size == (k, k) and block.fused.stride == (s, s)


def test_the_branches_train_and_every_branch_learns() -> None:
    torch.manual_seed(0)
    block = RepConv(4, 4, 3).train()
    target = nn.Conv2d(4, 4, 3, padding=1)
    optimizer = torch.optim.SGD(block.parameters(), lr=0.05)
    x = torch.randn(8, 4, 12, 12)
    losses = []
    for _ in range(20):
        loss = nn.functional.mse_loss(block(x), target(x).detach())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.7 * losses[0]
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in block.parameters())  # all three branches


def test_bad_kernels_are_refused() -> None:
    with pytest.raises(ArchpruneError, match="odd and at least 3"):
        RepConv(4, 4, 1)


REP_STRUCTURE = [
    {"class": "conv", "in": 3, "out": 16, "s": 2, "k": 3},
    {"class": "repkxkx", "in": 16, "out": 32, "s": 2, "k": 3, "L": 1, "btn": 16},
    {"class": "repkxkx", "in": 32, "out": 32, "s": 1, "k": 3, "L": 2, "btn": 32},
    {"class": "repkxkx", "in": 32, "out": 64, "s": 2, "k": 3, "L": 1, "btn": 32},
    {"class": "repkxkx", "in": 64, "out": 128, "s": 2, "k": 3, "L": 1, "btn": 64},
]


def test_a_rep_block_detector_is_measured_exported_and_saved_in_its_fused_form(tmp_path) -> None:
    import onnx

    from evaluators.flops import count_flops_params
    from evaluators.onnx_export import export_onnx
    from spaces.blocks import BlockDetector
    from spaces.models import load_model, save_checkpoint
    from spaces.models.repconv import deployed, has_branches

    model = _randomize(BlockDetector(REP_STRUCTURE, nc=3), seed=3)
    fused = deployed(model)
    assert has_branches(model) and not has_branches(fused) and fused is not model  # the caller's model keeps its branches
    x = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        torch.testing.assert_close(fused(x), model(x), rtol=1e-4, atol=1e-4)
    assert count_flops_params(model, 64) == count_flops_params(fused, 64)  # FLOPs and params: the fused form
    graph = onnx.load(str(export_onnx(model, tmp_path / "m.onnx", imgsz=64))).graph
    assert "BatchNormalization" not in {n.op_type for n in graph.node}
    assert sum(n.op_type == "Conv" for n in graph.node) == sum(isinstance(m, nn.Conv2d) for m in fused.modules())
    reloaded = load_model(save_checkpoint(fused, tmp_path / "deployed.pt"))
    assert not has_branches(reloaded)
    with torch.no_grad():
        torch.testing.assert_close(reloaded(x), fused(x))
    assert has_branches(load_model(save_checkpoint(model, tmp_path / "train.pt")))  # the training form reloads as such


def test_a_rep_neck_counts_as_deployed_and_a_blocks_search_takes_it(tmp_path) -> None:
    from evaluators.flops import count_flops_params
    from search.cli import main
    from spaces.blocks import DEFAULT_STRUCTURE, BlockDetector, detector_flops_params
    from spaces.models import load_model, save_checkpoint
    from spaces.models.repconv import has_branches

    model = _randomize(BlockDetector(DEFAULT_STRUCTURE, nc=3, neck="rep"), seed=5)
    assert has_branches(model.neck) and not has_branches(model.backbone)
    thop = count_flops_params(model, 320)
    analytic = detector_flops_params(DEFAULT_STRUCTURE, 320, nc=3, neck="rep")
    assert analytic["flops_g"] == pytest.approx(thop["flops_g"], rel=1e-6)
    assert analytic["params_m"] == pytest.approx(thop["params_m"], rel=1e-9)
    assert analytic["flops_g"] < detector_flops_params(DEFAULT_STRUCTURE, 320, nc=3)["flops_g"]  # no neck BNs
    reloaded = load_model(save_checkpoint(model, tmp_path / "rep.pt"))
    x = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        torch.testing.assert_close(reloaded.eval()(x), model(x))
    run = ["search", "--space", "blocks", "--neck", "rep", "--driver", "zeroshot", "--objectives", "entropy:max",
           "--imgsz", "64", "--trials", "6", "--population", "4", "--offspring", "2", "--run", "rep",
           "--results", str(tmp_path), "--no-progress"]
    assert main(run) == 0
    assert main(["export", str(tmp_path / "rep"), "--trial", "0", "--out", str(tmp_path / "x")]) == 0
    assert has_branches(load_model(str(tmp_path / "x" / "model.pt")))
    assert not has_branches(load_model(str(tmp_path / "x" / "model-deployed.pt")))
    assert main(["search", "--model", "yolov8n-digits", "--neck", "rep", "--results", str(tmp_path)]) == 2
