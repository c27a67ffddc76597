"""``jrl.make`` and the registry of environment ids (Gymnasium's ids and keyword arguments)."""

from __future__ import annotations

import dataclasses
import difflib
import inspect
from collections.abc import Callable
from typing import Any

import jax.numpy as jnp

from jrl._validation import check_int
from jrl.envs.acrobot import acrobot_factory
from jrl.envs.cartpole import cartpole_factory
from jrl.envs.cliff_walking import cliff_walking_model
from jrl.envs.core import NO_TIME_LIMIT, Environment
from jrl.envs.frozen_lake import frozen_lake_model
from jrl.envs.mountain_car import mountain_car_factory
from jrl.envs.probes import probe_factory
from jrl.envs.random_lake import random_lake_factory
from jrl.envs.random_mdp import random_mdp_model
from jrl.envs.tabular import TabularEnv, TabularParams
from jrl.envs.taxi import taxi_model

__all__ = ["EnvSpec", "make", "registered_envs"]


@dataclasses.dataclass(frozen=True)
class EnvSpec:
    """How to build one id.

    Attributes:
        env_id: the id (Gymnasium's where Gymnasium has the environment).
        factory: ``factory(env_id, max_steps_in_episode, **kwargs) -> (env, params)``; the keyword
            arguments it accepts are its ``keywords`` attribute, or its signature after the first two.
        kwargs: keyword arguments fixed by this id (e.g. ``map_name="8x8"``).
        max_episode_steps: the default time limit, as ``gymnasium.make`` gives it (``None``: no limit).
    """

    env_id: str
    factory: Callable[..., tuple[Environment, Any]]
    kwargs: dict
    max_episode_steps: int | None

    def keywords(self) -> tuple[str, ...]:
        """The keyword arguments the factory accepts."""
        if hasattr(self.factory, "keywords"):
            return tuple(self.factory.keywords)
        return tuple(inspect.signature(self.factory).parameters)[2:]


def tabular_factory(model_fn: Callable[..., Any]) -> Callable[..., tuple[TabularEnv, TabularParams]]:
    """A factory for a tabular environment from a function that builds its ``TabularMDP``."""

    def factory(env_id: str, max_steps_in_episode: int, **kwargs: Any) -> tuple[TabularEnv, TabularParams]:
        mdp = model_fn(**kwargs)
        env = TabularEnv(mdp.num_states, mdp.num_actions, mdp.num_outcomes, env_id)
        return env, TabularParams(mdp=mdp, max_steps_in_episode=jnp.int32(max_steps_in_episode))

    factory.keywords = tuple(inspect.signature(model_fn).parameters)
    return factory


_REGISTRY: dict[str, EnvSpec] = {}


def register(spec: EnvSpec) -> None:
    """Add an id to the registry (ids are unique)."""
    if spec.env_id in _REGISTRY:
        raise ValueError(f"environment id {spec.env_id!r} is already registered")
    _REGISTRY[spec.env_id] = spec


for _spec in (
    EnvSpec("FrozenLake-v1", tabular_factory(frozen_lake_model), {"map_name": "4x4"}, 100),
    EnvSpec("FrozenLake8x8-v1", tabular_factory(frozen_lake_model), {"map_name": "8x8"}, 200),
    EnvSpec("CliffWalking-v1", tabular_factory(cliff_walking_model), {}, None),
    EnvSpec("CliffWalkingSlippery-v1", tabular_factory(cliff_walking_model), {"is_slippery": True}, None),
    EnvSpec("Taxi-v4", tabular_factory(taxi_model), {}, 200),
    EnvSpec("RandomMDP-v0", tabular_factory(random_mdp_model), {}, 100),
    EnvSpec("Probe-OneStep-v0", probe_factory("OneStep"), {}, None),
    EnvSpec("Probe-TwoStep-v0", probe_factory("TwoStep"), {}, None),
    EnvSpec("Probe-ActionReward-v0", probe_factory("ActionReward"), {}, None),
    EnvSpec("Probe-Truncation-v0", probe_factory("Truncation"), {}, 1),
    EnvSpec("CartPole-v1", cartpole_factory, {}, 500),
    EnvSpec("Acrobot-v1", acrobot_factory, {}, 500),
    EnvSpec("MountainCar-v0", mountain_car_factory, {}, 200),
    EnvSpec("RandomLake-v0", random_lake_factory, {}, 256),  # 4 * 8 * 8, whatever size (random_lake.py)
):
    register(_spec)


def registered_envs() -> list[str]:
    """Every id ``jrl.make`` accepts, sorted."""
    return sorted(_REGISTRY)


def make(env_id: str, **kwargs: Any) -> tuple[Environment, Any]:
    """Build an environment and its default params: ``env, env_params = jrl.make(id, **kwargs)``.

    Keyword arguments are Gymnasium's for the same id, plus ``max_episode_steps`` (as in
    ``gymnasium.make``: overrides the registered time limit; ``None`` keeps it, ``-1`` removes it,
    giving ``NO_TIME_LIMIT``). ``render_mode`` is accepted only as
    ``None`` (jrl environments do not render).

    Raises:
        ValueError: unknown id (the message lists the registered ids and the closest match), or a
            keyword value that is not allowed.
        TypeError: a keyword the environment does not take, or a value of the wrong type.
    """
    if not isinstance(env_id, str):
        raise TypeError(f"env_id must be a str, got {type(env_id).__name__} {env_id!r}")
    if env_id not in _REGISTRY:
        close = difflib.get_close_matches(env_id, list(_REGISTRY), n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ValueError(f"unknown environment id {env_id!r}.{hint} Registered ids: {registered_envs()}")
    spec = _REGISTRY[env_id]
    kwargs = dict(kwargs)
    # gymnasium.make's rules: None keeps the registered limit, -1 removes it.
    max_steps = kwargs.pop("max_episode_steps", None)
    if max_steps is None:
        max_steps = spec.max_episode_steps
    elif max_steps == -1 and not isinstance(max_steps, bool):
        max_steps = None
    if kwargs.pop("render_mode", None) is not None:
        raise ValueError(f"{env_id}: jrl environments do not render; render_mode must be None")
    accepted = set(spec.keywords())
    unknown = sorted(set(kwargs) - accepted)
    if unknown:
        raise TypeError(
            f"{env_id} got unexpected keyword argument(s) {unknown}; it accepts "
            f"{sorted(accepted | {'max_episode_steps', 'render_mode'})}"
        )
    if max_steps is None:
        max_steps = NO_TIME_LIMIT
    check_int("max_episode_steps", max_steps, 1, NO_TIME_LIMIT)
    return spec.factory(env_id, max_steps, **{**spec.kwargs, **kwargs})
