"""``--space channels`` (the default): structural channel pruning of ``--model``, one gene per group
of coupled channels, scored by the registered evaluators the objectives need."""
from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from search.space_recipes._base import SearchParts, SpaceRecipe
from spaces.errors import ArchpruneError
from spaces.output_files import write_text

if TYPE_CHECKING:
    import torch

    from search.objectives import Constraint
    from search.runs import RunHandle
    from search.settings import RunSettings
    from search.store import TrialRecord
    from spaces._base import SearchSpace
    from spaces.channel_space import ChannelSpace

#: the front table always shows these, whatever the objectives
ALWAYS = ("flops_g", "params_m")


class ChannelsRecipe(SpaceRecipe):
    summary = "default: prune --model"
    own_settings = ("depth",)
    example = {"model": "yolov8n-digits", "imgsz": 64, "objectives": "flops_g:min,params_m:min"}

    def check(self, settings: RunSettings) -> None:
        if not settings.model:
            raise ArchpruneError("no model given: pass --model NAME_OR_CHECKPOINT (for example yolov8n-digits)")

    def build(self, settings: RunSettings) -> SearchParts:
        from evaluators.registry import evaluators_for

        model, data, imgsz = load_inputs(settings)
        check_val_split(settings, data, imgsz)
        space = build_space(settings, model, data, imgsz)
        check_reachable(space, settings.constraint_list, imgsz)
        add_budget_starts(space, settings.constraint_list, imgsz)
        add_latency_starts(space, settings, imgsz)
        order = (f"importance {settings.importance}" if space.order_source != "recorded" else
                 f"channel order recorded by the elastic base; --importance {settings.importance} not used")
        what = (f"{len(space.genes)} channel groups (10^{space.n_choices():.0f} candidates, {order}) "
                f"of {settings.model} at {imgsz}px")
        evaluators = evaluators_for([*ALWAYS, *settings.metric_names()], settings, data, imgsz, space)
        return SearchParts(space, evaluators, imgsz, settings.constraint_list, what)

    def export(self, handle: RunHandle, record: TrialRecord, out: Path, say: Callable[[str], None],
               recalibrate_bn: bool = False) -> dict[str, Any]:
        from search.export import export_channel_trial

        return export_channel_trial(handle, record, out, say, recalibrate_bn)

    def calibration_space(self, source: str, nc: int) -> SearchSpace:
        from spaces.channel_space import ChannelSpace
        from spaces.models import load_model

        return ChannelSpace(load_model(source))

    def calibration_description(self, source: str) -> str:
        return f"{source} and random channel-pruned variants"


def load_inputs(settings: RunSettings) -> tuple[Any, Any, int]:
    """(model, data or None, imgsz), each bad input a one-line error."""
    from evaluators.data import load_data_config
    from evaluators.detection_eval import model_for_data, resolve_imgsz
    from evaluators.registry import needs_data
    from spaces.importances import needs_gradients
    from spaces.models import load_model

    if (needs_data(settings.metric_names()) or needs_gradients(settings.importance)) and not settings.data:
        raise ArchpruneError("mAP objectives and gradient importances need --data DATA_YAML (or 'digits-det')")
    data = load_data_config(settings.data) if settings.data else None
    model = model_for_data(settings.model, data)[0] if data is not None else load_model(settings.model)
    return model, data, resolve_imgsz(model, settings.imgsz)


def build_space(settings: RunSettings, model: torch.nn.Module, data: Any, imgsz: int) -> ChannelSpace:
    from spaces.channel_space import ChannelSpace, keep_ratios
    from spaces.importances import needs_gradients

    calibration = None
    if needs_gradients(settings.importance):
        from evaluators.calibration_loss import detection_calibration_loss

        calibration = detection_calibration_loss(data, imgsz)
    return ChannelSpace(model, importance=settings.importance, round_to=settings.round_to,
                        ratios=keep_ratios(settings.min_keep, settings.width_steps),
                        keep_layers=settings.keep_layers, seed=settings.seed, calibration_loss=calibration,
                        depth=settings.depth)


def check_val_split(settings: RunSettings, data: Any, imgsz: int) -> None:
    """The images the proxy scores, read once before the first trial: a split whose labels are all
    missing or invalid would fail (or score 0) in every trial and spend the whole budget."""
    from evaluators.data import DetectionDataset
    from evaluators.registry import needs_data

    if data is not None and needs_data(settings.metric_names()):
        DetectionDataset(data.images("val")[:settings.val_images], imgsz, nc=data.nc)


def check_reachable(space: ChannelSpace, constraints: list[Constraint], imgsz: int) -> None:
    """A FLOPs or params budget even the smallest candidate breaks can never be met: say so now."""
    from evaluators.flops import count_flops_params

    static = [c for c in constraints if c.name in ALWAYS and c.op == "<="]
    if not static:
        return
    # with depth genes the all-zero genome is not canonical (widths inside dropped blocks sit at the top)
    smallest = count_flops_params(space.build(space.canonical(tuple(0 for _ in space.genes))), imgsz)
    for c in static:
        if smallest[c.name] > c.bound:
            raise ArchpruneError(f"constraint {c} can never be met: the smallest candidate in the space has "
                                 f"{c.name}={smallest[c.name]:.4g} (prune more with a lower --round-to, or relax it)")


def add_budget_starts(space: ChannelSpace, constraints: list[Constraint], imgsz: int) -> None:
    """Under a FLOPs or params budget the search also starts from the uniform and the global
    allocation bisected to it (see ChannelSpace.add_budget_starts), and under a FLOPs budget from
    Torch-Pruning's own global LAMP pruned to it: the baseline that out-recovered every searched pick
    (BENCHMARKS.md), so a search begins where that baseline ends."""
    from evaluators.flops import count_flops_params

    for c in constraints:
        if c.name in ALWAYS and c.op == "<=":
            measure = lambda genome, name=c.name: count_flops_params(space.build(genome), imgsz)[name]  # noqa: E731
            space.add_budget_starts(measure, c.bound)
            if c.name == "flops_g":
                add_lamp_start(space, measure, c.bound, imgsz)


LATENCY_METRICS = ("latency_ratio", "latency_ms")
LATENCY_START_MARGIN = 0.97  # aim under the bound: the search measures the start again, with ~3-5% noise
LATENCY_START_STEPS = 8  # bisection steps (one paired measurement each, ~1-2 s at 160 px)
LATENCY_STARTS_FILE = "latency-starts.json"


def add_latency_starts(space: ChannelSpace, settings: RunSettings, imgsz: int) -> None:
    """Under a measured latency budget (``latency_ratio<=B`` or ``latency_ms<=B``) the search also starts
    from the global allocation bisected to it by measuring (``global-latency``). Without it, at 50% of
    yolov8n-digits-sparse's latency at 160 px both a width and a width+depth search picked the fixed
    start ``global-0.4`` (0.40x, recovered 0.7380), while ``global_allocation(0.41)`` at 0.43x
    recovered 0.7507 (BENCHMARKS.md, issue 17). The measured genomes are stored beside run.yaml, so
    a resume asks the same starts (the drivers replay their first population); a run begun before
    this start existed resumes without it."""
    from evaluators.latency import LatencyEvaluator

    budgets = [c for c in settings.constraint_list if c.name in LATENCY_METRICS and c.op == "<="]
    if not budgets or settings.latency.startswith("predict:"):  # a predicted budget: a table, not this machine
        return
    if settings.latency_resource:  # the target device is a Dask worker, not the machine building the space
        return
    path = settings.run_dir() / LATENCY_STARTS_FILE
    if path.exists():
        stored = json.loads(path.read_text())
    elif (settings.run_dir() / "run.yaml").exists():
        return
    else:
        evaluator = LatencyEvaluator.measuring(settings, reference=space.build(space.unpruned()))
        stored = {}
        for c in budgets:
            measure = lambda genome, name=c.name: float(evaluator.measure(space.build(genome), imgsz)[name])  # noqa: E731
            genome = space.global_within(measure, c.bound * LATENCY_START_MARGIN, LATENCY_START_STEPS)
            stored[str(c)] = None if genome is None else [int(g) for g in genome]
        write_text(path, json.dumps(stored, indent=1))
    for genome in stored.values():
        if genome is not None:
            space.add_start("global-latency", tuple(genome))


LAMP_SHRINKS = (1.0, 0.98, 0.96, 0.94)  # of the budget, when the space's rounding takes LAMP's widths over it


def add_lamp_start(space: ChannelSpace, measure: Callable[[tuple[int, ...]], float], bound: float,
                   imgsz: int) -> tuple[int, ...] | None:
    """Torch-Pruning's global LAMP bisected to ``bound`` GFLOPs as the nearest genome of the space
    (a little under the budget when the space's rounding would take it over); the genome, now among
    the starts (already one, or added as ``lamp-budget``), or None when none fits."""
    from search.baseline_pruning import prune_to_flops

    ratio = bound / measure(space.unpruned())
    for shrink in LAMP_SHRINKS:
        if not 0 < ratio * shrink < 1:
            return None
        try:
            pruned, _ = prune_to_flops(space.base, imgsz, ratio * shrink, importance="lamp", global_pruning=True,
                                       round_to=space.round_to)
        except ArchpruneError:  # the budget is out of LAMP's reach: the other starts remain
            return None
        genome = space.genome_of_widths(pruned)
        if measure(genome) <= bound:
            space.add_start("lamp-budget", genome)
            return genome
    return None
