"""Pure-functional environments: the interface, tabular models and the registry."""

from jrl.envs.core import NO_TIME_LIMIT, Environment, auto_reset
from jrl.envs.registry import make, register, registered_envs
from jrl.envs.tabular import TabularEnv, TabularMDP, TabularParams, TabularState, make_tabular

__all__ = [
    "NO_TIME_LIMIT",
    "Environment",
    "TabularEnv",
    "TabularMDP",
    "TabularParams",
    "TabularState",
    "auto_reset",
    "make",
    "make_tabular",
    "register",
    "registered_envs",
]
