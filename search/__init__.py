"""Search drivers, the store, the Pareto front and the CLI. ``search`` is the Python entry point."""
from __future__ import annotations

from typing import Any

__all__ = ["SearchResult", "search"]


def __getattr__(name: str) -> Any:
    """``search.search`` and ``search.SearchResult`` on first use: importing the runner imports torch
    (~2 s), which ``archprune pareto`` and ``export`` of a large run never need before they read it."""
    if name in __all__:
        from search import runner

        return getattr(runner, name)
    raise AttributeError(f"module 'search' has no attribute {name!r}")
