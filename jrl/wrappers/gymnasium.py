"""Run a jrl policy in Gymnasium's own environment (needs ``gymnasium``: the ``dev`` extra)."""

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
    float64 ``[num_episodes]``. Episode ``i`` is reset with seed ``seed + i``; the policy's keys come
    from ``jax.random.key(seed)``. A check that what was learned in jrl holds in the reference.
    """
    try:
        import gymnasium
    except ImportError as err:  # pragma: no cover - depends on the installation
        raise ImportError("evaluate_in_gymnasium needs gymnasium: pip install -e '.[dev]'") from err
    check_int("num_episodes", num_episodes, 1)
    check_int("seed", seed, 0)
    act = jax.jit(policy)
    env = gymnasium.make(env_id, **make_kwargs)
    key = jax.random.key(seed)
    returns = np.zeros(num_episodes)
    for episode in range(num_episodes):
        obs, _ = env.reset(seed=seed + episode)
        done = False
        while not done:
            key, step_key = jax.random.split(key)
            action = int(act(policy_params, jnp.asarray(obs), step_key))
            obs, reward, terminated, truncated, _ = env.step(action)
            returns[episode] += float(reward)
            done = terminated or truncated
    env.close()
    return returns
