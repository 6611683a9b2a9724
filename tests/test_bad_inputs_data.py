"""Bad data, checkpoints and configs a user can give (issue 14), each through ``archprune``'s
``main``: an error is one line on stderr naming the file or key and the fix, with exit code 2;
input that should work evaluates to the right result."""
from __future__ import annotations

import errno
import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from evaluators.data import build_digits_det
from evaluators.detection_eval import evaluate_detector
from search.cli import main
from spaces.models import load_model, save_checkpoint
from spaces.models.checkpoint import state_dict_sha256
from tests.conftest import shared_path
from tests.fault_injection import inject_write_errors

MODEL = "yolov8n-digits"  # embedded, trained at 160 px: a real mAP on a few digits-det images
NAMES = "names: ['0', '1', '2', '3', '4', '5', '6', '7', '8', '9']\n"


@pytest.fixture(scope="module")
def digits(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 4 train / 6 val digits-det build (its data.yaml); tests copy it before changing it."""
    return build_digits_det(tmp_path_factory.mktemp("digits") / "dd", seed=1, n_train=4, n_val=6, imgsz=160)


@pytest.fixture(scope="module")
def reference_map(digits: Path) -> float:
    """mAP50-95 of the embedded model on the intact build, computed without the command line."""
    return evaluate_detector(load_model(MODEL), str(digits))["map50_95"]


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def _eval_json(capsys: pytest.CaptureFixture[str], data: Path, model: str = MODEL) -> dict:
    code, out, err = _run(capsys, "eval", "--model", model, "--data", str(data), "--json")
    assert code == 0 and "Traceback" not in err, err
    return json.loads(out)


def _copy(digits: Path, dst: Path) -> Path:
    """A copy of the build's folder; returns the copy's data.yaml."""
    shutil.copytree(digits.parent, dst)
    return dst / "data.yaml"


def _val_yaml(root: Path, val: str) -> Path:
    path = root / "val.yaml"
    path.write_text(f"path: .\nval: {val}\n" + NAMES)
    return path


def _overwrite_middle(path: Path, size: int = 4096) -> Path:
    raw = bytearray(path.read_bytes())
    middle = len(raw) // 2
    raw[middle:middle + size] = bytes(255 - b for b in raw[middle:middle + size])  # every byte changes
    path.write_bytes(bytes(raw))
    return path


def _checkpoint(tmp_path: Path, name: str = "model.pt") -> Path:
    return save_checkpoint(load_model(MODEL), tmp_path / name)


def _prune_config(tmp_path: Path, kept: object) -> Path:
    config = {"format": "archprune-prune-config", "version": 1,
              "base": {"model": MODEL, "sha256": state_dict_sha256(load_model(MODEL))},
              "kept_indices": {"model.0.conv": kept}}
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config))
    return path


# --- errors: each case builds its input and returns (argv, fragments the message must hold) ---

Case = Callable[[Path, Path], tuple[list[str], list[str]]]


def no_labels_folder(tmp_path: Path, digits: Path) -> tuple[list[str], list[str]]:
    data = _copy(digits, tmp_path / "d")
    shutil.rmtree(tmp_path / "d" / "labels")
    return (["eval", "--model", MODEL, "--data", str(data)],
            ["none of the 6 image(s) has a label file", str(tmp_path / "d" / "labels" / "val"),
             "put one YOLO .txt per image there (for ", str(tmp_path / "d" / "labels" / "val") + "/"])


def images_not_in_images_folder(tmp_path: Path, digits: Path) -> tuple[list[str], list[str]]:
    root = tmp_path / "d"
    _copy(digits, root)
    (root / "pics").mkdir()
    (root / "images" / "val").rename(root / "pics" / "val")  # beside labels/val, but not under images/
    return (["eval", "--model", MODEL, "--data", str(_val_yaml(root, "pics/val"))],
            ["none of the 6 image(s) has a label file", str(root / "pics" / "val"),
             "replacing the last 'images' folder", "put the images under .../images/..."])


def overwritten_checkpoint(tmp_path: Path, digits: Path) -> tuple[list[str], list[str]]:
    ckpt = _overwrite_middle(_checkpoint(tmp_path))
    return (["eval", "--model", str(ckpt), "--data", str(digits)],
            [f"checkpoint {ckpt} is corrupt", "fails its CRC check", "re-export or re-download it"])


def overwritten_ultralytics_checkpoint(tmp_path: Path, digits: Path) -> tuple[list[str], list[str]]:
    ckpt = tmp_path / "yolov8n.pt"
    shutil.copy(shared_path("ultralytics", "yolov8n-rand.pt"), ckpt)
    _overwrite_middle(ckpt)
    return (["eval", "--model", str(ckpt), "--data", str(digits)],
            [f"checkpoint {ckpt} is corrupt", "fails its CRC check", "re-download it"])


def nan_weight_checkpoint(tmp_path: Path, digits: Path) -> tuple[list[str], list[str]]:
    model = load_model(MODEL)
    with torch.no_grad():
        model.model[18].cv1a.conv.weight[0, 0, 0, 0] = float("nan")
    ckpt = save_checkpoint(model, tmp_path / "nan.pt")  # a valid zip: only the values are wrong
    return (["eval", "--model", str(ckpt), "--data", str(digits)],
            [f"checkpoint {ckpt} is corrupt", "model.18.cv1a.conv.weight has non-finite values",
             "re-export or re-download it"])


def apply_a_jpeg(tmp_path: Path, digits: Path) -> tuple[list[str], list[str]]:
    image = tmp_path / "photo.jpg"
    image.write_bytes(b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00")
    return (["apply", str(image), "--weights", MODEL, "--out", str(tmp_path / "out.pt")],
            [f"config {image} is not text", "pass the config.json"])


def apply_out_a_folder(tmp_path: Path, digits: Path) -> tuple[list[str], list[str]]:
    folder = tmp_path / "pruned"
    folder.mkdir()
    return (["apply", str(_prune_config(tmp_path, [0, 1])), "--weights", MODEL, "--out", str(folder)],
            [f"cannot write {folder}: it is a folder; give a file name"])


def apply_out_inside_a_file(tmp_path: Path, digits: Path) -> tuple[list[str], list[str]]:
    blocker = tmp_path / "notes.txt"
    blocker.write_text("a file where a folder was meant")
    return (["apply", str(_prune_config(tmp_path, [0, 1])), "--weights", MODEL, "--out", str(blocker / "out.pt")],
            [f"{blocker} is a file, not a folder; give another --out"])


def train_out_a_file(tmp_path: Path, digits: Path) -> tuple[list[str], list[str]]:
    blocker = tmp_path / "notes.txt"
    blocker.write_text("a file where the run folder was meant")
    return (["train", "--model", "yolov8n", "--data", str(digits), "--epochs", "1", "--imgsz", "64",
             "--out", str(blocker)], [f"cannot write into {blocker}: {blocker} is a file, not a folder"])


def _bad_index_case(name: str, kept: object, fragments: list[str]) -> Case:
    def case(tmp_path: Path, digits: Path) -> tuple[list[str], list[str]]:
        config = _prune_config(tmp_path, kept)
        return (["apply", str(config), "--weights", MODEL, "--out", str(tmp_path / "out.pt")],
                [f"config {config}: group 'model.0.conv'", *fragments])
    case.__name__ = f"apply_kept_{name}"
    return case


def teacher_with_other_classes(tmp_path: Path, digits: Path) -> tuple[list[str], list[str]]:
    return (["finetune", "--model", MODEL, "--teacher", "yolov8n", "--data", str(digits), "--epochs", "1",
             "--imgsz", "64", "--batch", "2", "--out", str(tmp_path / "ft")],
            [f"teacher yolov8n has 80 classes but data {digits} has 10", "teacher trained on the same classes"])


def apply_a_folder(tmp_path: Path, digits: Path) -> tuple[list[str], list[str]]:
    folder = tmp_path / "export"
    folder.mkdir()
    return (["apply", str(folder), "--weights", MODEL, "--out", str(tmp_path / "out.pt")],
            [f"config {folder} is a folder; pass the config.json inside it"])


def model_a_folder(tmp_path: Path, digits: Path) -> tuple[list[str], list[str]]:
    folder = tmp_path / "run"
    folder.mkdir()
    return (["eval", "--model", str(folder), "--data", str(digits)],
            [f"{folder} is a folder; pass the checkpoint (.pt) inside it"])


ERRORS: list[Case] = [
    no_labels_folder, images_not_in_images_folder,
    overwritten_checkpoint, overwritten_ultralytics_checkpoint, nan_weight_checkpoint,
    _bad_index_case("repeated", [0, 1, 1, 2], ["repeats index 1"]),
    _bad_index_case("out_of_range", [0, 16], ["has index 16, outside 0..15"]),
    _bad_index_case("negative", [-1, 2], ["has index -1, outside 0..15"]),
    _bad_index_case("fraction", [0, 1.5], ["has index 1.5, not a whole number"]),
    _bad_index_case("string", [0, "3"], ["has index '3', not a whole number"]),
    teacher_with_other_classes, apply_a_folder, apply_a_jpeg, model_a_folder, apply_out_a_folder,
    apply_out_inside_a_file,
    train_out_a_file,
]


@pytest.mark.parametrize("case", ERRORS, ids=[c.__name__ for c in ERRORS])
def test_bad_input_is_one_line_naming_it_and_the_fix(case: Case, tmp_path: Path, digits: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    argv, fragments = case(tmp_path, digits)
    code, out, err = _run(capsys, *argv)
    assert code == 2 and out == "", err
    assert err.startswith("archprune: error: ") and err.count("\n") == 1 and "Traceback" not in err
    for fragment in fragments:
        assert fragment in err
    assert not (tmp_path / "out.pt").exists() and not (tmp_path / "ft").exists()  # nothing written


# --- input that must work --------------------------------------------------------------------


def test_some_images_without_labels_are_background_with_one_warning(
        tmp_path: Path, digits: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = _copy(digits, tmp_path / "missing")
    first = sorted((tmp_path / "missing" / "labels" / "val").iterdir())[0]
    first.unlink()
    empty = _copy(digits, tmp_path / "empty")
    (tmp_path / "empty" / "labels" / "val" / first.name).write_text("")  # said outright: no objects
    with pytest.warns(UserWarning) as caught:
        result = _eval_json(capsys, missing)
    assert [str(w.message) for w in caught] == [
        f"1 of 6 image(s) have no label file (read as background), first: {first}"]
    assert result["images"] == 6 and result["map50_95"] == _eval_json(capsys, empty)["map50_95"]


def test_coco128_background_images_give_one_warning(capsys: pytest.CaptureFixture[str]) -> None:
    data = shared_path("coco128", "coco128.yaml")
    with pytest.warns(UserWarning) as caught:
        code, _, err = _run(capsys, "eval", "--model", "yolov8n", "--data", str(data), "--imgsz", "64")
    assert code == 0 and "Traceback" not in err, err
    assert len(caught) == 1 and str(caught[0].message).startswith("2 of 128 image(s) have no label file")


def test_symlinked_images_folder_reads_labels_beside_the_link(
        tmp_path: Path, digits: Path, reference_map: float, capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "target"
    _copy(digits, target)
    for label in (target / "labels" / "val").iterdir():  # the target's own labels: every class wrong
        rows = [line.split() for line in label.read_text().splitlines()]
        label.write_text("".join(f"{(int(r[0]) + 1) % 10} {' '.join(r[1:])}\n" for r in rows))
    link = tmp_path / "link"
    (link / "images").mkdir(parents=True)
    (link / "images" / "val").symlink_to(target / "images" / "val", target_is_directory=True)
    shutil.copytree(digits.parent / "labels", link / "labels")
    assert _eval_json(capsys, _val_yaml(link, "images/val"))["map50_95"] == reference_map
    assert _eval_json(capsys, _val_yaml(target, "images/val"))["map50_95"] < reference_map / 2


def test_eval_needs_no_train_split(tmp_path: Path, digits: Path, reference_map: float,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    data = _val_yaml(_copy(digits, tmp_path / "d").parent, "images/val")
    assert "train" not in data.read_text()
    result = _eval_json(capsys, data)
    assert result["images"] == 6 and result["map50_95"] == reference_map


def test_apply_with_valid_kept_indices_writes_that_model(tmp_path: Path,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    config = _prune_config(tmp_path, [0, 3, 5, 7])
    code, out, err = _run(capsys, "apply", str(config), "--weights", MODEL, "--out", str(tmp_path / "out.pt"))
    assert code == 0 and "Traceback" not in err, err
    pruned, base = load_model(tmp_path / "out.pt"), load_model(MODEL)
    assert pruned.model[0].conv.out_channels == 4
    assert torch.equal(pruned.model[0].conv.weight, base.model[0].conv.weight[[0, 3, 5, 7]])


@pytest.mark.parametrize("fault,needle", [(errno.EROFS, "the file system is read-only; write somewhere else (--out)"),
                                          (errno.ENOSPC, "no space left on the disk")])
def test_apply_onto_a_read_only_or_full_disk_is_one_line_and_leaves_no_file(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
        fault: int, needle: str) -> None:
    config = _prune_config(tmp_path, [0, 3, 5, 7])
    target = tmp_path / "ro"
    target.mkdir()
    inject_write_errors(monkeypatch, target, fault)
    code, out, err = _run(capsys, "apply", str(config), "--weights", MODEL, "--out", str(target / "out.pt"))
    monkeypatch.undo()
    assert code == 2 and err.count("\n") == 1 and "Traceback" not in err, err
    assert f"cannot write {target / 'out.pt'}" in err or f"cannot write {target}" in err
    assert needle in err
    assert list(target.iterdir()) == []  # no checkpoint, no temporary file


def test_search_on_a_split_whose_labels_are_all_invalid_stops_before_the_first_trial(
        tmp_path: Path, digits: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = _copy(digits, tmp_path / "d")
    for label in (tmp_path / "d" / "labels" / "val").glob("*.txt"):
        label.write_text("not a label\n")
    results = tmp_path / "results"
    code, out, err = _run(capsys, "search", "--model", MODEL, "--data", str(data), "--objectives", "map50_95:max",
                          "--trials", "3", "--results", str(results), "--executor", "inline", "--no-progress")
    assert code == 2 and err.count("\n") == 1 and "Traceback" not in err, err
    assert "all 6 image(s) are unusable" in err and "each label line needs 5 columns" in err
    assert not results.exists()  # no run was started
