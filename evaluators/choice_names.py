"""The names the command line offers as choices, in a module that imports nothing heavy: building
the parser must not import torch (~2 s), which ``archprune pareto`` and ``export`` of a large run
would otherwise pay before they read a single trial."""
from __future__ import annotations

# The label rules of evaluation. The default is Ultralytics' validator's, so that our mAP is the
# one `yolo val` prints; single-label is the rule a deployed model's predict() uses.
NMS_RULES = ("multi-label", "single-label")
DEFAULT_EVAL_NMS = "multi-label"

# The training-free scores (evaluators.zero_shot.SCORES, in this order): the zero-shot evaluator's
# metrics, which the metric table reads without importing the scores' torch code.
ZERO_SHOT_SCORES = ("entropy", "zen", "naswot", "synflow", "snip", "grad_norm", "jacob_cov")

# The runtimes latency is measured in (evaluators.runtimes.RUNTIMES, in this order).
RUNTIME_NAMES = ("ort", "openvino", "torch")


def check_backend(backend: str, or_else: str = "") -> None:
    """``--latency`` names a runtime; checked here, torch-free, so a run's settings check imports nothing heavy."""
    if backend not in RUNTIME_NAMES:
        from spaces.errors import ArchpruneError

        raise ArchpruneError(f"unknown latency backend {backend!r}; use {', '.join(map(repr, RUNTIME_NAMES))}{or_else}")
