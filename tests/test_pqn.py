"""PQN (jrl.algorithms.pqn): Q(lambda) targets against a float64 loop, config validation, a state
without replay or target network and with LayerNorm, bit-exact chunks, vmapped hyperparameters,
one-hot observations, the NumPy export of a LayerNorm network, and a short learning check."""

from __future__ import annotations

import csv
import dataclasses
import json
import tomllib
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jrl
from jrl import algorithms
from jrl.algorithms import common, networks, pqn
from jrl.export import export_numpy
from jrl.spaces import Box, Discrete

# -- Q(lambda) targets -----------------------------------------------------------------------------


def reference_targets(reward, terminated, truncated, next_q, gamma, lam, scale):
    """Peng's Q(lambda) return as purejaxql writes it, ``G = r + gamma q' + gamma lam (G' - q')``
    with ``q' = max_a Q(s')``, in float64, one environment and one step at a time; a time limit
    (or the rollout's end) bootstraps from ``q'`` alone, a termination not at all."""
    steps, envs = reward.shape
    out = np.zeros((steps, envs))
    for n in range(envs):
        later = None
        for t in reversed(range(steps)):
            r, q_next = scale * float(reward[t, n]), float(np.max(next_q[t, n]))
            if terminated[t, n]:
                g = r
            elif truncated[t, n] or later is None:
                g = r + gamma * q_next
            else:
                g = r + gamma * q_next + gamma * lam * (later - q_next)
            out[t, n] = g
            later = g
    return out


@pytest.mark.parametrize("lam", [0.0, 0.8, 1.0])
def test_q_lambda_targets_match_a_float64_loop(lam):
    rng = np.random.default_rng(0)
    steps, envs, actions = 12, 5, 3
    reward = rng.normal(size=(steps, envs)).astype(np.float32)
    next_q = rng.normal(size=(steps, envs, actions)).astype(np.float32)
    terminated = rng.random((steps, envs)) < 0.15
    truncated = rng.random((steps, envs)) < 0.15
    terminated[3, 0] = truncated[3, 0] = True  # both on one step: terminal, no bootstrap
    truncated[5, 1], terminated[5, 1] = True, False
    terminated[7, 2], truncated[7, 2] = True, False
    hp = pqn.PQNConfig(gamma=0.9, lam=lam, reward_scale=0.5).hyperparams()
    got = jax.jit(pqn.q_lambda_targets)(reward, terminated, truncated, next_q, hp)
    expected = reference_targets(reward, terminated, truncated, next_q, 0.9, lam, 0.5)
    np.testing.assert_allclose(np.asarray(got), expected, rtol=1e-5, atol=1e-5)
    # By hand: the terminal step of env 0 is its scaled reward alone, the truncated step of env 1
    # bootstraps from its final observation's best Q-value only.
    assert float(got[3, 0]) == pytest.approx(0.5 * reward[3, 0])
    assert float(got[5, 1]) == pytest.approx(0.5 * reward[5, 1] + 0.9 * next_q[5, 1].max(), rel=1e-6)


# -- config and state ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "changes, error, match",
    [
        (dict(lam=1.5), ValueError, "lam"),
        (dict(gamma=-0.1), ValueError, "gamma"),
        (dict(learning_rate=0.0), ValueError, "learning_rate"),
        (dict(reward_scale=0.0), ValueError, "reward_scale"),
        (dict(epsilon_end=2.0), ValueError, "epsilon_end"),
        (dict(num_minibatches=3), ValueError, r"num_minibatches=3 must divide rollout_length \* num_envs"),
        (dict(network="rnn"), ValueError, "network"),
        (dict(hidden_sizes=[64]), TypeError, "hidden_sizes"),
        (dict(layer_norm=1), TypeError, "layer_norm"),
        (dict(num_epochs=0), ValueError, "num_epochs"),
        (dict(eval_episodes=0, stop_return=400.0), ValueError, "needs eval_episodes > 0"),
        (dict(num_steps=100, log_interval=7), ValueError, "log_interval=7 must divide num_steps=100"),
        (dict(q_init=float("nan")), ValueError, "q_init"),
        (dict(scale_observations=1), TypeError, "scale_observations"),
    ],
)
def test_bad_configs_are_refused_naming_the_field(changes, error, match):
    with pytest.raises(error, match=match):
        pqn.PQNConfig(**changes)


def test_an_iteration_is_one_rollout_of_every_environment():
    config = pqn.PQNConfig(num_envs=8, rollout_length=16, num_steps=10, num_minibatches=4, num_epochs=3)
    assert config.env_steps_per_iteration() == 128
    assert config.minibatch_size() == 32 and config.total_updates() == 10 * 3 * 4
    assert pqn.PQNConfig.from_toml(config.to_toml()) == config
    assert set(dataclasses.asdict(config.hyperparams())) == {
        "learning_rate",
        "gamma",
        "lam",
        "epsilon_start",
        "epsilon_end",
        "reward_scale",
    }


def test_the_state_has_layer_norm_and_no_replay_buffer_or_target_network():
    env, params = jrl.make("CartPole-v1")
    state = jax.eval_shape(pqn.make_algorithm(pqn.PQNConfig(), env, params).init, jax.random.key(0))
    assert isinstance(state, pqn.PQNState)
    fields = {f.name for f in dataclasses.fields(pqn.PQNState)}
    assert not {name for name in fields if "buffer" in name or "target" in name or "replay" in name}
    layers = state.params["params"]
    assert {"LayerNorm_0", "LayerNorm_1"} <= set(layers) and layers["LayerNorm_0"]["scale"].shape == (128,)
    plain = jax.eval_shape(
        pqn.make_algorithm(pqn.PQNConfig(layer_norm=False), env, params).init, jax.random.key(0)
    ).params["params"]
    assert not any(name.startswith("LayerNorm") for name in plain)


def test_the_registry_knows_pqn_and_what_it_fits():
    spec = algorithms.get("pqn")
    assert spec.module is pqn and spec.exportable and not spec.tabular
    assert set(common.METRICS) <= set(spec.metrics) and "epsilon" in spec.metrics
    assert spec.default_config("CartPole-v1") == pqn.default_config("CartPole-v1")
    assert "CartPole-v1" in pqn.tuned_env_ids()
    with pytest.raises(ValueError, match="no tuned PQN config"):
        pqn.default_config("Taxi-v4")

    class Continuous:  # what check_env reads of an environment: its spaces and its id
        env_id = "Continuous-v0"

        def action_space(self, params):
            return Box(-1.0, 1.0, (1,), jnp.float32)

        def observation_space(self, params):
            return Discrete(3)

    with pytest.raises(ValueError, match="pqn needs Discrete actions; Continuous-v0"):
        spec.check_env(Continuous(), None)
    spec.check_env(*jrl.make("FrozenLake-v1"))  # Discrete observations are fine: fed one-hot


# -- the network: one-hot input, NumPy export with LayerNorm --------------------------------------


def perturbed(params, seed):
    """Every parameter moved randomly (LayerNorm's scale starts at 1 and its bias at 0, which would
    hide a swapped scale and bias)."""
    rng = np.random.default_rng(seed)
    return jax.tree.map(lambda x: jnp.asarray(x + 0.3 * rng.normal(size=x.shape), jnp.float32), params)


def test_discrete_observations_enter_one_hot():
    env, params = jrl.make("FrozenLake-v1")
    config = pqn.PQNConfig(hidden_sizes=(16,), num_envs=4, rollout_length=8, num_minibatches=2, num_steps=2)
    network = pqn.build_network(config, env, params)
    assert network.one_hot == 16 and network.layer_norm
    variables = perturbed(jax.jit(network.init)(jax.random.key(0), jnp.int32(0)), 1)
    vector_input = networks.QNetwork(4, hidden_sizes=(16,), layer_norm=True)
    policy, policy_params = pqn.greedy_policy(config, env, params, pqn.PQNResult(variables, {}))
    states = jnp.array([0, 5, 15], jnp.int32)

    @jax.jit
    def compare(variables):
        by_index = jax.vmap(network.apply, in_axes=(None, 0))(variables, states)
        by_vector = jax.vmap(vector_input.apply, in_axes=(None, 0))(variables, jax.nn.one_hot(states, 16))
        return by_index, by_vector, jax.vmap(policy, in_axes=(None, 0, None))(policy_params, states, None)

    by_index, by_vector, actions = compare(variables)
    np.testing.assert_array_equal(by_index, by_vector)
    np.testing.assert_array_equal(actions, np.argmax(by_index, axis=1))
    # The whole training traces on it (shapes only: nothing is compiled or run).
    result = jax.eval_shape(pqn.make_train(config, env, params), jax.random.key(0))
    assert result.params["params"]["Dense_0"]["kernel"].shape == (16, 16)


def test_q_init_and_scale_observations_as_dqn_has_them():
    """q_init is every initial Q-value's offset (the output bias); scale_observations feeds
    2 * (obs - low) / (high - low) - 1, checked against the unscaled network on inputs scaled by hand."""
    env, params = jrl.make("MountainCar-v0")
    config = pqn.PQNConfig(hidden_sizes=(8,), q_init=3.0, scale_observations=True)
    network = pqn.build_network(config, env, params)
    unscaled = pqn.build_network(config.replace(scale_observations=False), env, params)
    obs = np.array([[-1.2, -0.07], [0.6, 0.07], [-0.5, 0.0]], np.float32)
    by_hand = 2.0 * (obs - np.array([-1.2, -0.07])) / np.array([1.8, 0.14]) - 1.0
    np.testing.assert_allclose(by_hand[:2], [[-1, -1], [1, 1]], atol=1e-6)

    @jax.jit
    def outputs(key):
        variables = network.init(key, obs[0])
        scaled = jax.vmap(network.apply, in_axes=(None, 0))(variables, obs)
        return variables, scaled, jax.vmap(unscaled.apply, in_axes=(None, 0))(variables, by_hand.astype(np.float32))

    variables, scaled, reference = outputs(jax.random.key(0))
    np.testing.assert_array_equal(variables["params"]["Dense_1"]["bias"], np.full(3, 3.0, np.float32))
    np.testing.assert_allclose(scaled, reference, rtol=1e-5, atol=1e-5)
    lake, lake_params = jrl.make("FrozenLake-v1")
    with pytest.raises(ValueError, match="scale_observations=True needs Box observations with finite bounds"):
        pqn.build_network(config, lake, lake_params)


@pytest.mark.parametrize("env_id, config", [("CartPole-v1", pqn.PQNConfig(hidden_sizes=(16, 8)))])
def test_the_numpy_export_runs_the_layer_norms(env_id, config):
    env, params = jrl.make(env_id)
    network = pqn.build_network(config, env, params)
    obs = np.random.default_rng(3).normal(size=(64, 4)).astype(np.float32)
    variables = perturbed(jax.jit(network.init)(jax.random.key(0), obs[0]), 4)
    policy = export_numpy(config, env, params, pqn.PQNResult(variables, {}))
    assert policy.spec["layer_norm"] and policy.spec["version"] == 2
    expected = np.asarray(jax.jit(jax.vmap(network.apply, in_axes=(None, 0)))(variables, obs))
    np.testing.assert_allclose(policy.q_values(obs), expected, rtol=1e-4, atol=1e-5)
    np.testing.assert_array_equal(policy(obs), expected.argmax(axis=1))
    without = dict(policy.spec, layer_norm=False, version=1)
    assert not np.allclose(type(policy)(without, policy.arrays).q_values(obs), expected)


# -- training: chunks, vmapped hyperparameters, learning -------------------------------------------

# A small CartPole run that learns within seconds: 16 environments, rollouts of 32 steps.
SMALL = pqn.PQNConfig(
    num_envs=16,
    num_steps=80,
    rollout_length=32,
    num_epochs=2,
    num_minibatches=4,
    learning_rate=3e-3,
    reward_scale=0.1,
    epsilon_end=0.1,
    hidden_sizes=(32, 32),
    eval_episodes=0,  # the learning check reads the training episodes: one compilation less
    log_interval=20,
)
KEY = 5


@pytest.fixture(scope="module")
def grid_run():
    """SMALL trained with a grid of two learning rates (SMALL's and a hundred times smaller) in one
    compiled call, and the compiled function for other grids."""
    env, params = jrl.make("CartPole-v1")
    train = jax.jit(jax.vmap(pqn.make_train(SMALL, env, params), in_axes=(None, 0)))
    grid = common.hyperparam_grid(SMALL, learning_rate=[SMALL.learning_rate, SMALL.learning_rate / 100])
    return train, grid, train(jax.random.key(KEY), grid)


def test_chunks_are_bit_identical_to_make_train(grid_run):
    """Two chunks of ``run`` give make_train's bits (vmapped over the grid, as a sweep runs)."""
    _, grid, whole = grid_run
    algorithm = pqn.make_algorithm(SMALL, *jrl.make("CartPole-v1"))
    run = jax.jit(jax.vmap(algorithm.run, in_axes=(0, None)), static_argnums=1)
    state = jax.jit(jax.vmap(algorithm.init, in_axes=(None, 0)))(jax.random.key(KEY), grid)
    pieces = []
    for _ in range(2):
        state, metrics = run(state, 2)
        pieces.append(metrics)
    chunked = algorithm.result(state, jax.tree.map(lambda *xs: jnp.concatenate(xs, axis=1), *pieces))
    for a, b in zip(jax.tree.leaves(whole), jax.tree.leaves(chunked), strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert algorithm.num_logs == 4


def test_a_grid_member_does_not_depend_on_the_others(grid_run):
    """Hyperparameters are data: a member's run is the same bits whatever trains beside it (a sweep
    relies on it). A single unbatched run is not compared bit for bit: batched matrix products
    round differently (docs/dqn.md), as for DQN."""
    train, grid, results = grid_run
    other = grid.replace(learning_rate=grid.learning_rate.at[1].set(1e-3))
    again = train(jax.random.key(KEY), other)
    for a, b in zip(jax.tree.leaves(results), jax.tree.leaves(again), strict=True):
        np.testing.assert_array_equal(np.asarray(a)[0], np.asarray(b)[0])
    kernels = [r.params["params"]["Dense_0"]["kernel"] for r in (results, again)]
    assert not np.allclose(kernels[0][1], kernels[1][1])  # the second member's rate was used
    assert not np.allclose(kernels[0][0], kernels[0][1])


def test_learns_cartpole_and_logs_every_metric(grid_run):
    metrics = jax.device_get(jax.tree.map(lambda x: x[0], grid_run[2].metrics))
    assert set(metrics) == set(pqn.METRICS)
    assert np.all(metrics["finite"]) and np.all(metrics["nonfinite_updates"] == 0)
    np.testing.assert_array_equal(metrics["env_steps"], [10240, 20480, 30720, 40960])
    np.testing.assert_array_equal(metrics["updates"], 20 * 2 * 4)
    assert metrics["epsilon"][-1] == pytest.approx(0.1)
    # The training episodes (epsilon-greedy, 10% random at the end) of the last interval (10,240
    # steps) last over twice as long as those of the first, where epsilon falls from 1 to 0.1: on
    # 16 seeds tried, the last interval's mean was 165-500 steps, at least 3.6 times the first's (40-57).
    first, last = metrics["episode_return"][0], metrics["episode_return"][-1]
    assert last > 100 and last > 2 * first, metrics["episode_return"]
    assert np.isnan(metrics["eval_return"]).all()  # eval_episodes=0: no in-loop evaluation


# -- the tuned defaults and their records ----------------------------------------------------------

ROOT = Path(__file__).resolve().parents[1]
THRESHOLDS = {"CartPole-v1": 475.0, "Acrobot-v1": -100.0, "MountainCar-v0": -120.0}
#: The defaults one sweep chose (MountainCar-v0 took two: its own test below).
ONE_SWEEP = sorted(set(THRESHOLDS) - {"MountainCar-v0"})


def test_every_tuned_default_has_a_record():
    assert set(pqn.tuned_env_ids()) == set(THRESHOLDS)


@pytest.mark.parametrize("env_id", ONE_SWEEP)
def test_the_default_is_the_tuning_sweeps_choice_and_the_docs_report_its_records(env_id):
    """The recorded sweep on seeds 0-15 (experiments/tune_defaults/pqn/ENV.toml) chooses the
    default by docs/pqn.md's rule (the smallest budget at which one configuration's 16 final
    returns all reach the threshold, then the highest mean at that budget), and the docs'
    held-out line is the recorded held-out run's."""
    results = ROOT / "experiments" / "tune_defaults" / "results" / "pqn" / env_id
    threshold = THRESHOLDS[env_id]
    record = json.loads((results / "tuning" / "results.json").read_text())
    assert record["spec"]["seeds"] == list(range(16))
    rows = record["rows"]
    finals = {m["index"]: np.asarray(m["final_returns"]) for m in record["members"]}
    solved = [r for r in rows if len(finals[r["index"]]) == 16 and (finals[r["index"]] >= threshold).all()]
    budget = min(r["num_steps"] for r in solved)
    chosen = max((r for r in solved if r["num_steps"] == budget), key=lambda r: r["final_return_mean"])
    default = pqn.default_config(env_id)
    assert (default.num_steps, default.learning_rate) == (budget, chosen["learning_rate"])
    base = tomllib.loads((results / "tuning" / "sweep.toml").read_text())["config"]
    assert pqn.PQNConfig.from_dict(base).replace(num_steps=budget, learning_rate=chosen["learning_rate"]) == default
    with open(results / "heldout.csv") as f:
        heldout = list(csv.DictReader(f))
    assert [int(r["seed"]) for r in heldout] == list(range(1000, 1032))
    jrl_returns = np.array([float(r["jrl_mean_return"]) for r in heldout])
    gym_returns = np.array([float(r["gymnasium_mean_return"]) for r in heldout])
    line = (
        f"{env_id}: {int(np.sum(jrl_returns >= threshold))} of 32 held-out seeds reach {threshold:g} in jrl's "
        f"environment (mean {jrl_returns.mean():.1f}, worst {jrl_returns.min():.1f}) and "
        f"{int(np.sum(gym_returns >= threshold))} of 32 in Gymnasium's (mean {gym_returns.mean():.1f}, "
        f"worst {gym_returns.min():.1f})"
    )
    assert line in " ".join((ROOT / "docs" / "pqn.md").read_text().split()), line


def heldout_line(label: str, path: Path, threshold: float) -> tuple[str, int, int]:
    """The docs' sentence for a recorded held-out run, and its seeds at ``threshold`` in jrl and in
    Gymnasium."""
    with open(path) as f:
        heldout = list(csv.DictReader(f))
    assert [int(r["seed"]) for r in heldout] == list(range(1000, 1032))
    jrl_returns = np.array([float(r["jrl_mean_return"]) for r in heldout])
    gym_returns = np.array([float(r["gymnasium_mean_return"]) for r in heldout])
    jrl_solved, gym_solved = int(np.sum(jrl_returns >= threshold)), int(np.sum(gym_returns >= threshold))
    line = (
        f"{label}: {jrl_solved} of 32 held-out seeds reach {threshold:g} in jrl's environment (mean "
        f"{jrl_returns.mean():.1f}, worst {jrl_returns.min():.1f}) and {gym_solved} of 32 in Gymnasium's "
        f"(mean {gym_returns.mean():.1f}, worst {gym_returns.min():.1f})"
    )
    return line, jrl_solved, gym_solved


def test_mountain_car_default_is_the_two_sweeps_choice_and_the_docs_report_their_records():
    """MountainCar-v0 took two sweeps on seeds 0-15, read together by the rule (every seed at -120,
    then the highest mean): MountainCar-v0.toml (4 or 8 epochs), whose choice reached -120 on only 30
    of the 32 held-out seeds, then MountainCar-v0-epochs16.toml (16 epochs). The docs' tables are the
    sweeps' records, and both held-out lines (the 8-epoch near-miss, the default) are the runs'."""
    tune = ROOT / "experiments" / "tune_defaults"
    results = tune / "results" / "pqn" / "MountainCar-v0"
    docs = " ".join((ROOT / "docs" / "pqn.md").read_text().split())
    candidates = []
    for sweep in ("tuning", "tuning-epochs16"):
        record = json.loads((results / sweep / "results.json").read_text())
        assert record["spec"]["seeds"] == list(range(16))
        base = pqn.PQNConfig.from_dict(tomllib.loads((results / sweep / "sweep.toml").read_text())["config"])
        finals = {m["index"]: np.asarray(m["final_returns"]) for m in record["members"]}
        for r in record["rows"]:
            f = finals[r["index"]]
            assert f"{f.mean():.1f}, worst {f.min():.1f}, {int(np.sum(f >= -120))}/16" in docs, r
            choice = {name: r[name] for name in record["spec"]["grid"]}
            candidates.append((int(np.sum(f >= -120)), float(f.mean()), base.replace(**choice)))
    solved, _, best = max(candidates, key=lambda c: c[:2])
    assert solved == 16 and best == pqn.default_config("MountainCar-v0")
    near_miss = pqn.PQNConfig.from_dict(
        tomllib.loads((tune / "pqn" / "MountainCar-v0-heldout-epochs8.toml").read_text())["config"]
    )
    assert near_miss == best.replace(num_epochs=8)
    line, jrl_solved, gym_solved = heldout_line("MountainCar-v0 (8 epochs)", results / "heldout-epochs8.csv", -120)
    assert line in docs and min(jrl_solved, gym_solved) < 0.95 * 32, line
    line, jrl_solved, gym_solved = heldout_line("MountainCar-v0", results / "heldout.csv", -120)
    assert line in docs and min(jrl_solved, gym_solved) >= 0.95 * 32, line


# -- the CNN on image observations; the schedules' horizon -----------------------------------------

# RandomLake's [4, 4, 3] images through one 3x3 convolution of 4 channels and a dense layer of 8,
# for 2 logging intervals of 2 iterations. The schedules are laid over 2 iterations
# (schedule_iterations), so epsilon is at its end by iteration 2 and the learning rate is 0 from
# iteration 2 on: the second interval must leave the parameters exactly as the first left them.
# (Resume is checked bit for bit on the MLP above; one compilation of the CNN is all the time
# budget of these tests allows.)
CNN = pqn.PQNConfig(
    network="cnn",
    conv_features=(4,),
    hidden_sizes=(8,),
    num_envs=4,
    rollout_length=8,
    num_epochs=1,
    num_minibatches=2,
    num_steps=4,
    learning_rate=1e-2,
    epsilon_decay_fraction=1.0,
    schedule_iterations=2,
    eval_episodes=0,
    log_interval=2,
)


@pytest.fixture(scope="module")
def cnn_run():
    """CNN's run, one logging interval at a time inside one compiled scan: the initial parameters,
    the parameters after each interval, and the ``PQNResult``."""
    env, params = jrl.make("RandomLake-v0", size=4)
    algorithm = pqn.make_algorithm(CNN, env, params)

    @jax.jit
    def intervals(key):
        state = algorithm.init(key)

        def interval(state, _):
            state, metrics = algorithm.run(state, 1)
            return state, (state.params, jax.tree.map(lambda x: x[0], metrics))

        final, (params_after, metrics) = jax.lax.scan(interval, state, None, length=CNN.num_logs())
        return state.params, params_after, algorithm.result(final, metrics)

    initial, params_after, result = intervals(jax.random.key(2))
    return env, params, initial, params_after, result


def test_the_cnn_trains_on_images_with_layer_norm_after_its_convolution(cnn_run):
    env, params, initial, _, result = cnn_run
    layers = result.params["params"]
    assert env.observation_space(params).shape == (4, 4, 3)
    # The first layer is the 3x3 convolution (SAME padding keeps the 4x4 grid), and its 4
    # channels go through LayerNorm_0; the dense layer reads 4 * 4 * 4 features.
    assert layers["Conv3x3_0"]["kernel"].shape == (3, 3, 3, 4)
    assert layers["LayerNorm_0"]["scale"].shape == (4,) and layers["LayerNorm_1"]["scale"].shape == (8,)
    assert layers["Dense_0"]["kernel"].shape == (64, 8) and layers["Dense_1"]["kernel"].shape == (8, 4)
    metrics = jax.device_get(result.metrics)
    assert set(metrics) == set(pqn.METRICS)
    assert np.all(metrics["finite"]) and np.all(metrics["nonfinite_updates"] == 0)
    np.testing.assert_array_equal(metrics["env_steps"], [64, 128])
    assert all(np.isfinite(x).all() for x in jax.tree.leaves(result.params))
    assert np.all(np.isfinite(metrics["loss"]))
    initial_kernel = initial["params"]["Conv3x3_0"]["kernel"]
    assert not np.allclose(layers["Conv3x3_0"]["kernel"], initial_kernel)  # the convolution learned
    # greedy_policy: the argmax of the trained network, image by image.
    policy, policy_params = pqn.greedy_policy(CNN, env, params, result)
    network = pqn.build_network(CNN, env, params)
    obs = jnp.asarray(np.random.default_rng(0).random((6, 4, 4, 3)), jnp.float32)

    @jax.jit
    def act(policy_params):
        q = jax.vmap(network.apply, in_axes=(None, 0))(policy_params, obs)
        return jax.vmap(policy, in_axes=(None, 0, None))(policy_params, obs, None), q

    actions, q = act(policy_params)
    assert actions.dtype == jnp.int32
    np.testing.assert_array_equal(actions, np.argmax(q, axis=1))


def test_schedule_iterations_sets_the_horizon_of_epsilon_and_the_learning_rate(cnn_run):
    _, _, initial, params_after, result = cnn_run
    # Epsilon 1 -> 0.05 over epsilon_decay_fraction * schedule_iterations = 2 iterations: the
    # log points' last iterations (1 and 3) have 1 - 0.95 / 2 and 0.05 (over num_steps = 4
    # iterations they would have 0.7625 and 0.2875).
    np.testing.assert_allclose(jax.device_get(result.metrics["epsilon"]), [0.525, 0.05], rtol=1e-6)
    # The learning rate decays to 0 over 2 iterations' gradient steps, then stays at 0: the
    # first interval moves every parameter, the second moves none.
    first = jax.tree.map(lambda x: x[0], params_after)
    second = jax.tree.map(lambda x: x[1], params_after)
    assert not any(np.array_equal(a, b) for a, b in zip(jax.tree.leaves(initial), jax.tree.leaves(first), strict=True))
    for a, b in zip(jax.tree.leaves(first), jax.tree.leaves(second), strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert CNN.schedule_horizon() == 2 and CNN.replace(schedule_iterations=None).schedule_horizon() == 4
    assert pqn.PQNConfig.from_toml(CNN.to_toml()) == CNN


def test_schedule_iterations_none_is_the_run_itself():
    """``schedule_iterations=None`` traces to the same program as ``schedule_iterations=num_steps``
    (every config written before the field existed keeps its bits)."""
    env, params = jrl.make("RandomLake-v0", size=4)
    config = CNN.replace(schedule_iterations=None)
    programs = [
        str(jax.make_jaxpr(pqn.make_train(c, env, params))(jax.random.key(0)))
        for c in (config, config.replace(schedule_iterations=config.num_steps))
    ]
    assert programs[0] == programs[1]


@pytest.mark.parametrize(
    "value, error", [(0, ValueError), (-3, ValueError), (2.0, TypeError), (True, TypeError), ("10", TypeError)]
)
def test_bad_schedule_iterations_are_refused(value, error):
    with pytest.raises(error, match="schedule_iterations"):
        pqn.PQNConfig(schedule_iterations=value)


# -- the MinAtar record (experiments/pqn_minatar.py; docs/pqn.md, "MinAtar: a published curve") ---

MINATAR_COLUMNS = ["library", "seed", "iteration", "env_steps", "train_return", "greedy_return"]


def test_the_minatar_record_is_the_docs_table():
    """The recorded curves have the documented columns, both libraries log at the same
    environment steps, and docs/pqn.md's table is the record's last log point."""
    with open(ROOT / "experiments" / "results" / "pqn_minatar.csv") as f:
        reader = csv.DictReader(f)
        assert reader.fieldnames == MINATAR_COLUMNS
        rows = list(reader)
    steps = {}
    doc = " ".join((ROOT / "docs" / "pqn.md").read_text().split())
    for library in ("jrl", "purejaxql"):
        mine = [r for r in rows if r["library"] == library]
        seeds = sorted({int(r["seed"]) for r in mine})
        assert len(seeds) >= 2 and len(mine) == 20 * len(seeds), (library, len(mine))
        steps[library] = sorted({int(r["env_steps"]) for r in mine})
        final = [r for r in mine if int(r["env_steps"]) == steps[library][-1]]
        greedy = [float(r["greedy_return"]) for r in final]
        train = [float(r["train_return"]) for r in final]
        row = (
            f"| {library} | {steps[library][-1]:,} | {len(final)} | {np.mean(greedy):.2f} "
            f"({min(greedy):.2f} to {max(greedy):.2f}) | {np.mean(train):.2f} |"
        )
        assert row in doc, row
    assert steps["jrl"] == steps["purejaxql"] and len(steps["jrl"]) == 20  # equal frames
