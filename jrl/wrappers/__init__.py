"""Bridges to the outside world. Imported here: ``jrl.wrappers.gymnasium`` (jrl environments as
Gymnasium environments). Imported by name, since their libraries are optional extras:
``jrl.wrappers.sb3`` (Stable-Baselines3), ``jrl.wrappers.gymnax`` and ``jrl.wrappers.functional``
(gymnax's and Gymnasium's functional environments as jrl environments). The core of jrl never
imports this package, except ``jrl.make``, which imports ``jrl.wrappers.gymnax`` on the first
``gymnax/<id>``.

``import jrl`` (with Gymnasium installed) registers every jrl id in Gymnasium's registry as
``jrl/<id>``, with ``jrl.wrappers.gymnasium``'s functions as entry points.
"""

from jrl.wrappers.gymnasium import (
    RENDERED_ENVS,
    JrlEnv,
    JrlVectorEnv,
    evaluate_in_gymnasium,
    gymnasium_space,
    register_gymnasium_envs,
)

__all__ = [
    "RENDERED_ENVS",
    "JrlEnv",
    "JrlVectorEnv",
    "evaluate_in_gymnasium",
    "gymnasium_space",
    "register_gymnasium_envs",
]
