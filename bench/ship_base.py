"""Write a trained base into the package as an embedded model (fp16, plain data, no train state).

    python bench/ship_base.py ~/archprune-runs/bases/elastic/last.pt yolov8n-digits-elastic

The name must already be in spaces/models/zoo.py (with the command that reproduces it). The
file keeps what a search needs: the architecture, the weights, the training size and classes,
and an elastic base's channel order; the optimizer and EMA state stay behind.
"""
from __future__ import annotations

import argparse

import torch

from spaces.models import load_model, save_checkpoint
from spaces.models.zoo import EMBEDDED, WEIGHTS


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint", help="a training run's last.pt (or best.pt)")
    parser.add_argument("name", choices=sorted(EMBEDDED))
    args = parser.parse_args()
    entry = EMBEDDED[args.name]
    model = load_model(args.checkpoint)
    meta = torch.load(args.checkpoint, map_location="cpu", weights_only=True)["meta"]
    settings = meta.get("settings", {})
    path = save_checkpoint(model, WEIGHTS / entry.file, half=True, meta={
        "reproduce": entry.reproduce, "seed": settings.get("seed"), "epoch": meta.get("epoch"),
        "val_map50_95": meta.get("map50_95"), "val_map50": meta.get("map50"),
        "data": "digits-det (seed 0, 2000/500, 160 px)"})
    print(f"wrote {path} ({path.stat().st_size / 2**20:.1f} MiB) from {args.checkpoint}, epoch {meta.get('epoch')}, "
          f"val mAP50-95 {meta.get('map50_95'):.4f}")


if __name__ == "__main__":
    main()
