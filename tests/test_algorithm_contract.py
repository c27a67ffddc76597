"""The contract every algorithm keeps (``jrl.algorithms.common``): ``init`` / ``run`` / ``result``
in any number of chunks gives make_train's bits, typed states, shared metric names, configs that
round-trip through TOML, one grid helper, one finiteness check, and ``jrl.algorithms.get``."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jrl
from jrl import algorithms
from jrl.algorithms import common, dqn
from jrl.algorithms import q_learning as ql


def tree_equal(a, b) -> list[str]:
    """Paths of the leaves that differ (NaN equals NaN; typed keys compared by their data)."""

    def data(x):
        x = jnp.asarray(x)
        return np.asarray(jax.random.key_data(x) if jnp.issubdtype(x.dtype, jax.dtypes.prng_key) else x)

    flat_a, flat_b = jax.tree_util.tree_leaves_with_path(a), jax.tree_util.tree_leaves(b)
    assert len(flat_a) == len(flat_b)
    return [
        jax.tree_util.keystr(path)
        for (path, x), y in zip(flat_a, flat_b, strict=True)
        if not np.array_equal(data(x), data(y), equal_nan=True)
    ]


def run_in_chunks(algorithm: common.Algorithm, key, chunks: list[int]):
    run = jax.jit(algorithm.run, static_argnums=1)
    state = jax.jit(algorithm.init)(key)
    pieces = []
    for num_logs in chunks:
        state, metrics = run(state, num_logs)
        pieces.append(metrics)
    return state, jax.tree_util.tree_map(lambda *xs: jnp.concatenate(xs), *pieces)


CASES = {
    # Q-learning and Double Q-learning (two tables, a coin per step); with in-loop evaluations.
    **{
        f"q_learning-{name}": (
            "FrozenLake-v1",
            ql.QLearningConfig(num_envs=16, num_steps=300, algorithm=name, log_interval=50, eval_episodes=2),
            [2, 4],
        )
        for name in ("q_learning", "double_q_learning")
    },
    # keep_best and stop_return together: the run stops at an evaluation (>= 150) in the middle of
    # the second chunk (the split is chosen from the run: None), and the best parameters come from
    # before the stop. The environments step with step_batch (batched_env_step; the other cases
    # and the resume tests step them one key each).
    "dqn-keep_best-stop_return": (
        "CartPole-v1",
        dqn.default_config("CartPole-v1").replace(
            num_steps=6000,
            learning_starts=2000,
            log_interval=500,
            eval_episodes=20,
            stop_return=150.0,
            batched_env_step=True,
        ),
        None,
    ),
    "dqn-n_step": ("Probe-TwoStep-v0", dqn.default_config("Probe-TwoStep-v0").replace(n_step=3), [7, 3]),
}


@pytest.mark.parametrize("case", list(CASES))
def test_any_split_into_chunks_is_bit_identical_to_make_train(case):
    env_id, config, chunks = CASES[case]
    env, params = jrl.make(env_id)
    module = dqn if isinstance(config, dqn.DQNConfig) else ql
    algorithm = module.make_algorithm(config, env, params)
    train = jax.jit(module.make_train(config, env, params))
    key = jax.random.key(1)
    whole = train(key)
    if chunks is None:
        # The stop must fall inside the second chunk, after a boundary: split just before the last
        # interval that ran. Which key stops, and when, depends on the processor (XLA's CPU code
        # differs), so the first of a few keys that stops after two intervals is used.
        for seed in range(1, 7):
            key = jax.random.key(seed)
            whole = train(key)
            ran = int(np.sum(~np.asarray(whole.metrics["stopped"])))
            if 2 <= ran < algorithm.num_logs:
                break
        else:
            raise AssertionError("none of keys 1-6 stops after two intervals and before the end")
        chunks = [ran - 1, algorithm.num_logs - (ran - 1)]
    assert sum(chunks) == algorithm.num_logs == config.num_logs()
    state, metrics = run_in_chunks(algorithm, key, chunks)
    assert tree_equal(whole, algorithm.result(state, metrics)) == []
    assert int(state.log_index) == algorithm.num_logs
    if case.startswith("dqn-keep"):
        stopped = np.asarray(metrics["stopped"])
        assert stopped.any() and not stopped[: chunks[0] + 1].any(), stopped  # the stop: inside the second chunk


def test_states_are_typed_with_every_field_present():
    env, params = jrl.make("CartPole-v1")
    plain = dqn.make_algorithm(
        dqn.default_config("CartPole-v1").replace(keep_best=False, stop_return=None), env, params
    )
    state = jax.eval_shape(plain.init, jax.random.key(0))
    assert isinstance(state, dqn.DQNState)
    assert {f.name for f in dataclasses.fields(dqn.DQNState)} == set(state.__dict__)
    assert state.best_params.shape == state.params.shape and state.stopped.dtype == jnp.bool_
    env, params = jrl.make("Taxi-v4")
    state = jax.eval_shape(ql.make_algorithm(ql.default_config("Taxi-v4"), env, params).init, jax.random.key(0))
    assert isinstance(state, ql.QLearningState) and state.q_a.shape == (500, 6)


def test_config_fields_from_toml_are_checked_and_coerced():
    config = ql.QLearningConfig.from_toml("alpha = 1\nnum_envs = 8\n")
    assert config.alpha == 1.0 and isinstance(config.alpha, float)
    assert dqn.DQNConfig.from_dict({"hidden_sizes": [32, 16]}).hidden_sizes == (32, 16)
    with pytest.raises(TypeError, match=r"has no field\(s\) 'alhpa' \(did you mean 'alpha'\?\)"):
        ql.QLearningConfig.from_toml("alhpa = 0.1\n")
    with pytest.raises(TypeError, match=r"num_envs must be an int, got float 2\.5"):
        ql.QLearningConfig.from_dict({"num_envs": 2.5})
    with pytest.raises(ValueError, match=r"gamma must be in \[0.0, 1.0\], got 2.0"):
        dqn.DQNConfig.from_toml("gamma = 2\n")


def test_a_log_interval_that_does_not_divide_num_steps_says_how_to_have_one_chosen():
    """A tuned default's log_interval outlives a shortened num_steps (--set num_steps=500)."""
    from jrl.text import q_learning as text_q

    for config_class in (ql.QLearningConfig, dqn.DQNConfig, text_q.TextQConfig):
        with pytest.raises(ValueError, match=r"log_interval=1000 must divide num_steps=500.*log_interval=none"):
            config_class(num_steps=500, log_interval=1000)
        assert config_class(num_steps=500, log_interval=None).num_logs() >= 1


def test_numpy_numbers_in_a_config_are_stored_as_python_numbers():
    """A value read from an array passes the checks as a number; the config keeps the Python
    number it equals, so its TOML form (and a sweep's digest) can hold it."""
    config = ql.QLearningConfig(alpha=np.float32(0.5), num_envs=np.int64(8), q_init=np.float64(1.5))
    assert (type(config.alpha), type(config.num_envs), type(config.q_init)) == (float, int, float)
    assert (
        ql.QLearningConfig.from_toml(config.to_toml())
        == config
        == ql.QLearningConfig(alpha=0.5, num_envs=8, q_init=1.5)
    )
    deep = dqn.DQNConfig(hidden_sizes=(np.int32(16), np.int32(16)), learning_rate=np.float32(0.25))
    assert deep.hidden_sizes == (16, 16) and {type(size) for size in deep.hidden_sizes} == {int}
    assert dqn.DQNConfig.from_toml(deep.to_toml()) == deep
    with pytest.raises(TypeError, match="alpha"):
        ql.QLearningConfig(alpha=np.array([0.5]))


def test_one_grid_helper_for_every_algorithm():
    grid = dqn.hyperparam_grid(dqn.default_config("CartPole-v1"), learning_rate=[1e-3, 3e-4], gamma=[0.9, 0.99])
    np.testing.assert_array_equal(np.asarray(grid.learning_rate), np.float32([1e-3, 1e-3, 3e-4, 3e-4]))
    np.testing.assert_array_equal(np.asarray(grid.tau), np.ones(4, np.float32))
    assert ql.hyperparam_grid is dqn.hyperparam_grid is common.hyperparam_grid
    with pytest.raises(TypeError, match="sweeps only"):
        dqn.hyperparam_grid(dqn.default_config("CartPole-v1"), alpha=[0.1])
    with pytest.raises(ValueError, match="learning_rate"):
        dqn.hyperparam_grid(dqn.default_config("CartPole-v1"), learning_rate=[0.0])


def test_one_finiteness_check_for_every_algorithm():
    """A reward of 1e37 per step, bootstrapped with gamma 1, overflows a float32 table (max 3.4e38)
    after 34 steps: tabular Q-learning reports it the way DQN does."""
    mdp = jrl.TabularMDP(
        transition_probs=jnp.ones((1, 1, 1)),
        next_states=jnp.zeros((1, 1, 1), jnp.int32),
        rewards=jnp.full((1, 1, 1), 1e37),
        terminals=jnp.zeros((1, 1, 1), bool),
        initial_distribution=jnp.ones(1),
    )
    env, params = jrl.make_tabular(mdp, 5)
    config = ql.QLearningConfig(num_envs=1, num_steps=40, alpha=1.0, gamma=1.0, log_interval=10)
    result = jax.jit(ql.make_train(config, env, params))(jax.random.key(0))
    np.testing.assert_array_equal(np.asarray(result.metrics["finite"]), [True, True, True, False])
    assert ql.check_finite is dqn.check_finite is common.check_finite
    with pytest.raises(
        FloatingPointError,
        match="non-finite values in 1 of 4 logging intervals, first in the interval ending at step 40",
    ):
        ql.check_finite(result)


def test_algorithms_are_found_by_name():
    assert algorithms.names() == [
        "q_learning",
        "sarsa",
        "expected_sarsa",
        "double_q_learning",
        "dqn",
        "pqn",
        "ppo",
        "text_q_learning",
        "grpo",
    ]
    sarsa = algorithms.get("sarsa")
    assert sarsa.module is ql and sarsa.default_config("Taxi-v4").algorithm == "sarsa"
    assert sarsa.make_config(alpha=0.3).algorithm == "sarsa"
    with pytest.raises(ValueError, match="fixes algorithm='sarsa'"):
        sarsa.make_config(algorithm="q_learning")
    with pytest.raises(ValueError, match="Did you mean 'dqn'"):
        algorithms.get("dqm")
    env, params = jrl.make("CartPole-v1")
    with pytest.raises(ValueError, match="not tabular: use --algo dqn"):
        algorithms.get("q_learning").check_env(env, params)
    algorithms.get("dqn").check_env(env, params)


# Environments an algorithm is tried on, asked by name alone: the first it takes.
CONTRACT_ENVS = ("FrozenLake-v1", "CartPole-v1", "Pendulum-v1", "GraphWalkText-v0")


@pytest.mark.parametrize("name", algorithms.names())
def test_every_registered_algorithm_keeps_the_contract_by_name_alone(name, tmp_path):
    """What the runner relies on, for every name ``algorithms.names()`` lists (an algorithm added
    later is checked without editing this test), traced only (``eval_shape``: nothing compiles):
    it fits at least one environment, a config from its tuned default (or its class's defaults)
    round-trips through TOML, ``init`` gives a typed struct with an int32 ``log_index``, ``run``
    logs every shared metric and exactly its ``METRICS``, each an array ``[num_logs]``, and every
    tuned default round-trips through TOML too."""
    spec = algorithms.get(name)
    fits = []
    for env_id in CONTRACT_ENVS:
        env, params = jrl.make(env_id)
        try:
            spec.check_env(env, params)
        except ValueError:
            continue
        fits.append(env_id)
    assert fits, f"{name} takes none of {CONTRACT_ENVS}"
    env_id = fits[0]
    env, params = jrl.make(env_id)
    try:
        config = spec.default_config(env_id)
    except ValueError:
        config = spec.make_config()
    if "pretrained" in {f.name for f in dataclasses.fields(config)}:  # a text algorithm starts from a model
        from jrl.text import LMConfig, init_model, save_model

        vocab, length = env.vocabulary, env.observation_space(params).shape[0]
        lm = LMConfig(env_id, vocab.size, vocab.num_actions, length, d_model=16, num_layers=1, num_heads=2)
        save_model(tmp_path / "model", init_model(lm, jax.random.key(0)))
        config = config.replace(pretrained=str(tmp_path / "model"))
    config = config.replace(num_steps=4, log_interval=2)
    assert type(config).from_toml(config.to_toml()) == config
    algorithm = spec.make_algorithm(config, env, params)
    state = jax.eval_shape(algorithm.init, jax.random.key(0))
    assert dataclasses.is_dataclass(state) and state.log_index.dtype == jnp.int32 and state.log_index.shape == ()
    _, metrics = jax.eval_shape(lambda state: algorithm.run(state, 2), state)
    assert set(common.METRICS) <= set(metrics) and set(metrics) == set(spec.metrics), sorted(metrics)
    assert all(value.shape == (2,) for value in metrics.values())
    assert metrics["step"].dtype == jnp.int32 and metrics["finite"].dtype == jnp.bool_
    for tuned in getattr(spec.module, "tuned_env_ids", list)():
        default, text = spec.default_config(tuned), spec.default_config(tuned).to_toml()
        assert type(default).from_toml(text) == default, tuned
        assert "None" not in text  # TOML has no null: None is written "none" and read back as None


def test_greedy_policy_has_one_signature():
    env, params = jrl.make("FrozenLake-v1")
    config = ql.default_config("FrozenLake-v1")
    result = ql.QLearningResult(q_table=jrl.planning.value_iteration(env.mdp(params), 0.99), metrics={})
    policy, policy_params = ql.greedy_policy(config, env, params, result)
    assert (policy, policy_params) == ql.greedy_policy(result)  # the table alone is enough, too
    with pytest.raises(ValueError, match=r"has shape \(16, 4\) but"):
        ql.greedy_policy(config, *jrl.make("Taxi-v4"), result)
