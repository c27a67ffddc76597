"""Rollouts over many parallel environments and the lambda-return, for on-policy algorithms.

PQN and PPO share one shape of iteration: step ``N`` environments ``T`` times with the current
policy (``collect``), compute targets backwards over the ``[T, N]`` rollout (``lambda_returns``),
then learn from it. Episodes that end inside a rollout are reset by the environment itself (auto-
reset, ``jrl.envs.core``); the observation they ended on is kept as ``Rollout.next_obs``, so a
time limit is bootstrapped from the state it cut, and nothing is carried across an episode's end.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
from flax import struct

from jrl._numerics import rounded
from jrl.envs.core import Environment

__all__ = ["Envs", "Rollout", "collect", "lambda_returns", "reset_envs", "step_envs"]


@struct.dataclass
class Envs:
    """``N`` environments mid-episode.

    Attributes:
        obs: ``[N, *obs_shape]``, the observations the next actions act on.
        state: the environments' states (a pytree with leading axis ``N``).
        episode_return: float32 ``[N]``, undiscounted reward so far in each running episode.
    """

    obs: jax.Array
    state: Any
    episode_return: jax.Array


@struct.dataclass
class Rollout:
    """``T`` steps of ``N`` environments; every field has leading axes ``[T, N]``.

    Attributes:
        obs: ``[T, N, *obs_shape]``, the observation each action was chosen on.
        action: ``[T, N, *action_shape]``.
        reward: float32 ``[T, N]``.
        terminated: bool ``[T, N]``, the step reached a terminal state (no bootstrap).
        truncated: bool ``[T, N]``, the time limit cut the episode (bootstrap from ``next_obs``).
        next_obs: ``[T, N, *obs_shape]``, the observation the step led to, before any auto-reset
            (the final observation of an episode that ended; else the next step's ``obs``).
        extras: what the policy returned beside each action (e.g. log-probabilities, values),
            a pytree with leading axes ``[T, N]``.
    """

    obs: jax.Array
    action: jax.Array
    reward: jax.Array
    terminated: jax.Array
    truncated: jax.Array
    next_obs: jax.Array
    extras: Any


def reset_envs(key: jax.Array, env: Environment, env_params: Any, num_envs: int) -> Envs:
    """``num_envs`` fresh episodes, one key each (``split(key, num_envs)``)."""
    obs, state = jax.vmap(env.reset, in_axes=(0, None))(jax.random.split(key, num_envs), env_params)
    return Envs(obs=obs, state=state, episode_return=jnp.zeros(num_envs, jnp.float32))


def step_envs(
    key: jax.Array, env: Environment, env_params: Any, states: Any, actions: jax.Array, batched: bool = False
) -> tuple[jax.Array, Any, jax.Array, jax.Array, jax.Array, dict]:
    """One step of ``N`` environments (states: leaves ``[N, ...]``; actions ``[N, ...]``) from one
    ``key``, what ``jax.vmap(env.step)`` returns. ``batched=False``: environment ``i`` steps with
    ``jax.random.split(key, N)[i]`` (every recorded default's stream); ``True``: ``env.step_batch``
    draws every environment's random numbers (resets, noise) in one call: other numbers, the same
    distribution, so another run than the default's; faster only where the environments weigh in
    a step (many environments, a small network: DQN on CartPole, 1.2x at 1,024 environments;
    docs/benchmarks.md). DQN's, PQN's and PPO's config field ``batched_env_step`` chooses."""
    if batched:
        return env.step_batch(key, states, actions, env_params)
    n = jnp.shape(actions)[0]
    return jax.vmap(env.step, in_axes=(0, 0, 0, None))(jax.random.split(key, n), states, actions, env_params)


def collect(
    key: jax.Array,
    env: Environment,
    env_params: Any,
    envs: Envs,
    act: Callable[[jax.Array, jax.Array, jax.Array], tuple[jax.Array, Any]],
    num_steps: int,
    batched: bool = False,
) -> tuple[Envs, Rollout, jax.Array]:
    """Step every environment ``num_steps`` times with ``act``.

    ``act(key, obs [N, ...], t) -> (actions [N, ...], extras)`` chooses all ``N`` actions at once
    (``t``: int32, the rollout step, for schedules); step ``t`` draws its keys from
    ``fold_in(key, t)`` and steps the environments with ``step_envs(..., batched)``. Returns the
    environments after the last step, the ``Rollout`` and float32 ``[2]``: the summed returns of
    the episodes that ended during the rollout and their count.
    """

    def step(carry: tuple[Envs, jax.Array], t: jax.Array) -> tuple[tuple[Envs, jax.Array], Rollout]:
        envs, ended = carry
        k_act, k_env = jax.random.split(jax.random.fold_in(key, t))
        action, extras = act(k_act, envs.obs, t)
        obs, state, reward, terminated, truncated, info = step_envs(k_env, env, env_params, envs.state, action, batched)
        done = terminated | truncated
        episode_return = envs.episode_return + reward
        ended = ended + jnp.stack([jnp.sum(jnp.where(done, episode_return, 0.0)), jnp.sum(done.astype(jnp.float32))])
        transition = Rollout(envs.obs, action, reward, terminated, truncated, info["final_observation"], extras)
        return (Envs(obs, state, jnp.where(done, 0.0, episode_return)), ended), transition

    steps = jnp.arange(num_steps, dtype=jnp.int32)
    (envs, ended), rollout = jax.lax.scan(step, (envs, jnp.zeros(2, jnp.float32)), steps)
    return envs, rollout, ended


def lambda_returns(
    reward: jax.Array,
    terminated: jax.Array,
    truncated: jax.Array,
    next_value: jax.Array,
    gamma: jax.Array,
    lam: jax.Array,
) -> jax.Array:
    """The lambda-return of every step of a rollout, float32 ``[T, N]`` (inputs ``[T, N]``).

    ``next_value[t]`` is the value of the observation step ``t`` led to (``Rollout.next_obs``:
    ``max_a Q`` for Q(lambda), ``V`` for GAE). Backwards from the rollout's last step::

        G[t] = r[t] + gamma * (1 - terminated[t]) * ((1 - lam') * next_value[t] + lam' * G[t + 1])

    with ``lam' = lam`` while the episode goes on, and ``lam' = 0`` where it ended at ``t``
    (terminated or truncated: ``G[t + 1]`` belongs to the next episode) and at the rollout's last
    step (nothing after it was seen). A time limit therefore bootstraps from the final observation,
    a terminal state not at all. ``G - V(obs)`` is GAE(gamma, lam)'s advantage.
    """
    continues = ~(terminated | truncated)
    discount = gamma * (1.0 - terminated.astype(jnp.float32))

    def backward(later: jax.Array, step: tuple) -> tuple[jax.Array, jax.Array]:
        r, d, v, c = step
        mix = jnp.where(c, lam, 0.0)
        # Every product rounded before its add (jrl._numerics.rounded): XLA would otherwise contract
        # some into fused multiply-adds in one compilation and not in another, so make_train and
        # the same run in chunks would differ in the last bits.
        g = r + rounded(d * (rounded((1.0 - mix) * v) + rounded(mix * later)))
        return g, g

    # The step after the last is never used: lam' = 0 there, whatever `later` holds.
    last = jnp.zeros_like(reward[-1])
    cont = continues.at[-1].set(False)
    _, returns = jax.lax.scan(backward, last, (reward, discount, next_value, cont), reverse=True)
    return returns
