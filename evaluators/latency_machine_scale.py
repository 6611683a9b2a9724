"""The paired-latency scale kept per machine, so two runs on one machine report on one scale.

A run's ``latency_ms`` is its paired ratio times the reference's best latency (latency_paired). Each
run used to measure that best once at its start, in whatever mode the machine was in: two fresh
``archprune demo`` runs then read about 4% apart across the board (BENCHMARKS.md, issue 16), the
scale's doing, not the candidates'. Here the best is kept in a small file per machine and reference
(``$ARCHPRUNE_CACHE/latency-scales/``, else ``~/.cache/archprune``): a new run still measures the
reference, and its scale is the lower of that and the best this machine has shown before, the
"reference's best-known conditions" that issue 16 asks for. The key holds everything a scale depends
on (scheme, runtime and its version, threads, image size, providers, the reference's weights, the
CPU), so another runtime version or CPU starts a scale of its own. A run stores the scale it took,
so a resume never re-reads this file.

No library keeps such a calibration, hence this module; the file is locked (cache_folder.exclusive_lock)
so concurrent runs on one machine read and update it in turn.
"""
from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from typing import Any

from evaluators.cache_folder import cache_folder, exclusive_lock


def _path(key: dict[str, Any]) -> Path:
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:24]
    return cache_folder() / "latency-scales" / f"{digest}.json"


def settle_best_ms(key: dict[str, Any], measured_ms: float) -> dict[str, Any]:
    """The scale a new run takes: the lower of ``measured_ms`` (this run's reading of the reference)
    and the best this machine recorded under ``key``; the file keeps the lower for the next run.
    Returns ``best_ms`` and what it came from (``best_measured_now_ms``, ``machine_best_since``,
    ``machine_readings``)."""
    path = _path(key)
    with exclusive_lock(path.with_suffix(".lock")):
        try:
            kept = json.loads(path.read_text())
        except (OSError, ValueError):  # none yet, or a file cut short: start the machine's scale anew
            kept = None
        now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        if kept is None or measured_ms < float(kept["best_ms"]):
            kept = {**key, "best_ms": measured_ms, "best_at": now,
                    "since": (kept or {}).get("since", now), "readings": (kept or {}).get("readings", 0)}
        kept["readings"] = int(kept["readings"]) + 1
        scratch = path.with_suffix(".tmp")
        scratch.write_text(json.dumps(kept, indent=1, sort_keys=True))
        scratch.replace(path)  # atomic: a run killed mid-write leaves the old file whole
    return {"best_ms": float(kept["best_ms"]), "best_measured_now_ms": measured_ms,
            "machine_best_since": kept["since"], "machine_best_at": kept["best_at"],
            "machine_readings": kept["readings"]}
