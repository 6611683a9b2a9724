"""The search-side subcommands: ``search``, ``pareto``, ``export`` and ``apply``."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from search.cli_types import image_size, positive_int
from spaces.errors import ArchpruneError

# flag -> (settings key, argparse kwargs); every default lives in RunSettings, so a --config file and
# the flags merge as: flags given > config file > RunSettings defaults
_SEARCH_FLAGS: dict[str, tuple[str, dict[str, Any]]] = {
    "--table": ("table", dict(help="CSV with an arch_str column whose other columns are metrics (nb201)")),
    "--model": ("model", dict(help="model name, Ultralytics .pt or archprune checkpoint (yolov8n-digits is embedded)")),
    "--data": ("data", dict(help="data.yaml, or 'digits-det' (needed for mAP objectives)")),
    "--imgsz": ("imgsz", dict(type=image_size, help="input size (default: the checkpoint's training size, else 640)")),
    "--objectives": ("objectives", dict(help="name:min|max,... (default latency_ms:min,map50_95:max)")),
    "--constraint": ("constraints", dict(action="append", help="hard budget, e.g. 'latency_ms<=20' (repeatable)")),
    "--space": ("space", dict(help="the registered spaces")),  # see _help
    "--depth": ("depth", dict(action="store_true", help="--space channels: also drop trailing blocks of C2f / "
                                                        "C3k2 / C3k chains (depth genes)")),
    "--init": ("init", dict(help="--space blocks: the initial structure, YAML/JSON (default: YOLOv8n-sized)")),
    "--neck": ("neck", dict(help="--space blocks: the detector's neck, c2f (default, YOLOv8's) or rep "
                                 "(re-parameterizable RepConv blocks, fused when deployed)")),
    "--channel-ranges": ("channel_ranges", dict(help="--space blocks: each stage's width range lo:hi, stem first, "
                                                     "* for the default (half to twice the initial width), e.g. "
                                                     "*,*,64:128,128:256,256:512")),
    "--kernels": ("kernels", dict(help="--space blocks: kernel sizes a block may use (default 3,5)")),
    "--entropy-weights": ("entropy_weights", dict(help="MAE-DET stage weights: maedet (0,0,1,1,6, default), damo "
                                                        "(0,0,1,1,16) or numbers, deepest stage last (0,0,1,1,1)")),
    "--driver": ("driver", dict(help="the registered drivers")),
    "--trials": ("trials", dict(type=int, help="stop when the run holds N trials (default 100)")),
    "--time-budget": ("time_budget", dict(help="stop starting candidates after this long, e.g. 8h, 90m")),
    "--run": ("run", dict(help="run name (default: derived from the model; the same command resumes)")),
    "--seed": ("seed", dict(type=int)),
    "--importance": ("importance", dict(help="l1 (default), l2, lamp, bn_scale, fpgm, random, taylor, hessian")),
    "--round-to": ("round_to", dict(type=int, help="kept channel counts are multiples of this (default 8)")),
    "--min-keep": ("min_keep", dict(type=float, help="smallest share of a channel group a candidate keeps, in "
                                                     "steps of 1/--width-steps up to all (default 0.25)")),
    "--width-steps": ("width_steps", dict(type=int, help="channel counts a group may keep: every 1/N of it above "
                                                         "--min-keep (default 16; 32 with --round-to 8 offers "
                                                         "every multiple of 8 up to 256)")),
    "--keep-layers": ("keep_layers", dict(help="comma-separated module names never pruned")),
    "--population": ("population", dict(type=int, help="NSGA-II parents μ, also optuna-nsga2's (default 16); zeroshot's population (256)")),
    "--offspring": ("offspring", dict(type=int, help="NSGA-II children per generation λ (default 16); zeroshot's per step (64)")),
    "--latency": ("latency", dict(help="the runtime latency is measured in: ort (default: ONNX + onnxruntime), "
                                       "openvino, torch; or predict:LUT.json (from `archprune latency-table`)")),
    "--no-remeasure-front": ("remeasure_front", dict(action="store_false", help="with predict:LUT.json, do not "
                                                     "measure the final front on this machine")),
    "--threads": ("threads", dict(type=int, help="latency threads: the target's inference threads (default 1)")),
    "--latency-runs": ("latency_runs", dict(type=int, help="timed runs per candidate (default 30)")),
    "--throughput-batch": ("throughput_batch", dict(type=int, help="the batch throughput_ips is measured at (default 8)")),
    "--providers": ("providers", dict(help="onnxruntime execution providers, comma-separated")),
    "--proxy": ("proxy", dict(help="adaptive-bn (default) or finetune")),
    "--calib-batches": ("calib_batches", dict(type=int, help="BN recalibration batches (default 8)")),
    "--val-images": ("val_images", dict(type=int, help="validation images for the proxy mAP (default 200)")),
    "--finetune-steps": ("finetune_steps", dict(type=int, help="steps of the finetune proxy (default 200)")),
    "--precision": ("precision", dict(help="fp32 (default), int8 or fp32,int8: int8 also scores every candidate "
                                           "as its statically quantized ONNX (latency_int8_ms, map50_95_int8, ...)")),
    "--int8-calibration": ("int8_calibration", dict(help="INT8 calibration: minmax (default), entropy or percentile")),
    "--executor": ("executor", dict(help="auto (default: inline when every score is analytic or a table "
                                            "lookup, else process), process (a worker killed past --candidate-timeout) "
                                            "or inline")),
    "--candidate-timeout": ("candidate_timeout", dict(help="give up on a candidate after this long (default 10m)")),
    "--workers": ("workers", dict(type=int, help="evaluate N candidates at once in N worker processes (default 1)")),
    "--islands": ("islands", dict(type=int, help="run N search processes on this run, each with its own seed, "
                                                   "sharing what they find through the store (zeroshot, optuna-*; "
                                                   "default 1): a zero-shot search then uses N cores")),
    "--dask": ("dask", dict(help="evaluate on Dask: local:N (a LocalCluster) or tcp://HOST:8786 (`dask scheduler`)")),
    "--latency-resource": ("latency_resource", dict(help="measure latency only on Dask workers started with "
                                                        "--resources \"NAME=1\" (the target device)")),
    "--storage": ("storage", dict(help="Optuna storage URL (default sqlite:///results/<run>/study.db; 'memory')")),
    "--results": ("results", dict(help="folder runs live in (default results)")),
}


def add_search_parsers(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("search", help="search pruned variants of a model (resumable; results/<run>/)")
    p.add_argument("--config", help="run.yaml with the same keys as these flags")
    for flag, (key, kwargs) in _SEARCH_FLAGS.items():
        p.add_argument(flag, dest=key, default=argparse.SUPPRESS, **{**kwargs, **_registered_help(flag)})
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_search)

    pa = sub.add_parser("pareto", help="print a run's front; write pareto.csv/json/png/html")
    _add_run_args(pa)
    pa.add_argument("--json", action="store_true", help="print one JSON object")
    pa.add_argument("--hv-ref", default=None, help="hypervolume reference point, one value per objective (comma-separated)")
    pa.add_argument("--out", default=None, help="where to write the files (default: the run folder)")
    pa.add_argument("--no-plots", action="store_true", help="skip pareto.png, pareto.html and pick.png")
    pa.add_argument("--max-drop", default=None, help="the pick: cheapest front candidate whose mAP/top-1 objective is "
                                                     "within this of the unpruned model's, in its units (default 0.02)")
    pa.set_defaults(func=_cmd_pareto)

    ex = sub.add_parser("export", help="write a trial's config.json, pruned checkpoint, ONNX and summary")
    _add_run_args(ex)
    ex.add_argument("--trial", type=int, default=None, help="trial number (see `archprune pareto RUN`)")
    ex.add_argument("--pick", action="store_true", help="the trial `archprune pareto RUN` names as its pick")
    ex.add_argument("--max-drop", default=None, help="with --pick: the max-drop `pareto` was given (default 0.02)")
    ex.add_argument("--out", default=None, help="folder (default results/<run>/exports/trial-N)")
    ex.add_argument("--recalibrate-bn", action="store_true", help="also write pruned-bn.pt with recalibrated BatchNorm")
    ex.add_argument("--openvino", action="store_true", help="also write the OpenVINO IR (model.xml / model.bin)")
    ex.add_argument("--int8", action=argparse.BooleanOptionalAction, default=None,
                    help="also write model-int8.onnx, quantized as --precision int8 scores it "
                         "(default: when the run scored INT8)")
    ex.set_defaults(func=_cmd_export)

    ap = sub.add_parser("apply", help="rebuild an exported pruned model from its config and the base weights")
    ap.add_argument("config", help="config.json written by `archprune export`")
    ap.add_argument("--weights", required=True, help="the base model (name, .pt) the run searched")
    ap.add_argument("--out", required=True, help="pruned checkpoint to write")
    ap.add_argument("--no-verify", action="store_true", help="apply even if the weights' fingerprint differs")
    ap.set_defaults(func=_cmd_apply)


def add_bench_parser(sub: argparse._SubParsersAction) -> None:
    bench = sub.add_parser("bench", help="benchmarks of the search itself")
    which = bench.add_subparsers(dest="bench", required=True, metavar="BENCH")
    d = which.add_parser("drivers", help="each driver against a table's true Pareto front (NAS-Bench-201)")
    d.add_argument("--table", required=True, help="CSV with an arch_str column (e.g. ../shared/data/nb201/nb201_cifar10.csv)")
    d.add_argument("--objectives", required=True, help="column:min|max,... (e.g. test_acc_cifar10:max,lat_raspi4:min)")
    d.add_argument("--budgets", default="100,300,1000", help="trial budgets, comma-separated (default 100,300,1000)")
    d.add_argument("--seeds", type=positive_int, default=5, help="seeds per driver and budget (default 5)")
    d.add_argument("--drivers", default="nsga2,random", help="comma-separated (default nsga2,random)")
    d.add_argument("--population", type=positive_int, default=None, help="NSGA-II μ (default: the driver's)")
    d.add_argument("--offspring", type=positive_int, default=None, help="NSGA-II λ (default: the driver's)")
    d.add_argument("--json", action="store_true", help="print one JSON object keyed by driver, then budget")
    from search.cli_bench_proxies import add_proxies_parser

    add_proxies_parser(which)
    d.set_defaults(func=_cmd_bench_drivers)


def _cmd_bench_drivers(args: argparse.Namespace) -> int:
    from search.driver_benchmark import benchmark_drivers, format_report
    from search.drivers import DRIVERS

    try:
        budgets = sorted({int(b) for b in args.budgets.split(",") if b.strip()})
    except ValueError:
        raise ArchpruneError(f"--budgets {args.budgets!r}: give whole numbers, comma-separated") from None
    drivers = [d.strip() for d in args.drivers.split(",") if d.strip()]
    for d in drivers:
        DRIVERS.check(d)
    options = {k: v for k, v in (("population", args.population), ("offspring", args.offspring)) if v}
    say = (lambda line: None) if args.json else (lambda line: print(line, file=sys.stderr, flush=True))
    report = benchmark_drivers(args.table, args.objectives, budgets, args.seeds, drivers, options or None, say)
    print(json.dumps(report) if args.json else format_report(report))
    return 0


def _registered_help(flag: str) -> dict[str, str]:
    """--space and --driver list what is registered (plugins included), read when the parser is built."""
    if flag == "--space":
        from search.space_recipes import space_help

        return {"help": space_help()}
    if flag == "--driver":
        from search.drivers import driver_help

        return {"help": driver_help()}
    return {}


def _add_run_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("run", nargs="?", help="run name under results/, or a run folder")
    p.add_argument("--run", dest="run_flag", default=None, help="the run's name (with --storage)")
    p.add_argument("--storage", default=None, help="read the run from this Optuna storage URL instead")


def _run_ref(args: argparse.Namespace) -> str:
    if args.run and args.run_flag and args.run != args.run_flag:
        raise ArchpruneError(f"two runs given ({args.run!r} and --run {args.run_flag!r}); give the run once")
    ref = args.run or args.run_flag
    if not ref:
        raise ArchpruneError("which run? give its name or folder (or --storage URL --run NAME)")
    return ref


def settings_from_args(args: argparse.Namespace) -> Any:
    from search.settings import RunSettings, load_yaml_config

    values: dict[str, Any] = load_yaml_config(args.config) if args.config else {}
    RunSettings.check_types(values, source=str(args.config))  # a flag may override a key; its error still counts
    for key, _ in _SEARCH_FLAGS.values():
        if hasattr(args, key):
            values[key] = getattr(args, key)
    return RunSettings.from_dict(values, source=args.config or "command line")


def _cmd_search(args: argparse.Namespace) -> int:
    from search.job import run_search
    from search.report import report_front

    settings = settings_from_args(args)
    result = run_search(settings, progress=not args.no_progress and sys.stderr.isatty())
    verb = {"trials": "done", "time-budget": "time budget spent", "exhausted": "no new candidates left"}.get(
        result.stopped, f"stopped ({result.stopped}); run the same command again to resume")
    print(f"{verb}: {result.evaluated} new trials, {len(result.store)} in the run")
    _refuse_all_failed(result.store, settings.run_dir())
    report_front(result.store, settings.run_name(), settings.run_dir(), as_json=False, hv_ref=None, plots=True)
    return 130 if result.stopped in ("interrupted", "terminated") else 0


def _refuse_all_failed(store: Any, run_dir: Path) -> None:
    """A run none of whose trials evaluated has no front: an error (exit 2) with the first reason,
    not "front: 0 of 0 feasible" and exit 0."""
    trials, _, failed = store.counts()
    if not trials or failed < trials:
        return
    first = next((r.reason for r in store.failed_records() if r.reason), "unknown")
    raise ArchpruneError(f"{trials} of {trials} trials failed: {first} (every trial in "
                         f"{run_dir / 'search.log'}); fix the input and start a new --run")


def _report(run: str, storage: str | None, results: str, as_json: bool, hv_ref: str | None, out: str | None,
            plots: bool, max_drop: str | None = None) -> dict[str, Any]:
    from search.pick import parse_max_drop
    from search.report import report_front
    from search.runs import open_run

    drop = parse_max_drop(max_drop)  # before opening the run: a typo costs nothing
    handle = open_run(run, storage=storage, results=results)
    return report_front(handle.store, handle.name, Path(out) if out else handle.folder, as_json, hv_ref, plots, drop)


def _cmd_pareto(args: argparse.Namespace) -> int:
    _report(_run_ref(args), storage=args.storage, results="results", as_json=args.json, hv_ref=args.hv_ref, out=args.out,
            plots=not args.no_plots, max_drop=args.max_drop)
    return 0


def _cmd_export(args: argparse.Namespace) -> int:
    from search.export import export_trial
    from search.pick import parse_max_drop, pick_of_store
    from search.runs import open_run

    if (args.trial is None) == (not args.pick):
        raise ArchpruneError("which trial? give --trial N or --pick (the trial `archprune pareto` recommends), not both")
    if args.max_drop is not None and not args.pick:
        raise ArchpruneError("--max-drop chooses the pick: use it with --pick")
    drop = parse_max_drop(args.max_drop)
    handle = open_run(_run_ref(args), storage=args.storage)
    trial = args.trial
    if args.pick:  # the same rule, on the same store, as `pareto`: the pick it printed
        pick = pick_of_store(handle.store, drop)
        if pick.trial is None:
            raise ArchpruneError(f"run {handle.name!r} has no pick ({pick.note.removeprefix('no pick: ')}); "
                                 "choose one with --trial N or a larger --max-drop")
        print(pick.note)
        trial = pick.trial.number
    export_trial(handle, trial, Path(args.out) if args.out else None, recalibrate_bn=args.recalibrate_bn,
                 openvino=args.openvino, int8=args.int8)
    return 0


def _cmd_apply(args: argparse.Namespace) -> int:
    from search.export import apply_config

    path = apply_config(Path(args.config), args.weights, Path(args.out), verify=not args.no_verify)
    print(f"wrote {path}")
    return 0
