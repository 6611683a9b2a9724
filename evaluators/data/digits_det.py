"""digits-det: the embedded default detection set, composed from scikit-learn's handwritten digits.

Real 8x8 glyphs (1,797 of them, 10 classes) are upscaled to random sizes and pasted at random
places on textured backgrounds, several per image, and written in YOLO format. Train and val
draw from disjoint glyph pools, so val measures generalisation to unseen handwriting.
"""
from __future__ import annotations

import math
import multiprocessing
import os
import shutil
import sys
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from PIL import Image, ImageDraw
from tqdm import tqdm

from evaluators.cache_folder import cache_folder
from spaces.errors import ArchpruneError

VERSION = 1  # bump whenever the rendering changes: it names the cache folder
DEFAULTS: dict[str, int] = {"seed": 0, "n_train": 2000, "n_val": 500, "imgsz": 160}
MARKER_KEY = "digits_det"  # key in data.yaml recording how the set was built
VAL_FRACTION = 0.2
MAX_OBJECTS = 6
MAX_IOU = 0.1
PLACEMENT_TRIES = 20
MIN_CONTRAST = 90.0  # luminance difference (0..255) between glyph and the background under it
MIN_ALPHA = 0.2  # weakest ink kept: at MIN_CONTRAST it still stands 18 levels off the background
SPLITS = ("train", "val")
CHUNK = 32  # images per work item
MAX_WORKERS = 8


def build_digits_det(
    out_dir: Path, seed: int = 0, n_train: int = 2000, n_val: int = 500, imgsz: int = 160
) -> Path:
    """Build the set into ``out_dir`` atomically, replacing a previous build; returns data.yaml."""
    out_dir = Path(out_dir).expanduser().absolute()
    _check_params(n_train, n_val, imgsz)
    if out_dir.exists() and not out_dir.is_dir():
        raise ArchpruneError(f"--out {out_dir} is a file; pass a folder for digits-det")
    if out_dir.is_dir() and any(out_dir.iterdir()) and not is_digits_det(out_dir):
        raise ArchpruneError(
            f"--out {out_dir} is a non-empty folder that is not a digits-det build; "
            "pass an empty or new folder"
        )
    try:
        tmp = _render_to_temp(out_dir, seed, n_train, n_val, imgsz)
    except OSError as exc:
        raise ArchpruneError(
            f"cannot write digits-det beside {out_dir} ({exc}); pick another --out"
        ) from None
    old = out_dir.with_name(f".{out_dir.name}.old-{uuid.uuid4().hex[:8]}")
    if out_dir.exists():
        out_dir.rename(old)  # a non-empty folder cannot be replaced in one step
    os.replace(tmp, out_dir)
    shutil.rmtree(old, ignore_errors=True)
    return out_dir / "data.yaml"


def default_digits_det(
    seed: int = DEFAULTS["seed"],
    n_train: int = DEFAULTS["n_train"],
    n_val: int = DEFAULTS["n_val"],
    imgsz: int = DEFAULTS["imgsz"],
) -> Path:
    """The cached set's data.yaml, built on first use.

    It lives in ``$ARCHPRUNE_CACHE`` (else ~/.cache/archprune), in a folder named after the
    version and parameters, so a changed renderer or other parameters never reuse a stale set.
    """
    _check_params(n_train, n_val, imgsz)
    cache = cache_folder()
    name = f"digits-det-v{VERSION}-s{seed}-{n_train}-{n_val}-{imgsz}"
    final = cache.expanduser().absolute() / name
    if not is_digits_det(final):
        try:
            tmp = _render_to_temp(final, seed, n_train, n_val, imgsz)
        except OSError as exc:
            raise ArchpruneError(
                f"cannot write the digits-det cache in {final.parent} ({exc}); "
                "set ARCHPRUNE_CACHE to a writable folder"
            ) from None
        try:
            os.rename(tmp, final)
        except OSError:
            # Another process published the same set first: keep theirs, discard ours.
            shutil.rmtree(tmp, ignore_errors=True)
            if not is_digits_det(final):
                raise ArchpruneError(
                    f"cache folder {final} exists but is not a complete digits-det build; delete it"
                ) from None
    return final / "data.yaml"


def is_digits_det(folder: Path) -> bool:
    """Whether ``folder`` holds a finished digits-det build (its data.yaml carries our marker)."""
    try:
        raw = yaml.safe_load((Path(folder) / "data.yaml").read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError):
        return False
    return isinstance(raw, dict) and isinstance(raw.get(MARKER_KEY), dict)


def split_glyphs(seed: int, n_glyphs: int) -> tuple[np.ndarray, np.ndarray]:
    """Disjoint train/val glyph indices: a seeded 80/20 split of all glyphs."""
    perm = np.random.default_rng(seed).permutation(n_glyphs)
    n_val = round(n_glyphs * VAL_FRACTION)
    return np.sort(perm[n_val:]), np.sort(perm[:n_val])


def glyph_alpha(
    glyph: np.ndarray, width: int, height: int
) -> tuple[np.ndarray, tuple[int, int, int, int] | None]:
    """Upscale an 8x8 glyph (0..16) to an ink mask of ``height x width``, with its tight box.

    The box ``(x0, y0, x1, y1)`` (x1/y1 exclusive) bounds exactly the non-zero pixels of the
    mask; it is None when nothing survives (only possible at tiny sizes).
    """
    # A zero border lets the bicubic fade to nothing inside the cell instead of at its edge.
    padded = np.pad(glyph.astype(np.float32) / 16.0, 1)
    smooth = np.asarray(Image.fromarray(padded).resize((width, height), Image.BICUBIC))
    # Soft threshold for crisp ink-like strokes; faint fringes are cut to exact zeros so every
    # pixel inside the tight box that counts as ink is visibly ink.
    alpha = np.clip((smooth - 0.25) / 0.35, 0.0, 1.0)
    alpha[alpha < MIN_ALPHA] = 0.0
    ys, xs = np.nonzero(alpha)
    if ys.size == 0:
        return alpha, None
    return alpha, (int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1)


def render_image(
    rng: np.random.Generator, glyphs: np.ndarray, classes: np.ndarray, imgsz: int
) -> tuple[np.ndarray, list[tuple[int, int, int, int, int]]]:
    """One image (HWC uint8) and its objects as ``(cls, x0, y0, x1, y1)`` pixel boxes."""
    canvas = _background(rng, imgsz)
    objects: list[tuple[int, int, int, int, int]] = []
    for _ in range(int(rng.integers(1, MAX_OBJECTS + 1))):
        k = int(rng.integers(len(glyphs)))
        side = imgsz * np.exp(rng.uniform(np.log(14 / 160), np.log(56 / 160)))
        cell_w = max(6, round(side * rng.uniform(0.85, 1.15) * 10 / 8))  # padded 10x10 cell
        cell_h = max(6, round(side * 10 / 8))
        if cell_w > imgsz or cell_h > imgsz:
            continue
        alpha, tight = glyph_alpha(glyphs[k], cell_w, cell_h)
        if tight is None:
            continue
        bx0, by0, bx1, by1 = tight
        placed = np.array([o[1:] for o in objects], np.float64).reshape(-1, 4)
        for _ in range(PLACEMENT_TRIES):
            ox = int(rng.integers(0, imgsz - cell_w + 1))
            oy = int(rng.integers(0, imgsz - cell_h + 1))
            box = (ox + bx0, oy + by0, ox + bx1, oy + by1)
            if len(placed) == 0 or _iou(np.array(box, np.float64), placed).max() <= MAX_IOU:
                break
        else:
            continue  # no free spot: fewer objects in this image
        region = canvas[oy : oy + cell_h, ox : ox + cell_w]
        colour = _contrasting_colour(rng, region, alpha)
        region += alpha[..., None] * (colour - region)  # in-place: region is a view of canvas
        objects.append((int(classes[k]), *box))
    canvas += _grain(rng, canvas.shape, sigma=rng.uniform(1.0, 5.0))
    return np.clip(np.rint(canvas), 0, 255).astype(np.uint8), objects


def _render_to_temp(final: Path, seed: int, n_train: int, n_val: int, imgsz: int) -> Path:
    """Write the whole set into a fresh hidden sibling of ``final``; the caller publishes it."""
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.with_name(f".{final.name}.tmp-{uuid.uuid4().hex[:8]}")
    try:
        _write_set(tmp, seed, n_train, n_val, imgsz)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)  # an interrupted build leaves nothing behind
        raise
    return tmp


def _write_set(out: Path, seed: int, n_train: int, n_val: int, imgsz: int) -> None:
    from sklearn.datasets import load_digits  # bundled with scikit-learn: no download

    digits = load_digits()
    pools = dict(zip(SPLITS, split_glyphs(seed, len(digits.images))))
    glyph_sets = {s: (digits.images[idx], digits.target[idx]) for s, idx in pools.items()}
    counts = {"train": n_train, "val": n_val}
    for split in SPLITS:
        (out / "images" / split).mkdir(parents=True)
        (out / "labels" / split).mkdir(parents=True)
    chunks = [
        (split, lo, min(lo + CHUNK, counts[split]))
        for split in SPLITS
        for lo in range(0, counts[split], CHUNK)
    ]
    args = (out, seed, imgsz, glyph_sets)
    workers = _worker_count(n_train + n_val)
    with tqdm(total=n_train + n_val, desc="digits-det", unit="img", disable=None) as bar:
        if workers == 1:
            _init_worker(*args)
            for done in map(_write_chunk, chunks):
                bar.update(done)
        else:
            # fork: workers inherit the glyphs for free and start in milliseconds (Linux only).
            with multiprocessing.get_context("fork").Pool(workers, _init_worker, args) as pool:
                for done in pool.imap_unordered(_write_chunk, chunks):
                    bar.update(done)
    meta: dict[str, Any] = {
        "path": ".",  # relative, so the folder can be moved
        "train": "images/train",
        "val": "images/val",
        "names": [str(c) for c in range(10)],
        MARKER_KEY: {
            "version": VERSION, "seed": seed, "n_train": n_train, "n_val": n_val, "imgsz": imgsz
        },
    }
    header = "# digits-det (archprune): synthetic detection set from scikit-learn's digits\n"
    text = header + yaml.safe_dump(meta, sort_keys=False, default_flow_style=None)
    (out / "data.yaml").write_text(text, encoding="utf-8")  # written last: marks the build complete


def _worker_count(n_images: int) -> int:
    if sys.platform != "linux" or n_images < 8 * CHUNK:  # a pool costs more than it saves
        return 1
    return max(1, min(MAX_WORKERS, len(os.sched_getaffinity(0))))


_WORKER: dict[str, Any] = {}  # per-process rendering context, set by _init_worker


def _init_worker(
    out: Path, seed: int, imgsz: int, glyph_sets: dict[str, tuple[np.ndarray, np.ndarray]]
) -> None:
    _WORKER.update(out=out, seed=seed, imgsz=imgsz, glyph_sets=glyph_sets)


def _write_chunk(chunk: tuple[str, int, int]) -> int:
    """Render and write images ``lo..hi-1`` of one split; returns how many."""
    split, lo, hi = chunk
    out, seed, imgsz = _WORKER["out"], _WORKER["seed"], _WORKER["imgsz"]
    glyphs, classes = _WORKER["glyph_sets"][split]
    for i in range(lo, hi):
        # One generator per image: the bytes do not depend on rendering order or worker count.
        rng = np.random.default_rng([seed, SPLITS.index(split), i])
        img, objects = render_image(rng, glyphs, classes, imgsz)
        stem = f"{split}/{i:06d}"
        # Z_RLE (compress_type=3) at level 1: as small as level 9 on noisy images, several x faster.
        Image.fromarray(img).save(out / "images" / f"{stem}.png", compress_level=1, compress_type=3)
        (out / "labels" / f"{stem}.txt").write_text(_yolo_lines(objects, imgsz), encoding="utf-8")
    return hi - lo


def _check_params(n_train: int, n_val: int, imgsz: int) -> None:
    if n_train < 1 or n_val < 1:
        raise ArchpruneError(f"digits-det needs --train and --val >= 1, got {n_train}, {n_val}")
    if imgsz < 32:
        raise ArchpruneError(f"digits-det needs --imgsz >= 32, got {imgsz}")


def _background(rng: np.random.Generator, s: int) -> np.ndarray:
    """Smooth colour gradient + low-frequency blotches + a few lines and blobs (float HWC)."""
    c0, c1 = rng.uniform(0, 255, (2, 3)).astype(np.float32)
    theta = float(rng.uniform(0, 2 * np.pi))  # a Python float keeps the arrays float32
    ramp = np.linspace(0.0, 1.0, s, dtype=np.float32)
    t = math.cos(theta) * ramp[None, :] + math.sin(theta) * ramp[:, None]
    t = (t - t.min()) / max(np.ptp(t), 1e-6)
    k = int(rng.integers(2, 6))
    interp = _interp_matrix(k, s)
    # Channel-first while computing: numpy is much faster on long contiguous inner loops.
    chw = interp @ rng.normal(0, 25, (3, k, k)).astype(np.float32) @ interp.T  # bilinear blotches
    chw += c0[:, None, None] + (c1 - c0)[:, None, None] * t
    pil = Image.fromarray(np.clip(chw, 0, 255).astype(np.uint8).transpose(1, 2, 0))
    draw = ImageDraw.Draw(pil)
    for _ in range(int(rng.integers(0, 4))):
        xy = [float(v) for v in rng.uniform(0, s, 4)]
        draw.line(xy, fill=_rgb(rng), width=int(rng.integers(1, 4)))
    for _ in range(int(rng.integers(0, 3))):
        cx, cy = rng.uniform(0, s, 2)
        rx, ry = rng.uniform(s / 40, s / 10, 2)
        corners = [float(cx - rx), float(cy - ry), float(cx + rx), float(cy + ry)]
        draw.ellipse(corners, fill=_rgb(rng))
    return np.asarray(pil, dtype=np.float32).copy()


def _grain(rng: np.random.Generator, shape: tuple[int, ...], sigma: float) -> np.ndarray:
    """Zero-mean sensor-like noise with std ``sigma``: triangular (sum of two uniform bytes),
    close enough to Gaussian and ~6x cheaper to draw, which matters at thousands of images."""
    u = rng.integers(0, 256, (2, *shape), dtype=np.uint8)
    return (u[0].astype(np.float32) + u[1] - 255.0) * np.float32(sigma / 104.52)


def _interp_matrix(k: int, s: int) -> np.ndarray:
    """(s, k) linear-interpolation weights that stretch k control points over s pixels."""
    pos = np.linspace(0, k - 1, s, dtype=np.float32)
    return np.maximum(0.0, 1.0 - np.abs(pos[:, None] - np.arange(k, dtype=np.float32)[None, :]))


def _contrasting_colour(
    rng: np.random.Generator, region: np.ndarray, alpha: np.ndarray
) -> np.ndarray:
    """A random colour whose luminance differs enough from the background under the ink."""
    luma = np.array([0.299, 0.587, 0.114], np.float32)
    under = (region * alpha[..., None]).sum((0, 1)) / alpha.sum() @ luma
    candidates = rng.uniform(0, 255, (16, 3)).astype(np.float32)
    ok = np.abs(candidates @ luma - under) >= MIN_CONTRAST
    if ok.any():
        return candidates[np.argmax(ok)]
    return np.zeros(3, np.float32) if under > 127.5 else np.full(3, 255.0, np.float32)


def _rgb(rng: np.random.Generator) -> tuple[int, int, int]:
    r, g, b = (int(v) for v in rng.integers(0, 256, 3))
    return r, g, b


def _iou(box: np.ndarray, others: np.ndarray) -> np.ndarray:
    lt = np.maximum(box[:2], others[:, :2])
    rb = np.minimum(box[2:], others[:, 2:])
    inter = np.prod(np.clip(rb - lt, 0, None), axis=1)
    area = np.prod(box[2:] - box[:2])
    areas = np.prod(others[:, 2:] - others[:, :2], axis=1)
    return inter / (area + areas - inter)


def _yolo_lines(objects: list[tuple[int, int, int, int, int]], imgsz: int) -> str:
    lines = []
    for cls, x0, y0, x1, y1 in objects:
        cx, cy = (x0 + x1) / (2 * imgsz), (y0 + y1) / (2 * imgsz)
        w, h = (x1 - x0) / imgsz, (y1 - y0) / imgsz
        lines.append(f"{cls} {cx:.6f} {cy:.6f} {w:.6f} {h:.6f}\n")
    return "".join(lines)
