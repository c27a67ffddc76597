"""Pure-functional environments: the interface, tabular models, token (text) environments and the registry."""

from jrl.envs.core import NO_TIME_LIMIT, Environment, auto_reset
from jrl.envs.registry import make, register, registered_envs
from jrl.envs.tabular import TabularEnv, TabularMDP, TabularParams, TabularState, make_tabular
from jrl.envs.tokens import TokenEnv, TokenState, Vocabulary, positions, vocabulary

__all__ = [
    "NO_TIME_LIMIT",
    "Environment",
    "TabularEnv",
    "TabularMDP",
    "TabularParams",
    "TabularState",
    "TokenEnv",
    "TokenState",
    "Vocabulary",
    "auto_reset",
    "make",
    "make_tabular",
    "positions",
    "register",
    "registered_envs",
    "vocabulary",
]
