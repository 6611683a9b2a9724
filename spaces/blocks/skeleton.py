"""What a structure must have to carry ``BlockDetector``'s PAN neck and Detect head, checked from the
structure alone: no network is built and torch is not imported, so a block search (and its resume,
which only re-reads the store) starts without the ~2 s of importing torch."""
from __future__ import annotations

from typing import NamedTuple, Sequence

from spaces.errors import ArchpruneError

from .structure import Block, stage_of_blocks

#: the necks ``BlockDetector`` builds: YOLOv8's C2f, or C2f whose convs are RepConvs (RepGFPN-style)
NECKS = ("c2f", "rep")


class StageOutput(NamedTuple):
    """A backbone stage's output: the index of its last block, its channels and its stride."""

    end: int
    channels: int
    stride: int


def stage_outputs(blocks: Sequence[Block]) -> list[StageOutput]:
    """One entry per stage (a stage ends before each stride-2 block), in order."""
    stages = stage_of_blocks(blocks)
    strides, total = [], 1
    for b in blocks:
        total *= b.s
        strides.append(total)
    return [StageOutput(i, blocks[i].cout, strides[i]) for i in range(len(stages))
            if i + 1 == len(stages) or stages[i + 1] != stages[i]]


def check_detector_skeleton(blocks: Sequence[Block], nc: int, names: Sequence[str] | None, neck: str) -> None:
    """Raise the error ``BlockDetector(blocks, nc, names, neck=neck)`` would raise, or nothing."""
    if nc < 1:
        raise ArchpruneError(f"nc must be at least 1, got {nc}")
    outputs = stage_outputs(blocks)
    if len(outputs) < 3:
        raise ArchpruneError(f"a detector needs at least 3 backbone stages (stride-2 blocks), this structure "
                             f"has {len(outputs)}")
    strides = [o.stride for o in outputs[-3:]]  # double by construction for parsed (stride 1 or 2) blocks
    if strides[1] != 2 * strides[0] or strides[2] != 2 * strides[1]:
        raise ArchpruneError(f"the last three stages have strides {strides}; the PAN neck needs each to double")
    if neck not in NECKS:
        raise ArchpruneError(f"unknown neck {neck!r}; use {' or '.join(NECKS)}")
    if names is not None and len(names) != nc:
        raise ArchpruneError(f"{len(names)} class names given for nc={nc}")
