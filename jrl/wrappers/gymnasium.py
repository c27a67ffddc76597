"""Run a jrl policy in Gymnasium's own environment (needs ``gymnasium``: the ``gymnasium`` extra)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jrl._validation import check_int


def evaluate_in_gymnasium(
    policy: Callable[[Any, jax.Array, jax.Array], jax.Array],
    policy_params: Any,
    env_id: str,
    num_episodes: int = 100,
    seed: int = 0,
    **make_kwargs: Any,
) -> np.ndarray:
    """Undiscounted returns of ``num_episodes`` episodes of ``gymnasium.make(env_id, **make_kwargs)``
    driven by ``policy(policy_params, obs, key)`` (the same signature ``jrl.evaluate`` takes):
    float64 ``[num_episodes]``. Episode ``i`` runs in its own environment instance, reset with seed
    ``seed + i``; all episodes advance together, one batched (vmapped, compiled) policy call per
    step, until each has ended. The policy's keys come from ``jax.random.key(seed)``. A check that
    what was learned in jrl holds in the reference.
    """
    try:
        import gymnasium
    except ImportError as err:
        raise ImportError(
            "evaluate_in_gymnasium needs Gymnasium, which jrl installs only as its 'gymnasium' extra: "
            "pip install 'jrl[gymnasium]' (from a checkout: pip install -e '.[gymnasium]')"
        ) from err
    check_int("num_episodes", num_episodes, 1)
    check_int("seed", seed, 0)
    # One policy call for all episodes per step, instead of one per episode-step: a compiled call
    # costs tens of microseconds to dispatch, more than a classic-control step in Gymnasium.
    act = jax.jit(jax.vmap(policy, in_axes=(None, 0, 0)))
    envs = [gymnasium.make(env_id, **make_kwargs) for _ in range(num_episodes)]
    obs = np.stack([env.reset(seed=seed + i)[0] for i, env in enumerate(envs)])
    key = jax.random.key(seed)
    returns = np.zeros(num_episodes)
    running = np.ones(num_episodes, dtype=bool)
    while running.any():
        key, step_key = jax.random.split(key)
        # Ended episodes keep their last observation; their actions are computed and ignored.
        actions = np.asarray(act(policy_params, jnp.asarray(obs), jax.random.split(step_key, num_episodes)))
        for i in np.flatnonzero(running):
            obs[i], reward, terminated, truncated, _ = envs[i].step(int(actions[i]))
            returns[i] += float(reward)
            running[i] = not (terminated or truncated)
    for env in envs:
        env.close()
    return returns
