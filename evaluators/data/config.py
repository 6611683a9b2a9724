"""Ultralytics-style ``data.yaml``: dataset root, class names and the image files of each split."""
from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from spaces.errors import ArchpruneError

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"})
SPLIT_KEYS = ("train", "val", "test")
DIGITS_DET = "digits-det"  # spec naming the embedded default dataset


@dataclass(frozen=True)
class DataConfig:
    yaml_path: Path
    root: Path  # absolute dataset root (symlinks kept: labels sit beside the path as given)
    names: list[str]  # class names, index = class id
    splits: dict[str, list[Path]]  # split name -> sorted image files
    # Where each split's images were looked for, so an empty split can say where.
    sources: dict[str, list[Path]] = field(default_factory=dict, repr=False, compare=False)

    @property
    def nc(self) -> int:
        return len(self.names)

    def images(self, split: str) -> list[Path]:
        if split not in self.splits:
            have = ", ".join(self.splits) or "none"
            raise ArchpruneError(
                f"split {split!r} is not in {self.yaml_path} (has: {have}); add a '{split}:' key"
            )
        files = self.splits[split]
        if not files:
            where = ", ".join(str(p) for p in self.sources.get(split, [])) or "?"
            raise ArchpruneError(
                f"split {split!r} of {self.yaml_path} has no images (looked in {where})"
            )
        return files


def label_path_for(image: Path) -> Path:
    """Ultralytics rule: the last ``images`` folder becomes ``labels``, the suffix ``.txt``."""
    parts = list(Path(image).parts)
    for i in range(len(parts) - 2, -1, -1):  # folders only, never the file name itself
        if parts[i] == "images":
            parts[i] = "labels"
            break
    return Path(*parts).with_suffix(".txt")


def _absolute(path: Path) -> Path:
    """``path`` made absolute without following symlinks: a linked ``images/val`` keeps its
    labels beside the link, not beside the link's target."""
    return Path(os.path.abspath(path))


def load_data_config(spec: str | os.PathLike[str]) -> DataConfig:
    """Read a data.yaml, or build/reuse the embedded set when ``spec == "digits-det"``."""
    if str(spec) == DIGITS_DET:
        from evaluators.data.digits_det import default_digits_det  # lazy: avoids an import cycle

        spec = default_digits_det()
    yaml_path = Path(spec).expanduser().resolve()
    raw = _read_yaml(yaml_path)
    root = _resolve_root(raw.get("path"), yaml_path)
    names = _parse_names(raw, yaml_path)
    splits: dict[str, list[Path]] = {}
    sources: dict[str, list[Path]] = {}
    for key in SPLIT_KEYS:
        value = raw.get(key)
        if value is None:  # absent, or written as an empty `test:` (as in coco8.yaml)
            continue
        sources[key] = _split_sources(key, value, root, yaml_path)
        splits[key] = sorted(set(_collect_images(key, sources[key], root, yaml_path)))
    return DataConfig(yaml_path=yaml_path, root=root, names=names, splits=splits, sources=sources)


def _read_yaml(yaml_path: Path) -> dict[str, Any]:
    if not yaml_path.exists():
        raise ArchpruneError(
            f"data file {yaml_path} does not exist; pass a data.yaml or 'digits-det'"
        )
    if yaml_path.is_dir():
        raise ArchpruneError(f"data file {yaml_path} is a folder; pass the data.yaml inside it")
    try:
        raw = yaml.safe_load(yaml_path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise ArchpruneError(f"data file {yaml_path} is not text (binary data, e.g. an image?); "
                             "pass a data.yaml") from None
    except yaml.YAMLError as exc:
        where = getattr(exc, "problem_mark", None)
        line = f" at line {where.line + 1}" if where is not None else ""
        raise ArchpruneError(f"{yaml_path} is not valid YAML{line}; fix its syntax") from None
    if not isinstance(raw, dict):
        raise ArchpruneError(
            f"{yaml_path} must be a YAML mapping with keys path/train/val/names, "
            f"got {type(raw).__name__}"
        )
    return raw


def _resolve_root(path_value: Any, yaml_path: Path) -> Path:
    here = yaml_path.parent
    if path_value is None or str(path_value).strip() == "":
        return here
    root = Path(str(path_value)).expanduser()
    if root.is_absolute():
        return _absolute(root)
    root = _absolute(here / root)
    # Downloaded Ultralytics yamls say `path: ../datasets/NAME`; when that is not there the
    # data almost always sits beside the yaml, which is what users expect us to find.
    return root if root.exists() else here


def _parse_names(raw: dict[str, Any], yaml_path: Path) -> list[str]:
    value = raw.get("names")
    if value is None:
        raise ArchpruneError(f"{yaml_path} has no 'names' key; add the class names as a list")
    if isinstance(value, dict):
        try:
            by_id = {int(k): str(v) for k, v in value.items()}
        except (TypeError, ValueError):
            raise ArchpruneError(f"'names' in {yaml_path} must map integer ids to names") from None
        if sorted(by_id) != list(range(len(by_id))):
            raise ArchpruneError(
                f"'names' in {yaml_path} must have ids 0..{len(by_id) - 1} without gaps"
            )
        names = [by_id[i] for i in range(len(by_id))]
    elif isinstance(value, list):
        names = [str(v) for v in value]
    else:
        raise ArchpruneError(f"'names' in {yaml_path} must be a list or a {{id: name}} mapping")
    if not names:
        raise ArchpruneError(f"'names' in {yaml_path} is empty; list at least one class")
    nc = raw.get("nc")
    if nc is not None and str(nc).strip() != str(len(names)):
        raise ArchpruneError(
            f"{yaml_path} says nc: {nc} but 'names' has {len(names)} entries; make them agree"
        )
    return names


def _split_sources(key: str, value: Any, root: Path, yaml_path: Path) -> list[Path]:
    items = value if isinstance(value, list) else [value]
    sources = []
    for item in items:
        if not isinstance(item, (str, os.PathLike)):
            raise ArchpruneError(
                f"split '{key}' in {yaml_path} must be a folder, a .txt list or a list of those"
            )
        path = Path(item).expanduser()
        path = _absolute(path if path.is_absolute() else root / path)
        if not path.exists():
            raise ArchpruneError(f"split '{key}' of {yaml_path}: {path} does not exist")
        sources.append(path)
    return sources


def _collect_images(key: str, sources: list[Path], root: Path, yaml_path: Path) -> Iterable[Path]:
    for src in sources:
        if src.is_dir():
            found = src.rglob("*")
            yield from (p for p in found if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
        elif src.suffix.lower() == ".txt":
            yield from _read_image_list(src, root)
        elif src.suffix.lower() in IMAGE_SUFFIXES:
            yield src
        else:
            raise ArchpruneError(
                f"split '{key}' of {yaml_path}: {src} is neither a folder, a .txt list nor an image"
            )


def _read_image_list(list_file: Path, root: Path) -> list[Path]:
    files = []
    for line in list_file.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        path = Path(line).expanduser()
        # Listed files that are missing are kept: the dataset reports them as unreadable.
        files.append(_absolute(path if path.is_absolute() else root / path))
    return [p for p in files if p.suffix.lower() in IMAGE_SUFFIXES]
