"""What the outcome benchmarks share: the one recovery fine-tune, held-out scoring, resumable steps,
the search CLI, base sources, rank statistics and the monotone map from a proxy to recovered mAP.

``bench/proxy_fidelity.py`` (issue 13, item 4) and ``bench/prune_outcome.py`` (item 5) both score
pruned candidates by the same "truth": mAP50-95 after the same recovery fine-tune (10 epochs, head
distillation from the plain base ``yolov8n-digits``, AdamW lr 5e-4, warmup 0.5 epoch, seed 0),
measured on val images the proxies never see (the proxies score the first 200 val images, their
default; the truth scores images 200 onwards). Every step writes one JSON atomically, so a killed
run resumes without redoing finished work.

``fit_monotone_map`` is written to move into the library later (a calibrated accuracy axis: the
front would show an estimated recovered mAP, labelled as such).
"""
from __future__ import annotations

import argparse
import contextlib
import csv
import json
import math
import os
import shutil
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Sequence

import numpy as np
import torch
from torch import nn

BASE = "yolov8n-digits"  # the plain base and every recovery's teacher
DATA, IMGSZ = "digits-det", 160
PROXY_IMAGES = 200  # the proxies score val[0:200] (AdaptiveBNMapEvaluator / FinetuneMapEvaluator's default)


# -- the recovery every outcome table uses ------------------------------------------------------
@dataclass(frozen=True)
class Recovery:
    """The one recovery fine-tune of this issue's tables; ``held_out_first`` onwards is the truth's slice."""

    epochs: int = 10
    lr0: float = 5e-4
    warmup_epochs: float = 0.5
    seed: int = 0
    teacher: str = BASE
    kd_weight: float = 1.0
    data: str = DATA
    imgsz: int = IMGSZ
    held_out_first: int = PROXY_IMAGES
    held_out_images: int | None = None  # None: every val image from held_out_first on
    val_images: int = PROXY_IMAGES  # the trainer's per-epoch validation (logged only: last.pt is scored)

    def meaning(self) -> dict[str, Any]:
        """The settings that change what a truth means (the per-epoch validation does not)."""
        return {k: v for k, v in asdict(self).items() if k != "val_images"}


def add_recovery_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", default=DATA)
    parser.add_argument("--imgsz", type=int, default=IMGSZ)
    parser.add_argument("--epochs", type=int, default=10, help="recovery fine-tune epochs (default 10)")
    parser.add_argument("--teacher", default=BASE, help="distillation teacher of every recovery (default the plain base)")
    parser.add_argument("--held-out-first", type=int, default=PROXY_IMAGES,
                        help="the truth scores val images from this index on (default 200: the proxies score 0..199)")
    parser.add_argument("--held-out-images", type=int, default=None, help="at most this many of them (default all)")
    parser.add_argument("--recovery-val-images", type=int, default=PROXY_IMAGES,
                        help="the trainer's per-epoch validation images (only logged; default 200)")


def recovery_from_args(args: argparse.Namespace) -> Recovery:
    if args.held_out_first < PROXY_IMAGES:
        raise SystemExit(f"--held-out-first {args.held_out_first}: the proxies score val images 0..{PROXY_IMAGES - 1}; "
                         "the truth must start at or after them")
    return Recovery(epochs=args.epochs, teacher=args.teacher, data=args.data, imgsz=args.imgsz,
                    held_out_first=args.held_out_first, held_out_images=args.held_out_images,
                    val_images=args.recovery_val_images)


def recover(checkpoint: Path, out: Path, recovery: Recovery, epochs: int | None = None,
            log: Callable[[str], None] = print, qat: bool = False) -> Path:
    """Fine-tune ``checkpoint`` into ``out`` (resuming exactly from its last.pt); returns last.pt.

    last.pt, not best.pt, is the recovered model: best is chosen on val, which would leak the
    selection into the score. ``qat``: the same recipe with NNCF's fake-quantizers (last-int8.onnx beside it).
    """
    from evaluators.training.trainer import TrainSettings, train

    settings = TrainSettings(model=str(checkpoint), data=recovery.data, imgsz=recovery.imgsz,
                             epochs=epochs or recovery.epochs, out=str(out), lr0=recovery.lr0,
                             warmup_epochs=recovery.warmup_epochs, seed=recovery.seed, teacher=recovery.teacher,
                             kd_weight=recovery.kd_weight, val_max_images=recovery.val_images, qat=qat)
    train(settings, resume=(out / "last.pt").exists(), log=log)
    return out / "last.pt"


@contextlib.contextmanager
def claimed(folder: Path) -> Iterator[bool]:
    """An exclusive claim on ``folder``'s work, so two processes of one benchmark (one per core, on
    the same ``--out``) share its fine-tunes instead of both running one. Yields False when another
    process holds it; the operating system drops the claim when its holder dies, so a killed run
    leaves nothing to clean up."""
    import fcntl

    folder.mkdir(parents=True, exist_ok=True)
    with (folder / "claim.lock").open("w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def until_all_done(items: Sequence[Any], attempt: Callable[[Any], bool], wait_s: float = 60.0) -> None:
    """Call ``attempt`` on every item until each returns True (done, by this process or another);
    an item another process is working on is retried after the rest, every ``wait_s`` seconds."""
    pending = list(items)
    while pending:
        pending = [item for item in pending if not attempt(item)]
        if pending:
            time.sleep(wait_s)


def epochs_done(run_dir: Path) -> int:
    """Epochs a training run has finished (the rows of its results.csv; 0 before the first)."""
    if not (run_dir / "results.csv").exists():
        return 0
    with (run_dir / "results.csv").open() as handle:
        return sum(1 for _ in csv.DictReader(handle))


def training_seconds(run_dir: Path) -> float:
    """Seconds the run's epochs took (training and validation), from its results.csv."""
    with (run_dir / "results.csv").open() as handle:
        return sum(float(row["seconds"]) for row in csv.DictReader(handle))


def held_out_map(model: nn.Module, recovery: Recovery, recalibrate: bool = False, rect: bool = True) -> dict[str, float]:
    """mAP50-95 / mAP50 on the truth's val slice; ``recalibrate``: adaptive BN first (on a copy);
    ``rect=False``: every image letterboxed square (all a batch-1 model file takes)."""
    import copy

    from evaluators.detection_eval import evaluate_detector

    if recalibrate:
        from evaluators.bn_recalibration import recalibrate_bn
        from evaluators.data import load_data_config
        from evaluators.proxy_accuracy import calibration_images

        model = copy.deepcopy(model)
        recalibrate_bn(model, calibration_images(load_data_config(recovery.data), recovery.imgsz))
    result = evaluate_detector(model, recovery.data, imgsz=recovery.imgsz, split="val", rect=rect,
                               first_image=recovery.held_out_first, max_images=recovery.held_out_images)
    return {"map50_95": float(result["map50_95"]), "map50": float(result["map50"]), "images": int(result["images"]),
            "eval": result["convention"]}


# -- which evaluation a stored result was scored under ---------------------------------------------
LEGACY_EVAL = "single-label NMS, square letterbox"  # every result written before the convention was recorded


def eval_convention() -> str:
    from evaluators.detection_eval import evaluation_convention

    return evaluation_convention()


def is_current(result: dict[str, Any] | None) -> bool:
    """A stored score of the evaluation now in force; anything else is re-scored on the next run (a
    recovery's last.pt is kept, so a truth is re-scored in seconds, never trained again)."""
    return result is not None and result.get("eval", LEGACY_EVAL) == eval_convention()


def read_current(path: Path) -> dict[str, Any] | None:
    result = read_json(path)
    return result if is_current(result) else None


# -- resumable steps ---------------------------------------------------------------------------
def write_json(path: Path, obj: Any) -> None:
    """Atomically: a kill mid-write never leaves a truncated result that a rerun would trust."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj, indent=1))
    os.replace(tmp, path)


def read_json(path: Path) -> Any | None:
    return json.loads(path.read_text()) if path.exists() else None


def check_settings(out: Path, meaning: dict[str, Any]) -> None:
    """Refuse to mix results of other settings into one folder (one line naming what differs)."""
    path = out / "settings.json"
    stored = read_json(path)
    if stored is None:
        write_json(path, meaning)
        return
    differs = [f"{k}: {stored.get(k)!r} -> {meaning.get(k)!r}" for k in sorted(set(stored) | set(meaning))
               if stored.get(k) != meaning.get(k)]
    if differs:
        raise SystemExit(f"{out} holds results of other settings ({'; '.join(differs)}); "
                         "rerun with those settings or pass another --out")


def check_bases(out: Path, bases: dict[str, str]) -> None:
    """A base name keeps its source for the life of a folder; new names may join."""
    path = out / "bases.json"
    stored = read_json(path) or {}
    clash = [f"{n}: {stored[n]} -> {s}" for n, s in bases.items() if n in stored and stored[n] != s]
    if clash:
        raise SystemExit(f"{out} already scored other models under these base names ({'; '.join(clash)}); "
                         "use another name or another --out")
    write_json(path, {**stored, **bases})


class Progress:
    """Progress lines with an ETA from the measured mean time of each kind of step (a guess until
    one of that kind has run in this process)."""

    def __init__(self, todo: dict[str, int], guess_s: dict[str, float]) -> None:
        self.todo, self.guess = dict(todo), dict(guess_s)
        self.total = sum(todo.values())
        self.done, self.spent = 0, {k: [] for k in todo}
        self.start = time.perf_counter()

    def skip(self, kind: str) -> None:
        """A step an earlier run finished: no longer part of this run's count."""
        self.todo[kind] -= 1
        self.total -= 1

    def finish(self, kind: str, label: str, seconds: float, note: str = "") -> None:
        self.todo[kind] -= 1
        self.done += 1
        self.spent[kind].append(seconds)
        guessed = any(n and not self.spent[k] for k, n in self.todo.items())
        eta = sum(n * (float(np.mean(self.spent[k])) if self.spent[k] else self.guess.get(k, 0.0))
                  for k, n in self.todo.items())
        print(f"[{self.done}/{self.total}] {kind} {label}: {note} ({seconds:.0f}s; "
              f"ETA {'~' if guessed else ''}{format_duration(eta)})", flush=True)


def format_duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f}s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def interleaved(n: int) -> list[int]:
    """0..n-1 ordered so that every prefix spreads over the range: both ends, then midpoints of the
    widest gaps (a partial table then covers every FLOPs level)."""
    if n <= 2:
        return list(range(n))
    order, gaps = [0, n - 1], [(0, n - 1)]
    while gaps:
        gaps.sort(key=lambda g: (g[0] - g[1], g[0]))  # widest first
        low, high = gaps.pop(0)
        if high - low < 2:
            continue
        mid = (low + high) // 2
        order.append(mid)
        gaps += [(low, mid), (mid, high)]
    return order


# -- the search, through the CLI as a user runs it ------------------------------------------------
def archprune(*args: str, capture: bool = False) -> str:
    """Run the CLI, its output streamed to stderr (returned instead with ``capture``)."""
    exe = shutil.which("archprune", path=str(Path(sys.executable).parent)) or shutil.which("archprune")
    if exe is None:
        raise SystemExit("archprune is not installed in this environment: `make install` first")
    print("$ archprune " + " ".join(args), file=sys.stderr, flush=True)
    done = subprocess.run([exe, *args], stdout=subprocess.PIPE if capture else sys.stderr, text=True)
    if done.returncode:
        raise SystemExit(f"archprune {args[0]} failed (exit {done.returncode}); rerun to resume")
    return done.stdout or ""


def run_search(run_dir: Path, model: str, recovery: Recovery, objectives: str, trials: int,
               constraints: Sequence[str] = (), proxy: str = "adaptive-bn", importance: str = "l1",
               extra: Sequence[str] = ()) -> Any:
    """Run (or resume: the same command continues the stored run) a channel search; its RunHandle."""
    from search.runs import open_run

    args = ["search", "--model", model, "--data", recovery.data, "--imgsz", str(recovery.imgsz),
            "--objectives", objectives, "--driver", "nsga2", "--trials", str(trials), "--proxy", proxy,
            "--importance", importance, "--run", run_dir.name, "--results", str(run_dir.parent), "--no-progress"]
    for c in constraints:
        args += ["--constraint", c]
    archprune(*args, *extra)
    return open_run(str(run_dir))


# -- bases ---------------------------------------------------------------------------------------
def parse_mapping(text: str, what: str) -> dict[str, str]:
    """``plain=yolov8n-digits,sparse=PATH`` -> {name: value}."""
    out: dict[str, str] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        name, sep, value = item.partition("=")
        if not sep or not name.strip() or not value.strip():
            raise SystemExit(f"{what} {item!r}: write NAME=VALUE, comma-separated")
        out[name.strip()] = value.strip()
    return out


def base_training_epochs(source: str, given: str | None) -> tuple[int | None, str]:
    """Epochs a base cost on top of the plain one, and where the number came from: the user's
    ``--base-epochs``, else the rows of the results.csv beside the checkpoint, else its settings."""
    if given is not None:
        return int(given), "given"
    if source == BASE:
        return 0, "embedded"
    path = Path(source).expanduser()
    if not path.is_file():  # a shipped base: its checkpoint records the epochs of its training
        from spaces.models.zoo import WEIGHTS

        path = WEIGHTS / f"{source}.pt"
        if not path.is_file():
            return None, "unknown"
        epoch = torch.load(path, map_location="cpu", weights_only=True).get("meta", {}).get("epoch")
        return (int(epoch), "shipped checkpoint") if epoch is not None else (None, "unknown")
    beside = path.parent / "results.csv"
    if beside.exists():
        with beside.open() as handle:
            return sum(1 for _ in csv.DictReader(handle)), "results.csv"
    meta = torch.load(path, map_location="cpu", weights_only=True).get("meta", {})
    epochs = (meta.get("settings") or {}).get("epochs")
    return (int(epochs), "checkpoint") if epochs is not None else (None, "unknown")


def channel_space(model: nn.Module, search_settings: Any) -> Any:
    """The channel space a search with these settings builds on ``model``: the same ratios and
    round_to on every base, so a genome means the same channel counts on each."""
    from spaces.channel_space import ChannelSpace

    return ChannelSpace(model, importance=search_settings.importance, round_to=search_settings.round_to,
                        keep_layers=search_settings.keep_layers, seed=search_settings.seed)


# -- statistics -----------------------------------------------------------------------------------
def _spearman_rows(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Spearman's rho of each row pair (average ranks for ties, as scipy.stats.spearmanr)."""
    from scipy.stats import rankdata

    rx, ry = rankdata(x, axis=-1), rankdata(y, axis=-1)
    rx, ry = rx - rx.mean(-1, keepdims=True), ry - ry.mean(-1, keepdims=True)
    den = np.sqrt((rx ** 2).sum(-1) * (ry ** 2).sum(-1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, (rx * ry).sum(-1) / den, np.nan)


def _kendall_rows(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Kendall's tau-b of each row pair (as scipy.stats.kendalltau's default)."""
    sx = np.sign(x[..., :, None] - x[..., None, :])
    sy = np.sign(y[..., :, None] - y[..., None, :])
    den = np.sqrt(np.abs(sx).sum((-1, -2)) * np.abs(sy).sum((-1, -2)))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, (sx * sy).sum((-1, -2)) / den, np.nan)


def rank_stats(proxy: Sequence[float], truth: Sequence[float], resamples: int = 2000, seed: int = 0,
               value_error: bool = True) -> dict[str, Any]:
    """Spearman and Kendall of ``proxy`` against ``truth`` with bootstrap 95% intervals (candidates
    resampled with replacement, seeded; degenerate resamples skipped), and mean |proxy - truth|."""
    from scipy import stats

    x, y = np.asarray(proxy, dtype=float), np.asarray(truth, dtype=float)
    n = len(x)
    nan2 = (math.nan, math.nan)
    out: dict[str, Any] = {"n": n, "spearman": math.nan, "kendall": math.nan, "spearman_ci": nan2,
                           "kendall_ci": nan2,
                           "mae": float(np.mean(np.abs(x - y))) if n and value_error else math.nan}
    if n < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return out
    out["spearman"] = float(stats.spearmanr(x, y).statistic)
    out["kendall"] = float(stats.kendalltau(x, y).statistic)
    idx = np.random.default_rng(seed).integers(0, n, size=(resamples, n))
    for name, fn in (("spearman", _spearman_rows), ("kendall", _kendall_rows)):
        boot = fn(x[idx], y[idx])
        boot = boot[np.isfinite(boot)]
        if len(boot):
            out[f"{name}_ci"] = (float(np.percentile(boot, 2.5)), float(np.percentile(boot, 97.5)))
    return out


def fit_monotone_map(proxy: Sequence[float], truth: Sequence[float]) -> Callable[[Sequence[float]], np.ndarray]:
    """A non-decreasing map from a proxy's scores to recovered mAP, fitted on the few candidates of
    a run whose recovery fine-tune was run (scikit-learn's IsotonicRegression).

    Between fitted points the map interpolates linearly; outside them it clips to the end values,
    so it never extrapolates past what was measured. It keeps the proxy's order (up to ties where
    the fit pools points), so it fixes the proxy's *value*, not its ranking: its use is an axis
    that reads in recovered mAP ("estimated recovered mAP50-95"), not a better ranking.

    >>> f = fit_monotone_map([0.0, 0.1, 0.3], [0.5, 0.6, 0.8])
    >>> [round(float(v), 3) for v in f([0.05, 0.2, 1.0])]
    [0.55, 0.7, 0.8]
    """
    from sklearn.isotonic import IsotonicRegression

    iso = IsotonicRegression(increasing=True, out_of_bounds="clip")
    iso.fit(np.asarray(proxy, dtype=float), np.asarray(truth, dtype=float))
    return lambda values: iso.predict(np.asarray(values, dtype=float))


def calibrated_stats(proxy: Sequence[float], truth: Sequence[float], flops: Sequence[float], k: int = 4,
                     repeats: int = 200, seed: int = 0) -> dict[str, Any]:
    """The proxy mapped to recovered mAP by ``fit_monotone_map`` fitted on ``k`` candidates, scored on
    the others: MAE, Spearman and Kendall, mean and 2.5 / 97.5 percentiles over ``repeats`` draws.

    The k fitted candidates are drawn one from each of k FLOPs strata (what a user would fine-tune:
    a few candidates spread over the front), so no draw fits on one end and scores the other.
    """
    x, y, f = (np.asarray(v, dtype=float) for v in (proxy, truth, flops))
    n = len(x)
    if n < k + 3:
        return {"n": n, "k": k, "held_out": 0}
    strata = np.array_split(np.argsort(f, kind="stable"), k)
    rng = np.random.default_rng(seed)
    draws: dict[str, list[float]] = {"mae": [], "spearman": [], "kendall": []}
    for _ in range(repeats):
        fit = np.array([rng.choice(s) for s in strata])
        rest = np.setdiff1d(np.arange(n), fit)
        estimate = fit_monotone_map(x[fit], y[fit])(x[rest])
        draws["mae"].append(float(np.mean(np.abs(estimate - y[rest]))))
        draws["spearman"].append(float(_spearman_rows(estimate, y[rest])))
        draws["kendall"].append(float(_kendall_rows(estimate, y[rest])))
    out: dict[str, Any] = {"n": n, "k": k, "held_out": n - k, "repeats": repeats}
    for name, values in draws.items():
        v = np.asarray(values)
        v = v[np.isfinite(v)]
        out[name] = float(v.mean()) if len(v) else math.nan
        out[f"{name}_ci"] = (float(np.percentile(v, 2.5)), float(np.percentile(v, 97.5))) if len(v) else (math.nan,) * 2
    return out


# -- markdown -------------------------------------------------------------------------------------
def num(value: Any, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "—"
    return f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def with_ci(value: float, ci: Iterable[float], digits: int = 3) -> str:
    low, high = ci
    if not math.isfinite(value):
        return "—"
    return f"{value:.{digits}f} [{num(low, digits - 1)}, {num(high, digits - 1)}]"


def md_table(headers: Sequence[str], rows: Sequence[Sequence[Any]], right: Iterable[int] = ()) -> str:
    """A markdown table; columns in ``right`` are right-aligned."""
    right = set(right)
    align = ["---:" if i in right else "---" for i in range(len(headers))]
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join(align) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)
