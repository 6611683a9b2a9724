"""Registries of named parts (spaces, evaluators, drivers), each part found by an import path.

A registry maps a name to ``"module:attribute"``: the built-in parts are listed where the registry
is made, a package adds its own through an entry point of the registry's group (in its
``pyproject.toml``: ``[project.entry-points."archprune.evaluators"] my-score = "my_pkg.score:MyScore"``),
and a script can call ``register``. Because a part is found by its import path, never by a side
effect of having been imported, every process resolves the same name the same way: a worker spawned
for a candidate or a Dask worker on another machine unpickles the part by its module, and a search
run again tomorrow finds the same part the run was started with.

It lives at the bottom layer (beside the error type) so ``evaluators/`` and ``search/`` can both
keep one: ``importlib.metadata`` reads the entry points; the rest (lazy loading, one-line errors
with a suggestion) is the few lines below.
"""
from __future__ import annotations

import importlib
from importlib.metadata import entry_points
from typing import Generic, Iterator, TypeVar

from spaces.errors import ArchpruneError, did_you_mean

T = TypeVar("T")


class Registry(Generic[T]):
    def __init__(self, kind: str, group: str, builtin: dict[str, str]) -> None:
        self.kind, self.group = kind, group  # "space", "archprune.spaces"
        self._paths: dict[str, str] = dict(builtin)
        self._loaded: dict[str, T] = {}
        self._scanned = False

    def register(self, name: str, path: str) -> None:
        """Add (or replace) ``name`` -> ``"module:attribute"``."""
        if ":" not in path:
            raise ArchpruneError(f"{self.kind} {name!r}: give its import path as 'module:attribute', got {path!r}")
        self._paths[name] = path
        self._loaded.pop(name, None)

    def names(self) -> list[str]:
        self._scan()
        return list(self._paths)

    def __contains__(self, name: object) -> bool:
        return name in self.names()

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def path(self, name: str) -> str:
        self.check(name)
        return self._paths[name]

    def check(self, name: str) -> str:
        if name not in self.names():
            raise ArchpruneError(f"unknown {self.kind} {name!r}{did_you_mean(name, self.names())}; "
                                 f"choose one of {', '.join(self.names())}")
        return name

    def get(self, name: str) -> T:
        """The registered object (imported on first use)."""
        if name not in self._loaded:
            module, _, attribute = self.path(name).partition(":")
            try:
                found = importlib.import_module(module)
                for part in attribute.split("."):
                    found = getattr(found, part)
            except (ImportError, AttributeError) as err:
                raise ArchpruneError(f"{self.kind} {name!r} is registered as {self._paths[name]!r}, which does not "
                                     f"import ({err}); fix the entry point or install its package") from None
            self._loaded[name] = found  # type: ignore[assignment]
        return self._loaded[name]

    def items(self) -> Iterator[tuple[str, T]]:
        for name in self.names():
            yield name, self.get(name)

    def _scan(self) -> None:
        """Entry points of the group, read once; a built-in name is never replaced by one."""
        if self._scanned:
            return
        self._scanned = True
        for point in entry_points(group=self.group):
            self._paths.setdefault(point.name, point.value)
