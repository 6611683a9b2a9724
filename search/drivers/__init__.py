"""Search drivers, by the name a config or the CLI uses for them."""
from __future__ import annotations

from functools import partial
from typing import Callable

from search.drivers._base import Driver, Proposal
from search.drivers.nsga2 import NSGA2Driver
from search.drivers.optuna_driver import SAMPLERS, OptunaDriver
from search.drivers.random_search import RandomDriver
from search.drivers.zeroshot import ZeroShotDriver

DRIVERS: dict[str, Callable[..., Driver]] = {
    "nsga2": NSGA2Driver,
    "random": RandomDriver,
    **{f"optuna-{name}": partial(OptunaDriver, sampler=name) for name in SAMPLERS},
    "zeroshot": ZeroShotDriver,
}

__all__ = ["DRIVERS", "Driver", "NSGA2Driver", "OptunaDriver", "Proposal", "RandomDriver", "ZeroShotDriver"]
