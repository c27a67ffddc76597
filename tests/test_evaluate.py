"""jrl.evaluate: episodes run to their end in parallel, any key type, under jit, validated."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jrl
from jrl.algorithms import q_learning
from jrl.evaluate import UNLIMITED_EPISODE_CAP


def always(action: int):
    def policy(params, obs, key):
        del params, obs, key
        return jnp.int32(action)

    return policy


UP = always(0)  # CliffWalking: up from the start, then bump into the top wall forever


def optimal_greedy_policy(env, params):
    """The greedy policy of the undiscounted Q* (CliffWalking: the 13-step path along the cliff)."""
    q_star = jrl.planning.value_iteration(env.mdp(params), 1.0)
    return q_learning.greedy_policy(q_learning.QLearningResult(q_table=q_star, metrics={}))


def test_non_terminating_policy_is_cut_by_the_evaluation_time_limit():
    env, params = jrl.make("CliffWalking-v1")
    returns = jrl.evaluate(jax.random.key(0), UP, None, env, params, num_episodes=8, max_steps_in_episode=25)
    np.testing.assert_array_equal(np.asarray(returns), np.full(8, -25.0, np.float32))


def test_optimal_cliff_walking_path_returns_minus_13():
    env, params = jrl.make("CliffWalking-v1")
    greedy, q_star = optimal_greedy_policy(env, params)
    returns = jrl.evaluate(jax.random.key(0), greedy, q_star, env, params, num_episodes=4)
    np.testing.assert_array_equal(np.asarray(returns), np.full(4, -13.0, np.float32))


def test_raw_keys_and_jit_give_the_same_returns():
    env, params = jrl.make("FrozenLake-v1")
    random_policy = lambda p, obs, key: jax.random.randint(key, (), 0, 4)  # noqa: E731
    typed = jrl.evaluate(jax.random.key(3), random_policy, None, env, params, num_episodes=64)
    raw = jrl.evaluate(jax.random.PRNGKey(3), random_policy, None, env, params, num_episodes=64)
    jitted = jax.jit(lambda k: jrl.evaluate(k, random_policy, None, env, params, num_episodes=64))(jax.random.key(3))
    np.testing.assert_array_equal(np.asarray(typed), np.asarray(jitted))
    assert raw.shape == typed.shape == (64,)
    # FrozenLake pays 1 at the goal and 0 otherwise: every return is 0 or 1.
    assert set(np.unique(np.asarray(typed))) <= {0.0, 1.0}


@pytest.mark.parametrize(
    "kwargs, error, fragment",
    [
        ({"num_episodes": 0}, ValueError, "num_episodes"),
        ({"num_episodes": 2.0}, TypeError, "num_episodes"),
        ({"max_steps_in_episode": 0}, ValueError, "max_steps_in_episode"),
        ({"max_steps_in_episode": 2**31}, ValueError, r"max_steps_in_episode must be in \[1, 2147483647\]"),
    ],
)
def test_bad_arguments_are_refused(kwargs, error, fragment):
    env, params = jrl.make("FrozenLake-v1")
    with pytest.raises(error, match=fragment):
        jrl.evaluate(jax.random.key(0), UP, None, env, params, **kwargs)
    with pytest.raises(TypeError, match="Environment"):
        jrl.evaluate(jax.random.key(0), UP, None, "FrozenLake-v1", params)


def test_policy_learned_in_jrl_runs_in_gymnasium_with_the_same_returns():
    from jrl.wrappers import evaluate_in_gymnasium

    greedy, q_star = optimal_greedy_policy(*jrl.make("CliffWalking-v1"))
    returns = evaluate_in_gymnasium(greedy, q_star, "CliffWalking-v1", num_episodes=3)
    np.testing.assert_array_equal(returns, [-13.0, -13.0, -13.0])


def test_gymnasium_episodes_of_different_lengths_match_a_plain_gymnasium_loop():
    """Episodes are independent: each return equals a plain loop over Gymnasium's env reset with
    ``seed + i``, while the episodes end at different steps (terminated early, or truncated at 500)."""
    import gymnasium

    from jrl.wrappers import evaluate_in_gymnasium

    def lean(params, obs, key):  # push toward the pole's lean; the weight on its velocity varies the length
        del key
        return (obs[2] > params * obs[3]).astype(jnp.int32)  # one float32 product: rounds as NumPy does

    def reference(weight, seed, episodes):
        env, returns = gymnasium.make("CartPole-v1"), []
        for i in range(episodes):
            obs, _ = env.reset(seed=seed + i)
            total, done = 0.0, False
            while not done:
                obs, reward, terminated, truncated, _ = env.step(int(obs[2] > weight * obs[3]))
                total, done = total + reward, terminated or truncated
            returns.append(total)
        env.close()
        return np.array(returns)

    for weight, distinct in ((-0.015, 8), (-0.05, 1)):  # seeds 3-10: lengths 75 to 358; all truncated at 500
        returns = evaluate_in_gymnasium(lean, jnp.float32(weight), "CartPole-v1", num_episodes=8, seed=3)
        np.testing.assert_array_equal(returns, reference(np.float32(weight), 3, 8))
        assert len(set(returns.tolist())) == distinct


# --- episodes that would never end, and actions outside the space ------------------------------------
def test_environment_without_time_limit_is_cut_at_the_cap_and_reported():
    """CliffWalking-v1 has no time limit: a policy that never reaches the goal used to keep
    ``evaluate`` running until killed. Now it stops at ``UNLIMITED_EPISODE_CAP`` steps and warns."""
    env, params = jrl.make("CliffWalking-v1")
    with pytest.warns(UserWarning, match=r"4 of 4 episodes had not ended after 10000 steps; CliffWalking-v1 has no"):
        returns = jrl.evaluate(jax.random.key(0), UP, None, env, params, num_episodes=4)
    np.testing.assert_array_equal(np.asarray(returns), np.full(4, -float(UNLIMITED_EPISODE_CAP)))
    stats = jrl.evaluate_episodes(jax.random.key(0), UP, None, env, params, num_episodes=4)
    assert bool(jnp.all(stats.truncated)) and not bool(jnp.any(stats.terminated))
    np.testing.assert_array_equal(np.asarray(stats.lengths), np.full(4, 10_000))
    # Under jit, with the params traced, the cap still holds (a select, not a Python branch).
    jitted = jax.jit(lambda p: jrl.evaluate(jax.random.key(0), UP, None, env, p, num_episodes=4))(params)
    np.testing.assert_array_equal(np.asarray(jitted), np.asarray(returns))


def test_episodes_that_end_report_lengths_and_terminations_without_warning(recwarn):
    env, params = jrl.make("CliffWalking-v1")
    greedy, q_star = optimal_greedy_policy(env, params)
    stats = jrl.evaluate_episodes(jax.random.key(0), greedy, q_star, env, params, num_episodes=3)
    np.testing.assert_array_equal(np.asarray(stats.lengths), [13, 13, 13])
    assert bool(jnp.all(stats.terminated)) and not bool(jnp.any(stats.truncated))
    jrl.evaluate(jax.random.key(0), greedy, q_star, env, params, num_episodes=3)
    assert not [w for w in recwarn if issubclass(w.category, UserWarning)]


def test_out_of_range_actions_are_refused_not_clamped():
    """A Taxi policy returning 7 used to be clamped to 5 (dropoff) and score -2000 an episode."""
    env, params = jrl.make("Taxi-v4")
    seven = always(7)
    with pytest.raises(ValueError, match=r"outside Discrete\(6\) in 800 step\(s\) of 4 of 4 episodes; Taxi-v4 would"):
        jrl.evaluate(jax.random.key(0), seven, None, env, params, num_episodes=4)
    stats = jrl.evaluate_episodes(jax.random.key(0), seven, None, env, params, num_episodes=4)
    np.testing.assert_array_equal(np.asarray(stats.invalid_actions), np.asarray(stats.lengths))
    assert bool(jnp.all(jnp.isnan(stats.returns)))
    # Under jit no error can be raised: the returns are NaN, never a clamped score.
    jitted = jax.jit(lambda k: jrl.evaluate(k, seven, None, env, params, num_episodes=4))(jax.random.key(0))
    assert bool(jnp.all(jnp.isnan(jitted)))


def test_only_the_episodes_with_invalid_actions_are_marked():
    env, params = jrl.make("FrozenLake-v1", is_slippery=False)

    def sometimes_invalid(p, obs, key):
        return jnp.where(jax.random.uniform(key) < 0.1, jnp.int32(4), jnp.int32(1))

    stats = jrl.evaluate_episodes(jax.random.key(2), sometimes_invalid, None, env, params, num_episodes=64)
    marked = np.asarray(stats.invalid_actions) > 0
    assert 0 < marked.sum() < 64
    np.testing.assert_array_equal(np.isnan(np.asarray(stats.returns)), marked)


@pytest.mark.parametrize(
    "policy, error, fragment",
    [
        (lambda p, o, k: 1.0, TypeError, r"integer actions for Discrete\(6\), got dtype float32"),
        (lambda p, o, k: jnp.array([0, 1]), ValueError, r"one action of shape \(\) for Discrete\(6\).*shape \(2,\)"),
        (lambda p, o: 0, TypeError, r"policy\(policy_params, obs, key\)"),
    ],
    ids=["float", "batch", "two-arguments"],
)
def test_policy_output_is_checked_before_the_loop(policy, error, fragment):
    env, params = jrl.make("Taxi-v4")
    with pytest.raises(error, match=fragment):
        jrl.evaluate(jax.random.key(0), policy, None, env, params, num_episodes=4)


def test_batched_evaluation_estimates_the_exact_return_and_draws_once_per_step():
    """``batched=True`` draws slips and starts for every episode at once: other draws than one key
    per episode, the same distribution. Both estimates of the optimal slippery FrozenLake policy's
    return lie within 4 standard errors of the exact float64 value from the model; an environment
    without uniform-driven hooks evaluates identically either way."""
    from jrl.experiment.sweep_members import exact_greedy_returns

    env, params = jrl.make("FrozenLake-v1")
    q_star = jrl.planning.value_iteration(env.mdp(params), 0.99)
    greedy, _ = q_learning.greedy_policy(q_learning.QLearningResult(q_table=q_star, metrics={}))
    exact = float(exact_greedy_returns(env, params, np.asarray(q_star)[None])[0])
    n = 20_000
    per_episode = np.asarray(jrl.evaluate(jax.random.key(5), greedy, q_star, env, params, n))
    batched = np.asarray(jrl.evaluate(jax.random.key(5), greedy, q_star, env, params, n, batched=True))
    assert not np.array_equal(per_episode, batched)  # other draws
    for returns in (per_episode, batched):
        standard_error = np.sqrt(exact * (1 - exact) / n)  # returns are 0 or 1
        assert abs(returns.mean() - exact) < 4 * standard_error, (returns.mean(), exact)
    # Without the hooks (RandomLake draws from its keys) batched is the default.
    lake, lake_params = jrl.make("RandomLake-v0")
    assert lake.uniform_shapes is None
    act = lambda p, obs, key: jax.random.randint(key, (), 0, 4)  # noqa: E731
    a = jrl.evaluate_episodes(jax.random.key(1), act, None, lake, lake_params, 32)
    b = jrl.evaluate_episodes(jax.random.key(1), act, None, lake, lake_params, 32, batched=True)
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
    with pytest.raises(TypeError, match="batched must be a bool"):
        jrl.evaluate(jax.random.key(0), act, None, lake, lake_params, 4, batched=1)
