"""Bridges to the outside world. Imported here: ``jrl.wrappers.gymnasium`` (jrl environments as
Gymnasium environments). Imported by name, since their libraries are optional extras:
``jrl.wrappers.sb3`` (Stable-Baselines3), ``jrl.wrappers.gymnax`` and ``jrl.wrappers.functional``
(gymnax's and Gymnasium's functional environments as jrl environments). The core of jrl never
imports this package, except ``jrl.make``, which imports ``jrl.wrappers.gymnax`` on the first
``gymnax/<id>``.

``import jrl`` (with Gymnasium installed) registers every jrl id in Gymnasium's registry as
``jrl/<id>``, with ``jrl.wrappers.gymnasium``'s functions as entry points.
"""

from typing import Any

from jrl.wrappers import gymnasium as _gymnasium
from jrl.wrappers.gymnasium import (
    JrlEnv,
    JrlVectorEnv,
    evaluate_in_gymnasium,
    gymnasium_space,
    register_gymnasium_envs,
)

# RENDERED_ENVS is an attribute too, computed on access (module __getattr__); it is left out of
# __all__ so that a star import does not make every registered environment.
__all__ = [
    "JrlEnv",
    "JrlVectorEnv",
    "evaluate_in_gymnasium",
    "gymnasium_space",
    "register_gymnasium_envs",
]


def __getattr__(name: str) -> Any:
    # RENDERED_ENVS is computed on access (it makes every registered environment), not on import.
    if name == "RENDERED_ENVS":
        return _gymnasium.RENDERED_ENVS
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
