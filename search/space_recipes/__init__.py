"""The search spaces by their ``--space`` name; each recipe is one module (see ``_base.SpaceRecipe``).

A package adds a space with an entry point of the group ``archprune.spaces``
(``my-space = "my_pkg.recipe:MyRecipe"``, a ``SpaceRecipe`` subclass); the recipe builds its
``spaces._base.SearchSpace``.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from search.space_recipes._base import SearchParts, SpaceRecipe
from spaces.plugin_registry import Registry

if TYPE_CHECKING:
    from spaces._base import SearchSpace

SPACES: Registry[type[SpaceRecipe]] = Registry("space", "archprune.spaces", {
    "channels": "search.space_recipes.channels:ChannelsRecipe",
    "blocks": "search.space_recipes.blocks:BlocksRecipe",
    "nb201": "search.space_recipes.nb201:NB201Recipe",
})
DEFAULT_SPACE = "channels"


def space_recipe(name: str) -> SpaceRecipe:
    return SPACES.get(name)()


def calibration_space_for(source: str, nc: int = 80) -> tuple[SearchSpace, str]:
    """``--calibrate SPACE[:SOURCE]`` (``blocks``, ``blocks:my.yaml``) or ``--calibrate MODEL`` (channel
    pruning of that model): the space whose candidates calibrate a latency table, and what they are."""
    name, _, rest = source.partition(":")
    if name not in SPACES or name == DEFAULT_SPACE:
        name, rest = DEFAULT_SPACE, source
    recipe = space_recipe(name)
    return recipe.calibration_space(rest, nc), recipe.calibration_description(rest)


def space_help() -> str:
    """``--space``'s help: each space with its summary."""
    return ", ".join(f"{name} ({SPACES.get(name).summary})" for name in SPACES)


__all__ = ["DEFAULT_SPACE", "SPACES", "SearchParts", "SpaceRecipe", "calibration_space_for", "space_help",
           "space_recipe"]
