"""YOLO-format detection dataset: letterboxed images with their boxes, labels held in memory."""
from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageOps

from evaluators.data.config import label_path_for
from evaluators.data.letterbox import letterbox, rect_batch_shapes
from spaces.errors import ArchpruneError

COORD_TOLERANCE = 1e-3  # exporters round; anything further out is pixel units or garbage


def read_rgb(path: Path) -> np.ndarray:
    """Decode an image as HWC uint8 RGB, upright (EXIF orientation applied, as labels assume)."""
    with Image.open(path) as im:
        im = ImageOps.exif_transpose(im)
        if im.mode == "P":  # palette transparency converts cleanly only through RGBA
            im = im.convert("RGBA")
        return np.asarray(im.convert("RGB"))


def parse_labels(path: Path, nc: int | None) -> tuple[np.ndarray, np.ndarray]:
    """Read ``cls cx cy w h`` rows; ValueError with the reason when the file is malformed."""
    if not path.exists():
        return np.zeros(0, np.int64), np.zeros((0, 4), np.float32)  # no file: no objects
    rows = [line.split() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    if not rows:
        return np.zeros(0, np.int64), np.zeros((0, 4), np.float32)
    if any(len(r) != 5 for r in rows):
        raise ValueError("each label line needs 5 columns: cls cx cy w h")
    try:
        arr = np.array(rows, dtype=np.float64)
    except ValueError:
        raise ValueError("non-numeric value in labels") from None
    if not np.isfinite(arr).all():
        raise ValueError("non-finite value in labels")
    cls = arr[:, 0]
    if (cls != np.round(cls)).any() or (cls < 0).any():
        raise ValueError("class ids must be non-negative integers")
    if nc is not None and (cls >= nc).any():
        raise ValueError(f"class id {int(cls.max())} not in [0, {nc})")
    coords = arr[:, 1:]
    if (coords < -COORD_TOLERANCE).any() or (coords > 1 + COORD_TOLERANCE).any():
        raise ValueError("box coordinates not normalised to [0, 1]")
    return cls.astype(np.int64), arr[:, 1:].astype(np.float32)


def _check_image(path: Path) -> None:
    with Image.open(path) as im:
        im.verify()  # header + checksums without a full decode: cheap enough for thousands


def _upright_size(path: Path) -> tuple[int, int]:
    """The image's (h, w) once EXIF orientation is applied, from its header (verify() leaves a file
    unusable, so this is a second open; only rect batching needs it)."""
    with Image.open(path) as im:
        w, h = im.size
        if im.getexif().get(0x0112) in {5, 6, 7, 8}:  # EXIF orientations that swap the axes
            w, h = h, w
    return h, w


class DetectionDataset(torch.utils.data.Dataset):
    """Images with YOLO labels, letterboxed to ``imgsz``; bad items dropped with one warning.

    An image without a label file is background (one counting warning); when none has one, the
    labels are not where ``label_path_for`` looks and that is an error.

    ``rect_batch``: validation as Ultralytics does it. The items are sorted by aspect ratio and
    each is letterboxed onto its batch's rectangular canvas (batches of ``rect_batch``, to be read
    in order with that batch size); without it every item is an ``imgsz`` square, as in training.
    """

    def __init__(self, images: Sequence[Path], imgsz: int, nc: int | None = None,
                 rect_batch: int | None = None) -> None:
        self.imgsz = imgsz
        self.files: list[Path] = []
        self.labels: list[tuple[np.ndarray, np.ndarray]] = []  # (cls (n,), cxcywh normalised (n,4))
        bad: list[tuple[Path, str]] = []
        unlabeled: list[Path] = []  # usable images without a label file: background, or a wrong layout
        for image in map(Path, images):
            label = label_path_for(image)
            try:
                _check_image(image)
            except Exception as exc:  # PIL raises many types for broken files
                bad.append((image, _reason(exc)))
                continue
            try:
                self.labels.append(parse_labels(label, nc))
            except (ValueError, OSError, UnicodeDecodeError) as exc:
                bad.append((label, _reason(exc)))
                continue
            self.files.append(image)
            if not label.exists():
                unlabeled.append(image)
        self.canvases: list[tuple[int, int]] | None = None
        if rect_batch:
            order, self.canvases = rect_batch_shapes([_upright_size(f) for f in self.files], imgsz, rect_batch)
            self.files = [self.files[i] for i in order]
            self.labels = [self.labels[i] for i in order]
        if bad and not self.files:
            raise ArchpruneError(
                f"all {len(bad)} image(s) are unusable, first: {bad[0][0]} ({bad[0][1]})"
            )
        if bad:
            warnings.warn(
                f"skipped {len(bad)} corrupt image(s)/label(s), first: {bad[0][0]} ({bad[0][1]})",
                stacklevel=2,
            )
        _check_unlabeled(unlabeled, len(self.files))

    def __len__(self) -> int:
        return len(self.files)

    def letterboxed(self, i: int) -> dict[str, Any]:
        """Item ``i`` before tensor conversion: ``img`` HWC uint8, ``boxes`` (n, 4) letterboxed xyxy,
        ``ratio`` the (x, y) gains and ``pad`` the (left, top) pixels of the letterbox.

        Training augmentations work on this form; ``__getitem__`` packs it as tensors.
        """
        path = self.files[i]
        rgb = read_rgb(path)
        h, w = rgb.shape[:2]
        img, ratio, pad = letterbox(rgb, self.imgsz, self.canvases[i] if self.canvases else None)
        cls, cxcywh = self.labels[i]
        orig = _cxcywh_to_xyxy(cxcywh) * np.array([w, h, w, h], np.float32)
        orig = np.clip(orig, 0, [w, h, w, h]).astype(np.float32)  # slightly-out labels are common
        boxes = orig * np.array([*ratio, *ratio], np.float32) + np.array([*pad, *pad], np.float32)
        return {"img": img, "cls": cls.copy(), "boxes": boxes.astype(np.float32), "orig_boxes": orig,
                "path": str(path), "orig_shape": (h, w), "ratio": ratio, "pad": pad}

    def __getitem__(self, i: int) -> dict[str, Any]:
        return to_tensors(self.letterboxed(i))


def to_tensors(item: dict[str, Any]) -> dict[str, Any]:
    """Pack a ``letterboxed`` item: image as float CHW in [0, 1], targets as tensors."""
    return {
        **item,
        "img": torch.from_numpy(np.ascontiguousarray(item["img"].transpose(2, 0, 1))).float().div_(255),
        "cls": torch.from_numpy(np.asarray(item["cls"], dtype=np.int64)),
        "boxes": torch.from_numpy(np.asarray(item["boxes"], dtype=np.float32).reshape(-1, 4)),
        "orig_boxes": torch.from_numpy(np.asarray(item["orig_boxes"], dtype=np.float32).reshape(-1, 4)),
    }


def collate_detections(batch: list[dict[str, Any]]) -> dict[str, Any]:
    """Stack images; concatenate targets with ``batch_idx`` naming each box's image."""
    counts = [len(b["cls"]) for b in batch]
    return {
        "img": torch.stack([b["img"] for b in batch]),
        "cls": torch.cat([b["cls"] for b in batch]),
        "boxes": torch.cat([b["boxes"] for b in batch]),
        "orig_boxes": torch.cat([b["orig_boxes"] for b in batch]),
        "batch_idx": torch.repeat_interleave(
            torch.arange(len(batch), dtype=torch.int64), torch.tensor(counts, dtype=torch.int64)
        ),
        "path": [b["path"] for b in batch],
        "orig_shape": [b["orig_shape"] for b in batch],
        "ratio": [b["ratio"] for b in batch],
        "pad": [b["pad"] for b in batch],
    }


def _check_unlabeled(unlabeled: list[Path], usable: int) -> None:
    """Some images without labels are background (legal, as in COCO); all of them is a layout the
    label rule does not fit, which would otherwise score as a silent mAP of 0."""
    if not unlabeled:
        return
    if len(unlabeled) < usable:
        warnings.warn(f"{len(unlabeled)} of {usable} image(s) have no label file (read as background), "
                      f"first: {label_path_for(unlabeled[0])}", stacklevel=3)
        return
    folders = sorted({str(label_path_for(p).parent) for p in unlabeled})
    where = ", ".join(folders[:3]) + (f" and {len(folders) - 3} more" if len(folders) > 3 else "")
    if all("images" in p.parts[:-1] for p in unlabeled):
        fix = f"put one YOLO .txt per image there (for {unlabeled[0].name}: {label_path_for(unlabeled[0])})"
    else:
        fix = ("labels are found by replacing the last 'images' folder of an image's path with 'labels', "
               "so put the images under .../images/... and their labels under .../labels/...")
    raise ArchpruneError(f"none of the {usable} image(s) has a label file (looked in {where}); {fix}")


def _cxcywh_to_xyxy(b: np.ndarray) -> np.ndarray:
    half = b[:, 2:4] / 2
    return np.concatenate([b[:, :2] - half, b[:, :2] + half], axis=1)


def _reason(exc: BaseException) -> str:
    text = str(exc).splitlines()[0] if str(exc) else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
