"""Plumbing every training-free score shares: a seeded private copy, its input, its output as one matrix.

Scores re-initialise weights, take |w| or swap BN out, so each works on a deep copy of the caller's
model, under a forked RNG seeded from ``seed`` (same seed, same score; the caller's global RNG
state is left as it was). Any output (classifier logits, a detector's list of maps) reduces to one
(batch, D) matrix by flattening and concatenating. The copy is put in train mode: BN then uses
batch statistics (as the published scores do) and a detector head returns its raw maps rather
than decoded boxes.
"""
from __future__ import annotations

import contextlib
import copy
from collections.abc import Callable, Iterator
from typing import Any, Protocol

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from evaluators.zero_shot.batches import Minibatch, gaussian_batch
from spaces.errors import ArchpruneError

DEFAULT_BATCH = 32
ImgSize = int | tuple[int, int]

BATCHNORMS = (nn.modules.batchnorm._BatchNorm,)
# module activations (functional ones inside a forward are out of reach of hooks and swaps)
ACTIVATIONS = (nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.PReLU, nn.ELU, nn.CELU, nn.SELU, nn.GELU, nn.SiLU,
               nn.Mish, nn.Hardswish, nn.Hardsigmoid, nn.Sigmoid, nn.Tanh)
WEIGHTED = (nn.modules.conv._ConvNd, nn.Linear)  # the layers whose weights snip/grad_norm/synflow sum over


class ScoreFn(Protocol):
    """A score: higher is better; -inf (or NaN) where the network is degenerate."""

    def __call__(self, model: nn.Module, imgsz: ImgSize, *, batch: int = ..., seed: int = ...,
                 **kwargs: Any) -> float: ...


@contextlib.contextmanager
def seeded(seed: int) -> Iterator[None]:
    """Run the block with torch's CPU RNG seeded, then restore the caller's RNG state."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


def scoring_copy(model: nn.Module) -> nn.Module:
    """A private deep copy in train mode: scores may change its weights and modules freely."""
    return copy.deepcopy(model).train()


def replace_modules(model: nn.Module, types: tuple[type, ...], make: Callable[[nn.Module], nn.Module]) -> int:
    """Swap every submodule of ``types`` for ``make(it)`` in place; the number swapped."""
    targets = [name for name, m in model.named_modules() if name and isinstance(m, types)]
    for name in targets:
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        setattr(parent, child, make(getattr(parent, child)))
    return len(targets)


def _trainable(m: nn.Module) -> bool:
    """False for fixed layers (a detector's DFL conv holds constants, not weights)."""
    return all(p.requires_grad for p in m.parameters(recurse=False))


def reset_weights(model: nn.Module) -> None:
    """Each layer's own default initialisation (``reset_parameters``), drawn from the current RNG.

    Scores that use the model's weights call this under :func:`seeded` (unless told not to), so a
    score is a function of the architecture and the seed, not of how the caller's copy was drawn.
    """
    for m in model.modules():
        if callable(getattr(m, "reset_parameters", None)) and _trainable(m):
            m.reset_parameters()


def gaussian_init(model: nn.Module) -> None:
    """Zen-NAS / MAE-DET initialisation: conv and linear weights N(0,1), biases 0, BN affine 1 and 0."""
    with torch.no_grad():
        for m in model.modules():
            if not _trainable(m):
                continue
            if isinstance(m, WEIGHTED):
                nn.init.normal_(m.weight)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, BATCHNORMS) and m.affine:
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)


def device_of(model: nn.Module) -> torch.device:
    p = next(model.parameters(), None)
    return p.device if p is not None else torch.device("cpu")


def size_hw(imgsz: ImgSize) -> tuple[int, int]:
    return (imgsz, imgsz) if isinstance(imgsz, int) else (int(imgsz[0]), int(imgsz[1]))


def model_inputs(data: Minibatch | None, imgsz: ImgSize, batch: int, seed: int, channels: int,
                 device: torch.device) -> tuple[Tensor, Tensor]:
    """Images and labels: the given minibatch (resized to ``imgsz`` when needed) or a seeded Gaussian one."""
    if data is None:
        data = gaussian_batch(batch, seed, size_hw(imgsz), channels)
    x = data.images
    if tuple(x.shape[-2:]) != size_hw(imgsz):
        x = F.interpolate(x, size=size_hw(imgsz), mode="bilinear", align_corners=False)
    return x.to(device), data.labels.to(device)


def flat_output(out: Any) -> Tensor:
    """A (batch, D) matrix of everything the model returned (tensor, or list/tuple/dict of tensors)."""
    if isinstance(out, Tensor):
        return out.reshape(out.shape[0], -1)
    if isinstance(out, dict):
        out = list(out.values())
    if isinstance(out, (list, tuple)) and out:
        return torch.cat([flat_output(o) for o in out], dim=1)
    raise ArchpruneError(f"cannot score a model whose output is {type(out).__name__}: expected a tensor "
                         "or a list/tuple/dict of tensors")


def task_loss(out: Any, labels: Tensor) -> Tensor:
    """The loss that snip and grad_norm differentiate.

    Classifier output (batch, classes): cross-entropy against ``labels`` (taken modulo the class
    count when the model has fewer classes than the data). Anything else (a detector's maps, dense
    outputs): the surrogate mean squared error between the flattened outputs and a fixed N(0,1)
    target drawn from the seeded RNG, i.e. regression to random targets, the dense analogue of
    cross-entropy against random labels; no boxes are needed.
    """
    if isinstance(out, Tensor) and out.dim() == 2 and out.shape[1] > 1:
        return F.cross_entropy(out, labels % out.shape[1])
    flat = flat_output(out)
    return F.mse_loss(flat, torch.randn_like(flat))


def weighted_layers(model: nn.Module) -> list[nn.Module]:
    """Conv and linear layers with a trainable weight (frozen ones, like a DFL's fixed conv, are skipped)."""
    return [m for m in model.modules() if isinstance(m, WEIGHTED) and m.weight.requires_grad]


def loss_gradients(model: nn.Module, imgsz: ImgSize, batch: int, seed: int, data: Any, channels: int,
                   reinit: bool) -> list[nn.Module]:
    """The conv and linear layers of a scoring copy of ``model`` after one backward of the task loss
    on one batch (``data``, or a seeded Gaussian batch): what snip and grad_norm read. With ``reinit``
    the copy's layers are re-drawn with their default initialisation under ``seed``, so the score
    depends on the architecture and the seed only; without, it scores the model's own weights."""
    net = scoring_copy(model)
    layers = weighted_layers(net)
    with seeded(seed):
        if reinit:
            reset_weights(net)
        x, labels = model_inputs(data, imgsz, batch, seed, channels, device_of(net))
        task_loss(net(x), labels).backward()
    return [m for m in layers if m.weight.grad is not None]
