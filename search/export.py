"""``archprune export`` and ``archprune apply``: a chosen trial as files that rebuild it exactly.

``config.json`` records the kept channel indices of every group (so any criterion, ``random``
included, replays exactly), the per-layer channel counts, and the base model's reference and
weight fingerprint. ``apply`` rebuilds the pruned model from the base weights alone, bit for bit.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from search.runs import RunHandle
from search.store import TrialRecord
from spaces.errors import ArchpruneError
from spaces.output_files import check_output_file, check_output_folder, make_folder, write_text

CONFIG_FORMAT = "archprune-prune-config"
CONFIG_VERSION = 1


def export_trial(handle: RunHandle, trial: int, out: Path | None = None, recalibrate_bn: bool = False,
                 say: Any = print, openvino: bool = False, int8: bool | None = None) -> dict[str, Any]:
    """Write trial ``trial`` of a run as files that rebuild it (its space's recipe says which);
    ``openvino``: also the OpenVINO IR of the exported model.onnx; ``int8`` (default: when the run
    scored INT8, --precision int8): also model-int8.onnx, quantized as the search scored it."""
    recipe = handle.settings.recipe()
    recipe.check_export(handle)
    record = handle.store.record(trial)
    if record is None:
        raise ArchpruneError(f"run {handle.name!r} has no finished trial {trial} "
                             f"(it has {len(handle.store)} trials; `archprune pareto {handle.name}` lists the front)")
    if record.failed:
        raise ArchpruneError(f"trial {trial} of run {handle.name!r} failed ({record.error}); pick another trial")
    out = check_output_folder(Path(out) if out else handle.folder / "exports" / f"trial-{trial}")
    if openvino:
        from evaluators.runtimes import openvino_core

        openvino_core()  # before the export's work: a missing package is a one-line error now
    summary = recipe.export(handle, record, out, say, recalibrate_bn=recalibrate_bn)
    if openvino:
        summary["openvino"] = str(write_openvino_ir(out / "model.onnx", out / "model.xml"))
        say(f"wrote the OpenVINO IR {out / 'model.xml'} (and model.bin)")
    if int8 is None:
        int8 = "int8" in handle.settings.precisions()
    if int8:
        from search.export_int8 import write_int8_export

        summary["int8"] = write_int8_export(handle, record, out, summary.get("imgsz") or handle.imgsz)
        say(f"wrote the INT8 model {out / 'model-int8.onnx'} ({summary['int8']['mb']:.2f} MB, "
            f"{summary['int8']['calibration']} calibration)")
        if openvino:
            summary["openvino_int8"] = str(write_openvino_ir(out / "model-int8.onnx", out / "model-int8.xml"))
            say(f"wrote the INT8 OpenVINO IR {out / 'model-int8.xml'}")
    if (out / "summary.json").is_file() and (openvino or int8):  # the recipe wrote it before these files
        write_text(out / "summary.json", json.dumps(summary, indent=2))
    return summary


def write_openvino_ir(onnx_path: Path, xml_path: Path) -> Path:
    """OpenVINO's IR of an exported ONNX model (its own converter), what OpenVINO deployments load."""
    from evaluators.runtimes import openvino_core

    if not onnx_path.is_file():
        raise ArchpruneError(f"--openvino converts the exported {onnx_path.name}, which this space does not write")
    ov = openvino_core()
    # full precision as measured: save_model's default would store fp32 weights as fp16
    ov.save_model(ov.convert_model(str(onnx_path)), str(xml_path), compress_to_fp16=False)
    return xml_path


def export_channel_trial(handle: RunHandle, record: TrialRecord, out: Path, say: Any = print,
                         recalibrate_bn: bool = False) -> dict[str, Any]:
    """A channel-pruning trial: config.json (kept indices), pruned.pt, model.onnx and summary.json."""
    from evaluators.flops import count_flops_params
    from evaluators.onnx_export import export_onnx
    from search.space_recipes.channels import build_space, load_inputs
    from spaces.models import channel_layout, save_checkpoint
    from spaces.models.checkpoint import state_dict_sha256

    settings, trial = handle.settings, record.number
    model, data, imgsz = load_inputs(settings)
    space = build_space(settings, model, data, imgsz)
    if [g.name for g in space.genes] != [g.name for g in handle.store.genes]:
        raise ArchpruneError(f"the model {settings.model} no longer has the channel groups run {handle.name!r} "
                             "searched (did the checkpoint change?)")
    kept, depth = space.kept_indices(record.genome), space.depth(record.genome)
    pruned = space.apply_depth(space.apply_indices(kept), depth)
    cost = count_flops_params(pruned, imgsz)
    config = {
        "format": CONFIG_FORMAT, "version": CONFIG_VERSION,
        "base": {"model": settings.model, "sha256": state_dict_sha256(space.base)},
        "run": handle.name, "trial": trial, "imgsz": imgsz, "importance": settings.importance,
        "round_to": settings.round_to, "genome": list(record.genome), "groups": space.counts(record.genome),
        "kept_indices": kept, **({"depth": depth} if depth else {}), "layers": channel_layout(pruned),
    }
    make_folder(out)
    write_text(out / "config.json", json.dumps(config, indent=1))
    meta = {"pruned_from": settings.model, "run": handle.name, "trial": trial, "imgsz": imgsz}
    save_checkpoint(pruned, out / "pruned.pt", meta=meta)
    export_onnx(pruned, out / "model.onnx", imgsz=imgsz)
    summary: dict[str, Any] = {"run": handle.name, "trial": trial, "imgsz": imgsz, **cost,
                               **{k: record.metrics[k] for k in ("latency_ms", "latency_p90_ms", "map50_95", "map50")
                                  if k in record.metrics},
                               "latency_provenance": {k: record.metrics[k] for k in
                                                      ("host", "cpu", "onnxruntime", "provider", "threads")
                                                      if k in record.metrics},
                               "proxy": settings.proxy if "map50_95" in record.metrics else None}
    if "latency_ms" not in record.metrics:  # the run did not measure it: measure now, on this machine
        from evaluators.latency import measure_onnx_latency
        from evaluators.runtimes import DEFAULT_THREADS

        latency = measure_onnx_latency(out / "model.onnx", imgsz, settings.threads or DEFAULT_THREADS,
                                       settings.providers)
        summary.update(latency_ms=latency["latency_ms"], latency_p90_ms=latency["latency_p90_ms"])
    if recalibrate_bn:
        summary["recalibrated"] = str(_recalibrated(pruned, data, imgsz, settings, out / "pruned-bn.pt", meta))
    write_text(out / "summary.json", json.dumps(summary, indent=2))
    say(f"exported trial {trial} of {handle.name} to {out}: {cost['params_m']:.3f} M params, "
        f"{cost['flops_g']:.3f} GFLOPs at {imgsz}px"
        + (f", {summary['latency_ms']:.2f} ms" if "latency_ms" in summary else "")
        + (f", proxy mAP50-95 {summary['map50_95']:.4f}" if "map50_95" in summary else ""))
    return summary


def _recalibrated(pruned: Any, data: Any, imgsz: int, settings: Any, path: Path, meta: dict[str, Any]) -> Path:
    import copy

    from evaluators.bn_recalibration import recalibrate_bn
    from evaluators.proxy_accuracy import calibration_images
    from spaces.models import save_checkpoint

    if data is None:
        raise ArchpruneError("--recalibrate-bn needs the run's --data (its training images recalibrate BatchNorm)")
    model = copy.deepcopy(pruned)
    recalibrate_bn(model, calibration_images(data, imgsz, settings.calib_batches))
    return save_checkpoint(model, path, meta={**meta, "bn_recalibrated": True})


def read_prune_config(path: Path) -> dict[str, Any]:
    if Path(path).is_dir():
        raise ArchpruneError(f"config {path} is a folder; pass the config.json inside it")
    if not Path(path).is_file():
        raise ArchpruneError(f"config {path} does not exist")
    try:
        config = json.loads(Path(path).read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise ArchpruneError(f"config {path} is not text (binary data, e.g. an image?); pass the config.json "
                             "`archprune export` wrote") from None
    except json.JSONDecodeError as err:
        raise ArchpruneError(f"config {path} is not valid JSON (line {err.lineno}): {err.msg}") from None
    if not isinstance(config, dict) or config.get("format") != CONFIG_FORMAT:
        raise ArchpruneError(f"{path} is not an archprune prune config (write one with `archprune export`)")
    if config.get("version", 0) > CONFIG_VERSION:
        raise ArchpruneError(f"{path} was written by a newer archprune (version {config['version']}); upgrade")
    return config


def apply_config(config_path: Path, weights: str, out: Path, verify: bool = True) -> Path:
    """Rebuild the pruned model of ``config_path`` from the base ``weights``; same state dict bit for bit."""
    from spaces.channel_space import prune_kept_channels
    from spaces.models import load_model, save_checkpoint
    from spaces.models.checkpoint import state_dict_sha256

    check_output_file(out)  # before the work: a bad --out costs nothing
    config = read_prune_config(config_path)
    base = load_model(weights)
    digest = state_dict_sha256(base)
    if verify and digest != config["base"]["sha256"]:
        raise ArchpruneError(f"{weights} is not the base model {config_path} was searched on (weights fingerprint "
                             f"{digest[:12]}, config expects {config['base']['sha256'][:12]} from "
                             f"{config['base']['model']}); pass those weights, or --no-verify to apply anyway")
    pruned = _with_depth(prune_kept_channels(base, _kept_indices(config, config_path, base)), config, config_path)
    meta = {"pruned_from": config["base"]["model"], "run": config.get("run"), "trial": config.get("trial"),
            "imgsz": config.get("imgsz")}
    return save_checkpoint(pruned, out, meta=meta)


def _kept_indices(config: dict[str, Any], config_path: Path, base: Any) -> dict[str, list[int]]:
    """The config's kept channels per group, each index checked against ``base``: pruning takes the
    set of them, so a repeated index would silently build another model than the one exported."""
    kept = config.get("kept_indices")
    if not isinstance(kept, dict):
        raise ArchpruneError(f"config {config_path}: 'kept_indices' must map group names to channel lists; "
                             "re-export it with `archprune export`")
    return {group: _group_indices(config_path, group, indices, _group_width(config_path, group, base))
            for group, indices in kept.items()}


def _with_depth(model: Any, config: dict[str, Any], config_path: Path) -> Any:
    """The config's dropped blocks (``depth``: chain -> blocks kept), each name and count checked."""
    from spaces.channel_space import ChannelSpace
    from spaces.depth_pruning import depth_units

    depth = config.get("depth") or {}
    if not isinstance(depth, dict):
        raise ArchpruneError(f"config {config_path}: 'depth' must map block chains to the blocks they keep; "
                             "re-export it with `archprune export`")
    units = {u.name: u for u in depth_units(model)}
    for name, keep in depth.items():
        if name not in units:
            raise ArchpruneError(f"config {config_path}: depth names {name!r}, not a block chain of the base model; "
                                 "pass the weights the config was exported from")
        if isinstance(keep, bool) or not isinstance(keep, int) or keep not in units[name].choices():
            raise ArchpruneError(f"config {config_path}: chain {name!r} cannot keep {keep!r} blocks "
                                 f"(choices {list(units[name].choices())}); re-export the config")
    return ChannelSpace.apply_depth(model, depth)


def _group_width(config_path: Path, group: str, base: Any) -> int:
    try:
        layer = base.get_submodule(group)
    except AttributeError:
        raise ArchpruneError(f"config {config_path}: group {group!r} is not a layer of the base model; "
                             "pass the weights the config was exported from") from None
    width = getattr(layer, "out_channels", None) or getattr(layer, "out_features", None)
    if not isinstance(width, int):
        raise ArchpruneError(f"config {config_path}: group {group!r} is not a convolution or linear layer "
                             "of the base model; pass the weights the config was exported from")
    return width


def _group_indices(config_path: Path, group: str, indices: Any, width: int) -> list[int]:
    where = f"config {config_path}: group {group!r}"
    if not isinstance(indices, list) or not indices:
        raise ArchpruneError(f"{where} must list at least one kept channel index; re-export the config")
    seen: set[int] = set()
    for index in indices:
        if isinstance(index, bool) or not isinstance(index, int):
            raise ArchpruneError(f"{where} has index {index!r}, not a whole number; "
                                 f"kept indices are channel numbers 0..{width - 1}")
        if not 0 <= index < width:
            raise ArchpruneError(f"{where} has index {index}, outside 0..{width - 1}; re-export the config")
        if index in seen:
            raise ArchpruneError(f"{where} repeats index {index}; each kept channel may appear once "
                                 "(re-export the config)")
        seen.add(index)
    return list(indices)
