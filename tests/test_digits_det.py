"""digits-det: determinism, YOLO-format validity, atomic builds and the cache."""
from __future__ import annotations

import inspect
import os
import shutil
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from sklearn.datasets import load_digits

from evaluators.data import DetectionDataset, build_digits_det, default_digits_det, load_data_config
from evaluators.data import digits_det
from spaces.errors import ArchpruneError

SMALL = {"n_train": 40, "n_val": 10, "imgsz": 160}


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def _siblings(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.parent.iterdir())


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_digits_det(tmp_path_factory.mktemp("dd") / "set", seed=0, **SMALL).parent


def test_same_seed_same_bytes_other_seed_differs(built: Path, tmp_path: Path) -> None:
    again = build_digits_det(tmp_path / "again", seed=0, **SMALL).parent
    other = build_digits_det(tmp_path / "other", seed=1, **SMALL).parent
    reference = _files(built)
    assert len(reference) == 2 * (40 + 10) + 1  # images + labels + data.yaml
    assert _files(again) == reference
    changed = _files(other)
    assert changed.keys() == reference.keys()
    differing = [k for k in reference if k.endswith(".png") and reference[k] != changed[k]]
    assert len(differing) == 50


def test_yaml_loads_and_is_movable(built: Path, tmp_path: Path) -> None:
    moved = Path(shutil.copytree(built, tmp_path / "moved"))
    cfg = load_data_config(moved / "data.yaml")
    assert cfg.root == moved.resolve()  # `path: .` follows the folder
    assert cfg.names == [str(d) for d in range(10)] and cfg.nc == 10
    assert len(cfg.images("train")) == 40 and len(cfg.images("val")) == 10
    assert cfg.images("val")[0].name == "000000.png"


def test_labels_valid_boxes_inside_and_plausible(built: Path) -> None:
    cfg = load_data_config(built / "data.yaml")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a single skipped file would fail here
        ds = DetectionDataset(cfg.images("train") + cfg.images("val"), imgsz=160, nc=10)
    assert len(ds) == 50
    counts, sides, classes = [], [], []
    for i in range(len(ds)):
        item = ds[i]
        assert item["orig_shape"] == (160, 160) and item["ratio"] == (1.0, 1.0)
        boxes = item["orig_boxes"].numpy()
        counts.append(len(boxes))
        classes += item["cls"].tolist()
        assert ((boxes >= 0) & (boxes <= 160)).all()
        assert (boxes[:, 2:] > boxes[:, :2]).all()
        sides += (boxes[:, 2:] - boxes[:, :2]).ravel().tolist()
    assert min(counts) >= 1 and max(counts) <= digits_det.MAX_OBJECTS
    assert np.mean(counts) >= 2.5  # 1..6 objects per image, a few placements rejected
    assert set(classes) <= set(range(10)) and len(set(classes)) >= 8
    # Glyph cells are ~14..56 px; the ink is a bit smaller than its cell.
    assert 3 <= min(sides) and max(sides) <= 70 and 10 <= np.median(sides) <= 45


def _edge_contrast(img: np.ndarray, x0: int, y0: int, x1: int, y1: int) -> list[bool]:
    """For each side of a box: does its border line hold a pixel clearly off the background
    (the median of the line 2 px outside)? Noise alone stays within about 13 levels."""
    box = img[y0:y1, x0:x1]
    pairs = [
        (box[0], img[y0 - 2, x0:x1]),
        (box[-1], img[y1 + 1, x0:x1]),
        (box[:, 0], img[y0:y1, x0 - 2]),
        (box[:, -1], img[y0:y1, x1 + 1]),
    ]
    return [bool(np.abs(edge - np.median(out)).max() >= 15) for edge, out in pairs]


@pytest.mark.parametrize("grow", [0, 1])
def test_boxes_are_tight_against_the_pixels(built: Path, grow: int) -> None:
    """Every side of a tight box touches ink; a box one pixel larger mostly does not."""
    luma = np.array([0.299, 0.587, 0.114])
    hits = []
    for split, n in (("train", 40), ("val", 10)):
        for i in range(n):
            png = built / "images" / split / f"{i:06d}.png"
            img = np.asarray(Image.open(png), np.float64) @ luma
            for line in (built / "labels" / split / f"{i:06d}.txt").read_text().splitlines():
                _, cx, cy, w, h = map(float, line.split())
                x0, y0 = round((cx - w / 2) * 160) - grow, round((cy - h / 2) * 160) - grow
                x1, y1 = round((cx + w / 2) * 160) + grow, round((cy + h / 2) * 160) + grow
                if min(x0, y0) >= 2 and max(x1, y1) <= 158:
                    hits += _edge_contrast(img, x0, y0, x1, y1)
    assert len(hits) >= 200
    if grow == 0:
        assert np.mean(hits) >= 0.97
    else:
        assert np.mean(hits) <= 0.6


def test_glyph_alpha_box_bounds_exactly_the_ink() -> None:
    glyphs = load_digits().images
    for k, (w, h) in zip(range(0, 1797, 97), [(17, 17), (30, 26), (70, 64), (40, 50)] * 5):
        alpha, box = digits_det.glyph_alpha(glyphs[k], w, h)
        assert alpha.shape == (h, w) and box is not None
        ys, xs = np.nonzero(alpha)
        assert box == (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1)
        assert alpha.max() == pytest.approx(1.0)  # strokes reach full ink


def test_train_and_val_glyph_pools_are_disjoint() -> None:
    train, val = digits_det.split_glyphs(0, 1797)
    assert len(train) == 1438 and len(val) == 359
    assert not set(train) & set(val) and len(set(train) | set(val)) == 1797
    assert not np.array_equal(digits_det.split_glyphs(1, 1797)[1], val)


def test_refuses_foreign_folder_and_replaces_previous_build(tmp_path: Path) -> None:
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "thesis.tex").write_text("precious")
    with pytest.raises(ArchpruneError, match="not a digits-det build"):
        build_digits_det(foreign, n_train=2, n_val=1)
    assert (foreign / "thesis.tex").read_text() == "precious"

    out = tmp_path / "dd"
    build_digits_det(out, n_train=3, n_val=1)
    build_digits_det(out, n_train=2, n_val=1)  # a previous build may be replaced
    assert len(list((out / "images" / "train").iterdir())) == 2
    assert _siblings(out) == ["dd", "mine"]  # no temporary or old folders left behind


def test_interrupted_build_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real = digits_det.render_image
    calls = {"n": 0}

    def failing(*args: object, **kwargs: object) -> object:
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(digits_det, "render_image", failing)
    with pytest.raises(KeyboardInterrupt):
        build_digits_det(tmp_path / "dd", n_train=5, n_val=2)
    assert list(tmp_path.iterdir()) == []


def test_default_is_cached_and_reused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ARCHPRUNE_CACHE", str(tmp_path / "cache"))
    builds = {"n": 0}
    real = digits_det._write_set

    def counting(*args: object) -> None:
        builds["n"] += 1
        real(*args)

    monkeypatch.setattr(digits_det, "_write_set", counting)
    first = default_digits_det(n_train=6, n_val=2)
    assert first == tmp_path / "cache" / "digits-det-v1-s0-6-2-160" / "data.yaml"
    stamp = first.stat().st_mtime_ns
    assert default_digits_det(n_train=6, n_val=2) == first
    assert builds["n"] == 1 and first.stat().st_mtime_ns == stamp

    # The "digits-det" spec goes through the same cache (shrunk here to keep the test fast).
    def small() -> Path:
        return default_digits_det(n_train=6, n_val=2)

    monkeypatch.setattr(digits_det, "default_digits_det", small)
    cfg = load_data_config("digits-det")
    assert cfg.yaml_path == first and len(cfg.images("train")) == 6 and builds["n"] == 1


def test_default_parameters_are_the_documented_ones() -> None:
    params = inspect.signature(default_digits_det).parameters
    documented = {"seed": 0, "n_train": 2000, "n_val": 500, "imgsz": 160}
    assert {k: p.default for k, p in params.items()} == documented
    build = inspect.signature(build_digits_det).parameters
    assert [build[k].default for k in ("seed", "n_train", "n_val", "imgsz")] == [0, 2000, 500, 160]


def test_concurrent_build_loser_discards_its_copy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ARCHPRUNE_CACHE", str(tmp_path))
    real = digits_det._write_set
    final = tmp_path / "digits-det-v1-s0-3-1-160"

    def racing(out: Path, *args: object) -> None:
        real(out, *args)
        real(final, *args)  # another process finishes and publishes first

    monkeypatch.setattr(digits_det, "_write_set", racing)
    path = default_digits_det(n_train=3, n_val=1)
    assert path == final / "data.yaml" and digits_det.is_digits_det(final)
    assert [p.name for p in tmp_path.iterdir()] == [final.name]  # our copy was discarded


@pytest.mark.skipif(sys.platform != "linux", reason="worker processes are used on Linux only")
def test_worker_processes_write_the_same_bytes(
    built: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(digits_det, "CHUNK", 4)  # 13 chunks: enough to use the process pool
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1}, raising=False)
    assert digits_det._worker_count(50) == 2
    parallel = build_digits_det(tmp_path / "par", seed=0, **SMALL).parent
    assert _files(parallel) == _files(built)
