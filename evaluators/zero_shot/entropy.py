"""MAE-DET entropy ("madnas"), forward-pass form: how much the feature maps' scale grows through the net.

With N(0,1) weights and no BN, activation or shortcut, each conv multiplies the activation's std
by about sqrt(fan_in); the differential entropy of a Gaussian map grows with log(std). Each conv's
output std is measured on an N(0,1) input batch and the activation divided by it (so nothing
overflows); a unit's log-term is the sum of its convs' log-stds. Stage score S_i = (sum of the
unit log-terms from the input to the end of stage i) + log(width of stage i); the score is
sum_i alpha_i * S_i, averaged over ``repeats`` fresh draws of weights and input.

Two modes:

- **layout** (``layout`` given, or ``entropy_layout()`` of the model, or else of its only submodule
  that has one, e.g. a detector's backbone: MAE-DET scores the backbone): stages -> units -> convs
  in execution order. Only that chain of convs runs (each conv's stride, padding, dilation and groups,
  so depthwise convs count with their per-group fan-in; no bias, BN, activation or shortcut), so
  it agrees with the analytic 0.5*log(fan_in) form up to border effects of padding at small maps.
- **generic** (any other ``nn.Module``): the model's own forward on a deep copy, with BN and
  activation modules replaced by identity and shortcuts, concats, pooling and upsampling kept;
  a hook measures and re-normalises every ``nn.Conv2d`` output. Each conv call is one unit (the
  unit structure is unknown, so parallel branches count as if in sequence); a stage is a maximal
  run of consecutive conv calls with the same output resolution, so a stage ends at every stride
  change (a detector's neck and head, which go back up in resolution, make further stages); its
  width is the channel count of its last conv. A conv that sees an all-zero input (no path from
  the image) has log-std -inf, and a model whose output is the same for every input also scores
  -inf: no crash, no NaN.

Weights ``alpha`` align with the *last* stages (the deepest, as in MAE-DET's C1..C5 with C5 last):
a net with fewer stages than weights uses the last ones, extra early stages get weight 0.
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from evaluators.zero_shot._base import (
    ACTIVATIONS, BATCHNORMS, DEFAULT_BATCH, ImgSize, device_of, flat_output, gaussian_init, replace_modules,
    scoring_copy, seeded, size_hw)
from spaces.entropy_weights import entropy_weights
from spaces.errors import ArchpruneError

#: stages -> units -> convs in execution order
Layout = Sequence[Sequence[Sequence[nn.Conv2d]]]


def aggregate_entropy(unit_logs: Sequence[Sequence[float]], widths: Sequence[int],
                      weights: str | Sequence[float] = "maedet") -> float:
    """sum_i alpha_i * (cumulative unit log-terms up to the end of stage i + log(width_i)).

    ``unit_logs[i]`` are stage i's unit log-terms (log of the std product, or 0.5*log(fan_in) sums
    in the analytic form); alpha aligns with the last stages. A -inf term gives -inf, never NaN.
    """
    if len(unit_logs) != len(widths):
        raise ValueError(f"{len(unit_logs)} stages but {len(widths)} widths")
    alphas = entropy_weights(weights)
    n = len(unit_logs)
    aligned = alphas[-n:] if len(alphas) >= n else (0.0,) * (n - len(alphas)) + alphas
    total = cumulative = 0.0
    for alpha, logs, width in zip(aligned, unit_logs, widths):
        cumulative += sum(logs)
        if alpha:  # 0 * -inf would be NaN
            total += alpha * (cumulative + math.log(width))
    return total


def forward_entropy(model: nn.Module, imgsz: ImgSize, layout: Layout | None = None,
                    weights: str | Sequence[float] = "maedet", repeats: int = 4, batch: int = DEFAULT_BATCH,
                    seed: int = 0, channels: int = 3) -> float:
    """The MAE-DET entropy of ``model`` at ``imgsz`` (see the module docstring for both modes)."""
    if layout is None:
        layout = find_entropy_layout(model)
    if repeats < 1:
        raise ArchpruneError(f"entropy repeats must be at least 1, got {repeats}")
    scores = []
    with seeded(seed), torch.no_grad():
        if layout is not None:
            for _ in range(repeats):
                scores.append(aggregate_entropy(*_layout_pass(layout, imgsz, batch, device_of(model)), weights))
        else:
            net = _linear_copy(model)
            for _ in range(repeats):
                stages = _generic_pass(net, imgsz, batch, channels)
                scores.append(aggregate_entropy(*stages, weights) if stages else -math.inf)
    return float(sum(scores) / len(scores))


def find_entropy_layout(model: nn.Module) -> Layout | None:
    """``entropy_layout()`` of the model, else of its only submodule that has one; None otherwise."""
    if callable(getattr(model, "entropy_layout", None)):
        return model.entropy_layout()
    owners = [m for m in model.modules() if m is not model and callable(getattr(m, "entropy_layout", None))]
    return owners[0].entropy_layout() if len(owners) == 1 else None


def _log_std(y: Tensor) -> float:
    std = float(y.std())
    return math.log(std) if std > 0 and math.isfinite(std) else -math.inf


def _layout_pass(layout: Layout, imgsz: ImgSize, batch: int,
                 device: torch.device) -> tuple[list[list[float]], list[int]]:
    if not layout or not all(layout) or not all(unit for stage in layout for unit in stage):
        raise ArchpruneError("entropy layout has an empty stage or unit: expected stages -> units -> convs")
    x = torch.randn(batch, layout[0][0][0].in_channels, *size_hw(imgsz), device=device)
    unit_logs: list[list[float]] = []
    widths: list[int] = []
    for s, stage in enumerate(layout):
        logs = []
        for u, unit in enumerate(stage):
            term = 0.0
            for conv in unit:
                if x.shape[1] != conv.in_channels:
                    raise ArchpruneError(f"entropy layout: stage {s} unit {u} has a conv taking {conv.in_channels} "
                                         f"channels after one giving {x.shape[1]}: convs must chain in execution order")
                y = F.conv2d(x, torch.randn(conv.weight.shape, device=device), None,
                             conv.stride, conv.padding, conv.dilation, conv.groups)
                log_std = _log_std(y)
                term += log_std
                x = y / math.exp(log_std) if math.isfinite(log_std) else y
            logs.append(term)
        unit_logs.append(logs)
        widths.append(int(x.shape[1]))
    return unit_logs, widths


def _linear_copy(model: nn.Module) -> nn.Module:
    """A private copy with BN and activation modules replaced by identity."""
    net = scoring_copy(model).float()
    replace_modules(net, BATCHNORMS + ACTIVATIONS, lambda m: nn.Identity())
    if not any(isinstance(m, nn.Conv2d) for m in net.modules()):
        raise ArchpruneError(f"entropy needs Conv2d layers to measure; {type(model).__name__} has none")
    return net


def _generic_pass(net: nn.Module, imgsz: ImgSize, batch: int,
                  channels: int) -> tuple[list[list[float]], list[int]] | None:
    """Stages of conv log-stds from one forward; None when the output ignores the input."""
    gaussian_init(net)
    records: list[tuple[float, int, tuple[int, ...]]] = []

    def measure(module: nn.Module, inputs: tuple[Tensor, ...], out: Tensor) -> Tensor:
        log_std = _log_std(out)
        if not math.isfinite(log_std):
            return out  # a conv on a dead branch (fed only zeros) carries nothing: it adds no term
        records.append((log_std, int(out.shape[1]), tuple(out.shape[2:])))
        return out / math.exp(log_std)

    handles = [m.register_forward_hook(measure) for m in net.modules() if isinstance(m, nn.Conv2d)]
    try:
        out = flat_output(net(torch.randn(batch, channels, *size_hw(imgsz), device=device_of(net))))
    finally:
        for h in handles:
            h.remove()
    if batch > 1 and bool((out == out[:1]).all()):
        return None  # no path from the input to the output
    unit_logs: list[list[float]] = []
    widths: list[int] = []
    previous = None
    for log_std, width, hw in records:
        if hw != previous:
            unit_logs.append([])
            widths.append(width)
            previous = hw
        unit_logs[-1].append(log_std)
        widths[-1] = width
    return unit_logs, widths
