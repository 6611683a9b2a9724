"""The names the command line offers as choices, in a module that imports nothing heavy: building
the parser must not import torch (~2 s), which ``archprune pareto`` and ``export`` of a large run
would otherwise pay before they read a single trial."""
from __future__ import annotations

# The label rules of evaluation. The default is Ultralytics' validator's, so that our mAP is the
# one `yolo val` prints; single-label is the rule a deployed model's predict() uses.
NMS_RULES = ("multi-label", "single-label")
DEFAULT_EVAL_NMS = "multi-label"

# The runtimes latency is measured in (evaluators.runtimes.RUNTIMES, in this order).
RUNTIME_NAMES = ("ort", "openvino", "torch")
