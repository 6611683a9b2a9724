"""Train or fine-tune a YOLO detector: warmup + cosine schedule, EMA, per-epoch validation,
best/last checkpoints in archprune's format, and resume from the last completed epoch.

Every source of randomness is derived from the seed and the epoch (model init, data order,
augmentation), so a run killed mid-epoch and resumed ends where an uninterrupted run ends.
"""
from __future__ import annotations

import csv
import dataclasses
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Protocol

import torch
from torch import Tensor, nn
from tqdm import tqdm

from evaluators.data import DataConfig, DetectionDataset, collate_detections, load_data_config
from evaluators.detection_eval import check_imgsz, evaluate_detector, model_for_data
from spaces.errors import ArchpruneError
from spaces.models import YOLODetector, load_model, save_checkpoint
from spaces.models.checkpoint import detector_from_checkpoint
from spaces.output_files import atomic_output, check_output_folder, make_folder

from .augment import AugmentConfig, AugmentedDataset
from .ema import ModelEMA
from .extension import TrainingExtension
from .loss import DetectionLoss

# Settings that must match for --resume to continue the same run (epochs may change: it stretches
# or shortens the cosine schedule from the resumed epoch on).
_RESUME_KEYS = ("model", "data", "imgsz", "batch", "optimizer", "lr0", "seed", "augment", "teacher", "kd_weight",
                "feature_kd_weight", "sparsity", "sparsity_weight", "elastic", "elastic_samples", "elastic_weight",
                "importance", "elastic_depth", "qat")


@dataclass(frozen=True)
class TrainSettings:
    model: str
    data: str
    imgsz: int
    epochs: int
    out: str
    batch: int = 32
    optimizer: str = "AdamW"  # or "SGD"
    lr0: float | None = None  # default 0.002 for AdamW, 0.01 for SGD
    lrf: float = 0.01  # final lr = lr0 * lrf (cosine)
    momentum: float = 0.937
    weight_decay: float = 5e-4
    warmup_epochs: float = 2.0
    seed: int = 0
    workers: int = 0
    augment: bool = True
    val_max_images: int | None = None
    teacher: str | None = None
    kd_weight: float = 1.0
    feature_kd_weight: float = 0.0
    sparsity: str | None = None  # slim | group-norm | growing-reg: sparse training (see sparsity.py)
    sparsity_weight: float | None = None  # per image; default per regularizer
    elastic: bool = False  # elastic-width training over the base's channel space (see elastic.py)
    elastic_samples: int = 2  # random sub-networks per step, besides the largest and the smallest
    elastic_weight: float = 1.0  # the sub-networks' mean loss against the largest network's
    importance: str = "l1"  # the channel order an elastic run trains prefixes of
    elastic_depth: bool = False  # elastic runs also sample depth genes (blocks kept per C2f / C3k2 / C3k)
    qat: bool = False  # quantization-aware: train with NNCF's fake-quantizers, write INT8 ONNX (see qat.py)

    def learning_rate(self) -> float:
        return self.lr0 if self.lr0 is not None else (0.002 if self.optimizer == "AdamW" else 0.01)


class Distiller(Protocol):
    """An extra loss term computed from the student's train-mode outputs (knowledge distillation)."""

    def trainable_parameters(self) -> list[nn.Parameter]: ...

    def loss(self, images: Tensor, student_feats: list[Tensor]) -> Tensor: ...

    def adapter_state(self) -> dict[str, Any]: ...

    def load_adapter_state(self, state: dict[str, Any]) -> None: ...


def _param_groups(model: nn.Module, decay: float) -> list[dict[str, Any]]:
    """Weight decay on conv/linear weights only: not on biases, not on BatchNorm scales."""
    weights, norms, biases = [], [], []
    for module in model.modules():
        for name, param in module.named_parameters(recurse=False):
            if not param.requires_grad:
                continue
            if name == "bias":
                biases.append(param)
            elif isinstance(module, nn.BatchNorm2d):
                norms.append(param)
            else:
                weights.append(param)
    return [{"params": weights, "weight_decay": decay}, {"params": norms, "weight_decay": 0.0},
            {"params": biases, "weight_decay": 0.0}]


def make_optimizer(model: nn.Module, settings: TrainSettings, extra: list[nn.Parameter] = ()) -> torch.optim.Optimizer:
    groups = _param_groups(model, settings.weight_decay)
    if extra:
        groups.append({"params": list(extra), "weight_decay": 0.0})
    lr = settings.learning_rate()
    if settings.optimizer == "AdamW":
        return torch.optim.AdamW(groups, lr=lr, betas=(settings.momentum, 0.999))
    if settings.optimizer == "SGD":
        return torch.optim.SGD(groups, lr=lr, momentum=settings.momentum, nesterov=True)
    raise ArchpruneError(f"unknown optimizer {settings.optimizer!r}; use AdamW or SGD")


def lr_at(step: int, total: int, warmup: int, settings: TrainSettings) -> float:
    """Linear warmup, then cosine from lr0 to lr0 * lrf over the whole run."""
    frac = step / max(total, 1)
    lr = settings.learning_rate() * (((1 - math.cos(math.pi * frac)) / 2) * (settings.lrf - 1) + 1)
    return lr * min(1.0, (step + 1) / warmup) if warmup else lr


def _model_for(settings: TrainSettings, data: DataConfig) -> YOLODetector:
    model, fresh = model_for_data(settings.model, data, seed=settings.seed)
    if fresh:
        model.head.bias_init(settings.imgsz)  # priors for training from scratch, never for a checkpoint
    return model


def _training_set(data: DataConfig, settings: TrainSettings) -> DetectionDataset:
    dataset = DetectionDataset(data.images("train"), settings.imgsz, nc=data.nc)
    if sum(len(cls) for cls, _ in dataset.labels) == 0:
        raise ArchpruneError(f"no labels at all in the train split of {data.yaml_path}: YOLO labels are read "
                             "from a 'labels' folder beside 'images' (images/train/x.jpg -> labels/train/x.txt)")
    return dataset


def _check_resume(stored: dict[str, Any], settings: TrainSettings, last: Path) -> None:
    defaults = {f.name: f.default for f in dataclasses.fields(TrainSettings)}  # keys older runs did not store
    differs = [f"{k}: {stored.get(k, defaults[k])!r} -> {getattr(settings, k)!r}" for k in _RESUME_KEYS
               if stored.get(k, defaults[k]) != getattr(settings, k)]
    if differs:
        raise ArchpruneError(f"cannot resume {last}: settings differ ({'; '.join(differs)}); "
                             "rerun with the original settings or a new --out")


def _loader(dataset: torch.utils.data.Dataset, settings: TrainSettings, epoch: int) -> torch.utils.data.DataLoader:
    order = torch.Generator().manual_seed(settings.seed * 100_003 + epoch)  # same order after a resume
    return torch.utils.data.DataLoader(
        dataset, batch_size=settings.batch, sampler=torch.randperm(len(dataset), generator=order).tolist(),
        collate_fn=collate_detections, num_workers=settings.workers, persistent_workers=False)


def _distiller_for(student: YOLODetector, settings: TrainSettings, data: DataConfig) -> Distiller | None:
    if not settings.teacher or (settings.kd_weight <= 0 and settings.feature_kd_weight <= 0):
        return None
    from .distill import HeadDistiller

    teacher = load_model(settings.teacher)
    nc = getattr(teacher, "nc", None)
    if nc is not None and nc != data.nc:  # named as the teacher: a bare class count reads as the student
        raise ArchpruneError(f"teacher {settings.teacher} has {nc} classes but data {data.yaml_path} has "
                             f"{data.nc}; distil from a teacher trained on the same classes "
                             "(e.g. the unpruned model the student was pruned from)")
    return HeadDistiller(student, teacher, weight=settings.kd_weight, feature_weight=settings.feature_kd_weight)


def _extension_for(model: YOLODetector, settings: TrainSettings) -> TrainingExtension:
    if settings.elastic and settings.sparsity:
        raise ArchpruneError("--elastic and --sparsity are two ways to make a prunable base: choose one")
    if settings.qat and (settings.elastic or settings.sparsity):
        raise ArchpruneError("--qat fine-tunes the model you will ship: train the prunable base first, without --qat")
    if settings.elastic_depth and not settings.elastic:
        raise ArchpruneError("--elastic-depth samples depth inside elastic training: add --elastic")
    if settings.elastic:
        from .elastic import ElasticTrainer

        return ElasticTrainer(model, samples=settings.elastic_samples, seed=settings.seed,
                              importance=settings.importance, weight=settings.elastic_weight,
                              depth=settings.elastic_depth)
    if settings.sparsity:
        from .sparsity import SparsityRegularizer

        return SparsityRegularizer(model, settings.sparsity, settings.sparsity_weight, settings.batch)
    return TrainingExtension()


@dataclass
class _Run:
    """What one training run carries from step to step."""

    model: YOLODetector
    ema: ModelEMA
    optimizer: torch.optim.Optimizer
    loss_fn: DetectionLoss
    distiller: Distiller | None
    extension: TrainingExtension

    def step_loss(self, batch: dict[str, Any], feats: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """The plain step's loss to backpropagate and its [box, cls, dfl, kd] parts."""
        loss, parts = self.loss_fn(feats, batch["batch_idx"], batch["cls"], batch["boxes"])
        kd = self.distiller.loss(batch["img"], feats) if self.distiller else loss.new_zeros(())
        # kd is per image; the detection loss is summed
        return loss + kd * batch["img"].shape[0], torch.cat((parts, kd.detach().view(1)))


def _start_or_resume(settings: TrainSettings, data: DataConfig, last: Path,
                     resume: bool) -> tuple[YOLODetector, dict[str, Any] | None]:
    if not resume:
        if last.exists():
            raise ArchpruneError(f"{last} exists: pass --resume to continue that run, or choose another --out")
        model = _model_for(settings, data)
        if settings.qat:  # fake-quantizers calibrated on the training images adaptive BN uses
            from evaluators.proxy_accuracy import calibration_images

            from .qat import quantize_for_training

            model = quantize_for_training(model, calibration_images(data, settings.imgsz), settings.imgsz)
        return model, None
    if not last.exists():
        raise ArchpruneError(f"nothing to resume: {last} does not exist (start without --resume)")
    raw = torch.load(last, map_location="cpu", weights_only=True)
    state = raw["meta"]["train_state"]
    _check_resume(state["settings"], settings, last)
    model = detector_from_checkpoint(raw, last)  # the architecture; raw (non-EMA) weights follow
    if settings.qat:  # the same quantizers, rebuilt from their stored layout before their values load
        from .qat import restore_quantizers

        model = restore_quantizers(model, state["qat"], settings.imgsz)
    model.load_state_dict(state["model"])
    return model, state


def _run_epoch(run: _Run, dataset: AugmentedDataset, settings: TrainSettings, epoch: int, nb: int,
               total: int, warmup: int) -> tuple[list[float], float]:
    """One pass over the data; returns the mean [box, cls, dfl, kd] losses and the last lr."""
    dataset.set_epoch(epoch)
    run.model.train()
    sums, seen, lr = torch.zeros(4), 0, 0.0
    show_bar = sys.stderr.isatty()
    bar = tqdm(_loader(dataset, settings, epoch), total=nb, desc=f"epoch {epoch + 1}/{settings.epochs}",
               disable=not show_bar, leave=False, unit="batch")
    for i, batch in enumerate(bar):
        lr = lr_at(epoch * nb + i, total, warmup, settings)
        for group in run.optimizer.param_groups:
            group["lr"] = lr
        run.optimizer.zero_grad(set_to_none=True)
        parts = run.extension.forward_backward(run.model, batch, run.step_loss, epoch, i)
        if parts is None:
            loss, parts = run.step_loss(batch, run.model(batch["img"]))
            loss.backward()
        nn.utils.clip_grad_norm_(run.model.parameters(), max_norm=10.0)
        run.extension.after_backward(run.model)  # after clipping: a penalty is not clipped away
        run.optimizer.step()
        run.ema.update(run.model)
        sums += parts
        seen += 1
        if show_bar:
            avg = (sums / seen).tolist()
            bar.set_postfix(box=f"{avg[0]:.3f}", cls=f"{avg[1]:.3f}", dfl=f"{avg[2]:.3f}", lr=f"{lr:.2e}")
    return (sums / max(seen, 1)).tolist(), lr


def train(settings: TrainSettings, resume: bool = False, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Run (or resume) training; returns the best epoch's metrics and the checkpoint paths.

    With ``settings.teacher`` and a positive ``kd_weight`` (or ``feature_kd_weight``), the
    detection loss gains a distillation term from that teacher (fine-tuning a pruned model).
    """
    out = check_output_folder(settings.out)  # before the work: a file in the way costs nothing
    last, best = out / "last.pt", out / "best.pt"
    data = load_data_config(settings.data)
    check_imgsz(settings.imgsz)
    train_set = _training_set(data, settings)
    data.images("val")  # fail now, not after the first epoch, if there is no val split

    model, state = _start_or_resume(settings, data, last, resume)
    model.imgsz = settings.imgsz
    model.train()
    ema = ModelEMA(model)  # before the distiller hooks the student, so the copy carries no hooks
    distiller = _distiller_for(model, settings, data)
    extension = _extension_for(model, settings)  # after the EMA copy: elastic masks hook the model
    run = _Run(model, ema, make_optimizer(model, settings, distiller.trainable_parameters() if distiller else []),
               DetectionLoss(model.head), distiller, extension)
    start_epoch, history, best_map = 0, [], -1.0
    if state is not None:
        run.optimizer.load_state_dict(state["optimizer"])
        ema.ema.load_state_dict(state["ema"])
        ema.updates = state["ema_updates"]
        if distiller is not None and state.get("distiller"):
            distiller.load_adapter_state(state["distiller"])
        extension.load_state(state.get("extension") or {})
        start_epoch, history, best_map = state["epoch"] + 1, state["history"], state["best_map"]
    dataset = AugmentedDataset(train_set, settings.seed, AugmentConfig() if settings.augment else
                               AugmentConfig(fliplr=0, hsv_h=0, hsv_s=0, hsv_v=0, scale=0, translate=0))
    nb = math.ceil(len(dataset) / settings.batch)
    total, warmup = settings.epochs * nb, max(round(settings.warmup_epochs * nb), 20)
    make_folder(out)
    run_start = time.perf_counter()
    if start_epoch >= settings.epochs:
        log(f"{last} already finished {start_epoch} epoch(s); nothing to do")

    for epoch in range(start_epoch, settings.epochs):
        t0 = time.perf_counter()
        avg, lr = _run_epoch(run, dataset, settings, epoch, nb, total, warmup)
        extra = extension.end_epoch(run.model)
        metrics = evaluate_detector(ema.ema, data, imgsz=settings.imgsz, split="val",
                                    max_images=settings.val_max_images)
        history.append({"epoch": epoch + 1, "box": avg[0], "cls": avg[1], "dfl": avg[2], "kd": avg[3],
                        "map50_95": metrics["map50_95"], "map50": metrics["map50"], "lr": lr, **extra,
                        "seconds": time.perf_counter() - t0})
        improved = metrics["map50_95"] > best_map
        best_map = max(best_map, metrics["map50_95"])
        _save_epoch(run, settings, epoch, history, best_map, improved, out)
        eta = (time.perf_counter() - run_start) / (epoch + 1 - start_epoch) * (settings.epochs - epoch - 1)
        log(f"epoch {epoch + 1}/{settings.epochs}  loss box {avg[0]:.3f} cls {avg[1]:.3f} dfl {avg[2]:.3f}"
            + (f" kd {avg[3]:.3f}" if distiller or settings.elastic else "")
            + "".join(f" {k} {v:.3f}" for k, v in extra.items())
            + f"  mAP50-95 {metrics['map50_95']:.4f} mAP50 {metrics['map50']:.4f}  {history[-1]['seconds']:.0f}s"
            + f"  ETA {eta / 60:.1f} min" + ("  *best*" if improved else ""))
    best_row = max(history, key=lambda r: r["map50_95"]) if history else {}
    return {"best": str(best), "last": str(last), "best_epoch": best_row.get("epoch"),
            "map50_95": best_row.get("map50_95"), "map50": best_row.get("map50"), "epochs": len(history)}


def _save_epoch(run: _Run, settings: TrainSettings, epoch: int, history: list[dict[str, Any]], best_map: float,
                improved: bool, out: Path) -> None:
    """best.pt when the EMA improved; last.pt (with everything --resume needs) every epoch."""
    row = history[-1]
    meta = {"epoch": epoch + 1, "map50_95": row["map50_95"], "map50": row["map50"],
            "settings": dataclasses.asdict(settings)}
    run.ema.ema.imgsz, run.ema.ema.names = settings.imgsz, list(run.model.names)
    run.extension.prepare_checkpoint(run.ema.ema)
    if improved:
        save_checkpoint(run.ema.ema, out / "best.pt", meta=meta)
    train_state = {"epoch": epoch, "model": run.model.state_dict(), "ema": run.ema.ema.state_dict(),
                   "ema_updates": run.ema.updates, "optimizer": run.optimizer.state_dict(), "history": history,
                   "best_map": best_map, "settings": dataclasses.asdict(settings),
                   "distiller": run.distiller.adapter_state() if run.distiller else None,
                   "extension": run.extension.state()}
    if settings.qat:
        from .qat import export_int8_onnx, quantizer_config

        train_state["qat"] = quantizer_config(run.model)
    save_checkpoint(run.ema.ema, out / "last.pt", meta={**meta, "train_state": train_state})  # atomic write
    if settings.qat:  # the product of a QAT run: the EMA model as INT8 ONNX
        export_int8_onnx(run.ema.ema, out / "last-int8.onnx", settings.imgsz)
        if improved:
            export_int8_onnx(run.ema.ema, out / "best-int8.onnx", settings.imgsz)
    _write_history(out / "results.csv", history)


def _write_history(path: Path, history: list[dict[str, Any]]) -> None:
    with atomic_output(path) as tmp, tmp.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(history[0]))
        writer.writeheader()
        writer.writerows(history)
