"""data.yaml loading, the YOLO detection dataset and letterbox geometry."""
from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from evaluators.data import (
    DetectionDataset,
    collate_detections,
    label_path_for,
    letterbox,
    load_data_config,
)
from spaces.errors import ArchpruneError

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
COCO8_YAML = SHARED_DATA / "coco8" / "coco8.yaml"


def _image(path: Path, size: tuple[int, int] = (32, 24), mode: str = "RGB") -> Path:
    """Write a small image of ``size`` (w, h)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    arr = np.random.default_rng(0).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    Image.fromarray(arr).convert(mode).save(path)
    return path


def _labels(image: Path, text: str) -> Path:
    path = label_path_for(image)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def _yaml(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


@pytest.fixture
def tiny(tmp_path: Path) -> Path:
    """A 2-class dataset: 2 train and 2 val images, one val image without a label file."""
    root = tmp_path / "tiny"
    for split in ("train", "val"):
        for i in range(2):
            _image(root / "images" / split / f"{i}.png")
    _labels(root / "images" / "train" / "0.png", "0 0.5 0.5 0.2 0.2\n")
    _labels(root / "images" / "train" / "1.png", "1 0.25 0.25 0.1 0.1\n0 0.5 0.5 1 1\n")
    _labels(root / "images" / "val" / "0.png", "1 0.5 0.5 0.5 0.5\n")
    return root


# --- data.yaml --------------------------------------------------------------------------


def test_coco8_yaml_falls_back_to_its_own_folder() -> None:
    if not COCO8_YAML.exists():
        pytest.skip(f"shared test data not found at {SHARED_DATA} (expected ../shared by the repo)")
    cfg = load_data_config(COCO8_YAML)
    assert cfg.root == COCO8_YAML.parent.resolve()  # `path: ../datasets/coco8` does not exist
    assert cfg.nc == 80 and cfg.names[0] == "person" and cfg.names[79] == "toothbrush"
    val = cfg.images("val")
    assert [p.name for p in val] == sorted(p.name for p in val) and len(val) == 4
    assert len(cfg.images("train")) == 4
    assert "test" not in cfg.splits  # `test:` with no value means no test split
    with pytest.raises(ArchpruneError, match="'test'"):
        cfg.images("test")

    ds = DetectionDataset(val, imgsz=64, nc=cfg.nc)
    assert len(ds) == 4
    batch = collate_detections([ds[i] for i in range(len(ds))])
    assert batch["img"].shape == (4, 3, 64, 64)
    per_image = [len(label_path_for(p).read_text().splitlines()) for p in val]
    assert per_image == [2, 1, 9, 5] and len(batch["cls"]) == 17
    assert torch.bincount(batch["batch_idx"]).tolist() == per_image
    assert (batch["boxes"] >= 0).all() and (batch["boxes"] <= 64).all()


def test_names_as_list_or_dict(tiny: Path) -> None:
    splits = "train: images/train\nval: images/val\n"
    as_list = load_data_config(_yaml(tiny / "a.yaml", splits + "names: [cat, dog]\n"))
    as_dict = load_data_config(_yaml(tiny / "b.yaml", splits + "nc: 2\nnames: {1: dog, 0: cat}\n"))
    assert as_list.names == as_dict.names == ["cat", "dog"] and as_list.nc == 2
    assert as_list.root == tiny.resolve()  # no `path`: the yaml's own folder
    assert [p.name for p in as_list.images("val")] == ["0.png", "1.png"]


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("val: images/val\nnames: {0: a, 2: b}\n", "without gaps"),
        ("val: images/val\nnc: 3\nnames: [a, b]\n", "nc: 3"),
        ("val: images/val\n", "no 'names'"),
        ("- just\n- a list\n", "mapping"),
        ("val: images/val\nnames: [a\n", "not valid YAML"),
    ],
)
def test_bad_yaml_is_one_line_error(tiny: Path, text: str, match: str) -> None:
    path = _yaml(tiny / "bad.yaml", text)
    with pytest.raises(ArchpruneError, match=match) as err:
        load_data_config(path)
    assert str(path) in str(err.value) and "\n" not in str(err.value)


def test_missing_yaml_file(tmp_path: Path) -> None:
    with pytest.raises(ArchpruneError, match="does not exist") as err:
        load_data_config(tmp_path / "nope.yaml")
    assert "nope.yaml" in str(err.value)


def test_missing_split_folder_names_split_and_path(tiny: Path) -> None:
    path = _yaml(tiny / "d.yaml", "train: images/train\nval: images/valid\nnames: [a, b]\n")
    with pytest.raises(ArchpruneError, match="split 'val'") as err:
        load_data_config(path)
    assert str(tiny.resolve() / "images" / "valid") in str(err.value)


def test_empty_split_errors_on_use(tiny: Path) -> None:
    (tiny / "images" / "empty").mkdir()
    cfg = load_data_config(_yaml(tiny / "e.yaml", "val: images/empty\nnames: [a, b]\n"))
    with pytest.raises(ArchpruneError, match="has no images"):
        cfg.images("val")


def test_path_key_relative_absolute_and_missing(tmp_path: Path, tiny: Path) -> None:
    conf = tmp_path / "conf"
    conf.mkdir()
    rest = "val: images/val\nnames: [a, b]\n"
    rel = load_data_config(_yaml(conf / "r.yaml", "path: ../tiny\n" + rest))
    absolute = load_data_config(_yaml(conf / "a.yaml", f"path: {tiny}\n" + rest))
    assert rel.root == absolute.root == tiny.resolve()
    assert len(rel.images("val")) == 2


def test_txt_image_list_and_list_of_sources(tiny: Path) -> None:
    extra = _image(tiny / "elsewhere" / "images" / "x.jpg")
    (tiny / "val.txt").write_text(f"./images/val/1.png\nimages/val/0.png\n\n{extra}\n")
    cfg = load_data_config(
        _yaml(tiny / "t.yaml", "val: val.txt\ntrain: [images/train, val.txt]\nnames: [a, b]\n")
    )
    val = cfg.images("val")
    root = tiny.resolve()
    assert val == sorted([root / "images/val/0.png", root / "images/val/1.png", extra])
    assert len(cfg.images("train")) == 5  # 2 from the folder + 3 listed


def test_image_discovery_is_recursive_and_case_insensitive(tmp_path: Path) -> None:
    _image(tmp_path / "images" / "val" / "a" / "deep.JPG")
    _image(tmp_path / "images" / "val" / "b.PnG")
    (tmp_path / "images" / "val" / "notes.md").write_text("not an image")
    cfg = load_data_config(_yaml(tmp_path / "d.yaml", "val: images/val\nnames: [a]\n"))
    assert sorted(p.name for p in cfg.images("val")) == ["b.PnG", "deep.JPG"]


def test_label_path_for_uses_last_images_folder() -> None:
    deep = Path("/d/images/x/images/val/a.b.jpg")
    assert label_path_for(deep) == Path("/d/images/x/labels/val/a.b.txt")
    assert label_path_for(Path("/d/pics/a.png")) == Path("/d/pics/a.txt")
    assert label_path_for(Path("/d/images.jpg")) == Path("/d/images.txt")  # a file, not a folder


# --- dataset ----------------------------------------------------------------------------


def test_missing_label_file_means_no_objects(tiny: Path) -> None:
    val = tiny / "images" / "val"
    with pytest.warns(UserWarning, match=r"^1 of 2 image\(s\) have no label file \(read as background\)"):
        ds = DetectionDataset([val / "0.png", val / "1.png"], imgsz=32)
    item = ds[1]
    assert Path(item["path"]).name == "1.png"
    assert item["cls"].shape == (0,) and item["cls"].dtype == torch.int64
    assert item["boxes"].shape == (0, 4) and item["orig_boxes"].shape == (0, 4)
    assert item["img"].shape == (3, 32, 32) and item["img"].dtype == torch.float32
    assert 0.0 <= float(item["img"].min()) and float(item["img"].max()) <= 1.0


def test_corrupt_items_skipped_with_one_counting_warning(tiny: Path) -> None:
    broken = tiny / "images" / "val" / "broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n not really a png")
    bad_label = _image(tiny / "images" / "val" / "badlabel.png")
    _labels(bad_label, "0 0.5 0.5 0.1\n")  # 4 columns
    out_of_range = _image(tiny / "images" / "val" / "cls9.png")
    _labels(out_of_range, "9 0.5 0.5 0.1 0.1\n")
    pixels = _image(tiny / "images" / "val" / "pixels.png")
    _labels(pixels, "1 16 12 8 8\n")  # pixel units, not normalised
    files = sorted((tiny / "images" / "val").iterdir())
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ds = DetectionDataset(files, imgsz=32, nc=2)
    assert len(caught) == 2  # the corrupt items, then the unlabeled (background) 1.png
    message = str(caught[0].message)
    assert message.startswith("skipped 4 corrupt image(s)/label(s), first: ")
    assert str(caught[1].message).startswith("1 of 2 image(s) have no label file")
    assert "badlabel.txt" in message  # sorted: badlabel.png comes first, its label is what is bad
    assert sorted(Path(p).name for p in ds.files) == ["0.png", "1.png"]


def test_all_corrupt_is_an_error(tmp_path: Path) -> None:
    bad = tmp_path / "images" / "x.jpg"
    bad.parent.mkdir(parents=True)
    bad.write_bytes(b"garbage")
    with pytest.raises(ArchpruneError, match="all 1 image"):
        DetectionDataset([bad], imgsz=32)


def test_letterbox_geometry() -> None:
    img = np.zeros((100, 200, 3), np.uint8)  # h=100, w=200
    out, ratio, pad = letterbox(img, 64)
    assert out.shape == (64, 64, 3) and out.dtype == np.uint8
    assert ratio == pytest.approx((0.32, 0.32)) and pad == (0.0, 16.0)
    assert (out[:16] == 114).all() and (out[48:] == 114).all() and (out[16:48] == 0).all()
    up, ratio_up, pad_up = letterbox(np.zeros((10, 20, 3), np.uint8), 64)  # upscaling allowed
    assert ratio_up == pytest.approx((3.2, 3.2)) and pad_up == (0.0, 16.0) and (up[16:48] == 0).all()


def test_letterbox_rounds_sizes_up_and_keeps_per_axis_gains() -> None:
    """Ultralytics' load_image: ceil(side * r), capped at imgsz; the box map is per axis."""
    out, (gx, gy), pad = letterbox(np.zeros((99, 201, 3), np.uint8), 64)  # h 99 * 64/201 = 31.52 -> 32
    assert (gx, gy) == (64 / 201, 32 / 99) and pad == (0.0, 16.0)
    assert (out[16:48] == 0).all() and (out[:16] == 114).all() and (out[48:] == 114).all()


def test_letterbox_resizes_without_antialiasing() -> None:
    """cv2.INTER_LINEAR (Ultralytics' resize) samples two neighbours: a 4x downscale of columns
    0,255,255,0,... samples the middle of each 255,255 pair and stays white, where an antialiased
    filter (PIL's) would average the four columns to grey."""
    stripes = np.zeros((64, 64, 3), np.uint8)
    stripes[:, 1::4] = stripes[:, 2::4] = 255
    out, _, _ = letterbox(stripes, 16)
    assert out.shape == (16, 16, 3) and (out == 255).all()


def test_rect_canvases_follow_ultralytics_val_batches() -> None:
    from evaluators.data.letterbox import rect_batch_shapes

    # (h, w): two wide, one square, two tall images; batches of 2 after sorting by h/w
    sizes = [(480, 640), (640, 480), (100, 100), (300, 600), (600, 300)]
    order, canvases = rect_batch_shapes(sizes, 640, 2)
    assert order == [3, 0, 2, 1, 4]  # h/w 0.5, 0.75, 1, 1.33, 2
    # batch 1: wide (max h/w 0.75): 0.75 * 20 + 0.5 = 15.5 -> 16 strides high, 21 wide
    # batch 2: square and tall (min 1, not > 1): square 672; batch 3: tall (min h/w 2): 21 x ceil(10.5)=11
    assert canvases == [(512, 672), (512, 672), (672, 672), (672, 672), (672, 352)]
    assert rect_batch_shapes([], 640, 2) == ([], [])


def test_rect_dataset_sorts_by_aspect_and_letterboxes_onto_batch_canvas(tmp_path: Path) -> None:
    wide = _image(tmp_path / "images" / "w.png", size=(200, 100))
    tall = _image(tmp_path / "images" / "t.png", size=(100, 200))
    for image in (wide, tall):
        _labels(image, "0 0.5 0.5 0.5 0.5\n")
    ds = DetectionDataset([tall, wide], imgsz=64, rect_batch=1)
    assert [Path(f).name for f in ds.files] == ["w.png", "t.png"]
    assert ds[0]["img"].shape == (3, 64, 96) and ds[1]["img"].shape == (3, 96, 64)  # 32 + 16 pad, 64 + 32
    assert ds[0]["pad"] == (16.0, 16.0)
    torch.testing.assert_close(ds[0]["boxes"], torch.tensor([[32.0, 24.0, 64.0, 40.0]]))


def test_dataset_boxes_are_letterboxed_original_boxes(tmp_path: Path) -> None:
    image = _image(tmp_path / "images" / "a.png", size=(200, 100))
    _labels(image, "1 0.5 0.5 0.5 0.2\n0 0.1 0.9 0.2 0.2\n")
    item = DetectionDataset([image], imgsz=64, nc=2)[0]
    assert item["orig_shape"] == (100, 200) and item["ratio"] == pytest.approx((0.32, 0.32))
    assert item["pad"] == (0.0, 16.0)
    expected = torch.tensor([[50.0, 40.0, 150.0, 60.0], [0.0, 80.0, 40.0, 100.0]])
    torch.testing.assert_close(item["orig_boxes"], expected)
    pad = torch.tensor([0.0, 16.0, 0.0, 16.0])
    torch.testing.assert_close(item["boxes"], item["orig_boxes"] * 0.32 + pad)
    assert item["cls"].tolist() == [1, 0]


@pytest.mark.parametrize("mode", ["L", "RGBA", "P"])
def test_non_rgb_images_become_rgb(tmp_path: Path, mode: str) -> None:
    image = _image(tmp_path / "images" / f"{mode}.png", mode=mode)
    _labels(image, "0 0.5 0.5 0.5 0.5\n")
    item = DetectionDataset([image], imgsz=40)[0]
    assert item["img"].shape == (3, 40, 40)


def test_collate_adds_batch_index(tiny: Path) -> None:
    files = sorted((tiny / "images" / "train").iterdir()) + [tiny / "images/val/1.png"]
    ds = DetectionDataset(files, imgsz=32)
    batch = collate_detections([ds[0], ds[1], ds[2]])
    assert batch["img"].shape == (3, 3, 32, 32)
    assert batch["batch_idx"].tolist() == [0, 1, 1]
    assert batch["cls"].tolist() == [0, 1, 0]
    assert batch["boxes"].shape == batch["orig_boxes"].shape == (3, 4)
    assert all(len(batch[k]) == 3 for k in ("path", "orig_shape", "ratio", "pad"))
    loader = torch.utils.data.DataLoader(ds, batch_size=2, collate_fn=collate_detections)
    assert [b["img"].shape[0] for b in loader] == [2, 1]
