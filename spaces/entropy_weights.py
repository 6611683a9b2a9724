"""The stage weights of MAE-DET's multi-scale entropy prior, by name or as numbers.

One table and one parser for both forms of the score (the analytic one of ``spaces.blocks`` and the
forward-pass one of ``evaluators.zero_shot.entropy``), torch-free so that a settings check or a
zero-shot search over structures never imports torch for them. Weights align with the *deepest*
stages (C5 last): ``(0, 0, 1, 1, 6)`` gives the stride-32 stage six times the weight of the P3 and P4
stages the YOLO neck also reads.
"""
from __future__ import annotations

import math
from typing import Sequence

from spaces.errors import ArchpruneError

ENTROPY_WEIGHTS: dict[str, tuple[float, ...]] = {
    "maedet": (0.0, 0.0, 1.0, 1.0, 6.0),  # MAE-DET's multi-scale entropy prior
    "damo": (0.0, 0.0, 1.0, 1.0, 16.0),  # DAMO-YOLO's TinyNAS configs (multi_block_ratio)
}


def entropy_weights(weights: str | Sequence[float]) -> tuple[float, ...]:
    """Stage weights from a name (``"maedet"``, ``"damo"``), a comma-separated list (``"0,0,1,1,1"``)
    or numbers; every weight finite and non-negative, at least one above 0."""
    if isinstance(weights, str):
        text = weights.strip().lower()
        if text in ENTROPY_WEIGHTS:
            return ENTROPY_WEIGHTS[text]
        try:
            weights = [float(part) for part in text.split(",")]
        except ValueError:
            raise ArchpruneError(f"unknown entropy weights {text!r}: use {', '.join(ENTROPY_WEIGHTS)} or stage weights "
                                 "as numbers, deepest stage last, e.g. 0,0,1,1,1") from None
    alphas = tuple(float(a) for a in weights)
    if not alphas or any(a < 0 or not math.isfinite(a) for a in alphas) or not any(alphas):
        raise ArchpruneError(f"entropy weights must be finite, non-negative and not all 0, got {list(alphas)}: "
                             "e.g. 0,0,1,1,6 (deepest stage last)")
    return alphas
