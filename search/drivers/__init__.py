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



def driver_shares_studies(name: str) -> bool:
    """Whether several search processes may work on one run with this driver (see run_lock)."""
    factory = DRIVERS[name]
    return bool(getattr(getattr(factory, "func", factory), "shares_studies", False))


__all__ = ["DRIVERS", "driver_shares_studies", "Driver", "NSGA2Driver", "OptunaDriver", "Proposal", "RandomDriver", "ZeroShotDriver"]
