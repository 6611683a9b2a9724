"""``archprune search`` as a function of its settings: check them, load the model and data,
build the channel space and the evaluators, then run (or resume) the search in ``results/<run>/``."""
from __future__ import annotations

import datetime
from pathlib import Path
from typing import Any, Callable

import torch

from evaluators._base import Evaluator
from search.objectives import ZERO_SHOT_METRICS, Constraint
from search.drivers import driver_shares_studies
from search.run_lock import run_lock, store_creation_lock
from search.runner import SearchResult, search
from search.settings import RunSettings, read_run_yaml, write_run_yaml
from spaces._base import SearchSpace
from spaces.channel_space import ChannelSpace
from spaces.errors import ArchpruneError
from spaces.output_files import write_text
from spaces.tp_compat import GRADIENT_IMPORTANCES

LATENCY_METRICS = {"latency_ms", "latency_p90_ms"}
ACCURACY_METRICS = {"map50_95", "map50"}
#: --space blocks without budgets: the default structure's costs at the run's image size (a YOLOv8n-sized
#: backbone, FLOPs and params, in a YOLOv8n-sized detector) and YOLOv8n's 29 backbone convs. The backbone
#: budget keeps a search from buying backbone FLOPs with a narrower neck.
BLOCK_BUDGETS = ("backbone_flops_g", "flops_g", "params_m")
BLOCK_LAYERS_BUDGET = 29


def needed_metrics(settings: RunSettings) -> set[str]:
    return {o.name for o in settings.objective_list} | {c.name for c in settings.constraint_list}


def check_against_stored(settings: RunSettings) -> None:
    """Refuse to resume a run whose stored settings mean something else; one line lists the differences."""
    path = settings.run_dir() / "run.yaml"
    if not path.exists():
        return
    differs = settings.differences(read_run_yaml(path))
    if differs:
        raise ArchpruneError(f"run {settings.run_name()!r} exists with other settings ({'; '.join(differs)}); "
                             "rerun with the same settings to resume, or pass a new --run")


def load_inputs(settings: RunSettings) -> tuple[Any, Any, int]:
    """(model, data or None, imgsz), each bad input a one-line error."""
    from evaluators.data import load_data_config
    from evaluators.detection_eval import model_for_data, resolve_imgsz
    from spaces.models import load_model

    needs_data = bool(needed_metrics(settings) & ACCURACY_METRICS) or settings.importance in GRADIENT_IMPORTANCES
    if needs_data and not settings.data:
        raise ArchpruneError("mAP objectives and gradient importances need --data DATA_YAML (or 'digits-det')")
    data = load_data_config(settings.data) if settings.data else None
    model = model_for_data(settings.model, data)[0] if data is not None else load_model(settings.model)
    return model, data, resolve_imgsz(model, settings.imgsz)


def build_space(settings: RunSettings, model: torch.nn.Module, data: Any, imgsz: int) -> ChannelSpace:
    calibration = None
    if settings.importance in GRADIENT_IMPORTANCES:
        from evaluators.calibration_loss import detection_calibration_loss

        calibration = detection_calibration_loss(data, imgsz)
    return ChannelSpace(model, importance=settings.importance, round_to=settings.round_to,
                        keep_layers=settings.keep_layers, seed=settings.seed, calibration_loss=calibration)


def zero_shot_evaluators(settings: RunSettings, scores: set[str], data: Any = None) -> list[Evaluator]:
    if not scores:
        return []
    from evaluators.zero_shot_evaluator import ZeroShotEvaluator

    return [ZeroShotEvaluator(sorted(scores), seed=settings.seed, data=data, entropy_weights=settings.entropy_weights)]


def latency_evaluator(settings: RunSettings, measured: bool = False) -> Evaluator:
    """Measured on this machine (onnxruntime or torch), or predicted from a latency table."""
    if settings.latency.startswith("predict:") and not measured:
        from evaluators.latency_predicted import PredictedLatencyEvaluator

        return PredictedLatencyEvaluator(settings.latency[len("predict:"):])
    from evaluators.latency import LatencyEvaluator

    backend = "ort" if settings.latency.startswith("predict:") else settings.latency
    return LatencyEvaluator(backend, threads=settings.threads, runs=settings.latency_runs,
                            warmup=settings.latency_warmup, providers=settings.providers)


def build_evaluators(settings: RunSettings, data: Any, imgsz: int) -> list[Evaluator]:
    from evaluators.flops import FlopsEvaluator

    needed = needed_metrics(settings)
    evaluators: list[Evaluator] = [FlopsEvaluator()]  # always: the front table shows params and GFLOPs
    evaluators += zero_shot_evaluators(settings, needed & set(ZERO_SHOT_METRICS))
    if needed & LATENCY_METRICS:
        evaluators.append(latency_evaluator(settings))
    if needed & ACCURACY_METRICS:
        if settings.proxy == "finetune":
            from evaluators.proxy_finetune import FinetuneMapEvaluator

            evaluators.append(FinetuneMapEvaluator(data, imgsz, steps=settings.finetune_steps,
                                                   val_images=settings.val_images, seed=settings.seed))
        else:
            from evaluators.proxy_accuracy import AdaptiveBNMapEvaluator

            evaluators.append(AdaptiveBNMapEvaluator(data, imgsz, calib_batches=settings.calib_batches,
                                                     val_images=settings.val_images))
    return evaluators


def check_reachable(space: ChannelSpace, constraints: list[Constraint], imgsz: int) -> None:
    """A FLOPs or params budget even the smallest candidate breaks can never be met: say so now."""
    from evaluators.flops import count_flops_params

    static = [c for c in constraints if c.name in ("flops_g", "params_m") and c.op == "<="]
    if not static:
        return
    smallest = count_flops_params(space.build(tuple(0 for _ in space.genes)), imgsz)
    for c in static:
        if smallest[c.name] > c.bound:
            raise ArchpruneError(f"constraint {c} can never be met: the smallest candidate in the space has "
                                 f"{c.name}={smallest[c.name]:.4g} (prune more with a lower --round-to, or relax it)")


def file_logger(path: Path) -> Callable[[str], None]:
    path.parent.mkdir(parents=True, exist_ok=True)

    def log(line: str) -> None:
        stamp = datetime.datetime.now().isoformat(timespec="seconds")
        with path.open("a") as handle:  # reopened per line: a killed run keeps every line written
            handle.write(f"{stamp} {line}\n")

    return log


def table_search_parts(settings: RunSettings) -> tuple[SearchSpace, list[Evaluator], str]:
    """The nb201 cell space scored by table lookups (no network is built)."""
    from evaluators.table_lookup import TableEvaluator
    from spaces.nb201_space import NB201Space

    scores = needed_metrics(settings) & set(ZERO_SHOT_METRICS)
    names = {o.name: o.direction for o in settings.objective_list if o.name not in scores}
    names.update({c.name: "min" for c in settings.constraint_list if c.name not in names and c.name not in scores})
    space = NB201Space()
    evaluators: list[Evaluator] = [TableEvaluator(settings.table, names)] if names else []
    # the scores build each cell's network and look at real CIFAR-10 images where ../shared has them
    evaluators += zero_shot_evaluators(settings, scores, data="cifar10")
    return space, evaluators, f"the nb201 cell space (15,625 cells) scored from {settings.table}"


def blocks_search_parts(settings: RunSettings) -> tuple[SearchSpace, list[Evaluator], int, list[Constraint], str]:
    """TinyNAS-style backbones under a YOLOv8 neck and head, scored from their structure where possible."""
    from evaluators.block_analytic import BlockAnalyticEvaluator
    from evaluators.detection_eval import resolve_imgsz
    from spaces.blocks import BlockSpace, DEFAULT_STRUCTURE, parse_structure

    needed = needed_metrics(settings)
    if needed & ACCURACY_METRICS:
        raise ArchpruneError("block-space candidates are untrained, so mAP means nothing for them: search on "
                             "training-free scores (entropy, zen, ...), then train the exported structure")
    nc, names = 80, None
    if settings.data:
        from evaluators.data import load_data_config

        data = load_data_config(settings.data)
        nc, names = data.nc, data.names
    structure = parse_structure(settings.init) if settings.init else DEFAULT_STRUCTURE
    space = BlockSpace(structure, nc=nc, names=names)
    imgsz = resolve_imgsz(space.build(space.baselines()[0][1]), settings.imgsz)
    analytic = BlockAnalyticEvaluator(space, settings.entropy_weights)
    evaluators: list[Evaluator] = [analytic]
    evaluators += zero_shot_evaluators(settings, needed & set(ZERO_SHOT_METRICS) - {"entropy"})
    if needed & LATENCY_METRICS:
        evaluators.append(latency_evaluator(settings))
    constraints = list(settings.constraint_list)
    if not constraints:  # the budgets of the default: a YOLOv8n-sized backbone in a YOLOv8n-sized detector
        start = space.analytic_metrics(space.baselines()[0][1], imgsz)
        defaults = space.analytic_metrics(space.genome_of(DEFAULT_STRUCTURE), imgsz) if not settings.init else start
        # exact bounds, not rounded strings: rounding down once made the initial structure itself infeasible
        constraints = [Constraint(name, "<=", defaults[name]) for name in BLOCK_BUDGETS]
        constraints.append(Constraint("layers", "<=", max(BLOCK_LAYERS_BUDGET, start["layers"])))
    what = (f"TinyNAS-style backbones grown from {'the default YOLOv8n-sized structure' if not settings.init else settings.init}"
            f" ({len(space.genes)} genes) under a YOLOv8 neck and head at {imgsz}px; budgets "
            + ", ".join(str(c) for c in constraints))
    return space, evaluators, imgsz, constraints, what


def check_val_split(settings: RunSettings, data: Any, imgsz: int) -> None:
    """The images the proxy scores, read once before the first trial: a split whose labels are all
    missing or invalid would fail (or score 0) in every trial and spend the whole budget."""
    from evaluators.data import DetectionDataset

    if data is not None and needed_metrics(settings) & ACCURACY_METRICS:
        DetectionDataset(data.images("val")[:settings.val_images], imgsz, nc=data.nc)


def channel_search_parts(settings: RunSettings) -> tuple[ChannelSpace, list[Evaluator], int, str]:
    model, data, imgsz = load_inputs(settings)
    check_val_split(settings, data, imgsz)
    space = build_space(settings, model, data, imgsz)
    check_reachable(space, settings.constraint_list, imgsz)
    order = (f"importance {settings.importance}" if space.order_source != "recorded" else
             f"channel order recorded by the elastic base; --importance {settings.importance} not used")
    what = (f"{len(space.genes)} channel groups (10^{space.n_choices():.0f} candidates, {order}) "
            f"of {settings.model} at {imgsz}px")
    return space, build_evaluators(settings, data, imgsz), imgsz, what


def _where(settings: RunSettings) -> str:
    if settings.dask:
        pinned = f", latency on workers with resource {settings.latency_resource}" if settings.latency_resource else ""
        return f"on Dask {settings.dask}{pinned}"
    if settings.workers > 1:
        return f"in {settings.workers} worker processes"
    return "in the search process" if settings.executor == "inline" else "in a worker process"


def run_search(settings: RunSettings, progress: bool = True, say: Callable[[str], None] = print) -> SearchResult:
    from search.runs import check_store_file

    settings.check()
    check_against_stored(settings)
    if (settings.run_dir() / "run.yaml").exists():  # before the model loads: a lost store fails in a second
        check_store_file(settings.storage_url(), settings.run_name())
    constraints = settings.constraint_list
    if settings.space == "nb201":
        space, evaluators, what = table_search_parts(settings)
        imgsz = 32  # CIFAR-sized cells
    elif settings.space == "blocks":
        space, evaluators, imgsz, constraints, what = blocks_search_parts(settings)
    else:
        space, evaluators, imgsz, what = channel_search_parts(settings)
    run_dir = settings.run_dir()
    with run_lock(run_dir, settings.run_name(), shared=driver_shares_studies(settings.driver)):
        return _search_held(settings, space, evaluators, constraints, imgsz, what, progress, say)


def open_run_store(settings: RunSettings) -> None:
    """Create the run's store before run.yaml says the run exists, so a run.yaml whose store is
    missing or empty always means lost trials (an error), never a new run."""
    from search.store import open_storage

    if settings.storage_url() != "memory":
        with store_creation_lock(settings.run_dir()):
            open_storage(settings.storage_url())


def _search_held(settings: RunSettings, space: SearchSpace, evaluators: list[Evaluator],
                 constraints: list[Constraint], imgsz: int, what: str, progress: bool,
                 say: Callable[[str], None]) -> SearchResult:
    """The search, once this process holds the run."""
    run_dir = settings.run_dir()
    open_run_store(settings)
    write_run_yaml(settings, run_dir / "run.yaml")
    log = file_logger(run_dir / "search.log")
    head = (f"run {settings.run_name()}: {settings.driver} over {what}; objectives {settings.objectives}"
            + (f"; constraints {', '.join(settings.constraints)}" if settings.constraints else "")
            + f"; store {settings.storage_url()}; evaluations {_where(settings)}")
    say(head)
    log(head)
    options = {"population": settings.population, "offspring": settings.offspring,
               "crossover_prob": settings.crossover_prob, "mutation_rate": settings.mutation_rate}
    options = {k: v for k, v in options.items() if v is not None}  # None: the driver's own default
    result = search(space, evaluators, settings.objective_list, constraints, imgsz=imgsz,
                    driver=settings.driver, driver_options=options, storage=settings.storage_url(),
                    run=settings.run_name(), trials=settings.trials, time_budget_s=settings.time_budget_s,
                    seed=settings.seed, progress=progress, log=log, executor=settings.executor,
                    candidate_timeout_s=settings.candidate_timeout_s, workers=settings.workers,
                    dask=settings.dask, latency_resource=settings.latency_resource,
                    study_attrs={"settings": settings.to_dict(), "imgsz": imgsz})
    if settings.latency.startswith("predict:") and settings.remeasure_front and result.front:
        remeasure_front(settings, space, imgsz, result, say, log)
    return result


def remeasure_front(settings: RunSettings, space: SearchSpace, imgsz: int, result: SearchResult,
                    say: Callable[[str], None], log: Callable[[str], None]) -> None:
    """Predicted latency chose the front; measure those candidates for real on this machine. The
    measurements go beside the predictions (trials are immutable once finished): into the study's
    ``remeasured`` attribute and ``results/<run>/remeasured.json``."""
    import json

    from evaluators._base import Candidate

    measure = latency_evaluator(settings, measured=True)
    rows = {}
    for record in result.front:
        model = space.build(record.genome)
        measured = measure.evaluate(Candidate(model=model, imgsz=imgsz, genome=record.genome, config=record.config))
        predicted = float(record.metrics["latency_ms"])
        rows[str(record.number)] = {"predicted_ms": predicted, "measured_ms": measured["latency_ms"],
                                    "error": measured["latency_ms"] / predicted - 1.0,
                                    **{k: measured[k] for k in ("host", "cpu", "threads") if k in measured}}
        line = (f"re-measured trial {record.number}: predicted {predicted:.2f} ms, measured "
                f"{measured['latency_ms']:.2f} ms ({rows[str(record.number)]['error']:+.0%})")
        say(line)
        log(line)
    result.store.study.set_user_attr("remeasured", rows)
    write_text(settings.run_dir() / "remeasured.json", json.dumps(rows, indent=2))
