"""End-to-end DQN learning checks: ``dqn.default_config(env_id)`` trained from seed 0 must solve
each classic-control environment, judged over 100 greedy episodes in jrl's environment and in
Gymnasium's own. Slow (tens of seconds each): marked ``slow``, still run by the default command."""

from __future__ import annotations

import jax
import numpy as np
import pytest

import jrl
from jrl.algorithms import dqn
from jrl.wrappers import evaluate_in_gymnasium

# Gymnasium's reward_threshold for CartPole-v1 and Acrobot-v1; the bar for MountainCar-v0
# (Gymnasium's threshold there is -110).
SOLVED_AT = {"CartPole-v1": 475.0, "Acrobot-v1": -100.0, "MountainCar-v0": -120.0}


@pytest.mark.slow
@pytest.mark.parametrize("env_id", sorted(SOLVED_AT))
def test_default_config_solves_the_environment_in_jrl_and_in_gymnasium(env_id):
    env, env_params = jrl.make(env_id)
    config = dqn.default_config(env_id)
    result = dqn.check_finite(jax.jit(dqn.make_train(config, env, env_params))(jax.random.key(0)))
    policy, policy_params = dqn.greedy_policy(config, env, env_params, result)
    in_jrl = np.asarray(jrl.evaluate(jax.random.key(12345), policy, policy_params, env, env_params, num_episodes=100))
    in_gymnasium = evaluate_in_gymnasium(policy, policy_params, env_id, num_episodes=100, seed=12345)
    threshold = SOLVED_AT[env_id]
    assert in_jrl.mean() >= threshold, f"{env_id}: mean greedy return {in_jrl.mean():.1f} in jrl < {threshold}"
    assert in_gymnasium.mean() >= threshold, (
        f"{env_id}: mean greedy return {in_gymnasium.mean():.1f} in Gymnasium < {threshold}"
    )
