"""The minibatch the data-dependent scores (snip, grad_norm, jacob_cov, naswot) look at.

Real CIFAR-10 images when the shared sample is there (``../shared/data/cifar10/cifar10_sample.npz``
next to the repository, or under ``$ARCHPRUNE_SHARED/data``), a seeded Gaussian batch with random
labels otherwise; ``Minibatch.source`` says which, so a stored score carries its provenance.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor
from torch.nn import functional as F

# published CIFAR-10 channel statistics (RGB, on 0..1 pixels)
CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2470, 0.2435, 0.2616)
CIFAR10_CLASSES = 10


@dataclass(frozen=True)
class Minibatch:
    """Images (N, C, H, W) float, labels (N,) int64, and where they came from."""

    images: Tensor
    labels: Tensor
    source: str

    def __len__(self) -> int:
        return int(self.images.shape[0])


def shared_dir() -> Path:
    """``$ARCHPRUNE_SHARED`` if set, else the ``shared`` folder beside the repository (as tests/conftest.py)."""
    env = os.environ.get("ARCHPRUNE_SHARED")
    return Path(env) if env else Path(__file__).resolve().parents[3] / "shared"


def cifar10_path() -> Path:
    return shared_dir() / "data" / "cifar10" / "cifar10_sample.npz"


def gaussian_batch(batch: int, seed: int, imgsz: int | tuple[int, int] = 32, channels: int = 3,
                   num_classes: int = CIFAR10_CLASSES, reason: str = "no data given") -> Minibatch:
    """N(0,1) images with uniform random labels, both from ``seed``."""
    h, w = (imgsz, imgsz) if isinstance(imgsz, int) else imgsz
    gen = torch.Generator().manual_seed(seed)
    images = torch.randn(batch, channels, h, w, generator=gen)
    labels = torch.randint(0, num_classes, (batch,), generator=gen)
    return Minibatch(images, labels, f"gaussian N(0,1), random labels, seed {seed} ({reason})")


def cifar10_batch(batch: int, seed: int, path: str | os.PathLike | None = None,
                  imgsz: int | tuple[int, int] = 32) -> Minibatch:
    """``batch`` CIFAR-10 test images picked by ``seed`` (rows are grouped by class: shuffled first),
    normalised with the CIFAR mean/std and resized bilinearly when ``imgsz`` is not 32.

    Falls back to :func:`gaussian_batch` when the file is missing; ``source`` says so.
    """
    file = Path(path) if path is not None else cifar10_path()
    if not file.exists():
        return gaussian_batch(batch, seed, imgsz, reason=f"CIFAR-10 sample not found at {file}")
    with np.load(file) as npz:
        images, labels = npz["images"], npz["labels"]
    if batch > len(images):
        raise ValueError(f"asked for {batch} images; {file} holds {len(images)}")
    rows = np.random.default_rng(seed).permutation(len(images))[:batch]
    x = torch.from_numpy(images[rows]).permute(0, 3, 1, 2).float().div_(255.0)
    x = (x - torch.tensor(CIFAR10_MEAN).view(1, 3, 1, 1)) / torch.tensor(CIFAR10_STD).view(1, 3, 1, 1)
    size = (imgsz, imgsz) if isinstance(imgsz, int) else tuple(imgsz)
    if tuple(x.shape[-2:]) != size:
        x = F.interpolate(x, size=size, mode="bilinear", align_corners=False)
    return Minibatch(x.contiguous(), torch.from_numpy(labels[rows]).long(),
                     f"cifar10 {file.name}: {batch} images, seed {seed}, {size[0]}x{size[1]}")
