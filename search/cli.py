"""The ``archprune`` command line. Each subcommand is a thin layer over a Python function."""
from __future__ import annotations

import argparse
import json
import sys
import warnings
from pathlib import Path
from typing import Any, Callable

from evaluators.choice_names import DEFAULT_EVAL_NMS, NMS_RULES
from search.cli_latency import add_latency_parser
from search.cli_latency_table import add_latency_table_parser
from search.cli_search import add_bench_parser, add_search_parsers
from search.cli_types import OneLineParser, image_size, non_negative_float, non_negative_int, positive_int
from spaces.errors import ArchpruneError
from spaces.output_files import os_error_message
from spaces.importances import IMPORTANCES, needs_gradients


def _cmd_data(args: argparse.Namespace) -> int:
    from evaluators.data import build_digits_det

    yaml_path = build_digits_det(Path(args.out), seed=args.seed, n_train=args.train, n_val=args.val,
                                 imgsz=args.imgsz)
    print(f"wrote {args.train} train + {args.val} val images at {args.imgsz}px: {yaml_path}")
    return 0


def _cmd_eval(args: argparse.Namespace) -> int:
    from evaluators.data import load_data_config
    from evaluators.detection_eval import evaluate_detector, model_for_data

    data = load_data_config(args.data)
    imgsz, rect = args.imgsz, True
    if args.model.lower().endswith(".onnx"):  # an exported file, fp32 or INT8, run by onnxruntime
        from evaluators.onnx_detector import OnnxDetector

        model = OnnxDetector(args.model)
        if model.fixed is not None:  # its own input size, on square letterboxed images as deployed
            if args.imgsz and args.imgsz != model.imgsz:
                raise ArchpruneError(f"{args.model} takes {model.fixed[1]}x{model.fixed[2]} images: drop --imgsz "
                                     f"{args.imgsz} (or export at that size)")
            if model.imgsz is None:
                raise ArchpruneError(f"{args.model} takes non-square {model.fixed[1]}x{model.fixed[2]} images; "
                                     "archprune scores square inputs")
            imgsz, rect = model.imgsz, False
    else:
        model, _ = model_for_data(args.model, data)
    result = evaluate_detector(model, data, imgsz=imgsz, split=args.split, batch_size=args.batch,
                               max_images=args.max_images, progress=not args.json and sys.stderr.isatty(),
                               nms=args.nms, rect=rect)
    if args.json:
        print(json.dumps({k: result[k] for k in ("map50_95", "map50", "images", "images_per_s", "nms")}))
    else:
        print(f"mAP50-95 {result['map50_95']:.4f}  mAP50 {result['map50']:.4f}  "
              f"images {result['images']}  images/s {result['images_per_s']:.1f}  (imgsz {result['imgsz']}, "
              f"split {args.split}, {args.nms} NMS{'' if rect else ', square letterbox'})")
    return 0


def _train_settings(args: argparse.Namespace, **extra: Any) -> Any:
    from evaluators.training.trainer import TrainSettings

    from evaluators.training.sparsity import check_sparsity

    check_sparsity(args.sparsity, args.sparsity_weight)
    return TrainSettings(model=args.model, data=args.data, imgsz=args.imgsz, epochs=args.epochs, out=args.out,
                         batch=args.batch, optimizer=args.optimizer, lr0=args.lr0, seed=args.seed,
                         workers=args.workers, val_max_images=args.val_max_images, sparsity=args.sparsity,
                         sparsity_weight=args.sparsity_weight, elastic=args.elastic,
                         elastic_samples=args.elastic_samples, elastic_weight=args.elastic_weight,
                         importance=args.importance, elastic_depth=args.elastic_depth, qat=args.qat, **extra)


def _cmd_train(args: argparse.Namespace) -> int:
    from evaluators.training.trainer import train

    result = train(_train_settings(args), resume=args.resume)
    print(f"best mAP50-95 {result['map50_95']:.4f} (epoch {result['best_epoch']}): {result['best']}")
    return 0


def _cmd_finetune(args: argparse.Namespace) -> int:
    from evaluators.training.trainer import train
    from spaces.models import load_model

    if args.imgsz is None:  # default: the size the student was trained at
        args.imgsz = load_model(args.model).imgsz
        if args.imgsz is None:
            raise ArchpruneError(f"{args.model} records no training image size; pass --imgsz")
    if args.out is None:
        args.out = str(Path("results") / f"finetune-{Path(args.model).stem}")
    settings = _train_settings(args, teacher=args.teacher, kd_weight=args.kd_weight,
                               feature_kd_weight=args.feature_kd_weight, warmup_epochs=args.warmup_epochs)
    if not args.teacher:
        print("no --teacher given: fine-tuning without distillation", file=sys.stderr)
    result = train(settings, resume=args.resume)
    print(f"best mAP50-95 {result['map50_95']:.4f} (epoch {result['best_epoch']}): {result['best']}")
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from search.demo import DEMO_TRIALS, run_demo

    args.trials = args.trials or DEMO_TRIALS
    run_demo(out=Path(args.out), trials=args.trials, progress=sys.stderr.isatty())
    return 0


def _add_training_args(p: argparse.ArgumentParser, out_default: str | None) -> None:
    p.add_argument("--model", required=True, help="model name (yolov8n ...: random init) or checkpoint to start from")
    p.add_argument("--data", required=True, help="data.yaml, or 'digits-det'")
    p.add_argument("--imgsz", type=image_size, required=out_default is None,
                   help="input size" + ("" if out_default is None else " (default: the size the model was trained at)"))
    p.add_argument("--epochs", type=positive_int, required=True)
    p.add_argument("--out", required=out_default is None, default=out_default,
                   help="run folder: best.pt, last.pt, results.csv")
    p.add_argument("--batch", type=positive_int, default=32)
    p.add_argument("--optimizer", choices=["AdamW", "SGD"], default="AdamW")
    p.add_argument("--lr0", type=float, default=None, help="initial learning rate (train: 0.002 AdamW, 0.01 SGD; finetune: 0.0005)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--workers", type=non_negative_int, default=0, help="data-loading worker processes (default 0)")
    p.add_argument("--val-max-images", type=positive_int, default=None, help="validate on the first N images only")
    p.add_argument("--sparsity", choices=["slim", "group-norm", "growing-reg"], default=None,
                   help="sparse training for pruning: L1 on BN scales (slim), DepGraph group norm, or growing "
                        "regularization (Torch-Pruning's regularizers over the channel space's groups)")
    p.add_argument("--sparsity-weight", type=non_negative_float, default=None,
                   help="regularization weight per image (default: slim 1e-4, group-norm 5e-4, growing-reg 1e-5)")
    p.add_argument("--elastic", action="store_true",
                   help="elastic-width training: every step trains the largest, the smallest and "
                        "--elastic-samples random sub-networks of the model's channel space, distilling "
                        "from the largest; the channel order is recorded in the checkpoint")
    p.add_argument("--elastic-samples", type=non_negative_int, default=2,
                   help="random sub-networks per step with --elastic (default 2)")
    p.add_argument("--elastic-weight", type=non_negative_float, default=1.0,
                   help="with --elastic: weight of the sub-networks' mean loss against the largest network's "
                        "(default 1; higher trains sub-networks harder at the full model's expense)")
    p.add_argument("--elastic-depth", action="store_true",
                   help="with --elastic: sub-networks also drop trailing C2f / C3k2 / C3k blocks (the depth "
                        "genes of search --depth), so depth-pruned candidates of the result are scoreable too")
    p.add_argument("--importance", choices=[i for i in IMPORTANCES if not needs_gradients(i)], default="l1",
                   help="with --elastic: the criterion that orders each group's channels once, before training "
                        "(default l1); sub-networks keep prefixes of that order")
    p.add_argument("--qat", action="store_true",
                   help="quantization-aware training (NNCF fake-quantizers, the head's decode float); writes "
                        "last-int8.onnx / best-int8.onnx beside the checkpoints (pip install nncf torchao)")
    p.add_argument("--resume", action="store_true",
                   help="continue the run in --out from its last completed epoch (same settings; "
                        "a different --epochs re-stretches the schedule)")


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="archprune", description="Search for pruned or re-designed YOLO detectors.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    data = sub.add_parser("data", help="build the embedded default dataset")
    data.add_argument("name", choices=["digits-det"])
    data.add_argument("--out", required=True, help="folder to write images/, labels/ and data.yaml into")
    data.add_argument("--seed", type=int, default=0)
    data.add_argument("--train", type=positive_int, default=2000, help="train images (default 2000)")
    data.add_argument("--val", type=positive_int, default=500, help="val images (default 500)")
    data.add_argument("--imgsz", type=image_size, default=160, help="image side in pixels (default 160)")
    data.set_defaults(func=_cmd_data)

    ev = sub.add_parser("eval", help="COCO mAP of a model on a YOLO-format split")
    ev.add_argument("--model", required=True, help="model name (yolov8n ...), Ultralytics .pt, archprune checkpoint, "
                                                   "or an exported .onnx (fp32 or INT8, run by onnxruntime)")
    ev.add_argument("--data", required=True, help="data.yaml, or 'digits-det' for the embedded set")
    ev.add_argument("--imgsz", type=image_size, default=None,
                    help="input size (default: the checkpoint's training size, else 640)")
    ev.add_argument("--split", default="val")
    ev.add_argument("--batch", type=positive_int, default=16)
    ev.add_argument("--max-images", type=positive_int, default=None, help="evaluate only the first N images")
    ev.add_argument("--nms", choices=NMS_RULES, default=DEFAULT_EVAL_NMS,
                    help="multi-label (default): every class above conf 0.001 is its own box, as `yolo val` "
                         "scores; single-label: each box's best class only, as a deployed model predicts")
    ev.add_argument("--json", action="store_true", help="print one JSON object")
    ev.set_defaults(func=_cmd_eval)

    tr = sub.add_parser("train", help="train a detector (checkpoints in archprune format)")
    _add_training_args(tr, out_default=None)
    tr.set_defaults(func=_cmd_train)

    ft = sub.add_parser("finetune", help="fine-tune a pruned model, distilling from its unpruned teacher")
    _add_training_args(ft, out_default="")
    ft.add_argument("--teacher", default=None, help="the unpruned model to distil from")
    ft.add_argument("--kd-weight", type=non_negative_float, default=1.0, help="head distillation weight (0 turns it off)")
    ft.add_argument("--feature-kd-weight", type=non_negative_float, default=0.0,
                    help="neck feature distillation weight through 1x1 adapters (default off)")
    ft.add_argument("--warmup-epochs", type=non_negative_float, default=0.5,
                    help="epochs of learning-rate warm-up (default 0.5)")
    ft.set_defaults(func=_cmd_finetune, lr0=0.0005, out=None)

    add_search_parsers(sub)
    add_bench_parser(sub)
    add_latency_parser(sub)
    add_latency_table_parser(sub)

    demo = sub.add_parser("demo", help="the main job on the embedded default (what `make demo` runs)")
    demo.add_argument("--out", default="results/demo", help="where to write the demo's files")
    demo.add_argument("--trials", type=positive_int, default=None, help="candidates to evaluate (default 96)")
    demo.set_defaults(func=_cmd_demo)
    return parser


def _one_line_warning(message: Warning | str, category: type[Warning], *rest: object) -> str:
    return f"archprune: warning: {message}\n"


def main(argv: list[str] | None = None) -> int:
    # Python shows a warning as two lines (where it was raised, then that source line); a user needs the message
    warnings.formatwarning = _one_line_warning
    args = build_parser().parse_args(argv)
    handler: Callable[[argparse.Namespace], int] = args.func
    try:
        return handler(args)
    except ArchpruneError as err:
        print(f"archprune: error: {err}", file=sys.stderr)
        return 2
    except OSError as err:  # the last net: a full disk or an unwritable path anywhere is one line too
        print(f"archprune: error: {os_error_message(err, verb='use')}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("archprune: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
