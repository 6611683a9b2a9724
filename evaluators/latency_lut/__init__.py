"""Latency lookup tables (TinyNAS-style): per-conv latencies measured once on the target device,
summed and corrected to predict a candidate's latency without running it there."""
from __future__ import annotations

from .convs import ConvSpec, conv_list
from .measure import calibrate, default_grid, keys_for, measure_for, measure_model, measure_table, new_table
from .predictor import LatencyPredictor
from .table import ConvKey, LatencyTable, load_table

__all__ = [
    "ConvKey",
    "ConvSpec",
    "LatencyPredictor",
    "LatencyTable",
    "calibrate",
    "conv_list",
    "default_grid",
    "keys_for",
    "load_table",
    "measure_for",
    "measure_model",
    "measure_table",
    "new_table",
]
