"""TinyNAS-style backbone structures: a list of blocks, read from YAML / JSON / Python and checked.

A structure is plain data (``[{"class": "k1kx", "in": 16, "out": 32, "s": 2, "k": 3, "L": 1,
"btn": 16}, ...]``) so it can be stored in a trial, written to a file and read back. Parsing only
checks that it is a well-formed network (known classes, a consistent channel chain, positive
values); the search space's own limits (width ranges, bottleneck bounds) live in ``mutation.py``.
"""
from __future__ import annotations

import difflib
import json
import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Iterable, Sequence

from spaces.errors import ArchpruneError

STEM = "conv"
#: main-path convs per residual unit: the layer count a layer budget limits
CONVS_PER_UNIT: dict[str, int] = {"conv": 1, "k1kx": 2, "kxkx": 2, "k1kxk1": 3, "k1dwk1": 3,
                                  "repkxkx": 2}  # repkxkx: two re-parameterizable k x k convs (RepVGG)
CLASSES = tuple(CONVS_PER_UNIT)
#: TinyNAS / DAMO-YOLO class names read as ours (matched case-insensitively)
ALIASES: dict[str, str] = {
    "convkxbnrelu": "conv",
    "superresk1kx": "k1kx",
    "superreskxkx": "kxkx",
    "superresk1kxk1": "k1kxk1",
    "superresk1dwk1": "k1dwk1",
    "superresconvk1kx": "k1kx",  # DAMO-YOLO's spelling of the same blocks
    "superresconvkxkx": "kxkx",
}
_STEM_KEYS = ("class", "in", "out", "s", "k")
_BLOCK_KEYS = (*_STEM_KEYS, "L", "btn")
_KEY_SYNONYMS = {"kernel": "k", "stride": "s", "cin": "in", "in_channels": "in", "cout": "out", "out_channels": "out",
                 "l": "L", "n": "L", "units": "L", "depth": "L", "bottleneck": "btn", "type": "class"}


@dataclass(frozen=True)
class Block:
    """One block: ``L`` residual units of ``cls``; unit 0 maps cin -> cout with stride ``s``."""

    cls: str
    cin: int
    cout: int
    s: int
    k: int
    L: int = 1
    btn: int = 0  # bottleneck width; unused by the stem

    @property
    def is_stem(self) -> bool:
        return self.cls == STEM

    @property
    def layers(self) -> int:
        return self.L * CONVS_PER_UNIT[self.cls]

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"class": self.cls, "in": self.cin, "out": self.cout, "s": self.s, "k": self.k}
        if not self.is_stem:
            out.update(L=self.L, btn=self.btn)
        return out


Structure = tuple[Block, ...]


def canonical_class(name: Any, where: str) -> str:
    """Our class name for ``name`` (ours or a TinyNAS alias); unknown names get a suggestion."""
    text = str(name)
    key = text.lower()
    if key in CONVS_PER_UNIT:
        return key
    if key in ALIASES:
        return ALIASES[key]
    known = list(CLASSES) + sorted(ALIASES)
    close = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
    hint = f"; did you mean {ALIASES.get(close[0], close[0])!r}?" if close else ""
    raise ArchpruneError(f"{where} ('class'): unknown block class {text!r}{hint} "
                         f"(classes: {', '.join(CLASSES)}; TinyNAS names such as SuperResK1KX are accepted)")


def _positive_int(raw: dict[str, Any], key: str, where: str) -> int:
    value = raw[key]
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ArchpruneError(f"{where} ('{key}'): {value!r} is not a positive integer; set {key} to a whole number >= 1")
    return value


def block_from_dict(raw: Any, index: int) -> Block:
    where = f"block {index}"
    if isinstance(raw, Block):
        raw = raw.to_dict()
    if not isinstance(raw, dict):
        raise ArchpruneError(f"{where}: expected a mapping with keys {', '.join(_BLOCK_KEYS)}, got {type(raw).__name__}")
    if "class" not in raw:
        raise ArchpruneError(f"{where}: missing key 'class'; add class: one of {', '.join(CLASSES)}")
    cls = canonical_class(raw["class"], where)
    keys = _STEM_KEYS if cls == STEM else _BLOCK_KEYS
    for key in raw:
        if key not in _BLOCK_KEYS:
            close = [_KEY_SYNONYMS[str(key).lower()]] if str(key).lower() in _KEY_SYNONYMS else \
                difflib.get_close_matches(str(key), _BLOCK_KEYS, n=1, cutoff=0.5)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise ArchpruneError(f"{where} ({key!r}): unknown key{hint} (keys: {', '.join(keys)})")
    for key in keys:
        if key not in raw:
            raise ArchpruneError(f"{where} ({cls}): missing key {key!r}; add {key}: <positive integer>")
    values = {key: _positive_int(raw, key, where) for key in keys if key != "class"}
    if values["s"] not in (1, 2):
        raise ArchpruneError(f"{where} ('s'): stride {values['s']} is not supported; use 1 or 2")
    if values["k"] % 2 == 0:
        raise ArchpruneError(f"{where} ('k'): kernel {values['k']} is even; use an odd kernel (1, 3, 5, 7)")
    if cls == STEM:
        return Block(STEM, values["in"], values["out"], values["s"], values["k"], 1, values["out"])
    return Block(cls, values["in"], values["out"], values["s"], values["k"], values["L"], values["btn"])


def check_chain(blocks: Sequence[Block]) -> None:
    """A stem first, then blocks whose ``in`` is the previous block's ``out``."""
    if not blocks:
        raise ArchpruneError("empty structure: give a stem conv block followed by at least one residual block")
    if not blocks[0].is_stem:
        raise ArchpruneError(f"block 0 ('class'): the first block must be the stem {STEM!r}, got {blocks[0].cls!r}")
    for i, (prev, block) in enumerate(zip(blocks, blocks[1:]), start=1):
        if block.is_stem:
            raise ArchpruneError(f"block {i} ('class'): {STEM!r} is the stem class and only block 0 may use it; "
                                 f"use one of {', '.join(CLASSES[1:])}")
        if block.cin != prev.cout:
            raise ArchpruneError(f"block {i} ('in'): {block.cin} differs from block {i - 1}'s out {prev.cout}; "
                                 f"set in to {prev.cout}")
    if len(blocks) < 2:
        raise ArchpruneError("block 0: a stem alone is no backbone; add at least one residual block after it")


def _looks_like_path(text: str) -> bool:
    if "\n" in text or len(text) > 4096 or text.lstrip()[:1] in ("[", "{", "-"):
        return False
    return Path(text).suffix in (".yaml", ".yml", ".json") or Path(text).is_file()


def _load_text(text: str, where: str, json_first: bool = False) -> Any:
    import yaml

    if json_first:
        try:
            return json.loads(text)
        except json.JSONDecodeError:
            pass  # YAML reads most near-JSON too; its error is reported below
    try:
        return yaml.safe_load(text)  # JSON is YAML too
    except yaml.YAMLError as err:
        raise ArchpruneError(f"{where}: not valid YAML/JSON ({str(err).splitlines()[0]})") from None


def parse_structure(source: str | os.PathLike | Iterable[Any]) -> Structure:
    """A checked structure from a YAML/JSON file path, a YAML/JSON string, or a list of dicts / Blocks.

    A file may hold the list itself or a mapping with a ``structure`` key.
    """
    where = "structure"
    data: Any = source
    if isinstance(source, (str, os.PathLike)):
        text = str(source)
        if isinstance(source, os.PathLike) or _looks_like_path(text):
            path = Path(text)
            if not path.is_file():
                raise ArchpruneError(f"structure file {path} not found")
            try:
                where, text = str(path), path.read_text(encoding="utf-8")
            except UnicodeDecodeError:
                raise ArchpruneError(f"structure file {path} is not text (binary data, e.g. an image?); "
                                     "pass a YAML or JSON list of blocks") from None
        data = _load_text(text, where, json_first=where.endswith(".json"))
    if isinstance(data, dict) and "structure" in data:
        data = data["structure"]
    if isinstance(data, (str, bytes)) or not isinstance(data, Iterable) or isinstance(data, dict):
        raise ArchpruneError(f"{where}: expected a list of blocks, got {type(data).__name__}")
    try:
        blocks = tuple(block_from_dict(raw, i) for i, raw in enumerate(data))
        check_chain(blocks)
    except ArchpruneError as err:
        raise ArchpruneError(f"{where}: {err}" if where != "structure" else str(err)) from None
    return blocks


def structure_to_dicts(blocks: Sequence[Block]) -> list[dict[str, Any]]:
    return [b.to_dict() for b in blocks]


def count_layers(blocks: Sequence[Block]) -> int:
    """Convs on the backbone's main path (projection shortcuts excluded): what a layer budget limits."""
    return sum(b.layers for b in blocks)


def stage_of_blocks(blocks: Sequence[Block]) -> list[int]:
    """Stage index of each block: the stem opens stage 0 and every later stride-2 block a new one."""
    stages, current = [], 0
    for i, b in enumerate(blocks):
        if i and b.s == 2:
            current += 1
        stages.append(current)
    return stages


def with_block(blocks: Sequence[Block], index: int, **changes: Any) -> Structure:
    """A copy with one block changed (and the next block's ``in`` following a changed ``out``)."""
    out = list(blocks)
    out[index] = replace(out[index], **changes)
    if "cout" in changes and index + 1 < len(out):
        out[index + 1] = replace(out[index + 1], cin=changes["cout"])
    return tuple(out)
