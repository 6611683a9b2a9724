"""How repeatable is a stored latency? (issue 16, item 2)

The base and 10 channel-pruned candidates of ``yolov8n-digits`` of different sizes are each measured
by the search's latency evaluator ``--repeats`` times (default 10), in one interleaved schedule: every
repeat measures every model once, in a seeded shuffled order, and the repeats are spread over at
least ``--minutes`` (default 30) by idle waits, so the machine's speed modes land on different
repeats. Run it while nothing else runs. One schedule per configuration:

    python bench/latency_repeatability.py --imgsz 160 --threads 1 --scheme paired --out ~/archprune-runs/latrep
    python bench/latency_repeatability.py --out ~/archprune-runs/latrep --report

``--scheme single`` is the evaluator before issue 16 (a plain median of 30 runs), ``paired`` the
run-by-run ratio against the base, ``paired-warm`` each timed run after an untimed one of the same
model, ``paired-window`` warm with the candidate timed for at least 0.2 s in all. Each measurement is appended to a JSONL file as it comes, so an
interrupted schedule resumes. The report gives, per configuration, each model's max/min of
``latency_ms`` over the repeats and Kendall's tau of the models' order between repeats, over all
pairs and over the pairs whose median latencies differ by at least 10% (the goal: max/min <= 1.05,
tau >= 0.9 there).
"""
from __future__ import annotations

import argparse
import itertools
import json
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from evaluators._base import Candidate
from evaluators.flops import count_flops_params
from evaluators.latency import LatencyEvaluator, cpu_model
from evaluators.latency_paired import SCHEME, WARM_SCHEME, WINDOW_SCHEME, PairedTimes
from spaces.channel_space import ChannelSpace
from spaces.models import load_model

MODELS = 11  # the base and 10 candidates


def candidates(seed: int = 0) -> list[tuple[str, Any]]:
    """The base, the uniform baselines and random candidates, 11 of distinct FLOPs from 100% down."""
    space = ChannelSpace(load_model("yolov8n-digits"))
    named = [(name, g) for name, g in space.baselines() if name.startswith(("unpruned", "uniform"))]
    rng = np.random.default_rng(seed)
    while len(named) < MODELS:
        named.append((f"random-{len(named)}", space.sample(rng)))
    return [(name, space.build(g)) for name, g in named[:MODELS]]


@dataclass(frozen=True)
class Config:
    scheme: str  # "single" (before issue 16), "paired", "paired-warm" or "paired-window"
    imgsz: int
    threads: int

    @property
    def name(self) -> str:
        return f"{self.scheme}-{self.imgsz}px-{self.threads}t"


def configs(args: argparse.Namespace) -> list[Config]:
    return [Config(scheme, int(imgsz), int(threads)) for scheme in args.scheme.split(",")
            for imgsz in str(args.imgsz).split(",") for threads in str(args.threads).split(",")]


def evaluator_for(config: Config, base: Any, out: Path) -> LatencyEvaluator:
    """The search's latency evaluator for ``config``; a paired one keeps its scale (the base's
    best-known time) in a file beside the rows, so a resumed schedule stays on the same scale."""
    scheme = {"paired-warm": WARM_SCHEME, "paired-window": WINDOW_SCHEME}.get(config.scheme, SCHEME)
    evaluator = LatencyEvaluator("ort", threads=config.threads, reference=None if config.scheme == "single" else base,
                                 scheme=scheme)
    scale_path = out / f"{config.name}.scale.json"
    stored = {"latency_scale": json.loads(scale_path.read_text())} if scale_path.exists() else {}
    created = evaluator.bind_run(stored, resumed=bool(stored), imgsz=config.imgsz)
    if created:
        scale_path.write_text(json.dumps(created["latency_scale"]))
    return evaluator


def measure(args: argparse.Namespace) -> None:
    """Every configuration's repeats in one schedule: each repeat measures every (configuration,
    model) once in a seeded shuffled order, so old and new schemes, sizes and thread counts meet
    the machine's speed modes alike, and one ~30-minute window serves them all."""
    out = Path(args.out).expanduser()
    out.mkdir(parents=True, exist_ok=True)
    models = candidates()
    base = models[0][1]
    wanted = configs(args)
    paths = {c: out / f"{c.name}.jsonl" for c in wanted}
    done = {(c, r["repeat"], r["model"]) for c in wanted for r in _rows(paths[c])}
    evaluators = {c: evaluator_for(c, base, out) for c in wanted}
    flops = {(name, c.imgsz): count_flops_params(model, c.imgsz)["flops_g"] for name, model in models for c in wanted}
    pause = args.minutes * 60 / max(1, args.repeats - 1)
    for repeat in range(args.repeats):
        started = time.monotonic()
        tasks = [(c, index) for c in wanted for index in range(len(models))]
        random.Random(repeat).shuffle(tasks)
        for config, index in tasks:
            name, model = models[index]
            if (config, repeat, name) in done:
                continue
            metrics = evaluators[config].evaluate(Candidate(model=model, imgsz=config.imgsz))
            row = {"repeat": repeat, "model": name, "flops_g": flops[(name, config.imgsz)],
                   "latency_ms": metrics["latency_ms"], "latency_raw_ms": metrics.get("latency_raw_ms"),
                   "time": time.time(), "cpu": cpu_model(), "threads": config.threads}
            pairs = evaluators[config].last_pairs
            if pairs is not None and args.keep_runs:  # every single run, to compare estimators afterwards
                row.update(reference_runs_ms=[round(t, 4) for t in pairs.reference_ms],
                           candidate_runs_ms=[round(t, 4) for t in pairs.candidate_ms])
            with paths[config].open("a") as handle:
                handle.write(json.dumps(row) + "\n")
            print(f"repeat {repeat} {config.name} {name}: {row['latency_ms']:.3f} ms", flush=True)
        if repeat < args.repeats - 1:  # spread the repeats over the schedule's minutes
            time.sleep(max(0.0, pause - (time.monotonic() - started)))


def _rows(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []


def tau(a: list[float], b: list[float], pairs: list[tuple[int, int]]) -> float:
    """Kendall's tau of two orders of the same models, over the given model pairs."""
    signs = [np.sign(a[i] - a[j]) * np.sign(b[i] - b[j]) for i, j in pairs]
    return float(np.mean(signs)) if signs else float("nan")


def report(out: Path) -> str:
    lines = ["| configuration | repeats | spread (min / median / max) | worst model | tau all (mean, min) | "
             "tau >= 10% apart (mean, min) | minutes | CPU |", "|---|---:|---|---|---|---|---:|---|"]
    for path in sorted(Path(out).expanduser().glob("*.jsonl")):
        rows = _rows(path)
        models = sorted({r["model"] for r in rows})
        repeats = sorted({r["repeat"] for r in rows})
        table = {(r["repeat"], r["model"]): r["latency_ms"] for r in rows}
        full = [k for k in repeats if all((k, m) in table for m in models)]
        if len(full) < 2:
            continue
        per = {m: [table[(k, m)] for k in full] for m in models}
        spread = {m: max(v) / min(v) for m, v in per.items()}
        worst = max(spread, key=spread.get)
        medians = [float(np.median(per[m])) for m in models]
        every = list(itertools.combinations(range(len(models)), 2))
        apart = [(i, j) for i, j in every if max(medians[i], medians[j]) / min(medians[i], medians[j]) >= 1.10]
        orders = [[table[(k, m)] for m in models] for k in full]
        taus = [tau(a, b, every) for a, b in itertools.combinations(orders, 2)]
        taus_apart = [tau(a, b, apart) for a, b in itertools.combinations(orders, 2)]
        minutes = (max(r["time"] for r in rows) - min(r["time"] for r in rows)) / 60
        values = sorted(spread.values())
        lines.append(f"| {path.stem} | {len(full)} | {values[0]:.3f} / {np.median(values):.3f} / {values[-1]:.3f} | "
                     f"{worst} ({spread[worst]:.3f}) | {np.mean(taus):.3f}, {min(taus):.3f} | "
                     f"{np.nanmean(taus_apart):.3f}, {np.nanmin(taus_apart):.3f} ({len(apart)} pairs) | "
                     f"{minutes:.0f} | {rows[0]['cpu']} |")
    return "\n".join(lines)


#: ways to turn one paired measurement's single runs into a ratio to the reference (--estimators)
ESTIMATORS: dict[str, Callable[[PairedTimes], float]] = {
    "median of pair ratios (in use)": lambda t: float(np.median(t.ratios())),
    "25th pct of pair ratios": lambda t: float(np.percentile(t.ratios(), 25)),
    "ratio of medians": lambda t: float(np.median(t.candidate_ms) / np.median(t.reference_ms)),
    "ratio of 10th pcts": lambda t: float(np.percentile(t.candidate_ms, 10) / np.percentile(t.reference_ms, 10)),
    "ratio of minima": lambda t: float(min(t.candidate_ms) / min(t.reference_ms)),
}


def estimators_report(out: Path) -> str:
    """Per configuration and estimator, the models' max/min over repeats (min / median / max over
    models, and the worst model), from rows stored with --keep-runs."""
    lines = ["| configuration | estimator | spread (min / median / max over models) | worst model |",
             "|---|---|---|---|"]
    for path in sorted(Path(out).expanduser().glob("*.jsonl")):
        rows = [r for r in _rows(path) if "candidate_runs_ms" in r]
        if not rows:
            continue
        for name, estimate in ESTIMATORS.items():
            per: dict[str, list[float]] = {}
            for r in rows:
                per.setdefault(r["model"], []).append(estimate(PairedTimes(r["reference_runs_ms"], r["candidate_runs_ms"])))
            spread = {m: max(v) / min(v) for m, v in per.items() if len(v) > 1}
            if not spread:
                continue
            values, worst = sorted(spread.values()), max(spread, key=spread.get)
            lines.append(f"| {path.stem} | {name} | {values[0]:.3f} / {np.median(values):.3f} / {values[-1]:.3f} | "
                         f"{worst} ({spread[worst]:.3f}) |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--imgsz", default="160", help="image sizes, comma-separated (e.g. 160,320)")
    parser.add_argument("--threads", default="1", help="thread counts, comma-separated (e.g. 1,2)")
    parser.add_argument("--scheme", default="paired",
                        help="single (before issue 16), paired, paired-warm (each timed run after an untimed run of "
                             "the same model), paired-window (warm, the candidate timed for at least 0.2 s), "
                             "or several: single,paired")
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--minutes", type=float, default=30.0, help="spread the repeats over at least this long")
    parser.add_argument("--out", default="~/archprune-runs/latency-repeatability")
    parser.add_argument("--keep-runs", action="store_true",
                        help="store every timed run of a paired measurement (for --estimators)")
    parser.add_argument("--report", action="store_true")
    parser.add_argument("--estimators", action="store_true", help="compare ratio estimators on rows kept with "
                        "--keep-runs; run nothing")
    args = parser.parse_args()
    if args.report:
        print(report(Path(args.out)))
    elif args.estimators:
        print(estimators_report(Path(args.out)))
    else:
        measure(args)


if __name__ == "__main__":
    main()
