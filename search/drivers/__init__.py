"""Search drivers, by the name a config or the CLI uses for them."""
from __future__ import annotations

from search.drivers._base import Driver, Proposal
from search.drivers.nsga2 import NSGA2Driver
from search.drivers.random_search import RandomDriver

DRIVERS: dict[str, type[Driver]] = {"nsga2": NSGA2Driver, "random": RandomDriver}

__all__ = ["DRIVERS", "Driver", "NSGA2Driver", "Proposal", "RandomDriver"]
