"""What a run is: its settings, ``run.yaml``, and which changes resume it and which are refused.

A run lives in ``results/<run>/``. Re-running with the same settings resumes it; changing only
``trials`` or ``time_budget`` extends it; changing anything else (model, data, space, objectives,
driver, seed, ...) is refused with one line listing what differs, because the stored trials would
no longer mean the same thing.
"""
from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from evaluators.image_size import image_size_problem
from search.objectives import Constraint, Objective, parse_constraints, parse_objectives
from spaces.errors import ArchpruneError

PROXIES = ("adaptive-bn", "finetune")
PRECISIONS = ("fp32", "int8")
EXTENDABLE = {"trials", "time_budget"}  # changing these extends a run instead of refusing it
# where the run is kept, not what it means: never part of the comparison
LOCATION = {"run", "storage", "results"}
# how candidates are evaluated, not what they score: may change between resumes
OPERATIONAL = {"executor", "candidate_timeout", "workers", "islands", "dask", "latency_resource", "remeasure_front"}


@dataclass
class RunSettings:
    space: str = "channels"  # or "nb201" (scored from --table), or "blocks" (TinyNAS-style backbones)
    table: str | None = None  # a CSV with an arch_str column (the nb201 space's evaluator)
    model: str = ""
    data: str | None = None
    imgsz: int | None = None
    objectives: str = "latency_ms:min,map50_95:max"
    constraints: list[str] = field(default_factory=list)
    driver: str = "nsga2"
    trials: int | None = 100
    time_budget: str | None = None
    run: str | None = None
    seed: int = 0
    # space
    importance: str = "l1"
    round_to: int = 8
    # channels: the smallest share of a group's channels a candidate keeps. Global LAMP at 50% of
    # yolov8n-digits-sparse's FLOPs keeps 16-19% of the four deepest 256-wide layers (BENCHMARKS.md)
    min_keep: float = 0.25
    # channels: the counts a group may keep are min_keep, then every 1/width_steps of it; 32 with
    # --round-to 8 offers every multiple of 8 up to 256 channels, so a Torch-Pruning allocation rounded
    # to 8 is a genome exactly (the 1/16 grid lost LAMP 2% of the FLOPs budget, BENCHMARKS.md)
    width_steps: int = 16
    keep_layers: list[str] = field(default_factory=list)
    depth: bool = False  # channels: also search how many blocks each C2f / C3k2 / C3k chain keeps
    init: str | None = None  # blocks: the initial structure (YAML/JSON); default a YOLOv8n-sized backbone
    neck: str | None = None  # blocks: "c2f" (default, YOLOv8's) or "rep" (RepConv blocks, RepGFPN-style)
    # blocks: each stage's width range, stem first, "*" = the default (half to twice the initial width);
    # DAMO-YOLO's channel_range_list, e.g. "*,*,64:128,128:256,256:512"
    channel_ranges: str | None = None
    kernels: str | None = None  # blocks: the kernel sizes a block may use (default "3,5"; DAMO-YOLO: "3")
    # MAE-DET stage weights (0,0,1,1,6); "damo" = (0,0,1,1,16); or numbers, deepest stage last ("0,0,1,1,1")
    entropy_weights: str = "maedet"
    # NSGA-II / the zero-shot EA (None: the driver's default, 16 for NSGA-II, 256 / 64 for zeroshot)
    population: int | None = None
    offspring: int | None = None
    crossover_prob: float = 0.9
    mutation_rate: float | None = None  # per gene; default 1 / number of genes
    # latency
    latency: str = "ort"  # "ort", "openvino", "torch", or "predict:lut.json" (a table from `archprune latency-table`)
    remeasure_front: bool = True  # with predicted latency: measure the final front on this machine
    threads: int | None = None
    latency_runs: int = 30
    latency_warmup: int = 5
    throughput_batch: int = 8  # the batch throughput_ips is measured at
    providers: list[str] = field(default_factory=lambda: ["CPUExecutionProvider"])
    # proxy accuracy
    proxy: str = "adaptive-bn"
    calib_batches: int = 8
    val_images: int = 200
    finetune_steps: int = 200
    # deployment precision: "fp32", "int8" or "fp32,int8" (int8: every candidate also scored as its
    # statically quantized model, evaluators/int8.py)
    precision: str = "fp32"
    int8_calibration: str = "minmax"  # or "entropy", "percentile" (onnxruntime's calibrators)
    # execution
    # "auto": inline when no evaluator builds a model, else "process" (a worker killed past candidate_timeout)
    executor: str = "auto"
    candidate_timeout: str | None = "10m"
    workers: int = 1  # worker processes on this machine (candidates in flight)
    # search processes on this run (drivers that share runs: zeroshot, optuna-*), each with seed + i;
    # a zero-shot search's scores are cheap, so the driver and the store are what a second core speeds up
    islands: int = 1
    dask: str | None = None  # "local:N" or a scheduler address "tcp://HOST:8786"
    latency_resource: str | None = None  # Dask worker resource that marks the target device
    # where
    storage: str | None = None
    results: str = "results"

    # -- parsed views ----------------------------------------------------------------------
    def recipe(self) -> Any:
        """The ``search.space_recipes.SpaceRecipe`` of ``space`` (an unknown space is a one-line error)."""
        from search.space_recipes import space_recipe

        return space_recipe(self.space)

    def known_metrics(self) -> list[str] | None:
        """Metric names objectives may use: the space's own (a table's columns for nb201), else the
        registered evaluators'."""
        return self.recipe().known_metrics(self)

    def metric_names(self) -> list[str]:
        """The metrics the objectives and constraints name, objectives first; with --precision int8,
        then the INT8 metrics every candidate records."""
        names = [o.name for o in self.objective_list] + [c.name for c in self.constraint_list]
        if "int8" in self.precisions():
            from evaluators.int8 import RECORDED

            names += RECORDED
        return list(dict.fromkeys(names))

    def precisions(self) -> list[str]:
        return [p.strip() for p in self.precision.split(",") if p.strip()]

    @property
    def objective_list(self) -> list[Objective]:
        return parse_objectives(self.objectives, self.known_metrics())

    @property
    def constraint_list(self) -> list[Constraint]:
        return parse_constraints(self.constraints, self.known_metrics())

    @property
    def time_budget_s(self) -> float | None:
        return parse_duration(self.time_budget) if self.time_budget else None

    @property
    def candidate_timeout_s(self) -> float | None:
        return parse_duration(self.candidate_timeout) if self.candidate_timeout else None

    def check(self) -> "RunSettings":
        """Everything that can be checked without loading a model, each with a one-line error."""
        from search.space_recipes import SPACES

        SPACES.check(self.space)
        for other in SPACES:  # a setting only another space reads would be silently ignored
            for name in SPACES.get(other).own_settings if other != self.space else ():
                if getattr(self, name):
                    raise ArchpruneError(f"--{name.replace('_', '-')} is a setting of --space {other}: "
                                         f"drop it, or search --space {other}")
        self.recipe().check(self)
        from spaces.entropy_weights import entropy_weights

        entropy_weights(self.entropy_weights)
        from search.drivers import DRIVERS  # the registry: one list of driver names

        DRIVERS.check(self.driver)
        if self.proxy not in PROXIES:
            raise ArchpruneError(f"unknown proxy {self.proxy!r}; choose one of {', '.join(PROXIES)}")
        unknown = [p for p in self.precisions() if p not in PRECISIONS] or ([] if self.precisions() else ["''"])
        if unknown:
            raise ArchpruneError(f"unknown precision {', '.join(unknown)}: use fp32, int8 or fp32,int8")
        from evaluators.quantization import check_calibration_method

        check_calibration_method(self.int8_calibration)
        if self.latency.startswith("predict:"):
            table = Path(self.latency[len("predict:"):])
            if not table.is_file():
                raise ArchpruneError(f"--latency {self.latency}: no latency table at {table} (measure one on the "
                                     "target with `archprune latency-table --target NAME --out lut.json`)")
            if "latency_p90_ms" in {o.name for o in self.objective_list} | {c.name for c in self.constraint_list}:
                raise ArchpruneError("a latency table predicts the median (latency_ms), not latency_p90_ms")
        else:
            from evaluators.choice_names import check_backend

            check_backend(self.latency, " or predict:LUT.json")
        self.objective_list, self.constraint_list, self.time_budget_s, self.candidate_timeout_s  # raise on typos
        from search.executors import check_executor_options

        check_executor_options(self.executor, self.workers, self.dask, self.latency_resource)
        if self.workers > 1 and self.executor == "inline":  # the flags contradict each other
            raise ArchpruneError("--executor inline evaluates one candidate at a time: drop --workers or the inline")
        if self.workers > 1 and self.dask:
            raise ArchpruneError("--workers and --dask both set the parallelism: give one (--dask local:N for N local workers)")
        if int(self.islands) < 1:
            raise ArchpruneError(f"--islands {self.islands}: give at least 1 search process")
        if self.islands > 1:
            from search.drivers import DRIVERS, driver_shares_studies

            if not driver_shares_studies(self.driver):
                sharing = ", ".join(n for n in DRIVERS if driver_shares_studies(n))
                raise ArchpruneError(f"--islands {self.islands}: the {self.driver} driver keeps its population in one "
                                     f"process; use a driver that shares runs ({sharing}) or drop --islands")
            if self.storage == "memory":
                raise ArchpruneError(f"--islands {self.islands}: islands share the run through its store, and "
                                     "--storage memory lives in one process; drop --storage memory")
        for name in ("population", "offspring", "round_to", "latency_runs", "calib_batches", "val_images",
                     "finetune_steps", "throughput_batch", "width_steps"):
            if getattr(self, name) is not None and int(getattr(self, name)) < 1:
                raise ArchpruneError(f"{name.replace('_', '-')} must be at least 1, got {getattr(self, name)}")
        if not 0 < float(self.min_keep) <= 1:
            raise ArchpruneError(f"--min-keep {self.min_keep}: give a share of a group's channels in (0, 1], e.g. 0.25")
        problem = image_size_problem(self.imgsz) if self.imgsz is not None else None
        if problem:
            raise ArchpruneError(f"--imgsz: {problem}")
        if self.trials is not None and self.trials < 1:
            raise ArchpruneError(f"--trials must be at least 1, got {self.trials}")
        if self.trials is None and self.time_budget is None:
            raise ArchpruneError("give --trials N or --time-budget (for example 8h): a search needs a stopping rule")
        if self.run is not None and not re.fullmatch(r"[A-Za-z0-9._-]+", self.run):
            raise ArchpruneError(f"run name {self.run!r}: use letters, digits, '.', '_' and '-' only")
        if self.run is not None and set(self.run) == {"."}:  # '.' and '..' would write into or above results/
            raise ArchpruneError(f"run name {self.run!r} names a folder, not a run: give a name with a letter or digit")
        return self

    # -- names and places ------------------------------------------------------------------
    def run_name(self) -> str:
        """``--run``, else derived from the space and the model, so the same command resumes."""
        if self.run:
            return self.run
        source = self.recipe().run_source(self)
        stem = Path(source).stem if Path(source).suffix else source
        return f"{self.space}-" + re.sub(r"[^A-Za-z0-9._-]+", "-", stem).strip("-")

    def run_dir(self) -> Path:
        return Path(self.results) / self.run_name()

    def storage_url(self) -> str:
        if self.storage:
            return self.storage
        return f"sqlite:///{(self.run_dir() / 'study.db').as_posix()}"

    # -- persistence -----------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any], source: str = "settings") -> "RunSettings":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ArchpruneError(f"{source}: unknown key(s) {', '.join(unknown)}; known keys are "
                                 f"{', '.join(sorted(known))}")
        values = dict(values)
        for key in ("constraints", "keep_layers", "providers"):
            if isinstance(values.get(key), str):
                values[key] = [v.strip() for v in values[key].split(",") if v.strip()]
        objectives = values.get("objectives")
        if isinstance(objectives, list) and all(isinstance(o, str) for o in objectives):
            values["objectives"] = ",".join(objectives)
        cls.check_types(values, source)
        return cls(**values)

    @classmethod
    def check_types(cls, values: dict[str, Any], source: str) -> None:
        """Each value has its key's type (``trials: "four"`` and ``seed: [1, 2]`` are one-line errors)."""
        types = cls._field_types()
        for key, value in values.items():
            problem = _type_problem(types[key], value) if key in types else None
            if problem:
                raise ArchpruneError(f"{source}: key '{key}' must be {problem}, got {value!r}; fix its value")

    @classmethod
    def _field_types(cls) -> dict[str, str]:
        return {f.name: str(f.type) for f in dataclasses.fields(cls)}

    def differences(self, stored: "RunSettings") -> list[str]:
        """Settings that differ from the stored run, except the ones that only extend it."""
        mine, theirs = self.to_dict(), stored.to_dict()
        return [f"{k}: {theirs[k]!r} -> {mine[k]!r}" for k in mine
                if k not in EXTENDABLE | LOCATION | OPERATIONAL and mine[k] != theirs[k]]


# what a settings value of each declared type may be, read from a YAML file or the command line
_TYPE_CHECKS: dict[str, tuple[str, Any]] = {
    "int": ("a whole number", lambda v: isinstance(v, int) and not isinstance(v, bool)),
    "float": ("a number", lambda v: isinstance(v, (int, float)) and not isinstance(v, bool)),
    "str": ("a string", lambda v: isinstance(v, str)),
    "bool": ("true or false", lambda v: isinstance(v, bool)),
    # lists may also be written as one comma-separated string
    "list[str]": ("a list of strings", lambda v: isinstance(v, str) or (isinstance(v, list)
                                                                         and all(isinstance(i, str) for i in v))),
}


def _type_problem(declared: str, value: Any) -> str | None:
    """What ``value`` should have been (for a field declared as ``declared``), or None when it fits."""
    optional = declared.endswith(" | None")
    base = declared.removesuffix(" | None")
    if value is None:
        return None if optional else _TYPE_CHECKS[base][0]
    what, fits = _TYPE_CHECKS[base]
    return None if fits(value) else what + (" or null" if optional else "")


def load_yaml_config(path: str | Path) -> dict[str, Any]:
    """A ``--config run.yaml``: the same keys as the command-line flags (dashes or underscores)."""
    path = Path(path)
    if path.is_dir():
        raise ArchpruneError(f"config file {path} is a folder; pass the run.yaml inside it")
    if not path.is_file():
        raise ArchpruneError(f"config file {path} does not exist")
    try:
        values = yaml.safe_load(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise ArchpruneError(f"config file {path} is not text (binary data, e.g. an image?); pass a YAML file") from None
    except yaml.YAMLError as err:
        where = getattr(err, "problem_mark", None)
        at = f" at line {where.line + 1}" if where is not None else ""
        raise ArchpruneError(f"config file {path} is not valid YAML{at}: {getattr(err, 'problem', err)}") from None
    if values is None:
        return {}
    if not isinstance(values, dict):
        raise ArchpruneError(f"config file {path} must hold a mapping of settings, got {type(values).__name__}")
    return {str(k).replace("-", "_"): v for k, v in values.items()}


def write_run_yaml(settings: RunSettings, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".yaml.tmp")
    tmp.write_text(yaml.safe_dump(settings.to_dict(), sort_keys=False))
    tmp.replace(path)


def read_run_yaml(path: Path) -> RunSettings:
    return RunSettings.from_dict(load_yaml_config(path), source=str(path))


_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*([smhd])")


def parse_duration(text: str | float | int) -> float:
    """``8h``, ``90m``, ``1h30m``, ``45s`` or plain seconds -> seconds."""
    if isinstance(text, (int, float)):
        seconds = float(text)
    else:
        cleaned = str(text).strip().lower()
        try:
            seconds = float(cleaned)
        except ValueError:
            parts = _DURATION.findall(cleaned)
            if not parts or _DURATION.sub("", cleaned).strip():
                raise ArchpruneError(f"duration {text!r}: use for example 8h, 90m, 1h30m or 3600") from None
            unit = {"s": 1, "m": 60, "h": 3600, "d": 86400}
            seconds = sum(float(n) * unit[u] for n, u in parts)
    if seconds <= 0:
        raise ArchpruneError(f"duration {text!r} must be positive")
    return seconds
