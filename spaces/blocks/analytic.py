"""FLOPs, parameters and MAE-DET entropy of a structure, from its numbers alone (no network built).

A zero-shot search checks budgets on hundreds of thousands of children; building each one to run
thop would cost more than the score. The counts follow thop's rules exactly (conv multiply-adds
without bias, BatchNorm = 4 x its input size, avg-pool = one add per input + one divide per output,
activations / upsampling / max-pool / adds free), so they match ``evaluators.flops`` to rounding.
Units: ``flops_g`` = 2 x multiply-adds / 1e9 (Ultralytics' GFLOPs), ``params_m`` = parameters / 1e6.
"""
from __future__ import annotations

import math
from typing import Any, Sequence

from spaces.entropy_weights import ENTROPY_WEIGHTS, entropy_weights

from .structure import Block, Structure, parse_structure, stage_of_blocks



def as_blocks(structure: Any) -> Structure:
    """Blocks as given (already checked) or parsed from dicts / YAML / JSON."""
    if isinstance(structure, (tuple, list)) and structure and all(isinstance(b, Block) for b in structure):
        return tuple(structure)
    return parse_structure(structure)


class _Counter:
    """Multiply-adds and parameters of a network walked layer by layer (batch 1)."""

    def __init__(self) -> None:
        self.macs = 0
        self.params = 0

    def conv(self, cin: int, cout: int, k: int, s: int, hw: tuple[int, int], g: int = 1, bn: bool = True,
             bias: bool = False) -> tuple[int, int]:
        h, w = -(-hw[0] // s), -(-hw[1] // s)  # 'same' padding: ceil(size / stride)
        self.macs += h * w * cout * (cin // g) * k * k
        self.params += cout * (cin // g) * k * k + (cout if bias else 0)
        if bn:
            self.macs += 4 * cout * h * w
            self.params += 2 * cout
        return h, w

    def unit(self, b: Block, cin: int, s: int, hw: tuple[int, int]) -> tuple[int, int]:
        k, btn, cout = b.k, b.btn, b.cout
        if b.cls == "k1kx":
            out = self.conv(btn, cout, k, s, self.conv(cin, btn, 1, 1, hw))
        elif b.cls == "kxkx":
            out = self.conv(btn, cout, k, 1, self.conv(cin, btn, k, s, hw))
        elif b.cls == "repkxkx":  # the deployed form: each RepConv one k x k conv with bias, no BN
            out = self.conv(btn, cout, k, 1, self.conv(cin, btn, k, s, hw, bn=False, bias=True), bn=False, bias=True)
        elif b.cls == "k1kxk1":
            out = self.conv(btn, cout, 1, 1, self.conv(btn, btn, k, s, self.conv(cin, btn, 1, 1, hw)))
        else:  # k1dwk1
            out = self.conv(btn, cout, 1, 1, self.conv(btn, btn, k, s, self.conv(cin, btn, 1, 1, hw), g=btn))
        if s != 1 or cin != cout:  # projection shortcut
            if s == 2:
                self.macs += cin * hw[0] * hw[1] + cin * out[0] * out[1]
            self.conv(cin, cout, 1, 1, out)
        return out

    def backbone(self, blocks: Structure, imgsz: int) -> list[tuple[int, int]]:
        """Walk the backbone; the spatial size after every block."""
        stem = blocks[0]
        hw = self.conv(stem.cin, stem.cout, stem.k, stem.s, (imgsz, imgsz))
        sizes = [hw]
        for b in blocks[1:]:
            for u in range(b.L):
                hw = self.unit(b, b.cin if u == 0 else b.cout, b.s if u == 0 else 1, hw)
            sizes.append(hw)
        return sizes

    def c2f(self, c1: int, c2: int, n: int, hw: tuple[int, int], rep: bool = False) -> None:
        c = int(c2 * 0.5)
        self.conv(c1, c, 1, 1, hw)
        self.conv(c1, c, 1, 1, hw)
        for _ in range(2 * n):  # a RepConv counts as deployed: one 3 x 3 conv with bias, no BN
            self.conv(c, c, 3, 1, hw, bn=not rep, bias=rep)
        self.conv((2 + n) * c, c2, 1, 1, hw)

    def neck_and_head(self, c: Sequence[int], hw: Sequence[tuple[int, int]], nc: int, n: int,
                      neck: str = "c2f") -> None:
        c3, c4, c5 = c
        rep = neck == "rep"
        self.conv(c5, c5 // 2, 1, 1, hw[2])  # SPPF
        self.conv(c5 // 2 * 4, c5, 1, 1, hw[2])
        self.c2f(c5 + c4, c4, n, hw[1], rep)
        self.c2f(c4 + c3, c3, n, hw[0], rep)
        self.conv(c3, c3, 3, 2, hw[0])
        self.c2f(c3 + c4, c4, n, hw[1], rep)
        self.conv(c4, c4, 3, 2, hw[1])
        self.c2f(c4 + c5, c5, n, hw[2], rep)
        reg = max(16, c3 // 4, 64)
        cls = max(c3, min(nc, 100))
        for x, size in zip(c, hw):
            for width, outs in ((reg, 64), (cls, nc)):
                self.conv(x, width, 3, 1, size)
                self.conv(width, width, 3, 1, size)
                self.conv(width, outs, 1, 1, size, bn=False, bias=True)
        anchors = sum(h * w for h, w in hw)
        self.macs += 4 * anchors * 16  # the DFL's fixed 1x1 conv over 16 bins
        self.params += 16


def structure_flops(structure: Any, imgsz: int = 640) -> float:
    """Backbone GFLOPs (2 x multiply-adds) at ``imgsz`` x ``imgsz``."""
    counter = _Counter()
    counter.backbone(as_blocks(structure), imgsz)
    return 2 * counter.macs / 1e9


def structure_params(structure: Any) -> float:
    """Backbone parameters in millions."""
    counter = _Counter()
    counter.backbone(as_blocks(structure), 64)
    return counter.params / 1e6


def detector_flops_params(structure: Any, imgsz: int = 640, nc: int = 80, neck_depth: int = 1,
                          neck: str = "c2f") -> dict[str, float]:
    """``flops_g`` and ``params_m`` of the whole ``BlockDetector`` (backbone + SPPF/PAN neck + head), and
    ``backbone_flops_g`` / ``backbone_params_m`` of its backbone alone (counted on the same walk)."""
    blocks = as_blocks(structure)
    counter = _Counter()
    sizes = counter.backbone(blocks, imgsz)
    backbone = {"backbone_flops_g": 2 * counter.macs / 1e9, "backbone_params_m": counter.params / 1e6}
    stages = stage_of_blocks(blocks)
    ends = [i for i in range(len(blocks)) if i + 1 == len(blocks) or stages[i + 1] != stages[i]][-3:]
    counter.neck_and_head([blocks[i].cout for i in ends], [sizes[i] for i in ends], nc, neck_depth, neck)
    return {"flops_g": 2 * counter.macs / 1e9, "params_m": counter.params / 1e6, **backbone}


def unit_log_sigma(cls: str, cin: int, k: int, btn: int) -> float:
    """MAE-DET: each conv scales the activation std by sqrt(fan_in); the unit's log std is the sum."""
    if cls == "conv":
        fan_ins = [cin * k * k]
    elif cls == "k1kx":
        fan_ins = [cin, btn * k * k]
    elif cls in ("kxkx", "repkxkx"):  # a RepConv's fused kernel has the k x k branch's fan-in
        fan_ins = [cin * k * k, btn * k * k]
    elif cls == "k1kxk1":
        fan_ins = [cin, btn * k * k, btn]
    else:  # k1dwk1: the depth-wise conv's fan-in is its kernel alone
        fan_ins = [cin, k * k, btn]
    return sum(0.5 * math.log(f) for f in fan_ins)


def stage_entropies(structure: Any) -> list[float]:
    """Per stage: the log std summed from the input to the end of the stage, plus log(stage width)."""
    blocks = as_blocks(structure)
    stages = stage_of_blocks(blocks)
    scores, total = [], 0.0
    for i, b in enumerate(blocks):
        for u in range(b.L):
            total += unit_log_sigma(b.cls, b.cin if u == 0 else b.cout, b.k, b.btn)
        if i + 1 == len(blocks) or stages[i + 1] != stages[i]:
            scores.append(total + math.log(b.cout))
    return scores


def analytic_entropy(structure: Any, imgsz: int | None = None,
                     weights: str | Sequence[float] = ENTROPY_WEIGHTS["maedet"]) -> float:
    """MAE-DET's analytic score: the weighted sum of stage entropies.

    ``weights`` ("maedet" = (0, 0, 1, 1, 6), "damo" = (0, 0, 1, 1, 16), "0,0,1,1,1" or numbers) align with the
    deepest stages: more stages than weights pads the weights with zeros at the front, fewer
    stages uses the last weights. ``imgsz`` is accepted for symmetry and unused: the analytic form
    does not depend on resolution.
    """
    scores = stage_entropies(structure)
    w = list(entropy_weights(weights))[-len(scores):]
    w = [0.0] * (len(scores) - len(w)) + w
    return float(sum(a * s for a, s in zip(w, scores)))
