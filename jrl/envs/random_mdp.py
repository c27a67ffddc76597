"""RandomMDP-v0: the classic 10-state Q-learning example, made exact.

``num_states`` states (default 10), ``num_actions`` actions (default 2: 0 left, 1 right), a
reward table ``R[s, a]`` drawn uniformly in [0, 1) from ``seed``, and a next state drawn uniformly
at random whatever the action (K = S outcomes, probability 1/S each). Episodes start in a uniformly
random state and never terminate; they end by truncation after ``max_episode_steps`` (default 100;
the example's one-step episodes are ``max_episode_steps=1``). Because nothing terminates,
Q-learning reaches Q* only by bootstrapping through truncation.

Q* is known in closed form: ``Q*(s, a) = R[s, a] + gamma / (1 - gamma) * mean_s' max_a' R[s', a']``.
"""

from __future__ import annotations

import jax
import numpy as np

from jrl._validation import check_int
from jrl.envs.tabular import tabular_mdp_from_numpy


def random_mdp_model(num_states: int = 10, num_actions: int = 2, seed: int = 0):
    """The model, reward table from ``jax.random.key(seed)`` (same seed, same table, any platform)."""
    check_int("num_states", num_states, 1, 100_000)
    check_int("num_actions", num_actions, 1, 10_000)
    check_int("seed", seed, 0, 2**32 - 1)
    rewards = np.asarray(jax.random.uniform(jax.random.key(seed), (num_states, num_actions)))
    shape = (num_states, num_actions, num_states)
    return tabular_mdp_from_numpy(
        transition_probs=np.full(shape, 1.0 / num_states),
        next_states=np.broadcast_to(np.arange(num_states), shape),
        rewards=np.broadcast_to(rewards[:, :, None], shape),
        terminals=np.zeros(shape, dtype=bool),
        initial_distribution=np.full(num_states, 1.0 / num_states),
    )
