"""Dropping trailing blocks (issue 17, item 2): a depth-pruned C2f / C3k2 equals the original with the
dropped blocks' outputs zeroed in the concat, a depth-pruned C3k the original with the dropped
residual branches zeroed; every depth choice of other scales builds and runs."""
from __future__ import annotations

import pytest
import torch

from spaces.channel_space import ChannelSpace
from spaces.depth_pruning import depth_units, drop_trailing_blocks, with_depth
from spaces.errors import ArchpruneError
from spaces.models import build_model, load_model

X = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(0))


def _outputs(model: torch.nn.Module) -> torch.Tensor:
    with torch.no_grad():
        out = model.eval()(X)
    return out[0] if isinstance(out, (list, tuple)) else out


def _zeroed(model: torch.nn.Module, unit_name: str, keep: int) -> torch.Tensor:
    """The original model's output with the dropped blocks' contributions zeroed by hooks."""
    module = model.get_submodule(unit_name)
    hooks = []
    for block in list(module.m)[keep:]:
        target = block.cv2 if type(module).__name__ == "C3k" else block  # C3k: the residual branch
        hooks.append(target.register_forward_hook(lambda m, i, o: torch.zeros_like(o)))
    try:
        return _outputs(model)
    finally:
        for hook in hooks:
            hook.remove()


@pytest.mark.parametrize("name,kind", [("yolov8n", "split"), ("yolo11n", "split"), ("yolo11n", "c3k")])
def test_a_dropped_block_is_the_original_with_its_contribution_zeroed(name: str, kind: str) -> None:
    model = build_model(name, nc=10)
    units = [u for u in depth_units(model) if u.kind == kind]
    assert units
    for unit in units:
        for keep in unit.choices()[:-1]:
            pruned = with_depth(model, {unit.name: keep})
            assert len(pruned.get_submodule(unit.name).m) == keep
            torch.testing.assert_close(_outputs(pruned), _zeroed(model, unit.name, keep), rtol=1e-4, atol=1e-4)


def test_depth_pruning_works_on_a_width_pruned_model_and_leaves_the_original_alone() -> None:
    space = ChannelSpace(load_model("yolov8n-digits"))
    narrow = space.build(dict(space.baselines())["uniform-0.5"])  # every group's widths changed first
    unit = next(u for u in depth_units(narrow) if u.blocks == 2)
    before = [p.clone() for p in narrow.parameters()]
    pruned = with_depth(narrow, {unit.name: 1})
    torch.testing.assert_close(_outputs(pruned), _zeroed(narrow, unit.name, 1), rtol=1e-4, atol=1e-4)
    assert all(torch.equal(a, b) for a, b in zip(before, narrow.parameters()))
    assert sum(p.numel() for p in pruned.parameters()) < sum(p.numel() for p in narrow.parameters())


@pytest.mark.parametrize("name", ["yolov8s", "yolo11m"])
def test_every_depth_choice_of_other_scales_builds_and_runs(name: str) -> None:
    model = build_model(name, nc=10)
    units = depth_units(model)
    expected = _outputs(model).shape
    for unit in units:
        for keep in unit.choices():
            assert _outputs(with_depth(model, {unit.name: keep})).shape == expected
    shallowest = with_depth(model, {u.name: u.minimum for u in units})  # every chain at once
    assert _outputs(shallowest).shape == expected


def test_keeping_more_blocks_than_there_are_is_a_one_line_error() -> None:
    model = build_model("yolov8n", nc=10)
    unit = depth_units(model)[0]
    with pytest.raises(ArchpruneError, match=f"cannot keep 5 of the {unit.blocks} blocks of C2f"):
        drop_trailing_blocks(model.get_submodule(unit.name), 5)
