"""Pure-functional environments: the interface, tabular models, token (text) environments and the registry."""

from jrl.envs.core import NO_TIME_LIMIT, Environment, GridLayout, auto_reset
from jrl.envs.registry import make, register, registered_envs
from jrl.envs.tabular import TabularEnv, TabularMDP, TabularParams, TabularState, make_tabular
from jrl.envs.tokens import TokenEnv, TokenState, Vocabulary, positions

__all__ = [
    "NO_TIME_LIMIT",
    "Environment",
    "GridLayout",
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


def vocabulary(env_id: str) -> Vocabulary:
    """The vocabulary of a token environment's id: ``env.vocabulary`` of the environment
    ``make(env_id)`` builds (each token environment knows its own).

    Raises:
        ValueError: ``env_id`` is not registered, or its environment is no token environment.
    """
    env, _ = make(env_id)
    if not isinstance(env, TokenEnv):
        raise ValueError(
            f"{env_id!r} is not a text environment: its environment, {type(env).__name__}, is no jrl.envs.TokenEnv "
            "and has no vocabulary"
        )
    return env.vocabulary
