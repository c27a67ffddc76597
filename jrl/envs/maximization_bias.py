"""MaximizationBias-v0: the small MDP of Sutton & Barto's Example 6.7 (Figure 6.5), as an explicit model.

Three states: ``A`` (0, where every episode starts), ``B`` (1) and a terminal state (2). From A,
actions ``0 .. n/2 - 1`` move LEFT to B (reward 0, not terminal) and actions ``n/2 .. n - 1`` move
RIGHT to the terminal state (reward 0, terminated). From B every action terminates with a reward
drawn from a normal distribution ``N(reward_mean, reward_std**2)`` (default mean -0.1, std 1). The
terminal state's row is a terminal self-loop ``(1.0, 2, 0, True)``, as Gymnasium lists terminal
states (FrozenLake's holes); it is never occupied. Episodes last one step (right) or two (left), so
the registered time limit is ``NO_TIME_LIMIT``.

Why halves of the actions in A
------------------------------
The book's A has two actions, left and right, and B has many. A jrl table has one action count for
every state, so A here has ``num_actions`` (default 10, even) actions, half of them left and half
right. A uniformly random action in A then moves left with probability 1/2, exactly as a random
pick between the book's two actions does. So the epsilon-greedy policy that is greedy for right
(the optimal one: going left is worth -0.1) still moves left ``epsilon / 2`` of the time, 5% at
epsilon 0.1: the optimum Figure 6.5 marks. One thing differs from the book: A's left actions are
separate table entries, so a learner's greedy choice in A is the largest of several noisy left
estimates (a second maximization). ``experiments/maximization_bias/README.md`` measures its effect
on the learning curves against the book's two-action A.

The model holds the mean rewards
--------------------------------
``env.mdp(params)`` is a deterministic model (``K = 1`` outcome per state and action) whose
reward from B is ``reward_mean``, so ``jrl.planning.value_iteration`` gives the exact Q*: with
``gamma = 1``, ``Q*(A, left) = reward_mean = -0.1`` and ``Q*(A, right) = 0``. The noise lives in
``step``: ``MaximizationBiasEnv`` overrides ``step_env_from_uniform`` and adds
``reward_std * ndtri(u)`` to the reward of every transition from B. With one outcome per
``(s, a)``, the uniform ``u`` that a ``TabularEnv`` spends on choosing the outcome is unused, so it
is the noise's source: the step still takes one uniform, and Q-learning's ``step_from_uniforms``
and ``jrl.evaluate``'s ``step_env`` sample the noise without change. The environment refuses a
model with more than one outcome (its ``u`` would be spent twice).

``reward_std`` is a dynamic setting, a field of the params (``MaximizationBiasParams``), not of
the environment: environments with different noise share compiled code and can be vmapped side by
side (e.g. a sweep over the noise level in one call).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from jrl._numerics import rounded
from jrl._validation import check_float, check_int
from jrl.envs.core import NO_TIME_LIMIT
from jrl.envs.tabular import TabularEnv, TabularMDP, TabularParams, TabularState, outcome_table, tabular_mdp_from_numpy

__all__ = [
    "STATE_A",
    "STATE_B",
    "TERMINAL",
    "MaximizationBiasEnv",
    "MaximizationBiasParams",
    "maximization_bias_factory",
    "maximization_bias_model",
]

STATE_A, STATE_B, TERMINAL = 0, 1, 2
NUM_STATES = 3


@struct.dataclass
class MaximizationBiasParams(TabularParams):
    """``TabularParams`` (the mean-reward model and the time limit) plus ``reward_std``: float32
    scalar, the standard deviation of the normal noise on every reward from B."""

    reward_std: Any


def maximization_bias_model(num_actions: int = 10, reward_mean: float = -0.1) -> TabularMDP:
    """The exact model with mean rewards (``TabularMDP``, S = 3, A = ``num_actions``, K = 1)."""
    check_int("num_actions", num_actions, 2, 10_000)
    if num_actions % 2:
        raise ValueError(
            f"num_actions must be even: half of A's actions go left and half go right, so a random action "
            f"goes left half the time as in the book; got {num_actions}"
        )
    reward_mean = check_float("reward_mean", reward_mean, -1e30, 1e30)
    half = num_actions // 2
    outcomes = {}
    for a in range(num_actions):
        outcomes[STATE_A, a] = [(1.0, STATE_B, 0.0, False)] if a < half else [(1.0, TERMINAL, 0.0, True)]
        outcomes[STATE_B, a] = [(1.0, TERMINAL, reward_mean, True)]
        outcomes[TERMINAL, a] = [(1.0, TERMINAL, 0.0, True)]
    initial = np.zeros(NUM_STATES)
    initial[STATE_A] = 1.0
    return tabular_mdp_from_numpy(*outcome_table(NUM_STATES, num_actions, outcomes), initial)


def standard_normal_from_uniform(u: jax.Array) -> jax.Array:
    """A standard normal draw from ``u`` in [0, 1] by the inverse CDF, always finite.

    ``jax.random.uniform`` (float32) returns multiples of ``2**-23`` in [0, 1), 0 included, where
    ``ndtri(0) = -inf``. Shifting by half a grid step maps them to the cell midpoints
    ``(2k + 1) * 2**-24`` (exact in float32), which are symmetric about 1/2: the noise is exactly
    symmetric, its largest magnitude about 5.3. The clip keeps any other ``u`` in [0, 1] finite too.
    """
    return jax.scipy.special.ndtri(jnp.clip(u + 2.0**-24, 2.0**-24, 1.0 - 2.0**-24))


@dataclasses.dataclass(frozen=True)
class MaximizationBiasEnv(TabularEnv):
    """The tabular environment of the model above that adds the normal noise of B's rewards in its
    step (see the module docstring). Static settings are ``TabularEnv``'s; S = 3, K = 1."""

    def __post_init__(self) -> None:
        if self.num_states != NUM_STATES or self.num_outcomes != 1:
            raise ValueError(
                f"MaximizationBiasEnv needs S = {NUM_STATES} states and K = 1 outcome per (s, a) (the step's "
                f"uniform is the reward noise's source), got S = {self.num_states}, K = {self.num_outcomes}"
            )

    def step_env_from_uniform(
        self, u: jax.Array, state: TabularState, action: jax.Array, params: MaximizationBiasParams
    ) -> tuple[jax.Array, TabularState, jax.Array, jax.Array, jax.Array, dict]:
        """``TabularEnv``'s transition (mean reward), plus ``reward_std * ndtri(u)`` on transitions from B."""
        if params.mdp.num_outcomes != 1:  # a shape: checked while tracing, free under jit
            raise ValueError(
                f"MaximizationBiasEnv needs a model with K = 1 outcome per (s, a), got K = {params.mdp.num_outcomes}"
            )
        obs, next_state, reward, terminated, truncated, info = super().step_env_from_uniform(u, state, action, params)
        # K = 1: the outcome is fixed and u was not used to choose it.
        noise = rounded(params.reward_std * standard_normal_from_uniform(u))
        reward = jnp.where(state.state == STATE_B, reward + noise, reward)
        return obs, next_state, reward, terminated, truncated, info


def maximization_bias_factory(
    env_id: str,
    max_steps_in_episode: int | None,
    num_actions: int = 10,
    reward_mean: float = -0.1,
    reward_std: float = 1.0,
) -> tuple[MaximizationBiasEnv, MaximizationBiasParams]:
    """The registry's factory: validated keywords, then ``(env, params)``."""
    mdp = maximization_bias_model(num_actions, reward_mean)
    reward_std = check_float("reward_std", reward_std, 0.0, 1e30)
    limit = NO_TIME_LIMIT if max_steps_in_episode is None else max_steps_in_episode
    params = MaximizationBiasParams(mdp=mdp, max_steps_in_episode=jnp.int32(limit), reward_std=jnp.float32(reward_std))
    env = MaximizationBiasEnv(NUM_STATES, num_actions, mdp.num_outcomes, env_id=env_id, model_params=params)
    return env, params
