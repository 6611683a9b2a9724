"""The image sizes a detector can be run at: one rule for every subcommand and config file."""
from __future__ import annotations

from typing import Any

from spaces.errors import ArchpruneError

STRIDE = 32  # the detector's largest stride: sizes must be multiples of it
MIN_IMGSZ = 32
# 4096 px is already 4x COCO's largest common size; beyond it a batch of one letterboxed image is
# gigabytes, and `eval --imgsz 100000` died with a MemoryError deep inside PIL.
MAX_IMGSZ = 4096
DEFAULT_IMGSZ = 640  # for a model that records no training size (see DESIGN.md conventions)


def image_size_problem(value: Any) -> str | None:
    """Why ``value`` is not a usable image size, or None when it is."""
    if isinstance(value, bool) or not isinstance(value, int):
        return f"expected a whole number of pixels, got {value!r}"
    if not MIN_IMGSZ <= value <= MAX_IMGSZ:
        return f"{value} is outside {MIN_IMGSZ}..{MAX_IMGSZ} pixels"
    if value % STRIDE:
        return f"{value} is not a multiple of {STRIDE} (the detector's largest stride)"
    return None


def check_imgsz(size: int) -> int:
    """The one image-size rule, for sizes that come from a checkpoint or from Python callers rather
    than a command-line flag (torch-free: a resumed block search checks its size without a network)."""
    problem = image_size_problem(int(size))
    if problem:
        raise ArchpruneError(f"image size {problem}")
    return int(size)
