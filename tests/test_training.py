"""Trainer, resume after SIGKILL, distillation and augmentation, on a tiny digits-det set."""
from __future__ import annotations

import csv
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from evaluators.data import DetectionDataset, build_digits_det, load_data_config
from evaluators.training.augment import AugmentConfig, AugmentedDataset, flip_lr, random_affine
from evaluators.training.distill import HeadDistiller
from evaluators.training.trainer import TrainSettings, train
from spaces.errors import ArchpruneError
from spaces.models import build_model, load_model, save_checkpoint

ARCHPRUNE = Path(sys.executable).with_name("archprune")


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_digits_det(tmp_path_factory.mktemp("tiny") / "dd", seed=1, n_train=24, n_val=8, imgsz=64)


def settings_for(data: Path, out: Path, **overrides) -> TrainSettings:
    base = TrainSettings(model="yolov8n", data=str(data), imgsz=64, epochs=2, out=str(out), batch=8, seed=3)
    return replace(base, **overrides)


def rows(csv_path: Path) -> list[dict[str, str]]:
    with csv_path.open() as f:
        return list(csv.DictReader(f))


def test_training_writes_best_and_last_checkpoints_that_load(tiny_data: Path, tmp_path: Path) -> None:
    result = train(settings_for(tiny_data, tmp_path / "run"), log=lambda _: None)
    assert result["epochs"] == 2 and 0.0 <= result["map50_95"] <= 1.0
    history = rows(tmp_path / "run" / "results.csv")
    assert [int(r["epoch"]) for r in history] == [1, 2]
    assert all(float(r["box"]) > 0 and float(r["cls"]) > 0 for r in history)
    for name in ("best.pt", "last.pt"):
        model = load_model(tmp_path / "run" / name)
        assert model.imgsz == 64 and model.names == [str(i) for i in range(10)] and model.nc == 10
        torch.load(tmp_path / "run" / name, weights_only=True)  # plain data: safe loading works


def test_sigkill_mid_run_then_resume_matches_an_uninterrupted_run(tiny_data: Path, tmp_path: Path) -> None:
    epochs = 6
    reference = tmp_path / "reference"
    train(settings_for(tiny_data, reference, epochs=epochs), log=lambda _: None)

    run = tmp_path / "killed"
    cmd = [str(ARCHPRUNE), "train", "--model", "yolov8n", "--data", str(tiny_data), "--imgsz", "64",
           "--epochs", str(epochs), "--batch", "8", "--seed", "3", "--out", str(run)]
    env = {**os.environ, "OMP_NUM_THREADS": "2"}
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    deadline = time.monotonic() + 120
    while not (run / "results.csv").exists() and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)  # in the middle of the next epoch
    proc.wait()
    done = len(rows(run / "results.csv"))
    assert 1 <= done < epochs, "the kill should land before the run finishes"

    resumed = subprocess.run(cmd + ["--resume"], capture_output=True, text=True, env=env, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    assert [int(r["epoch"]) for r in rows(run / "results.csv")] == list(range(1, epochs + 1))
    a = torch.load(reference / "last.pt", weights_only=True)["state_dict"]
    b = torch.load(run / "last.pt", weights_only=True)["state_dict"]
    for key in a:
        torch.testing.assert_close(b[key], a[key], rtol=1e-4, atol=1e-5, msg=f"{key} differs after resume")


def _copy_data(src_yaml: Path, dst: Path) -> Path:
    shutil.copytree(src_yaml.parent, dst)
    return dst / "data.yaml"


def test_bad_training_input_is_a_clear_error(tiny_data: Path, tmp_path: Path) -> None:
    no_labels = _copy_data(tiny_data, tmp_path / "nolabels")
    shutil.rmtree(no_labels.parent / "labels")
    with pytest.raises(ArchpruneError, match=r"none of the \d+ image\(s\) has a label file \(looked in .*labels/train\)"):
        train(settings_for(no_labels, tmp_path / "a"))

    empty_val = _copy_data(tiny_data, tmp_path / "emptyval")
    for f in (empty_val.parent / "images" / "val").iterdir():
        f.unlink()
    with pytest.raises(ArchpruneError, match="split 'val' .* has no images"):
        train(settings_for(empty_val, tmp_path / "b"))

    other_classes = save_checkpoint(build_model("yolov8n", nc=80), tmp_path / "coco80.pt")
    with pytest.raises(ArchpruneError, match="predicts 80 classes but .* has 10"):
        train(settings_for(tiny_data, tmp_path / "c", model=str(other_classes)))

    with pytest.raises(ArchpruneError, match="nothing to resume"):
        train(settings_for(tiny_data, tmp_path / "d"), resume=True)


def test_resume_refuses_changed_settings(tiny_data: Path, tmp_path: Path) -> None:
    train(settings_for(tiny_data, tmp_path / "run", epochs=1), log=lambda _: None)
    with pytest.raises(ArchpruneError, match=r"settings differ \(batch: 8 -> 4\)"):
        train(settings_for(tiny_data, tmp_path / "run", epochs=2, batch=4), resume=True)
    with pytest.raises(ArchpruneError, match="pass --resume"):
        train(settings_for(tiny_data, tmp_path / "run", epochs=2))


def test_teacher_with_another_layout_is_refused(tiny_data: Path, tmp_path: Path) -> None:
    with pytest.raises(ArchpruneError, match="teacher's output layout differs from the student's: classes 5 vs 10"):
        HeadDistiller(build_model("yolov8n", nc=10), build_model("yolov8n", nc=5))


def _raw_outputs_in_eval_mode(model):
    """Eval-mode BatchNorm but raw head maps, as the teacher runs inside the distiller."""
    model.eval()
    model.head.training = True
    return model


def test_distillation_pulls_a_student_towards_the_teacher() -> None:
    teacher = load_model("yolov8n-digits")  # trained: confident, structured outputs
    x = torch.rand(2, 3, 160, 160, generator=torch.Generator().manual_seed(0))
    copy = _raw_outputs_in_eval_mode(load_model("yolov8n-digits"))
    same = HeadDistiller(copy, load_model("yolov8n-digits")).loss(x, copy(x)).item()
    student = _raw_outputs_in_eval_mode(build_model("yolov8n", nc=10, seed=1))
    distiller = HeadDistiller(student, teacher)
    before = distiller.loss(x, student(x)).item()
    assert same < 0.5 * before  # only the teacher's own entropy remains for a copy
    optimizer = torch.optim.AdamW(student.parameters(), lr=1e-3)
    for _ in range(5):
        loss = distiller.loss(x, student(x))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert distiller.loss(x, student(x)).item() < before
    with_features = HeadDistiller(student, load_model("yolov8n-digits"), feature_weight=1.0)
    assert len(with_features.trainable_parameters()) == 6  # three 1x1 adapters: weight + bias
    assert with_features.loss(x, student(x)).item() > distiller.loss(x, student(x)).item()


def test_finetune_with_and_without_distillation(tiny_data: Path, tmp_path: Path) -> None:
    teacher = save_checkpoint(build_model("yolov8n", nc=10, seed=0), tmp_path / "teacher.pt")
    student = save_checkpoint(build_model("yolov8n", nc=10, seed=1), tmp_path / "student.pt")
    common = dict(model=str(student), teacher=str(teacher), epochs=1, lr0=5e-4)
    train(settings_for(tiny_data, tmp_path / "kd", **common, feature_kd_weight=0.5), log=lambda _: None)
    train(settings_for(tiny_data, tmp_path / "nokd", **common, kd_weight=0.0), log=lambda _: None)
    assert float(rows(tmp_path / "kd" / "results.csv")[0]["kd"]) > 0
    assert float(rows(tmp_path / "nokd" / "results.csv")[0]["kd"]) == 0


def _white_box_image() -> tuple[np.ndarray, np.ndarray]:
    img = np.full((64, 64, 3), 40, np.uint8)
    img[10:30, 5:25] = 255
    return img, np.array([[5.0, 10.0, 25.0, 30.0]], np.float32)


def _mean_inside(img: np.ndarray, box: np.ndarray) -> float:
    x1, y1, x2, y2 = np.round(box).astype(int)
    return float(img[y1 + 1:y2 - 1, x1 + 1:x2 - 1].mean())


def test_flip_and_affine_move_boxes_with_the_pixels() -> None:
    img, boxes = _white_box_image()
    flipped, fboxes = flip_lr(img, boxes)
    assert fboxes.tolist() == [[39.0, 10.0, 59.0, 30.0]] and _mean_inside(flipped, fboxes[0]) == 255
    for seed in range(10):
        out, moved, cls = random_affine(img, boxes, np.array([3]), np.random.default_rng(seed),
                                        AugmentConfig(scale=0.3, translate=0.1))
        if len(moved):
            assert (moved >= 0).all() and (moved <= 64).all() and cls.tolist() == [3]
            if (moved[0, 2:] - moved[0, :2]).min() > 6:
                assert _mean_inside(out, moved[0]) > 200


def test_augmentation_is_a_function_of_seed_epoch_and_index(tiny_data: Path) -> None:
    base = DetectionDataset(load_data_config(tiny_data).images("train"), 64)
    a, b = AugmentedDataset(base, seed=5), AugmentedDataset(base, seed=5)
    assert torch.equal(a[3]["img"], b[3]["img"])
    b.set_epoch(1)
    assert not torch.equal(a[3]["img"], b[3]["img"])
