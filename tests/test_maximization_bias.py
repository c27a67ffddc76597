"""MaximizationBias-v0 (Sutton & Barto, Example 6.7): the mean-reward model against a hand-written
one, Q* from value iteration, the sampled noise of B's rewards (mean, spread, normality, never
infinite), rewards from A exactly 0, evaluation of fixed policies, and refused settings."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

import jrl
from jrl.envs.maximization_bias import STATE_A, STATE_B, TERMINAL, MaximizationBiasEnv

NUM_SAMPLES = 20_000
ENV = jrl.make("MaximizationBias-v0")[0]  # the default 10 actions; params vary per test
# env.step from one state, vmapped over keys and actions: leaves [N].
_step_many = jax.jit(jax.vmap(ENV.step, in_axes=(0, None, 0, None)))


def _state(env, params, s):
    _, state = env.reset(jax.random.key(0), params)
    return state.replace(state=jnp.int32(s))


def _sample_from(params, s, key, n=NUM_SAMPLES):
    """``n`` steps from state ``s`` with uniformly random actions: (step outputs, actions)."""
    keys = jax.random.split(key, n)
    actions = jax.random.randint(jax.random.fold_in(key, 1), (n,), 0, ENV.num_actions)
    return jax.device_get(_step_many(keys, _state(ENV, params, s), actions, params)), np.asarray(actions)


def _constant_policy(action, obs, key):
    return action


@pytest.mark.parametrize("num_actions", [2, 4, 10])
def test_model_is_the_hand_written_one(num_actions):
    env, params = jrl.make("MaximizationBias-v0", num_actions=num_actions)
    mdp = env.mdp(params)
    half = num_actions // 2
    assert isinstance(env, MaximizationBiasEnv) and env.env_id == "MaximizationBias-v0"
    assert (env.num_states, env.num_actions, env.num_outcomes) == (3, num_actions, 1)
    assert int(params.max_steps_in_episode) == jrl.NO_TIME_LIMIT
    assert float(params.reward_std) == 1.0
    next_states = np.array([[STATE_B] * half + [TERMINAL] * half, [TERMINAL] * num_actions, [TERMINAL] * num_actions])
    terminals = np.array([[False] * half + [True] * half, [True] * num_actions, [True] * num_actions])
    rewards = np.array([[0.0] * num_actions, [-0.1] * num_actions, [0.0] * num_actions], np.float32)
    np.testing.assert_array_equal(np.asarray(mdp.transition_probs)[..., 0], np.ones((3, num_actions)))
    np.testing.assert_array_equal(np.asarray(mdp.next_states)[..., 0], next_states)
    np.testing.assert_array_equal(np.asarray(mdp.terminals)[..., 0], terminals)
    np.testing.assert_array_equal(np.asarray(mdp.rewards)[..., 0], rewards)
    np.testing.assert_array_equal(np.asarray(mdp.initial_distribution), [1.0, 0.0, 0.0])


@pytest.mark.parametrize("reward_mean", [-0.1, 0.25])
def test_value_iteration_gives_q_star(reward_mean):
    env, params = jrl.make("MaximizationBias-v0", reward_mean=reward_mean)
    q_star = np.asarray(jrl.planning.value_iteration(env.mdp(params), 1.0))
    np.testing.assert_allclose(q_star[STATE_A, :5], reward_mean, rtol=1e-6)  # left: B's mean
    np.testing.assert_array_equal(q_star[STATE_A, 5:], 0.0)  # right
    np.testing.assert_allclose(q_star[STATE_B], reward_mean, rtol=1e-6)
    np.testing.assert_array_equal(q_star[TERMINAL], 0.0)


def test_rewards_from_b_are_normal_with_the_model_mean_and_reward_std():
    _, params = jrl.make("MaximizationBias-v0")
    (obs, state, reward, terminated, truncated, info), _ = _sample_from(params, STATE_B, jax.random.key(3))
    assert np.all(terminated) and not np.any(truncated)
    assert np.all(info["final_observation"] == TERMINAL) and np.all(obs == STATE_A) and np.all(state.time == 0)
    assert np.all(np.isfinite(reward))
    standard_error = 1.0 / np.sqrt(NUM_SAMPLES)
    assert abs(reward.mean() - -0.1) < 4 * standard_error, reward.mean()
    assert abs(reward.std() - 1.0) < 4 * standard_error / np.sqrt(2), reward.std()  # s.e. of a normal std
    assert stats.kstest(reward, "norm", args=(-0.1, 1.0)).pvalue > 1e-3


def test_rewards_from_a_are_exactly_zero_and_left_is_the_first_half():
    _, params = jrl.make("MaximizationBias-v0")
    (obs, _, reward, terminated, _, info), actions = _sample_from(params, STATE_A, jax.random.key(4), n=2000)
    np.testing.assert_array_equal(reward, 0.0)
    left = actions < 5
    np.testing.assert_array_equal(info["final_observation"], np.where(left, STATE_B, TERMINAL))
    np.testing.assert_array_equal(terminated, ~left)
    np.testing.assert_array_equal(obs, np.where(left, STATE_B, STATE_A))  # right ends the episode: reset to A


def test_noise_is_finite_and_symmetric_at_the_extreme_uniforms():
    """``jax.random.uniform`` can return 0.0, where ``ndtri`` is -inf. Its float32 grid
    ``k * 2**-23`` must give finite noise, with cells ``k`` and ``2**23 - 1 - k`` of equal size and
    opposite sign (the noise's distribution is exactly symmetric)."""
    env, params = jrl.make("MaximizationBias-v0", reward_mean=0.0)
    state = _state(env, params, STATE_B)
    step = jax.jit(lambda u: env.step_env_from_uniform(u, state, jnp.int32(0), params)[2])
    for k in (0, 1, 1000, 2**22 - 1):
        low, high = float(step(jnp.float32(k * 2**-23))), float(step(jnp.float32((2**23 - 1 - k) * 2**-23)))
        assert np.isfinite(low) and low < 0.0 and low == -high, (k, low, high)
    assert float(step(jnp.float32(0.0))) < -5.0
    assert np.isfinite(float(step(jnp.float32(1.0))))  # outside [0, 1): clipped, still finite


def test_reward_std_is_a_dynamic_param_that_vmaps():
    env, params = jrl.make("MaximizationBias-v0")
    _, quiet = jrl.make("MaximizationBias-v0", reward_std=0.0)
    _, loud = jrl.make("MaximizationBias-v0", reward_std=3.0)
    assert jrl.make("MaximizationBias-v0", reward_std=3.0)[0] == env  # same static env: shared compiled code
    stacked = jax.tree.map(lambda *x: jnp.stack(x), params, quiet, loud)
    state = _state(env, params, STATE_B)
    keys = jax.random.split(jax.random.key(5), 4000)
    per_params = jax.vmap(lambda p: jax.vmap(env.step, in_axes=(0, None, None, None))(keys, state, jnp.int32(7), p))
    reward = np.asarray(jax.jit(per_params)(stacked)[2])  # [3, 4000]
    np.testing.assert_array_equal(reward[1], np.float32(-0.1))  # no noise: the model's mean exactly
    np.testing.assert_allclose(reward[2] + 0.1, 3.0 * (reward[0] + 0.1), rtol=1e-5, atol=1e-5)  # same draws, x3


@pytest.mark.parametrize(("action", "mean", "length"), [(0, -0.1, 2), (4, -0.1, 2), (5, 0.0, 1), (9, 0.0, 1)])
def test_evaluate_a_fixed_policy(action, mean, length):
    env, params = jrl.make("MaximizationBias-v0")
    episodes = jrl.evaluate_episodes(jax.random.key(6), _constant_policy, jnp.int32(action), env, params, 10_000)
    assert np.all(np.asarray(episodes.lengths) == length) and np.all(episodes.terminated)
    returns = np.asarray(jrl.evaluate(jax.random.key(6), _constant_policy, jnp.int32(action), env, params, 10_000))
    np.testing.assert_array_equal(returns, np.asarray(episodes.returns))
    assert abs(returns.mean() - mean) < 4 / np.sqrt(returns.size), returns.mean()
    if length == 1:
        np.testing.assert_array_equal(returns, 0.0)
    else:
        assert abs(returns.std() - 1.0) < 0.05


@pytest.mark.parametrize(
    ("kwargs", "error", "needle"),
    [
        ({"num_actions": 3}, ValueError, "num_actions must be even"),
        ({"num_actions": 1}, ValueError, "num_actions"),
        ({"num_actions": 2.0}, TypeError, "num_actions"),
        ({"reward_std": -1.0}, ValueError, "reward_std"),
        ({"reward_std": float("nan")}, ValueError, "reward_std"),
        ({"reward_std": "1"}, TypeError, "reward_std"),
        ({"reward_mean": float("inf")}, ValueError, "reward_mean"),
        ({"is_slippery": True}, TypeError, "is_slippery"),
    ],
)
def test_bad_keywords_are_refused(kwargs, error, needle):
    with pytest.raises(error, match=needle):
        jrl.make("MaximizationBias-v0", **kwargs)


def test_a_model_with_more_than_one_outcome_is_refused():
    """The step's uniform is the noise's source only because no outcome needs choosing (K = 1)."""
    env, params = jrl.make("MaximizationBias-v0")
    with pytest.raises(ValueError, match="K = 1"):
        dataclasses.replace(env, num_outcomes=2)
    mdp = params.mdp
    padded = jrl.TabularMDP(
        transition_probs=jnp.concatenate([mdp.transition_probs, jnp.zeros_like(mdp.transition_probs)], -1),
        next_states=jnp.concatenate([mdp.next_states, mdp.next_states], -1),
        rewards=jnp.concatenate([mdp.rewards, mdp.rewards], -1),
        terminals=jnp.concatenate([mdp.terminals, mdp.terminals], -1),
        initial_distribution=mdp.initial_distribution,
    )
    with pytest.raises(ValueError, match="K = 1"):
        env.step(jax.random.key(0), _state(env, params, STATE_B), jnp.int32(0), params.replace(mdp=padded))
