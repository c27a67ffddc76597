"""The environment interface and its one auto-reset.

Every environment is a frozen dataclass holding only *static* settings (shapes, sizes); every
dynamic setting lives in its ``params`` pytree (a ``flax.struct.dataclass``), so ``vmap`` can
run environments with different parameters side by side.

Conventions (Gymnasium's, made pure):
- ``reset(key, params) -> (obs, state)``.
- ``step(key, state, action, params) -> (obs, state, reward, terminated, truncated, info)``.
- ``terminated``: the episode reached a true terminal state, do not bootstrap.
- ``truncated``: the time limit ``params.max_steps_in_episode`` was reached (Gymnasium's
  ``TimeLimit``: it fires on the step that makes the elapsed count equal the limit, whether or not
  that step also terminates), bootstrap from ``info["final_observation"]``.
- ``step`` auto-resets in the same step: when ``terminated | truncated`` the returned
  ``obs``/``state`` already belong to a fresh episode. ``info["final_observation"]`` is the
  observation the transition actually led to, on every step, so shapes never change.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from jrl.spaces import Space

__all__ = ["NO_TIME_LIMIT", "Environment", "auto_reset", "is_concrete"]

#: ``max_steps_in_episode`` of an environment that Gymnasium registers without a time limit
#: (the largest int32: the limit never fires in practice).
NO_TIME_LIMIT = 2**31 - 1


def is_concrete(*xs: Any) -> bool:
    """True when no leaf of ``xs`` is a JAX tracer (so host-side checks can read the values)."""
    return not any(isinstance(leaf, jax.core.Tracer) for leaf in jax.tree_util.tree_leaves(xs))


def auto_reset(done: jax.Array, stepped: tuple[Any, Any], reset: tuple[Any, Any]) -> tuple[Any, Any]:
    """Select the reset ``(obs, state)`` where ``done``, the stepped one elsewhere.

    Works for one environment (``done`` a scalar) and under ``vmap``.
    """
    return jax.tree_util.tree_map(lambda r, s: jnp.where(done, r, s), reset, stepped)


class Environment:
    """Base class. Subclasses implement ``reset_env``, ``step_env``, the two spaces and
    ``default_params``; ``reset`` and ``step`` (with auto-reset) come from here."""

    def default_params(self) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError

    def reset_env(self, key: jax.Array, params: Any) -> tuple[jax.Array, Any]:  # pragma: no cover
        raise NotImplementedError

    def step_env(
        self, key: jax.Array, state: Any, action: jax.Array, params: Any
    ) -> tuple[jax.Array, Any, jax.Array, jax.Array, jax.Array, dict]:  # pragma: no cover
        raise NotImplementedError

    def observation_space(self, params: Any) -> Space:  # pragma: no cover - abstract
        raise NotImplementedError

    def action_space(self, params: Any) -> Space:  # pragma: no cover - abstract
        raise NotImplementedError

    def reset(self, key: jax.Array, params: Any) -> tuple[jax.Array, Any]:
        """Start an episode. Returns ``(obs, state)``."""
        return self.reset_env(key, params)

    def step(
        self, key: jax.Array, state: Any, action: jax.Array, params: Any
    ) -> tuple[jax.Array, Any, jax.Array, jax.Array, jax.Array, dict]:
        """One transition with same-step auto-reset.

        Returns ``(obs, state, reward, terminated, truncated, info)``; ``reward`` float32,
        ``terminated``/``truncated`` bool scalars, ``info["final_observation"]`` the observation
        the transition led to (before any reset).
        """
        self._check_action(action, params)
        key_step, key_reset = jax.random.split(key)
        obs, next_state, reward, terminated, truncated, info = self.step_env(key_step, state, action, params)
        done = jnp.logical_or(terminated, truncated)
        obs_out, state_out = auto_reset(done, (obs, next_state), self.reset_where(key_reset, params, done))
        return obs_out, state_out, reward, terminated, truncated, {**info, "final_observation": obs}

    def reset_where(self, key: jax.Array, params: Any, done: jax.Array) -> tuple[jax.Array, Any]:
        """The reset ``step`` keeps where ``done`` (bool scalar) and discards elsewhere.

        ``reset_env(key, params)`` here. An environment whose reset is costly may override it to
        skip the work where ``done`` is False, returning anything of the same shape there (under
        ``vmap`` every environment computes its reset on every step).
        """
        del done
        return self.reset_env(key, params)

    def _check_action(self, action: Any, params: Any) -> None:
        """Refuse a concrete out-of-space action on the host (under ``jit`` this cannot run)."""
        if is_concrete(action, params) and jnp.ndim(action) == len(self.action_space(params).shape):
            self.action_space(params).check(action, "action")
