"""YOLOv8 / YOLO11 in plain torch: every scale builds, checkpoints import exactly, bad files fail cleanly."""
from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from evaluators.postprocess import non_max_suppression
from spaces.errors import ArchpruneError
from spaces.models import build_model, load_model, save_checkpoint
from spaces.models.blocks import C2f, C3k2
from tests.conftest import shared_path

# Parameter counts Ultralytics prints for its official yamls at 80 classes.
OFFICIAL_PARAMS = {
    "yolov8n": 3_157_200, "yolov8s": 11_166_560, "yolov8m": 25_902_640, "yolov8l": 43_691_520,
    "yolov8x": 68_229_648, "yolo11n": 2_624_080, "yolo11s": 9_458_752, "yolo11m": 20_114_688,
    "yolo11l": 25_372_160, "yolo11x": 56_966_176,
}


def n_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("name", sorted(OFFICIAL_PARAMS))
def test_every_scale_matches_official_parameter_count(name: str) -> None:
    assert n_params(build_model(name)) == OFFICIAL_PARAMS[name]


@pytest.mark.parametrize("name", ["yolov8n", "yolo11n"])
@pytest.mark.parametrize("nc", [1, 3, 80])
def test_eval_output_layout(name: str, nc: int) -> None:
    model = load_model(name, nc=nc)
    assert not model.training and next(model.parameters()).dtype == torch.float32
    with torch.no_grad():
        y = model(torch.rand(2, 3, 64, 96))
    anchors = (64 // 8) * (96 // 8) + (64 // 16) * (96 // 16) + (64 // 32) * (96 // 32)
    assert y.shape == (2, 4 + nc, anchors)
    scores = y[:, 4:]
    assert scores.min() >= 0 and scores.max() <= 1  # after sigmoid
    # boxes are xywh in input pixels: centres inside (or near) the image, positive sizes
    assert (y[:, 2:4] > 0).all() and y[:, 0].abs().max() < 96 * 2


def test_named_models_are_deterministic_and_do_not_touch_global_rng() -> None:
    torch.manual_seed(123)
    before = torch.rand(1)
    torch.manual_seed(123)
    a = build_model("yolov8n", nc=3)
    after = torch.rand(1)
    b = build_model("yolov8n", nc=3)
    assert torch.equal(before, after)
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))


def _fused_c2f_forward(block: C2f | C3k2, fused_w: torch.Tensor, bn: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """Ultralytics' original C2f forward: one cv1 conv whose output is chunked in two."""
    y = torch.nn.functional.conv2d(x, fused_w)
    y = torch.nn.functional.batch_norm(y, bn["running_mean"], bn["running_var"], bn["weight"], bn["bias"],
                                       False, 0.0, 1e-3)
    ys = list(torch.nn.functional.silu(y).chunk(2, 1))
    ys.extend(m(ys[-1]) for m in block.m)
    return block.cv2(torch.cat(ys, 1))


@pytest.mark.parametrize("cls,kwargs", [(C2f, {"shortcut": True}), (C3k2, {"c3k": True})])
def test_split_cv1_is_lossless_against_fused_form(cls, kwargs) -> None:
    torch.manual_seed(0)
    block = cls(16, 32, n=2, **kwargs).eval()
    for bn in (block.cv1a.bn, block.cv1b.bn):  # non-identity statistics so a wrong half shows
        bn.running_mean.uniform_(-1, 1)
        bn.running_var.uniform_(0.5, 2)
        bn.weight.data.uniform_(0.5, 1.5)
        bn.bias.data.uniform_(-0.5, 0.5)
    fused_w = torch.cat([block.cv1a.conv.weight, block.cv1b.conv.weight])
    fused_bn = {k: torch.cat([getattr(block.cv1a.bn, k), getattr(block.cv1b.bn, k)])
                for k in ("running_mean", "running_var", "weight", "bias")}
    x = torch.randn(2, 16, 20, 20)
    with torch.no_grad():
        torch.testing.assert_close(block(x), _fused_c2f_forward(block, fused_w, fused_bn, x), rtol=0, atol=1e-5)


@pytest.mark.parametrize("stem,family", [("yolov8n-rand", "yolov8"), ("yolo11n-rand", "yolo11")])
def test_ultralytics_checkpoint_matches_reference_outputs(stem: str, family: str) -> None:
    folder = shared_path("ultralytics")
    info = json.loads((folder / "models.json").read_text())["models"][stem.split("-")[0]]
    model = load_model(folder / f"{stem}.pt")
    assert n_params(model) == info["params"]
    assert model.nc == 80 and model.names[0] == "person" and model.names[79] == "toothbrush"
    assert model.imgsz == 640 and next(model.parameters()).dtype == torch.float32
    assert model.head.legacy == (family == "yolov8")
    inputs, ref = np.load(folder / "inputs.npz"), np.load(folder / f"{stem}_ref.npz")
    with torch.no_grad():
        y1 = model(torch.from_numpy(inputs["x1"]))
        y2 = model(torch.from_numpy(inputs["x2"]))
    r1, r2 = torch.from_numpy(ref["y1"]), torch.from_numpy(ref["y2"])
    assert (y1[:, :4] - r1[:, :4]).abs().max() < 5e-3
    assert (y1[:, 4:] - r1[:, 4:]).abs().max() < 1e-5
    assert (y2[:, :4] - r2[:, :4]).abs().max() < 0.1
    assert (y2[:, 4:] - r2[:, 4:]).abs().max() < 5e-4
    _, kept = non_max_suppression(y1, conf_thres=0.001, iou_thres=0.7, max_det=300, return_indices=True)
    assert kept[0].tolist() == ref["nms1_idx"].tolist()
    _, kept2 = non_max_suppression(y2, conf_thres=0.001, iou_thres=0.7, max_det=300, return_indices=True)
    for i in range(2):
        assert set(kept2[i].tolist()) == set(ref[f"nms2_{i}_idx"].tolist())


def rewrite_pickle(src: Path, dst: Path, replacements: list[tuple[bytes, bytes]]) -> Path:
    """Copy a torch zip checkpoint, editing its pickle bytes (how old or hostile files look)."""
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w", zipfile.ZIP_STORED) as zout:
        for item in zin.infolist():
            data = zin.read(item.filename)
            if item.filename.endswith("data.pkl"):
                for old, new in replacements:
                    assert old in data, old
                    data = data.replace(old, new)
            zout.writestr(item.filename, data)
    return dst


def test_old_flat_module_paths_load_the_same(tmp_path: Path) -> None:
    src = shared_path("ultralytics", "yolov8n-rand.pt")
    flat = rewrite_pickle(src, tmp_path / "flat.pt", [
        (b"ultralytics.nn.modules.conv\n", b"ultralytics.nn.modules\n"),
        (b"ultralytics.nn.modules.block\n", b"ultralytics.nn.modules\n"),
        (b"ultralytics.nn.modules.head\n", b"ultralytics.nn.modules\n"),
    ])
    a, b = load_model(src), load_model(flat)
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(a(x), b(x))


def _one_line_error(path_or_name, match: str) -> str:
    with pytest.raises(ArchpruneError, match=match) as info:
        load_model(path_or_name)
    message = str(info.value)
    assert "\n" not in message and "Traceback" not in message
    return message


def test_bad_checkpoints_give_one_line_errors(tmp_path: Path) -> None:
    src = shared_path("ultralytics", "yolov8n-rand.pt")
    raw = src.read_bytes()
    missing = tmp_path / "nope.pt"
    assert str(missing) in _one_line_error(missing, "model not found")

    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(raw[: len(raw) // 2])
    assert str(truncated) in _one_line_error(truncated, "truncated or corrupt")

    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"\x00not a checkpoint" * 50)
    _one_line_error(garbage, "truncated or corrupt")

    # a valid zip whose pickle is cut short: damage torch itself discovers
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(tmp_path / "cut.pt", "w") as zout:
        for item in zin.infolist():
            data = zin.read(item.filename)
            zout.writestr(item.filename, data[: len(data) // 3] if item.filename.endswith("data.pkl") else data)
    _one_line_error(tmp_path / "cut.pt", "truncated or corrupt")

    seg = rewrite_pickle(src, tmp_path / "seg.pt", [(b"DetectionModel", b"SegmentationModel")])
    assert "SegmentationModel" in _one_line_error(seg, "unsupported family")

    evil = rewrite_pickle(src, tmp_path / "evil.pt", [(b"cultralytics.nn.modules.conv\nConcat\n", b"cos\nsystem\n")])
    assert "os.system" in _one_line_error(evil, "allow-list")

    _one_line_error("yolov9z", "neither a file nor a known model name")


def test_unsupported_layer_in_yaml_is_named() -> None:
    from spaces.models.families import family_spec
    from spaces.models.yolo import YOLODetector

    spec = family_spec("yolov8n")
    spec["backbone"][2] = [-1, 3, "C3", [128, True]]
    with pytest.raises(ArchpruneError, match="layer 2 is 'C3'"):
        YOLODetector(spec, nc=80)


def _prune_bottleneck(model, layer: int, keep: int) -> None:
    """Remove channels inside one bottleneck by hand (what the channel space will do at scale)."""
    block = model.model[layer].m[0]
    idx = torch.arange(keep)
    conv, bn, nxt = block.cv1.conv, block.cv1.bn, block.cv2.conv
    new = torch.nn.Conv2d(conv.in_channels, keep, conv.kernel_size, conv.stride, conv.padding, bias=False)
    new.weight.data = conv.weight.data[idx].clone()
    new_bn = torch.nn.BatchNorm2d(keep, eps=bn.eps, momentum=bn.momentum)
    for name in ("weight", "bias", "running_mean", "running_var"):
        getattr(new_bn, name).data = getattr(bn, name).data[idx].clone()
    new_next = torch.nn.Conv2d(keep, nxt.out_channels, nxt.kernel_size, nxt.stride, nxt.padding, bias=False)
    new_next.weight.data = nxt.weight.data[:, idx].clone()
    block.cv1.conv, block.cv1.bn, block.cv2.conv = new, new_bn, new_next
    model.eval()


@pytest.mark.parametrize("name", ["yolov8n", "yolo11n"])
def test_archprune_checkpoint_round_trips_a_pruned_model(tmp_path: Path, name: str) -> None:
    model = build_model(name, nc=5)
    model.names = [f"c{i}" for i in range(5)]
    model.imgsz = 320
    _prune_bottleneck(model, 2, keep=4)
    path = save_checkpoint(model, tmp_path / "pruned.pt")
    raw = torch.load(path, weights_only=True)  # plain data only: safe loading works
    assert raw["architecture"]["layout"]["conv"]["model.2.m.0.cv1.conv"][1] == 4
    loaded = load_model(path)
    assert loaded.names == model.names and loaded.imgsz == 320 and loaded.nc == 5
    assert n_params(loaded) == n_params(model) < n_params(build_model(name, nc=5))
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(loaded(x), model(x))
    with pytest.raises(ArchpruneError, match="5 classes but nc=80"):
        load_model(path, nc=80)


def test_half_storage_halves_the_file_and_loads_as_float32(tmp_path: Path) -> None:
    model = build_model("yolov8n", nc=10)
    full = save_checkpoint(model, tmp_path / "full.pt")
    half = save_checkpoint(model, tmp_path / "half.pt", half=True)
    assert half.stat().st_size < 0.6 * full.stat().st_size
    loaded = load_model(half)
    assert next(loaded.parameters()).dtype == torch.float32
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), model(x), rtol=0, atol=0.05)


def test_bare_state_dict_is_refused_with_a_hint(tmp_path: Path) -> None:
    path = tmp_path / "sd.pt"
    torch.save(build_model("yolov8n").state_dict(), path)
    _one_line_error(path, "bare state dict")
