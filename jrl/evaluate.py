"""Parallel evaluation of any policy: every episode run to its end, in one compiled call."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

from jrl._validation import check_int
from jrl.envs.core import Environment

__all__ = ["evaluate"]

Policy = Callable[[Any, jax.Array, jax.Array], jax.Array]


def evaluate(
    key: jax.Array,
    policy: Policy,
    policy_params: Any,
    env: Environment,
    env_params: Any,
    num_episodes: int = 1000,
    max_steps_in_episode: int | None = None,
) -> jax.Array:
    """Undiscounted return of ``num_episodes`` independent episodes: float32 ``[num_episodes]``.

    ``policy(policy_params, obs, key) -> action`` acts on one observation; ``evaluate`` batches it
    with ``vmap``. All episodes run in parallel (``env.step_env``, no auto-reset) until each has
    terminated or been truncated by the time limit. ``max_steps_in_episode`` overrides
    ``env_params.max_steps_in_episode`` for this evaluation: pass it for environments registered
    without a time limit (e.g. ``CliffWalking-v1``) when the policy might never reach the goal.
    Works eagerly (one compiled call, cached per policy and environment) and under ``jit``.
    """
    check_int("num_episodes", num_episodes, 1)
    if not isinstance(env, Environment):
        raise TypeError(f"env must be a jrl Environment, got {type(env).__name__}")
    if not callable(policy):
        raise TypeError(f"policy must be callable as policy(policy_params, obs, key), got {policy!r}")
    if max_steps_in_episode is not None:
        check_int("max_steps_in_episode", max_steps_in_episode, 1)
        env_params = env_params.replace(max_steps_in_episode=jnp.int32(max_steps_in_episode))
    return _evaluate(key, policy_params, env_params, policy, env, num_episodes)


@functools.partial(jax.jit, static_argnums=(3, 4, 5))
def _evaluate(key, policy_params, env_params, policy, env, num_episodes):
    key_reset, key_loop = jax.random.split(key)
    obs, state = jax.vmap(env.reset, in_axes=(0, None))(jax.random.split(key_reset, num_episodes), env_params)
    done = jnp.zeros(num_episodes, bool)
    returns = jnp.zeros(num_episodes, jnp.float32)

    def cond(carry):
        return ~jnp.all(carry[2])

    def body(carry):
        obs, state, done, returns, t = carry
        k_policy, k_env = jax.random.split(jax.random.fold_in(key_loop, t))
        k_policy, k_env = jax.random.split(k_policy, num_episodes), jax.random.split(k_env, num_episodes)
        actions = jax.vmap(policy, in_axes=(None, 0, 0))(policy_params, obs, k_policy)
        next_obs, next_state, reward, terminated, truncated, _ = jax.vmap(env.step_env, in_axes=(0, 0, 0, None))(
            k_env, state, actions, env_params
        )
        # Finished episodes keep their last state and collect no more reward.
        obs, state = jax.tree_util.tree_map(
            lambda new, old: jnp.where(_expand(done, new), old, new), (next_obs, next_state), (obs, state)
        )
        returns = returns + jnp.where(done, 0.0, reward)
        done = done | terminated | truncated
        return obs, state, done, returns, t + 1

    return jax.lax.while_loop(cond, body, (obs, state, done, returns, jnp.int32(0)))[3]


def _expand(mask: jax.Array, like: jax.Array) -> jax.Array:
    return mask.reshape(mask.shape + (1,) * (like.ndim - mask.ndim))
