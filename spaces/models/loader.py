"""``load_model``: one entry point for model names, Ultralytics checkpoints and archprune checkpoints."""
from __future__ import annotations

import os
import pickle
import zipfile
from pathlib import Path

import torch

from ..errors import ArchpruneError
from .architecture import build_from_architecture
from .checkpoint import detector_from_checkpoint, is_archprune_checkpoint
from .families import family_spec, model_names
from .ultralytics_import import DisallowedGlobal, read_ultralytics_checkpoint, ultralytics_to_detector
from .yolo import YOLODetector
from .zoo import EMBEDDED, embedded_path


def build_model(name: str, nc: int = 80, seed: int = 0) -> YOLODetector:
    """A randomly initialised detector by name (``yolov8n`` ... ``yolo11x``), in eval mode.

    Initialisation uses its own seeded RNG so the same name and seed give the same weights in
    every process, without touching the caller's global random state.
    """
    spec = family_spec(name)
    if spec is None:
        raise ArchpruneError(f"unknown model name {name!r}; known names: {', '.join(model_names())}")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = YOLODetector(spec, nc=nc)
        model.head.bias_init()
    return model.eval()


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0][:200] if text else type(err).__name__


def _check_crcs(path: Path) -> None:
    """torch.load does not check the zip's CRCs: overwritten bytes would load as wrong weights."""
    try:
        with zipfile.ZipFile(path) as archive:
            damaged = archive.testzip()
    except Exception as err:  # zipfile reports a cut archive as BadZipFile/EOFError/OSError/...
        raise ArchpruneError(f"{path}: cannot read checkpoint (truncated or corrupt: {_first_line(err)})") from None
    if damaged is not None:
        raise ArchpruneError(f"checkpoint {path} is corrupt: {damaged} fails its CRC check; "
                             "re-export or re-download it")


def _load_file(path: Path, nc: int | None) -> YOLODetector:
    if path.is_dir():
        raise ArchpruneError(f"{path} is a folder; pass the checkpoint (.pt) inside it")
    if not zipfile.is_zipfile(path):
        raise ArchpruneError(f"{path}: not a PyTorch checkpoint (not a zip archive: truncated or corrupt?)")
    _check_crcs(path)
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        obj = None  # pickles whole modules: an Ultralytics checkpoint, read through the allow-list below
    except Exception as err:  # torch reports damage as RuntimeError/EOFError/...: one line is enough
        raise ArchpruneError(f"{path}: cannot read checkpoint (truncated or corrupt: {_first_line(err)})") from None
    if obj is None:
        try:
            ckpt = read_ultralytics_checkpoint(path)
        except DisallowedGlobal:
            raise
        except Exception as err:
            raise ArchpruneError(f"{path}: cannot read checkpoint (truncated or corrupt: {_first_line(err)})") from None
        model = ultralytics_to_detector(ckpt, path)
    elif is_archprune_checkpoint(obj):
        model = detector_from_checkpoint(obj, path)
    else:
        raise ArchpruneError(f"{path}: neither an archprune nor an Ultralytics checkpoint "
                             "(a bare state dict has no architecture; save with archprune instead)")
    if nc is not None and nc != model.nc:
        raise ArchpruneError(f"{path}: model has {model.nc} classes but nc={nc} was asked for")
    return model


def is_structure_file(text: str) -> bool:
    """A TinyNAS-style block structure (YAML/JSON) rather than a checkpoint or a model name."""
    return Path(text).suffix.lower() in (".yaml", ".yml", ".json")


def structure_model(path: str, nc: int = 80, names: list[str] | None = None) -> torch.nn.Module:
    """A fresh (randomly initialised) block-space detector for the structure in ``path``."""
    if not Path(path).exists():
        raise ArchpruneError(f"structure file not found: {path}")
    model = build_from_architecture({"kind": "blocks", "structure": path, "nc": nc, "names": names})
    model.source = path
    return model.eval()


def load_model(source: str | os.PathLike, nc: int | None = None) -> YOLODetector:
    """Load a detector in eval mode, float32.

    ``source`` is a model name (``"yolov8n"``, ``"yolo11s"``: random init with ``nc`` classes,
    default 80), an embedded trained model (``"yolov8n-digits"``), a path to an Ultralytics
    ``.pt`` checkpoint, a path to an archprune checkpoint, or a block structure (``.yaml`` /
    ``.json``, random init like a name). For a checkpoint, ``nc`` (if given) must equal the
    checkpoint's class count.
    """
    text = os.fspath(source)
    if is_structure_file(text):
        return structure_model(text, nc=80 if nc is None else nc)
    if isinstance(source, str) and family_spec(text) is not None and not Path(text).exists():
        return build_model(text, nc=80 if nc is None else nc)
    shipped = embedded_path(text) if isinstance(source, str) and not Path(text).exists() else None
    if shipped is not None:
        if not shipped.exists():
            raise ArchpruneError(f"embedded model {text!r} is missing from this installation ({shipped}); "
                                 f"reinstall archprune or rebuild it: {EMBEDDED[text.lower()].reproduce}")
        path = shipped
    else:
        path = Path(text).expanduser()
        if not path.exists():
            names = model_names() + sorted(EMBEDDED)
            hint = "" if any(sep in text for sep in "/\\.") else f" (known model names: {', '.join(names)})"
            raise ArchpruneError(f"model not found: {text} is neither a file nor a known model name{hint}")
    model = _load_file(path, nc)
    model.source = text if shipped is not None else str(path)
    return model.float().eval()
