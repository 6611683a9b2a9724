"""The ``archprune`` command line. Each subcommand is a thin layer over a Python function."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Callable

from spaces.errors import ArchpruneError


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _cmd_data(args: argparse.Namespace) -> int:
    from evaluators.data import build_digits_det

    yaml_path = build_digits_det(Path(args.out), seed=args.seed, n_train=args.train, n_val=args.val,
                                 imgsz=args.imgsz)
    print(f"wrote {args.train} train + {args.val} val images at {args.imgsz}px: {yaml_path}")
    return 0


def load_for_data(source: str, data: Any) -> Any:
    """A model for evaluating on ``data``: a model *name* takes the data's class count."""
    from spaces.models import load_model
    from spaces.models.families import family_spec

    if family_spec(source) is not None and not Path(source).exists():
        return load_model(source, nc=data.nc)
    return load_model(source)


def _cmd_eval(args: argparse.Namespace) -> int:
    from evaluators.data import load_data_config
    from evaluators.detection_eval import evaluate_detector

    data = load_data_config(args.data)
    model = load_for_data(args.model, data)
    result = evaluate_detector(model, data, imgsz=args.imgsz, split=args.split, batch_size=args.batch,
                               max_images=args.max_images, progress=not args.json and sys.stderr.isatty())
    if args.json:
        print(json.dumps({k: result[k] for k in ("map50_95", "map50", "images", "images_per_s")}))
    else:
        print(f"mAP50-95 {result['map50_95']:.4f}  mAP50 {result['map50']:.4f}  "
              f"images {result['images']}  images/s {result['images_per_s']:.1f}  (imgsz {result['imgsz']}, "
              f"split {args.split})")
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from search.demo import run_demo

    summary = run_demo(out=Path(args.out), as_json=args.json)
    if args.json:
        print(json.dumps(summary))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="archprune", description="Search for pruned or re-designed YOLO detectors.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    data = sub.add_parser("data", help="build the embedded default dataset")
    data.add_argument("name", choices=["digits-det"])
    data.add_argument("--out", required=True, help="folder to write images/, labels/ and data.yaml into")
    data.add_argument("--seed", type=int, default=0)
    data.add_argument("--train", type=_positive_int, default=2000, help="train images (default 2000)")
    data.add_argument("--val", type=_positive_int, default=500, help="val images (default 500)")
    data.add_argument("--imgsz", type=_positive_int, default=160, help="image side in pixels (default 160)")
    data.set_defaults(func=_cmd_data)

    ev = sub.add_parser("eval", help="COCO mAP of a model on a YOLO-format split")
    ev.add_argument("--model", required=True, help="model name (yolov8n ...), Ultralytics .pt or archprune checkpoint")
    ev.add_argument("--data", required=True, help="data.yaml, or 'digits-det' for the embedded set")
    ev.add_argument("--imgsz", type=_positive_int, default=None,
                    help="input size (default: the checkpoint's training size, else 640)")
    ev.add_argument("--split", default="val")
    ev.add_argument("--batch", type=_positive_int, default=16)
    ev.add_argument("--max-images", type=_positive_int, default=None, help="evaluate only the first N images")
    ev.add_argument("--json", action="store_true", help="print one JSON object")
    ev.set_defaults(func=_cmd_eval)

    demo = sub.add_parser("demo", help="the main job on the embedded default (what `make demo` runs)")
    demo.add_argument("--out", default="results/demo", help="where to write the demo's files")
    demo.add_argument("--json", action="store_true", help="print one JSON object")
    demo.set_defaults(func=_cmd_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    handler: Callable[[argparse.Namespace], int] = args.func
    try:
        return handler(args)
    except ArchpruneError as err:
        print(f"archprune: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("archprune: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
