"""gymnax environments as jrl environments (gymnax is the ``interop`` extra).

``from_gymnax(gymnax_env_or_id)`` wraps any gymnax environment: bsuite, MinAtar, classic control,
the misc set, or your own subclass of ``gymnax.environments.environment.Environment``. The result
is a jrl ``Environment``, so everything in jrl (``jrl.algorithms.dqn``, ``jrl.evaluate``, the
experiments runner, the Gymnasium wrappers) takes it. Every gymnax id is also the jrl id
``gymnax/<id>``: the first ``jrl.make("gymnax/...")`` registers them all in jrl's registry
(``register_gymnax_envs``), so ``jrl.make("gymnax/Catch-bsuite")`` and
``jrl train --env gymnax/Catch-bsuite --algo dqn`` work with no import.

How the two conventions meet:

- jrl's ``step`` auto-resets from the wrapper's ``reset_env``/``step_env``, which call gymnax's
  ``reset_env``/``step_env`` (gymnax's own ``step`` auto-resets too; it is not used).
- Termination and truncation stay apart. gymnax 1.x returns ``terminated`` from ``step_env`` and
  truncates with ``is_truncated(state, params)`` (``state.time >= max_steps_in_episode``), the
  rule of Gymnasium's ``TimeLimit`` and of jrl. Older gymnax (before 1.0) returned one ``done``
  that merged the time limit into the terminal condition; for such an environment (no
  ``is_truncated`` method) the wrapper recomputes ``terminated`` with ``is_terminal`` and the time
  limit lifted, and ``truncated`` from ``state.time``, so a time-limited step bootstraps.
- The time limit is ``GymnaxParams.max_steps_in_episode``, jrl's field, written into gymnax's
  params on every call: ``jrl.make(..., max_episode_steps=...)`` and ``jrl.evaluate`` set it as
  for any jrl environment.
- Spaces: ``Discrete`` and ``Box`` convert exactly; a box of a non-float dtype (Catch's int32
  board, MinAtar's bool images) becomes a float32 ``Box`` and its observations are cast.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
from flax import struct

from jrl._extras import install_hint
from jrl.envs.core import NO_TIME_LIMIT, Environment, is_concrete
from jrl.envs.registry import register, registered_envs
from jrl.spaces import Discrete, Space
from jrl.wrappers._foreign import as_space_dtype, jrl_space

__all__ = ["GymnaxEnv", "GymnaxParams", "from_gymnax", "gymnax_env_ids", "register_gymnax_envs"]

#: jrl's namespace for the gymnax ids (``gymnax/<gymnax id>``).
NAMESPACE = "gymnax"


def _missing_gymnax(what: str, err: ImportError) -> ImportError:
    return ImportError(
        f"{what} needs gymnax, which jrl installs only as its 'interop' extra: "
        f"{install_hint('interop')}; importing it failed: {err}"
    )


@struct.dataclass
class GymnaxParams:
    """A wrapped gymnax environment's params.

    Attributes:
        env_params: gymnax's params pytree (its ``max_steps_in_episode`` is overwritten by the
            field below on every call).
        max_steps_in_episode: int32 scalar, the time limit (``NO_TIME_LIMIT`` for none).
    """

    env_params: Any
    max_steps_in_episode: jax.Array


@dataclasses.dataclass(frozen=True)
class GymnaxEnv(Environment):
    """A gymnax environment as a jrl ``Environment``; build it with ``from_gymnax``.

    The state is gymnax's own state pytree; observations have the jrl space's dtype.

    Attributes:
        gymnax_env: the gymnax environment (compared by identity, so one wrapped instance shares
            compiled functions).
    """

    gymnax_env: Any

    @property
    def legacy_done(self) -> bool:
        """True for gymnax before 1.0, whose ``step_env`` returned ``done`` with the time limit merged in."""
        return not hasattr(self.gymnax_env, "is_truncated")

    @property
    def num_actions(self) -> int:
        """The number of actions (``Discrete`` action spaces only)."""
        space = self.action_space(self.default_params)
        if not isinstance(space, Discrete):
            raise AttributeError(f"{self.env_id or 'GymnaxEnv'} has a {space!r} action space, not a Discrete one")
        return space.n

    @property
    def default_params(self) -> GymnaxParams:
        inner = self.gymnax_env.default_params
        limit = getattr(inner, "max_steps_in_episode", NO_TIME_LIMIT)
        return GymnaxParams(env_params=inner, max_steps_in_episode=jnp.int32(min(int(limit), NO_TIME_LIMIT)))

    def _inner(self, params: GymnaxParams) -> Any:
        """gymnax's params with jrl's time limit written in."""
        return params.env_params.replace(max_steps_in_episode=params.max_steps_in_episode)

    def _space(self, which: str, params: Any) -> Space:
        # Under a trace the params are tracers; a space's shape and dtype cannot depend on them,
        # so the default params describe it there.
        # ensure_compile_time_eval: gymnax builds some bounds with jnp ops, which a trace would stage.
        inner = params.env_params if params is not None and is_concrete(params) else self.gymnax_env.default_params
        name = self.env_id or type(self.gymnax_env).__name__
        with jax.ensure_compile_time_eval():
            space = getattr(self.gymnax_env, which)(inner)
        return jrl_space(space, f"{name} {which.replace('_', ' ')}")

    def observation_space(self, params: GymnaxParams | None = None) -> Space:
        return self._space("observation_space", params)

    def action_space(self, params: GymnaxParams | None = None) -> Space:
        return self._space("action_space", params)

    def reset_env(self, key: jax.Array, params: GymnaxParams) -> tuple[jax.Array, Any]:
        obs, state = self.gymnax_env.reset_env(key, self._inner(params))
        return as_space_dtype(obs, self.observation_space(params)), state

    def step_env(
        self, key: jax.Array, state: Any, action: jax.Array, params: GymnaxParams
    ) -> tuple[jax.Array, Any, jax.Array, jax.Array, jax.Array, dict]:
        inner = self._inner(params)
        obs, next_state, reward, done, info = self.gymnax_env.step_env(key, state, action, inner)
        if self.legacy_done:
            # ``done`` = terminal | time limit: ask for the terminal condition with the limit lifted.
            unlimited = inner.replace(max_steps_in_episode=jnp.int32(NO_TIME_LIMIT))
            terminated = self.gymnax_env.is_terminal(next_state, unlimited)
            truncated = next_state.time >= params.max_steps_in_episode
        else:
            terminated = done
            truncated = self.gymnax_env.is_truncated(next_state, inner)
        obs = as_space_dtype(obs, self.observation_space(params))
        info = {k: v for k, v in dict(info).items() if k not in ("terminated", "truncated", "discount")}
        return (
            obs,
            next_state,
            jnp.asarray(reward, jnp.float32),
            jnp.asarray(terminated, bool),
            jnp.asarray(truncated, bool),
            info,
        )


def from_gymnax(gymnax_env: Any, env_params: Any = None, **make_kwargs: Any) -> tuple[GymnaxEnv, GymnaxParams]:
    """Wrap a gymnax environment: ``env, env_params = from_gymnax("Catch-bsuite")``.

    Args:
        gymnax_env: a gymnax id (built with ``gymnax.make(id, **make_kwargs)``) or a gymnax
            environment instance.
        env_params: gymnax params to start from (default: the environment's ``default_params``,
            or those ``gymnax.make`` returned).
        **make_kwargs: keyword arguments for ``gymnax.make`` (with an id only).

    Returns:
        ``(env, env_params)``: a ``GymnaxEnv`` and its ``GymnaxParams`` (time limit from gymnax's
        ``max_steps_in_episode``).

    Raises:
        ImportError: an id without gymnax installed (or when gymnax fails to import).
        ValueError: an unknown gymnax id, or spaces with no jrl counterpart.
        TypeError: something that is not a gymnax environment, or keywords with an instance.
    """
    env_id = ""
    if isinstance(gymnax_env, str):
        try:
            import gymnax
        except ImportError as err:
            raise _missing_gymnax(f"from_gymnax({gymnax_env!r})", err) from err
        if gymnax_env not in gymnax.registered_envs:
            raise ValueError(f"unknown gymnax id {gymnax_env!r}; gymnax has {list(gymnax.registered_envs)}")
        env_id = f"{NAMESPACE}/{gymnax_env}"
        gymnax_env, made_params = gymnax.make(gymnax_env, **make_kwargs)
        env_params = made_params if env_params is None else env_params
    elif make_kwargs:
        raise TypeError(f"from_gymnax: keyword arguments {sorted(make_kwargs)} are for gymnax.make, given an id")
    for method in ("reset_env", "step_env", "observation_space", "action_space", "default_params"):
        if not hasattr(gymnax_env, method):
            raise TypeError(
                f"from_gymnax needs a gymnax environment (with {method}), got {type(gymnax_env).__name__}; "
                "pass an id such as 'Catch-bsuite' or gymnax.make(id)[0]"
            )
    env = GymnaxEnv(gymnax_env, env_id=env_id)
    params = env.default_params
    if env_params is not None:
        if not hasattr(env_params, "replace") or not hasattr(env_params, "max_steps_in_episode"):
            raise TypeError(
                f"env_params must be the gymnax environment's params (with max_steps_in_episode), "
                f"got {type(env_params).__name__}"
            )
        limit = min(int(env_params.max_steps_in_episode), NO_TIME_LIMIT)
        params = GymnaxParams(env_params=env_params, max_steps_in_episode=jnp.int32(limit))
    env.observation_space(params)  # unsupported spaces fail here, not inside a trace
    env.action_space(params)
    return env, params


def _factory(gymnax_id: str) -> Any:
    def factory(**make_kwargs: Any) -> tuple[GymnaxEnv, GymnaxParams]:
        return from_gymnax(gymnax_id, **make_kwargs)

    return factory


def gymnax_env_ids() -> list[str]:
    """Every gymnax id as jrl names it, ``gymnax/<id>``, sorted, without registering or building
    any (``jrl envs`` lists them). ``ImportError`` as ``register_gymnax_envs``'s."""
    try:
        import gymnax
    except ImportError as err:
        raise _missing_gymnax("gymnax_env_ids", err) from err
    return sorted(f"{NAMESPACE}/{gymnax_id}" for gymnax_id in gymnax.registered_envs)


def register_gymnax_envs() -> list[str]:
    """Register every gymnax id in jrl's registry as ``gymnax/<id>``; returns the new jrl ids.

    ``jrl.make`` calls it for the first id of the ``gymnax/`` namespace; calling it again registers
    nothing. Each ``jrl.make("gymnax/<id>", **kwargs)`` calls ``gymnax.make(id, **kwargs)``.

    Raises:
        ImportError: gymnax is not installed or fails to import (the message names the extra and
            the import's own error).
    """
    try:
        import gymnax
    except ImportError as err:
        raise _missing_gymnax("register_gymnax_envs", err) from err
    have = set(registered_envs())
    added = []
    for gymnax_id in gymnax.registered_envs:
        jrl_id = f"{NAMESPACE}/{gymnax_id}"
        if jrl_id not in have:
            register(jrl_id, _factory(gymnax_id))
            added.append(jrl_id)
    return added
