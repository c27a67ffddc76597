"""Bridges to the outside world (Gymnasium). Nothing else in jrl imports this package.

Importing it (or ``jrl.wrappers.gymnasium``) with Gymnasium installed registers every jrl id in
Gymnasium's registry as ``jrl/<id>``.
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
