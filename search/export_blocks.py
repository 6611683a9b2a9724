"""``archprune export`` for a block-space run: the chosen structure, ready to train.

A block candidate is an architecture, not a pruned copy of trained weights, so the export is
its structure (``structure.yaml``: ``archprune train --model structure.yaml --data ...`` trains it),
a freshly initialised checkpoint and its ONNX graph (what latency was measured on), and a summary.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
import yaml

from search.store import TrialRecord
from spaces.errors import ArchpruneError
from spaces.output_files import make_folder, write_text


def export_block_trial(handle: Any, record: TrialRecord, out: Path, say: Any = print) -> dict[str, Any]:
    from evaluators.flops import count_flops_params
    from evaluators.onnx_export import export_onnx
    from spaces.blocks import BlockDetector
    from spaces.models import save_checkpoint

    structure = record.config.get("structure")
    if not structure:
        raise ArchpruneError(f"trial {record.number} of run {handle.name!r} has no stored structure")
    settings, imgsz = handle.settings, int(handle.imgsz or 640)
    nc, names = 80, None
    if settings.data:
        from evaluators.data import load_data_config

        data = load_data_config(settings.data)
        nc, names = data.nc, list(data.names)
    torch.manual_seed(settings.seed)
    neck = settings.neck or "c2f"
    model = BlockDetector(structure, nc=nc, names=names, neck=neck).eval()
    make_folder(out)
    write_text(out / "structure.yaml", yaml.safe_dump(structure, sort_keys=False))
    save_checkpoint(model, out / "model.pt", meta={"run": handle.name, "trial": record.number, "untrained": True})
    from spaces.models.repconv import deployed, has_branches

    if has_branches(model):  # RepConv units: their fused form too, what FLOPs and latency measured
        save_checkpoint(deployed(model), out / "model-deployed.pt",
                        meta={"run": handle.name, "trial": record.number, "untrained": True, "deployed": True})
    export_onnx(model, out / "model.onnx", imgsz=imgsz)
    cost = count_flops_params(model, imgsz)
    summary = {"run": handle.name, "trial": record.number, "imgsz": imgsz, "nc": nc, **cost,
               **{k: v for k, v in record.metrics.items() if isinstance(v, (int, float))}}
    write_text(out / "summary.json", json.dumps(summary, indent=2))
    say(f"exported trial {record.number} of {handle.name} to {out}: {cost['params_m']:.3f} M params, "
        f"{cost['flops_g']:.3f} GFLOPs at {imgsz}px (untrained; train it with "
        f"`archprune train --model {out / ('structure.yaml' if neck == 'c2f' else 'model.pt')} --data DATA`)")
    return summary
