"""Search drivers, the store, the Pareto front and the CLI. ``search`` is the Python entry point."""
from __future__ import annotations

from search.runner import SearchResult, search

__all__ = ["SearchResult", "search"]
