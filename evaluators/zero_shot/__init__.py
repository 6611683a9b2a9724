"""Training-free ("zero-shot") architecture scores: one function per score, any ``nn.Module``.

Every score takes ``(model, imgsz, *, batch=..., seed=...)``, never changes the caller's model
(it works on a deep copy) and is higher-is-better. The data-dependent ones also take
``data=Minibatch`` (see :func:`cifar10_batch`); without it they use a seeded Gaussian batch.

>>> from spaces.models.nb201_net import NB201Network
>>> net = NB201Network(("nor_conv_3x3",) * 6, cells_per_stage=1)
>>> score("snip", net, 32, batch=4, seed=0) == snip_score(net, 32, batch=4, seed=0) > 0
True
>>> forward_entropy(NB201Network(("none",) * 6, cells_per_stage=1), 32, batch=4, repeats=1)  # no path from the image
-inf
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from torch import nn

from evaluators.zero_shot._base import DEFAULT_BATCH, ImgSize, ScoreFn
from evaluators.zero_shot.batches import Minibatch, cifar10_batch, gaussian_batch
from evaluators.zero_shot.entropy import aggregate_entropy, forward_entropy
from evaluators.zero_shot.grad_norm import grad_norm_score
from evaluators.zero_shot.jacob_cov import jacob_cov_score
from evaluators.zero_shot.naswot import naswot_score
from evaluators.zero_shot.snip import snip_score
from evaluators.zero_shot.synflow import synflow_score
from evaluators.zero_shot.zen import zen_score
from spaces.entropy_weights import ENTROPY_WEIGHTS
from spaces.errors import ArchpruneError, did_you_mean

__all__ = [
    "DEFAULT_BATCH", "ENTROPY_WEIGHTS", "SCORES", "Minibatch", "ScoreSpec", "aggregate_entropy", "cifar10_batch",
    "forward_entropy", "gaussian_batch", "grad_norm_score", "jacob_cov_score", "naswot_score", "resolve_scores",
    "score", "snip_score", "synflow_score", "zen_score",
]


@dataclass(frozen=True)
class ScoreSpec:
    """A registered score: its function and whether it looks at a data minibatch."""

    fn: ScoreFn
    uses_data: bool


SCORES: dict[str, ScoreSpec] = {
    "entropy": ScoreSpec(forward_entropy, uses_data=False),
    "zen": ScoreSpec(zen_score, uses_data=False),
    "naswot": ScoreSpec(naswot_score, uses_data=True),
    "synflow": ScoreSpec(synflow_score, uses_data=False),
    "snip": ScoreSpec(snip_score, uses_data=True),
    "grad_norm": ScoreSpec(grad_norm_score, uses_data=True),
    "jacob_cov": ScoreSpec(jacob_cov_score, uses_data=True),
}


def resolve_scores(names: str | tuple[str, ...] | list[str]) -> tuple[str, ...]:
    """Validated score names (a comma-separated string or a sequence); unknown ones raise ArchpruneError."""
    items = [n.strip() for n in names.split(",")] if isinstance(names, str) else [str(n).strip() for n in names]
    items = [n for n in items if n]
    if not items:
        raise ArchpruneError(f"no zero-shot score named; choose from {', '.join(SCORES)}")
    for name in items:
        if name not in SCORES:
            raise ArchpruneError(f"unknown zero-shot score {name!r}{did_you_mean(name, SCORES)}; valid scores are {', '.join(SCORES)}")
    return tuple(dict.fromkeys(items))


def score(name: str, model: nn.Module, imgsz: ImgSize, *, data: Minibatch | None = None, **kwargs: Any) -> float:
    """One score by name; ``data`` goes only to the scores that use it."""
    (name,) = resolve_scores((name,))
    spec = SCORES[name]
    if spec.uses_data:
        kwargs["data"] = data
    return spec.fn(model, imgsz, **kwargs)
