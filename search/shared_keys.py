"""Read-only mappings that share their key tuple: how a run's records hold metrics at scale.

A 500,000-trial zero-shot run holds ~10 metrics and ~4 constraint violations per trial. As dicts
that was ~800 bytes a trial (each dict has its own hash table); a mapping of a shared key tuple
and a value tuple is a third of that, and the key tuples are shared by every record of a run.
Written for the store alone: no library offers a compact read-only mapping with shared keys
(CPython shares dict keys only for instance ``__dict__``s).
"""
from __future__ import annotations

from typing import Any, Iterator, Mapping


class SharedKeyMapping(Mapping[str, Any]):
    """A read-only mapping of ``keys`` (a tuple shared with other records) to ``values``."""

    __slots__ = ("_keys", "_values")

    def __init__(self, keys: tuple[str, ...], values: tuple[Any, ...]) -> None:
        self._keys, self._values = keys, values

    def __getitem__(self, key: str) -> Any:
        try:
            return self._values[self._keys.index(key)]
        except ValueError:
            raise KeyError(key) from None

    def __contains__(self, key: object) -> bool:
        return key in self._keys

    # the generic Mapping versions look every key up again: the front's feasibility test sums
    # every record's constraint values, 500,000 times
    def values(self) -> tuple[Any, ...]:  # type: ignore[override]
        return self._values

    def items(self) -> tuple[tuple[str, Any], ...]:  # type: ignore[override]
        return tuple(zip(self._keys, self._values))

    def __iter__(self) -> Iterator[str]:
        return iter(self._keys)

    def __len__(self) -> int:
        return len(self._keys)

    def __repr__(self) -> str:
        return repr(dict(zip(self._keys, self._values)))

    def __reduce__(self) -> tuple[Any, ...]:  # pickles (to worker processes) as the plain dict it stands for
        return dict, (dict(zip(self._keys, self._values)),)


class LazyMapping(Mapping[str, Any]):
    """A read-only mapping built the first time it is read (``_load``): what a run's records hold
    for the parts only a report or an export reads (a trial's config, its metrics)."""

    __slots__ = ("_loaded",)

    def __init__(self) -> None:
        self._loaded: Mapping[str, Any] | None = None

    def _load(self) -> Mapping[str, Any]:
        raise NotImplementedError

    def _get(self) -> Mapping[str, Any]:
        if self._loaded is None:
            self._loaded = self._load()
        return self._loaded

    def __getitem__(self, key: str) -> Any:
        return self._get()[key]

    def __contains__(self, key: object) -> bool:
        return key in self._get()

    def values(self) -> Any:  # type: ignore[override]
        return self._get().values()

    def items(self) -> Any:  # type: ignore[override]
        return self._get().items()

    def __iter__(self) -> Iterator[str]:
        return iter(self._get())

    def __len__(self) -> int:
        return len(self._get())

    def __repr__(self) -> str:
        return repr(self._get())

    def __reduce__(self) -> tuple[Any, ...]:  # pickles (to worker processes) as the plain dict it stands for
        return dict, (dict(self._get().items()),)


class JsonMapping(LazyMapping):
    """Metrics kept as their JSON text until first read, then as a shared-key mapping.

    Opening a 500,000-trial run needs every trial's genome, values and constraint violations (the
    front, a resume's duplicates), but the metrics only of the few trials a report prints: parsing
    them as text and building them on demand cut the open's decoding by about a third.
    """

    __slots__ = ("_text", "_keys")

    def __init__(self, text: str, keys: "KeyTuples") -> None:
        super().__init__()
        self._text, self._keys = text, keys

    def _load(self) -> SharedKeyMapping:
        import json

        loaded = self._keys.mapping(json.loads(self._text))
        self._text = ""  # held once, as the mapping
        return loaded


class KeyTuples:
    """One tuple object per distinct key sequence, so records with the same keys share it."""

    def __init__(self) -> None:
        self._seen: dict[tuple[str, ...], tuple[str, ...]] = {}

    def mapping(self, d: dict[str, Any]) -> SharedKeyMapping:
        keys = tuple(d)
        return SharedKeyMapping(self._seen.setdefault(keys, keys), tuple(d.values()))
