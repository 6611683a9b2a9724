"""Search drivers, by the name a config or the CLI uses for them.

A driver is one module: a ``Driver`` subclass (``_base.py``), registered here or through an entry
point of the group ``archprune.drivers`` (``my-driver = "my_pkg.driver:MyDriver"``).
"""
from __future__ import annotations

from typing import Any, Mapping, Sequence

from search.drivers._base import Driver, Proposal
from search.drivers.nsga2 import NSGA2Driver
from search.drivers.optuna_driver import OptunaDriver
from search.drivers.random_search import RandomDriver
from search.drivers.zeroshot import ZeroShotDriver
from search.objectives import Objective
from spaces._base import SearchSpace
from spaces.plugin_registry import Registry

DRIVERS: Registry[type[Driver]] = Registry("driver", "archprune.drivers", {
    "nsga2": "search.drivers.nsga2:NSGA2Driver",
    "random": "search.drivers.random_search:RandomDriver",
    "zeroshot": "search.drivers.zeroshot:ZeroShotDriver",
    "optuna-nsga2": "search.drivers.optuna_driver:OptunaNSGA2Driver",
    "optuna-tpe": "search.drivers.optuna_driver:OptunaTPEDriver",
    "optuna-gp": "search.drivers.optuna_driver:OptunaGPDriver",
    "optuna-random": "search.drivers.optuna_driver:OptunaRandomDriver",
})


def make_driver(name: str, space: SearchSpace, objectives: Sequence[Objective], seed: int,
                options: Mapping[str, Any] | None = None) -> Driver:
    """The driver registered as ``name``, built from the search's options (see ``Driver.create``)."""
    return DRIVERS.get(name).create(space, objectives, seed, dict(options or {}))


def driver_shares_studies(name: str) -> bool:
    """Whether several search processes may work on one run with this driver (see run_lock)."""
    return DRIVERS.get(name).shares_studies


def driver_help() -> str:
    return ", ".join(f"{name} (default)" if name == "nsga2" else name for name in DRIVERS)


__all__ = ["DRIVERS", "Driver", "NSGA2Driver", "OptunaDriver", "Proposal", "RandomDriver", "ZeroShotDriver",
           "driver_help", "driver_shares_studies", "make_driver"]
