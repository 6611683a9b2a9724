"""What quantization-aware fine-tuning recovers over post-training INT8 (issue 18, item 3).

One float model (``--model``: a checkpoint, e.g. a recovered pick, or ``uniform-K``: the base's
uniform prune keeping K of every group's channels, default ``uniform-0.75`` of
``yolov8n-digits-elastic``, the INT8 table's pruned model with the largest drop) in three rows, every
INT8 file scored the same way (onnxruntime, batch 1 at the model's size, square letterboxed, on the
truth's val images 200+ of the outcome tables, which no proxy and no calibration sees; float mAP
beside it on the same square inputs):

- ``ptq``: the model as it is, BatchNorm recalibrated and quantized as ``--precision int8`` does
  (onnxruntime ``quantize_static``, QDQ, per-channel weights, minmax);
- ``float-ft+ptq``: ``--epochs`` of float fine-tuning by the outcome tables' recipe (distilled from
  yolov8n-digits, AdamW lr 5e-4, warmup 0.5 epoch, seed 0), then the same post-training INT8;
- ``qat``: the same epochs and recipe with ``--qat`` (NNCF's fake-quantizers), its ``last-int8.onnx``.

``qat`` against ``float-ft+ptq`` is what QAT itself adds (the same training, only the quantizers
differ); against ``ptq`` it is what a user gains by fine-tuning with QAT at all. Each row is kept as
JSON in ``--out`` as it finishes and each fine-tune resumes from its last.pt, so a rerun continues.

    taskset -c 0 env OMP_NUM_THREADS=1 .venv/bin/python bench/qat_outcome.py --out ~/archprune-runs/qat
    .venv/bin/python bench/qat_outcome.py --out ~/archprune-runs/qat --report
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

from _recovery import Recovery, eval_convention, held_out_map, read_current, read_json, recover, write_json

from int8_table import BASE  # the INT8 table's base: its uniform prunes are the models QAT is tried on


def float_model(spec: str, base: str, out: Path) -> Path:
    """The float model as a checkpoint in ``out`` (``uniform-K`` built from ``base``), else ``spec`` itself."""
    if not spec.startswith("uniform-"):
        return Path(spec).expanduser()
    path = out / f"{spec}.pt"
    if not path.exists():
        from spaces.channel_space import ChannelSpace
        from spaces.models import load_model, save_checkpoint

        space = ChannelSpace(load_model(base))
        pruned = space.build(space.uniform(float(spec.split("-", 1)[1])))
        if getattr(pruned, "channel_order", None):
            pruned.channel_order = None  # recorded for the unpruned widths only
        save_checkpoint(pruned, path, meta={"pruned_from": base, "uniform": spec})
    return path


def int8_map(onnx: Path, recovery: Recovery) -> dict[str, float]:
    from evaluators.onnx_detector import OnnxDetector

    return held_out_map(OnnxDetector(onnx, threads=1), recovery, rect=False)


def post_training(checkpoint: Path, recovery: Recovery) -> dict[str, Any]:
    """Float mAP (after BN recalibration) and INT8 mAP of the minmax-quantized batch-1 file, both on
    square letterboxed images (the INT8 file takes only those)."""
    from int8_table import quantized  # the INT8 table's quantization: BN recalibrated, then quantize_static
    from spaces.models import load_model

    with tempfile.TemporaryDirectory(prefix="archprune-qat-") as tmp:
        recalibrated, _, fixed = quantized(load_model(str(checkpoint)), recovery.imgsz, "minmax", Path(tmp))
        return {"fp32": held_out_map(recalibrated, recovery, rect=False), "int8": int8_map(fixed, recovery)}


def run(args: argparse.Namespace) -> None:
    out = Path(args.out).expanduser()
    out.mkdir(parents=True, exist_ok=True)
    recovery = Recovery(epochs=args.epochs)
    source = float_model(args.model, args.base, out)
    rows: dict[str, Any] = {
        "ptq": lambda: post_training(source, recovery),
        "float-ft+ptq": lambda: post_training(recover(source, out / "float-ft", recovery), recovery),
        "qat": lambda: {"int8": int8_map(recover(source, out / "qat", recovery, qat=True).with_name("last-int8.onnx"),
                                         recovery)},
    }
    for name, score in rows.items():
        if read_current(out / f"{name}.json"):
            continue
        start = time.perf_counter()
        result = score()
        write_json(out / f"{name}.json", {"row": name, "model": args.model, "base": args.base, "epochs": args.epochs,
                                          **result, "seconds": time.perf_counter() - start, "eval": eval_convention()})
        print(f"{name}: INT8 mAP50-95 {result['int8']['map50_95']:.4f}", flush=True)


def report(out: Path) -> str:
    lines = ["| row | float mAP50-95 | INT8 mAP50-95 | INT8 − PTQ | s |", "|---|---:|---:|---:|---:|"]
    ptq = (read_json(out / "ptq.json") or {}).get("int8", {}).get("map50_95")
    for name in ("ptq", "float-ft+ptq", "qat"):
        row = read_json(out / f"{name}.json")
        if row is None:
            lines.append(f"| {name} | … | … | … | … |")
            continue
        fp32 = row.get("fp32", {}).get("map50_95")
        int8 = row["int8"]["map50_95"]
        gain = f"{int8 - ptq:+.4f}" if ptq is not None else "—"
        lines.append(f"| {name} | {fp32:.4f} | {int8:.4f} | {gain} | {row['seconds']:.0f} |" if fp32 is not None
                     else f"| {name} | — | {int8:.4f} | {gain} | {row['seconds']:.0f} |")
    first = read_json(out / "ptq.json") or {}
    lines += ["", f"model {first.get('model', '?')} of {first.get('base', '?')}, {first.get('epochs', '?')} epoch(s) "
              f"of fine-tuning; val images {Recovery().held_out_first}+"]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="~/archprune-runs/qat")
    parser.add_argument("--model", default="uniform-0.75", help="a float checkpoint, or uniform-K of --base")
    parser.add_argument("--base", default=BASE)
    parser.add_argument("--epochs", type=int, default=3, help="fine-tune epochs of both trained rows (default 3)")
    parser.add_argument("--report", action="store_true", help="print the table of what has finished")
    args = parser.parse_args()
    if args.report:
        print(report(Path(args.out).expanduser()))
    else:
        run(args)


if __name__ == "__main__":
    main()
