"""The latency lookup table: per-conv latencies measured on one target, and the file they live in.

The file is JSON so a user can run ``archprune latency-table`` on the target device and copy the
result back. It is written one entry per line, so a diff of two tables stays readable::

    {"format": "archprune-latency-lut", "version": 1, "target": "pi4", "complete": true,
     "provenance": {"host": ..., "cpu": ..., "onnxruntime": "1.32.0", "provider": "CPUExecutionProvider",
                    "threads": 0, "batch": 1, "created": "2026-...", "graph": "Conv (BN folded) + SiLU, ..."},
     "call_overhead_ms": 0.011,
     "corrections": {"320": {"a": 1.08, "b": 1.9, "n": 5, "on": "yolov8n"}},
     "entries": [
      {"kind": "regular", "k": 3, "s": 1, "c_in": 16, "c_out": 32, "h": 80, "ms": 0.2031},
      ...]}

``h`` is the square input side; a depthwise entry has ``c_in == c_out == groups``.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from spaces.errors import ArchpruneError
from spaces.output_files import write_text

FORMAT = "archprune-latency-lut"
VERSION = 1
KINDS = ("regular", "depthwise")


class ConvKey(NamedTuple):
    """What one table entry was measured for (batch 1, square input of side ``h``)."""

    kind: str
    k: int
    s: int
    c_in: int
    c_out: int
    h: int


@dataclass
class LatencyTable:
    """Measured ms per conv config, with where and how they were measured."""

    target: str
    provenance: dict[str, Any]
    entries: dict[ConvKey, float] = field(default_factory=dict)
    call_overhead_ms: float = 0.0  # session.run of a trivial graph: paid once per model, not per conv
    # imgsz -> {"a", "b", "n"} and, when known, "on": the family the fit measured (a model, "blocks", ...)
    corrections: dict[int, dict[str, Any]] = field(default_factory=dict)
    complete: bool = False

    def to_json(self) -> str:
        head = {"format": FORMAT, "version": VERSION, "target": self.target, "complete": self.complete,
                "provenance": self.provenance, "call_overhead_ms": self.call_overhead_ms,
                "corrections": {str(k): v for k, v in sorted(self.corrections.items())}}
        lines = [json.dumps({**key._asdict(), "ms": round(ms, 5)}) for key, ms in sorted(self.entries.items())]
        text = json.dumps(head)[:-1]  # reopen the object to append the entries one per line
        return text + ',\n "entries": [\n  ' + ",\n  ".join(lines) + "]}\n"

    def save(self, path: str | os.PathLike) -> Path:
        """Write atomically: an interrupted run leaves the previous file whole (what resuming reads)."""
        return write_text(path, self.to_json())


def _entry_key(entry: dict[str, Any]) -> ConvKey:
    key = ConvKey(str(entry["kind"]), *(int(entry[name]) for name in ConvKey._fields[1:]))
    if key.kind not in KINDS:
        raise ValueError(f"kind {key.kind!r} is not one of {KINDS}")
    return key


def load_table(path: str | os.PathLike) -> LatencyTable:
    """Read a table written by ``LatencyTable.save``; every problem is one ``ArchpruneError`` line."""
    path = Path(path)
    if not path.is_file():
        raise ArchpruneError(f"latency table {path} not found; make one on the target with "
                             f"`archprune latency-table --target NAME --out {path.name}`")
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ArchpruneError(f"latency table {path} is not valid JSON ({err})") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise ArchpruneError(f"{path} is not an archprune latency table (no \"format\": \"{FORMAT}\")")
    if data.get("version") != VERSION:
        raise ArchpruneError(f"latency table {path} has format version {data.get('version')!r}; this archprune "
                             f"reads version {VERSION}: re-measure it with `archprune latency-table`")
    try:
        entries = {_entry_key(e): float(e["ms"]) for e in data["entries"]}
        corrections = {int(size): {**{n: float(fit[n]) for n in ("a", "b", "n")},
                                   **({"on": str(fit["on"])} if "on" in fit else {})}
                       for size, fit in data.get("corrections", {}).items()}
        return LatencyTable(target=str(data["target"]), provenance=dict(data["provenance"]), entries=entries,
                            call_overhead_ms=float(data.get("call_overhead_ms", 0.0)), corrections=corrections,
                            complete=bool(data.get("complete", False)))
    except (KeyError, TypeError, ValueError) as err:
        raise ArchpruneError(f"latency table {path} is malformed: {type(err).__name__} {err}") from None
