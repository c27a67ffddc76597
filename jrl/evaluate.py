"""Parallel evaluation of any policy: every episode run to its end, in one compiled call."""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
from flax import struct

from jrl._validation import check_int, check_key
from jrl.envs.core import NO_TIME_LIMIT, Environment, is_concrete
from jrl.spaces import Box, Discrete, Space

__all__ = ["UNLIMITED_EPISODE_CAP", "EpisodeStats", "evaluate", "evaluate_episodes"]

Policy = Callable[[Any, jax.Array, jax.Array], jax.Array]

#: Steps after which an evaluation cuts (truncates) the episodes of an environment that has no
#: time limit (``NO_TIME_LIMIT``, e.g. ``CliffWalking-v1``) when no ``max_steps_in_episode`` is given:
#: a policy that never reaches a terminal state would otherwise keep the evaluation running forever.
UNLIMITED_EPISODE_CAP = 10_000


@struct.dataclass
class EpisodeStats:
    """What ``evaluate_episodes`` measured, one entry per episode (``N = num_episodes``).

    Attributes:
        returns: float32 ``[N]``, undiscounted; NaN for an episode in which the policy chose an
            invalid action (``invalid_actions``).
        lengths: int32 ``[N]``, steps taken.
        terminated: bool ``[N]``, ended in a terminal state.
        truncated: bool ``[N]``, cut by the time limit (the environment's, ``max_steps_in_episode``
            when given, or ``UNLIMITED_EPISODE_CAP`` for an environment without one).
        invalid_actions: int32 ``[N]``, steps whose action was invalid: outside a ``Discrete``
            (or ``Tokens``) space, which the environment would have clamped silently; for a
            ``Box``, an action holding NaN. A ``Box`` action beyond the bounds is valid: the
            environment clips it, as Gymnasium's does (``Pendulum-v1``), and it is scored so.
    """

    returns: jax.Array
    lengths: jax.Array
    terminated: jax.Array
    truncated: jax.Array
    invalid_actions: jax.Array


def evaluate(
    key: jax.Array,
    policy: Policy,
    policy_params: Any,
    env: Environment,
    env_params: Any,
    num_episodes: int = 1000,
    max_steps_in_episode: int | None = None,
    batched: bool = False,
) -> jax.Array:
    """Undiscounted return of ``num_episodes`` independent episodes: float32 ``[num_episodes]``.

    ``policy(policy_params, obs, key) -> action`` acts on one observation; ``evaluate`` batches it
    with ``vmap``. All episodes run in parallel (``env.step_env``, no auto-reset) until each has
    terminated or been truncated by the time limit. ``max_steps_in_episode`` replaces
    ``env_params.max_steps_in_episode`` for this evaluation (episodes reaching it are truncated,
    their returns count so far, as under Gymnasium's ``TimeLimit``). An environment without a time
    limit is cut at ``UNLIMITED_EPISODE_CAP`` steps unless ``max_steps_in_episode`` is given.
    Works eagerly (one compiled call, cached per policy and environment) and under ``jit``.

    The policy's output is checked once before the loop: one action of the action space's shape,
    an integer dtype for ``Discrete``. Called eagerly, ``evaluate`` raises ``ValueError`` if the
    policy chose invalid actions (outside a ``Discrete`` space; NaN for a ``Box``, whose
    environment clips actions beyond its bounds) (under ``jit`` those episodes' returns are NaN), and
    warns when episodes of an environment without a time limit were cut at the cap. For per-episode
    lengths, terminations and truncations, use ``evaluate_episodes``.

    ``batched=True`` draws the environments' random numbers for all episodes at once instead of
    from one key per episode: the starts as ``env.reset_batch(key', num_episodes, ...)`` does,
    and at each step the ``uniform_shapes[0]`` uniforms of every episode in one call. Other
    episodes than the default's, from the same distributions; only environments with the
    uniform-driven hooks (``uniform_shapes``) draw differently, and the policy's keys are per
    episode either way. Faster where the environment's randomness weighs in a step (a slippery
    tabular world); the algorithms' ``batched_env_step`` evaluates this way.
    """
    stats = evaluate_episodes(key, policy, policy_params, env, env_params, num_episodes, max_steps_in_episode, batched)
    if is_concrete(stats):
        invalid = int(jnp.sum(stats.invalid_actions))
        if invalid:
            bad_episodes = int(jnp.sum(stats.invalid_actions > 0))
            space, name = env.action_space(env_params), env.env_id or type(env).__name__
            what, why = (
                (f"NaN actions for {space!r}", f"{name} cannot step with them")
                if isinstance(space, Box)
                else (f"actions outside {space!r}", f"{name} would clamp them silently")
            )
            raise ValueError(
                f"the policy chose {what} in {invalid} step(s) of {bad_episodes} of {num_episodes} episodes; "
                f"{why}, so evaluate refuses to score them (evaluate_episodes reports them per episode)"
            )
        if max_steps_in_episode is None and is_concrete(env_params):
            if int(env_params.max_steps_in_episode) >= NO_TIME_LIMIT and bool(jnp.any(stats.truncated)):
                warnings.warn(
                    f"{int(jnp.sum(stats.truncated))} of {num_episodes} episodes had not ended after "
                    f"{UNLIMITED_EPISODE_CAP} steps; {env.env_id or type(env).__name__} has no time limit, so "
                    "evaluate cut them there and their returns are partial sums. Pass max_steps_in_episode=... "
                    "to choose the cut",
                    stacklevel=2,
                )
    return stats.returns


def evaluate_episodes(
    key: jax.Array,
    policy: Policy,
    policy_params: Any,
    env: Environment,
    env_params: Any,
    num_episodes: int = 1000,
    max_steps_in_episode: int | None = None,
    batched: bool = False,
) -> EpisodeStats:
    """Like ``evaluate`` (same arguments, same episodes for the same key), but returns every
    episode's return, length, termination, truncation and count of invalid actions
    (``EpisodeStats``, leaves ``[num_episodes]``), and never raises or warns about them."""
    check_key("key", key)
    check_int("num_episodes", num_episodes, 1)
    if not isinstance(batched, bool):
        raise TypeError(f"batched must be a bool, got {type(batched).__name__} {batched!r}")
    if not isinstance(env, Environment):
        raise TypeError(f"env must be a jrl Environment, got {type(env).__name__}")
    if not callable(policy):
        raise TypeError(f"policy must be callable as policy(policy_params, obs, key), got {policy!r}")
    if max_steps_in_episode is not None:
        check_int("max_steps_in_episode", max_steps_in_episode, 1, NO_TIME_LIMIT)
        env_params = env_params.replace(max_steps_in_episode=jnp.int32(max_steps_in_episode))
    else:  # a traced limit works too: the cap is a select, not a Python branch
        limit = env_params.max_steps_in_episode
        env_params = env_params.replace(
            max_steps_in_episode=jnp.where(limit >= NO_TIME_LIMIT, UNLIMITED_EPISODE_CAP, limit).astype(jnp.int32)
        )
    _check_policy_output(policy, policy_params, env, env_params, key)
    return _evaluate(
        key, policy_params, env_params, policy, env, num_episodes, batched and env.uniform_shapes is not None
    )


def _check_policy_output(policy: Policy, policy_params: Any, env: Environment, env_params: Any, key: Any) -> None:
    """Trace the policy once on one observation (shapes only: nothing runs, ``key`` lends only its
    type) and refuse an output that is not one action of the action space's shape (integer dtype
    for ``Discrete``)."""
    space = env.action_space(env_params)
    obs = jax.eval_shape(env.reset, key, env_params)[0]
    try:
        action = jax.eval_shape(policy, policy_params, obs, key)
    except TypeError as err:
        raise TypeError(f"policy must be callable as policy(policy_params, obs, key) -> action: {err}") from err
    shape, dtype = getattr(action, "shape", None), getattr(action, "dtype", None)
    if shape != space.shape:
        raise ValueError(
            f"policy(policy_params, obs, key) must return one action of shape {space.shape} for {space!r} "
            f"(evaluate batches it with vmap), got {type(action).__name__} of shape {shape}"
        )
    if isinstance(space, Discrete) and not jnp.issubdtype(dtype, jnp.integer):
        raise TypeError(
            f"policy must return integer actions for {space!r}, got dtype {dtype} "
            "(a float is not cast silently: return e.g. jnp.argmax(...).astype(jnp.int32))"
        )


@functools.partial(jax.jit, static_argnums=(3, 4, 5, 6))
def _evaluate(key, policy_params, env_params, policy, env, num_episodes, batched):
    key_reset, key_loop = jax.random.split(key)
    if batched:  # every start drawn in one call
        obs, state = env.reset_batch(key_reset, num_episodes, env_params)
    else:
        obs, state = jax.vmap(env.reset, in_axes=(0, None))(jax.random.split(key_reset, num_episodes), env_params)
    space = env.action_space(env_params)
    zeros_int = jnp.zeros(num_episodes, jnp.int32)
    zeros_bool = jnp.zeros(num_episodes, bool)
    stats = EpisodeStats(jnp.zeros(num_episodes, jnp.float32), zeros_int, zeros_bool, zeros_bool, zeros_int)

    def cond(carry):
        stats = carry[2]
        return ~jnp.all(stats.terminated | stats.truncated)

    def body(carry):
        obs, state, stats, t = carry
        done = stats.terminated | stats.truncated
        k_policy, k_env = jax.random.split(jax.random.fold_in(key_loop, t))
        k_policy = jax.random.split(k_policy, num_episodes)
        if not batched:
            k_env = jax.random.split(k_env, num_episodes)
        actions = jax.vmap(policy, in_axes=(None, 0, 0))(policy_params, obs, k_policy)
        invalid = _invalid(space, actions)
        if batched:  # this step's uniforms for every episode in one call (no auto-reset: no reset part)
            u_step = jax.random.uniform(k_env, (num_episodes, *env.uniform_shapes[0]), jnp.float32)
            stepped = jax.vmap(env.step_env_from_uniform, in_axes=(0, 0, 0, None))(u_step, state, actions, env_params)
        else:
            stepped = jax.vmap(env.step_env, in_axes=(0, 0, 0, None))(k_env, state, actions, env_params)
        next_obs, next_state, reward, terminated, truncated, _ = stepped
        # Finished episodes keep their last state and collect no more reward.
        obs, state = jax.tree_util.tree_map(
            lambda new, old: jnp.where(_expand(done, new), old, new), (next_obs, next_state), (obs, state)
        )
        running = ~done
        stats = EpisodeStats(
            returns=stats.returns + jnp.where(running, reward, 0.0),
            lengths=stats.lengths + running.astype(jnp.int32),
            terminated=stats.terminated | (running & terminated),
            truncated=stats.truncated | (running & truncated & ~terminated),
            invalid_actions=stats.invalid_actions + (running & invalid).astype(jnp.int32),
        )
        return obs, state, stats, t + 1

    stats = jax.lax.while_loop(cond, body, (obs, state, stats, jnp.int32(0)))[2]
    return stats.replace(returns=jnp.where(stats.invalid_actions > 0, jnp.nan, stats.returns))


def _invalid(space: Space, actions: jax.Array) -> jax.Array:
    """bool ``[N]``: which of the batched ``actions`` (``[N, *space.shape]``) are invalid. A
    ``Box`` action is invalid when it holds a NaN only: beyond the bounds, its environment clips it
    (Gymnasium's semantics). Any other space: not an element (``space.contains``)."""
    if isinstance(space, Box):
        return jnp.any(jnp.isnan(actions).reshape(actions.shape[0], -1), axis=1)
    return ~jax.vmap(space.contains)(actions)


def _expand(mask: jax.Array, like: jax.Array) -> jax.Array:
    return mask.reshape(mask.shape + (1,) * (like.ndim - mask.ndim))
