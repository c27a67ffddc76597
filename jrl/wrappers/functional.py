"""Gymnasium's functional JAX environments (``FuncEnv``) as jrl environments.

Gymnasium's ``gymnasium.experimental.functional.FuncEnv`` describes an environment by pure
functions: ``initial(rng, params)``, ``transition(state, action, rng, params)``,
``observation(state, rng, params)``, ``reward(state, action, next_state, rng, params)`` and
``terminal(state, rng, params)``. ``from_functional`` turns one (its JAX CartPole
``gymnasium.envs.phys2d.cartpole.CartPoleFunctional``, or your own) into a jrl ``Environment``:
jit-, vmap- and scan-able, with jrl's auto-reset and its algorithms.

How the two conventions meet:

- The key a jrl ``reset_env``/``step_env`` receives is the ``rng`` of every function in that
  call, as Gymnasium's own ``FunctionalJaxEnv`` passes one ``rng`` to all of them; so the same key
  gives the same trajectory as Gymnasium's wrapper.
- A ``FuncEnv`` has no time limit (``gymnasium.make`` adds a ``TimeLimit``): the wrapper keeps an
  elapsed-step count and truncates as ``TimeLimit`` does, at ``max_steps_in_episode``, which comes
  from the Gymnasium registration when you pass an id.
- ``terminal`` is asked of the state the transition led to; ``reward`` gets
  ``(state, action, next_state)``, as in Gymnasium.
- The ``FuncEnv``'s params (``get_default_params()``, e.g. ``CartPoleParams``) are a pytree inside
  jrl's params, so they can be vmapped; a ``FuncEnv`` without params gets none passed.

Note that Gymnasium's ``phys2d/CartPole-v1`` is not its ``CartPole-v1``: its ``CartPoleParams``
set ``polemass_length = masspole + length`` (0.6, not 0.05) and its observation box is unbounded,
so the two differ after the first step; jrl's ``CartPole-v1`` matches the classic one.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
from flax import struct

from jrl._extras import install_hint
from jrl.envs.core import NO_TIME_LIMIT, Environment
from jrl.spaces import Discrete, Space
from jrl.wrappers._foreign import as_space_dtype, jrl_space

__all__ = ["FunctionalEnv", "FunctionalParams", "FunctionalState", "from_functional"]


@struct.dataclass
class FunctionalParams:
    """A wrapped ``FuncEnv``'s params.

    Attributes:
        env_params: the ``FuncEnv``'s params pytree (``None`` when it has none).
        max_steps_in_episode: int32 scalar, the time limit (``NO_TIME_LIMIT`` for none).
    """

    env_params: Any
    max_steps_in_episode: jax.Array


@struct.dataclass
class FunctionalState:
    """The ``FuncEnv``'s state and the steps elapsed in this episode (int32)."""

    env_state: Any
    time: jax.Array


@dataclasses.dataclass(frozen=True)
class FunctionalEnv(Environment):
    """A Gymnasium ``FuncEnv`` as a jrl ``Environment``; build it with ``from_functional``.

    Attributes:
        func_env: the ``FuncEnv`` instance (compared by identity).
    """

    func_env: Any

    def _params(self, params: FunctionalParams) -> tuple:
        """The trailing ``params`` argument of the ``FuncEnv``'s functions (none when it has none)."""
        return () if params.env_params is None else (params.env_params,)

    @property
    def num_actions(self) -> int:
        """The number of actions (``Discrete`` action spaces only)."""
        space = self.action_space()
        if not isinstance(space, Discrete):
            raise AttributeError(f"{self.env_id or 'FunctionalEnv'} has a {space!r} action space, not a Discrete one")
        return space.n

    @property
    def default_params(self) -> FunctionalParams:
        env_params = getattr(self.func_env, "default_params", None)
        return FunctionalParams(env_params=env_params, max_steps_in_episode=jnp.int32(NO_TIME_LIMIT))

    def observation_space(self, params: Any = None) -> Space:
        name = self.env_id or type(self.func_env).__name__
        return jrl_space(self.func_env.observation_space, f"{name} observation space")

    def action_space(self, params: Any = None) -> Space:
        name = self.env_id or type(self.func_env).__name__
        return jrl_space(self.func_env.action_space, f"{name} action space")

    def reset_env(self, key: jax.Array, params: FunctionalParams) -> tuple[jax.Array, FunctionalState]:
        rest = self._params(params)
        env_state = self.func_env.initial(key, *rest)
        obs = self.func_env.observation(env_state, key, *rest)
        return as_space_dtype(obs, self.observation_space()), FunctionalState(env_state, jnp.zeros((), jnp.int32))

    def step_env(
        self, key: jax.Array, state: FunctionalState, action: jax.Array, params: FunctionalParams
    ) -> tuple[jax.Array, FunctionalState, jax.Array, jax.Array, jax.Array, dict]:
        rest = self._params(params)
        next_env_state = self.func_env.transition(state.env_state, action, key, *rest)
        obs = self.func_env.observation(next_env_state, key, *rest)
        reward = self.func_env.reward(state.env_state, action, next_env_state, key, *rest)
        terminated = self.func_env.terminal(next_env_state, key, *rest)
        time = state.time + 1
        truncated = time >= params.max_steps_in_episode  # Gymnasium's TimeLimit rule
        return (
            as_space_dtype(obs, self.observation_space()),
            FunctionalState(next_env_state, time),
            jnp.asarray(reward, jnp.float32),
            jnp.asarray(terminated, bool),
            truncated,
            {},
        )


def _from_gymnasium_id(env_id: str, make_kwargs: dict) -> tuple[Any, int]:
    """The ``FuncEnv`` behind a Gymnasium id, and the id's time limit."""
    try:
        import gymnasium
    except ImportError as err:
        raise ImportError(
            f"from_functional({env_id!r}) needs Gymnasium, which jrl installs only as its 'gymnasium' extra: "
            f"{install_hint('gymnasium')}"
        ) from err
    try:
        spec = gymnasium.spec(env_id)
    except gymnasium.error.Error as err:
        raise ValueError(f"unknown Gymnasium id {env_id!r}: {err}") from err
    made = gymnasium.make(env_id, disable_env_checker=True, **make_kwargs)
    func_env = getattr(made.unwrapped, "func_env", None)
    made.close()
    if func_env is None:
        raise ValueError(
            f"Gymnasium's {env_id!r} is not a functional environment (no func_env); the functional ones "
            "are registered with a FunctionalJaxEnv entry point, e.g. 'phys2d/CartPole-v1'"
        )
    return func_env, spec.max_episode_steps or NO_TIME_LIMIT


def from_functional(
    func_env: Any,
    env_params: Any = None,
    *,
    max_episode_steps: int | None = None,
    **make_kwargs: Any,
) -> tuple[FunctionalEnv, FunctionalParams]:
    """Wrap a Gymnasium ``FuncEnv``: ``env, env_params = from_functional("phys2d/CartPole-v1")``.

    Args:
        func_env: a ``FuncEnv`` instance (e.g. ``CartPoleFunctional()``), or the id of a Gymnasium
            functional environment (built with ``gymnasium.make(id, **make_kwargs)``; its
            ``max_episode_steps`` is the time limit).
        env_params: the ``FuncEnv``'s params (default: its ``default_params``).
        max_episode_steps: the time limit (default: the id's, or none for an instance); ``-1``
            removes it.
        **make_kwargs: keyword arguments for ``gymnasium.make`` (with an id only).

    Returns:
        ``(env, env_params)``: a ``FunctionalEnv`` and its ``FunctionalParams``.

    Raises:
        ValueError: an unknown or non-functional Gymnasium id, a bad ``max_episode_steps``, or
            spaces with no jrl counterpart.
        TypeError: something that is not a ``FuncEnv``, or keywords with an instance.
    """
    env_id, limit = "", NO_TIME_LIMIT
    if isinstance(func_env, str):
        env_id = func_env
        func_env, limit = _from_gymnasium_id(func_env, make_kwargs)
    elif make_kwargs:
        raise TypeError(f"from_functional: keyword arguments {sorted(make_kwargs)} are for gymnasium.make, given an id")
    for method in ("initial", "transition", "observation", "reward", "terminal"):
        if not callable(getattr(func_env, method, None)):
            raise TypeError(f"from_functional needs a Gymnasium FuncEnv (with {method}), got {type(func_env).__name__}")
    if max_episode_steps is not None:
        if isinstance(max_episode_steps, bool) or not isinstance(max_episode_steps, int):
            raise TypeError(f"max_episode_steps must be an int, got {max_episode_steps!r}")
        if max_episode_steps == -1:
            limit = NO_TIME_LIMIT
        elif 1 <= max_episode_steps <= NO_TIME_LIMIT:
            limit = max_episode_steps
        else:
            raise ValueError(f"max_episode_steps must be >= 1 (or -1 for no limit), got {max_episode_steps}")
    env = FunctionalEnv(func_env, env_id=env_id)
    params = env.default_params.replace(max_steps_in_episode=jnp.int32(limit))
    if env_params is not None:
        params = params.replace(env_params=env_params)
    env.observation_space()  # unsupported spaces fail here, not inside a trace
    env.action_space()
    return env, params
