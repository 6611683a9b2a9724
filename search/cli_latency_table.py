"""``archprune latency-table``: measure a per-conv latency table on the machine it runs on.

Run it on the target device, copy the JSON back, and search with ``--latency predict:lut.json``.
Re-running with the same ``--out`` continues an interrupted run (entries are saved as they come).
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from search.cli_types import image_size
from spaces.errors import ArchpruneError

KNOWN_PROVIDERS = ("CPUExecutionProvider", "CUDAExecutionProvider", "TensorrtExecutionProvider",
                   "OpenVINOExecutionProvider", "CoreMLExecutionProvider", "DmlExecutionProvider",
                   "ROCMExecutionProvider", "QNNExecutionProvider", "XnnpackExecutionProvider")


def provider_name(text: str) -> str:
    """Full name of an onnxruntime provider this machine has, from a short form: CPU, cuda, TensorRT, ..."""
    import onnxruntime as ort

    available = ort.get_available_providers()
    names = list(dict.fromkeys([*ort.get_available_providers(), *KNOWN_PROVIDERS]))
    wanted = text.lower().removesuffix("executionprovider")
    for name in names:
        if name.lower().removesuffix("executionprovider") == wanted:
            if name not in available:
                raise ArchpruneError(f"onnxruntime provider {name} is not available here; available: {available}")
            return name
    raise ArchpruneError(f"unknown onnxruntime provider {text!r}; available here: {available}")


def add_latency_table_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("latency-table", help="measure a per-conv latency table on this machine (run it on the target)")
    p.add_argument("--target", required=True, help="name of the device this runs on (stored in the table)")
    p.add_argument("--out", required=True, help="table JSON to write (an existing one from this machine is resumed)")
    p.add_argument("--provider", default="CPU",
                   help="onnxruntime execution provider, short forms allowed (default CPU)")
    p.add_argument("--threads", type=int, default=None, help="inference threads: the target's (default 1, as search)")
    p.add_argument("--imgsz", type=image_size, nargs="+", default=[320, 640],
                   help="image sizes the grid covers: convs at each size and its halvings (default 320 640)")
    p.add_argument("--quick", action="store_true", help="a small grid (seconds; for tests and trying it out)")
    p.add_argument("--calibrate", metavar="MODEL|blocks[:STRUCTURE]", default=None,
                   help="also measure a few candidates of the family you will search whole, at each --imgsz, "
                        "and fit the correction on them (recommended): MODEL and random channel-pruned "
                        "variants of it (--space channels), or 'blocks' / 'blocks:my_backbone.yaml' for the "
                        "initial structure and random block-space detectors (--space blocks)")
    p.add_argument("--calibrate-candidates", type=int, default=5,
                   help="how many models --calibrate measures (default 5: the unpruned or initial one and 4 more)")
    p.add_argument("--nc", type=int, default=80,
                   help="classes of the block-space detectors --calibrate blocks builds (default 80)")
    p.set_defaults(func=_cmd_latency_table)


def _open_table(out: Path, target: str, providers: list[str], threads: int | None):
    from evaluators.latency_lut import load_table, new_table
    from evaluators.latency_lut.measure import SAME_MACHINE

    fresh = new_table(target, providers, threads)
    if not out.exists():
        return fresh
    table = load_table(out)
    differs = [f"{k} {table.provenance.get(k)!r}, this run {fresh.provenance[k]!r}" for k in SAME_MACHINE
               if table.provenance.get(k) != fresh.provenance[k]]
    if table.target != target:
        differs.insert(0, f"target {table.target!r}, this run {target!r}")
    if differs:
        raise ArchpruneError(f"{out} was measured elsewhere ({'; '.join(differs)}): "
                             "pass another --out to start a new table")
    return table


def _cmd_latency_table(args: argparse.Namespace) -> int:
    from evaluators.latency_lut import calibrate, default_grid, measure_table
    from evaluators.latency_lut.calibration_models import calibration_models
    from search.space_recipes import calibration_space_for

    if args.threads is not None and args.threads < 1:
        raise ArchpruneError("--threads must be at least 1 (leave it out for the default, 1)")
    if args.calibrate_candidates < 1:
        raise ArchpruneError("--calibrate-candidates must be at least 1")
    if args.nc < 1:
        raise ArchpruneError(f"--nc must be at least 1, got {args.nc}")
    if Path(args.out).is_dir():
        raise ArchpruneError(f"--out {args.out} is a folder; give the table's file, e.g. {Path(args.out) / 'lut.json'}")
    from evaluators.runtimes import DEFAULT_THREADS

    threads = args.threads or DEFAULT_THREADS  # the same recorded default as a search's latency
    providers, out, progress = [provider_name(args.provider)], Path(args.out), sys.stderr.isatty()
    table = _open_table(out, args.target, providers, threads)
    # built before the grid is measured, so a bad --calibrate fails in a second, not after the grid
    models, what = [], ""
    if args.calibrate:
        space, what = calibration_space_for(args.calibrate, nc=args.nc)
        models = calibration_models(space, args.calibrate_candidates)
    before, start = len(table.entries), time.perf_counter()
    table.complete = False
    measure_table(default_grid(args.imgsz, quick=args.quick), table, out, providers, threads, progress)
    if models:
        for imgsz in args.imgsz:
            fit = calibrate(table, models, imgsz, providers, threads, on=args.calibrate)
            table.save(out)
            print(f"correction at {imgsz}: measured = {fit['a']:.3f} x conv sum + {fit['b']:.3f} ms "
                  f"({len(models)} models: {what})")
    table.complete = True
    table.save(out)
    prov = table.provenance
    new, took = len(table.entries) - before, time.perf_counter() - start
    print(f"{len(table.entries)} entries ({new} new, {took:.0f} s) -> {out}  "
          f"[target {table.target}: {prov['cpu']}, {prov['provider']}, threads {prov['threads'] or 'default'}]")
    return 0
