"""Training throughput (images/s) of the embedded model's recipe on this machine.

Times full training steps (data loading with augmentation, forward, loss, backward, optimizer
step, EMA update) at the recipe's settings, after a few warm-up steps.

    python bench/train_throughput.py --model yolov8n --imgsz 160 --batch 32 --steps 20
"""
from __future__ import annotations

import argparse
import json
import time

import torch

from evaluators.data import DetectionDataset, collate_detections, load_data_config
from evaluators.latency import cpu_model
from evaluators.training.augment import AugmentedDataset
from evaluators.training.ema import ModelEMA
from evaluators.training.loss import DetectionLoss
from evaluators.training.trainer import TrainSettings, make_optimizer
from spaces.models import build_model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="yolov8n")
    parser.add_argument("--data", default="digits-det")
    parser.add_argument("--imgsz", type=int, default=160)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    args = parser.parse_args()

    data = load_data_config(args.data)
    model = build_model(args.model, nc=data.nc).train()
    settings = TrainSettings(model=args.model, data=args.data, imgsz=args.imgsz, epochs=1, out="", batch=args.batch)
    optimizer = make_optimizer(model, settings)
    ema = ModelEMA(model)
    loss_fn = DetectionLoss(model.head)
    dataset = AugmentedDataset(DetectionDataset(data.images("train"), args.imgsz, nc=data.nc), seed=0)
    loader = torch.utils.data.DataLoader(dataset, batch_size=args.batch, shuffle=True, collate_fn=collate_detections,
                                         generator=torch.Generator().manual_seed(0))
    batches = iter(loader)
    images, start = 0, 0.0
    for step in range(args.warmup + args.steps):
        if step == args.warmup:
            images, start = 0, time.perf_counter()
        batch = next(batches)
        loss, _ = loss_fn(model(batch["img"]), batch["batch_idx"], batch["cls"], batch["boxes"])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        ema.update(model)
        images += batch["img"].shape[0]
    seconds = time.perf_counter() - start
    print(json.dumps({"model": args.model, "imgsz": args.imgsz, "batch": args.batch, "steps": args.steps,
                      "images_per_s": images / seconds, "seconds_per_step": seconds / args.steps,
                      "threads": torch.get_num_threads(), "cpu": cpu_model()}))


if __name__ == "__main__":
    main()
