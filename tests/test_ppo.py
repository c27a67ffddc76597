"""PPO (``jrl.algorithms.ppo``): GAE against a float64 loop, the loss against a NumPy hand
computation, the Gaussian policy's density and entropy against SciPy, config validation, running
observation statistics against NumPy, a Box-action run that resumes bit for bit and acts within
the bounds, and one learning check (the value of a time limit, bootstrapped)."""

from __future__ import annotations

import csv
import json
import math
import tomllib
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

import jrl
from jrl.algorithms import ppo


def _data(x):
    x = jnp.asarray(x)
    return np.asarray(jax.random.key_data(x) if jnp.issubdtype(x.dtype, jax.dtypes.prng_key) else x)


def _differing(a, b) -> list[str]:
    paths = jax.tree_util.tree_leaves_with_path(a)
    return [
        jax.tree_util.keystr(path)
        for (path, x), y in zip(paths, jax.tree_util.tree_leaves(b), strict=True)
        if not np.array_equal(_data(x), _data(y), equal_nan=True)
    ]


# --- GAE ------------------------------------------------------------------------------------------


def test_gae_matches_a_float64_loop_with_terminations_and_truncations():
    rng = np.random.default_rng(0)
    T, N, gamma, lam = 9, 3, 0.97, 0.8
    reward = rng.normal(size=(T, N))
    value = rng.normal(size=(T, N))
    terminated = np.zeros((T, N), bool)
    truncated = np.zeros((T, N), bool)
    terminated[2, 0] = terminated[6, 1] = True
    truncated[4, 0] = truncated[1, 2] = True
    terminated[5, 2] = truncated[5, 2] = True  # both on one step: no bootstrap
    truncated[T - 1, 1] = True  # at the rollout's last step
    done = terminated | truncated
    # V(next_obs): the next step's V(obs) while the episode goes on, a final observation's value
    # where it ended, and after the rollout's last step a value not seen inside it.
    next_value = np.roll(value, -1, axis=0)
    next_value[done] = rng.normal(size=done.sum())
    next_value[-1] = rng.normal(size=N)

    # The usual recursion over TD errors, in float64.
    expected = np.zeros((T, N))
    for n in range(N):
        later = 0.0
        for t in reversed(range(T)):
            boot = 0.0 if terminated[t, n] else gamma * next_value[t, n]
            delta = reward[t, n] + boot - value[t, n]
            carry = 0.0 if done[t, n] or t == T - 1 else gamma * lam * later
            expected[t, n] = later = delta + carry

    f32 = lambda x: jnp.asarray(x, jnp.float32)  # noqa: E731
    advantage, returns = ppo.gae(
        f32(reward),
        jnp.asarray(terminated),
        jnp.asarray(truncated),
        f32(value),
        f32(next_value),
        jnp.float32(gamma),
        jnp.float32(lam),
    )
    np.testing.assert_allclose(advantage, expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(returns, expected + value, rtol=1e-5, atol=1e-5)
    # The truncated step bootstraps (V of its final observation), the terminated one does not.
    assert advantage[4, 0] == pytest.approx(reward[4, 0] + gamma * next_value[4, 0] - value[4, 0], abs=1e-5)
    assert advantage[5, 2] == pytest.approx(reward[5, 2] - value[5, 2], abs=1e-5)


# --- the loss -------------------------------------------------------------------------------------


def _hyperparams(**changes):
    return ppo.PPOConfig(clip_eps=0.2, vf_coef=0.5, ent_coef=0.01).replace(**changes).hyperparams()


def _numpy_loss(batch, clip_eps, vf_coef, ent_coef, clip_value, normalize):
    log_prob, entropy, value, old_log_prob, old_value, advantage, target = (np.float64(batch[k]) for k in _KEYS)
    if normalize:
        advantage = (advantage - advantage.mean()) / (advantage.std() + 1e-8)
    ratio = np.exp(log_prob - old_log_prob)
    surrogate = [min(r * a, min(max(r, 1 - clip_eps), 1 + clip_eps) * a) for r, a in zip(ratio, advantage, strict=True)]
    policy_loss = -np.mean(surrogate)
    errors = []
    for v, v_old, g in zip(value, old_value, target, strict=True):
        error = (v - g) ** 2
        if clip_value:
            error = max(error, (v_old + min(max(v - v_old, -clip_eps), clip_eps) - g) ** 2)
        errors.append(error)
    value_loss = 0.5 * np.mean(errors)
    loss = policy_loss + vf_coef * value_loss - ent_coef * entropy.mean()
    kl = np.mean(ratio - 1 - np.log(ratio))
    clipped = np.mean(np.abs(ratio - 1) > clip_eps)
    return loss, policy_loss, value_loss, kl, clipped


_KEYS = ("log_prob", "entropy", "value", "old_log_prob", "old_value", "advantage", "target")


@pytest.mark.parametrize("clip_value", [True, False])
@pytest.mark.parametrize("normalize", [True, False])
def test_loss_matches_a_hand_computation(clip_value, normalize):
    # Ratios 0.5 .. 1.6 on both sides of the clip range, advantages of both signs, values that
    # move more than clip_eps from the rollout's (so both the surrogate and the value clip bite).
    old_log_prob = np.array([-0.7, -1.2, -0.3, -2.0, -0.9, -1.5], np.float32)
    ratio = np.array([0.5, 0.9, 1.05, 1.3, 1.6, 1.0], np.float32)
    batch = {
        "log_prob": old_log_prob + np.log(ratio),
        "entropy": np.array([0.6, 0.5, 0.69, 0.3, 0.1, 0.4], np.float32),
        "value": np.array([1.0, -0.5, 2.0, 0.3, 0.0, 1.5], np.float32),
        "old_value": np.array([0.5, -0.4, 2.5, 0.3, 0.1, 1.0], np.float32),
        "advantage": np.array([1.0, -2.0, 0.5, -1.0, 2.0, 0.3], np.float32),
        "target": np.array([2.0, -1.0, 1.0, 0.5, 0.2, 1.2], np.float32),
        "old_log_prob": old_log_prob,
    }
    hp = _hyperparams()
    loss, terms = ppo.ppo_loss(*(jnp.asarray(batch[k]) for k in _KEYS), hp, clip_value, normalize)
    expected = _numpy_loss(batch, 0.2, 0.5, 0.01, clip_value, normalize)
    assert float(loss) == pytest.approx(expected[0], rel=1e-5)
    got = [terms[k] for k in ("loss", "policy_loss", "value_loss", "approx_kl", "clip_fraction")]
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-7)
    assert float(terms["clip_fraction"]) == pytest.approx(3 / 6)  # 0.5, 1.3, 1.6 lie outside [0.8, 1.2]
    assert float(terms["entropy"]) == pytest.approx(batch["entropy"].mean(), rel=1e-6)
    # The clip is active: no policy gradient through a ratio beyond the clip in the direction the
    # advantage favours (1.6 with A > 0), but still one through a ratio beyond the clip against
    # it (0.5 with A > 0, 1.3 with A < 0: the pessimistic min keeps the unclipped term).
    grad = jax.grad(lambda lp: ppo.ppo_loss(lp, *(jnp.asarray(batch[k]) for k in _KEYS[1:]), hp, False, False)[0])(
        jnp.asarray(batch["log_prob"])
    )
    assert float(grad[4]) == 0.0 and float(grad[3]) != 0.0 and float(grad[0]) != 0.0


# --- the Gaussian policy --------------------------------------------------------------------------


def test_gaussian_log_prob_and_entropy_match_scipy():
    rng = np.random.default_rng(1)
    mean = rng.normal(size=(5, 3))
    log_std = rng.normal(size=3) * 0.5
    x = rng.normal(size=(5, 3)) * 2
    expected = stats.norm.logpdf(x, mean, np.exp(log_std)).sum(axis=-1)
    got = ppo.gaussian_log_prob(jnp.float32(mean), jnp.float32(log_std), jnp.float32(x))
    np.testing.assert_allclose(got, expected, rtol=1e-5)
    entropy = ppo.gaussian_entropy(jnp.float32(log_std))
    assert float(entropy) == pytest.approx(stats.norm.entropy(0, np.exp(log_std)).sum(), rel=1e-5)


# --- config ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "changes, error, match",
    [
        ({"num_minibatches": 3}, ValueError, "num_minibatches=3 must divide num_envs \\* rollout_length = 512"),
        ({"clip_eps": 0.0}, ValueError, "clip_eps must be in \\(0.0"),
        ({"gae_lambda": 1.5}, ValueError, "gae_lambda must be in \\[0.0, 1.0\\], got 1.5"),
        ({"ent_coef": -0.1}, ValueError, "ent_coef"),
        ({"activation": "gelu"}, ValueError, "activation must be one of \\['tanh', 'relu'\\]"),
        ({"stop_return": 400.0, "eval_episodes": 0}, ValueError, "needs eval_episodes > 0"),
        ({"log_interval": 7}, ValueError, "log_interval=7 must divide num_steps=1000"),
        ({"hidden_sizes": [64]}, TypeError, "hidden_sizes must be a tuple"),
        ({"clip_value": 1}, TypeError, "clip_value must be a bool"),
        ({"rollout_length": 0}, ValueError, "rollout_length must be in \\[1,"),
        ({"log_std_init": 6.0}, ValueError, "log_std_init must be in \\[-20.0, 5.0\\], got 6.0"),
    ],
)
def test_config_validation_names_the_field(changes, error, match):
    with pytest.raises(error, match=match):
        ppo.PPOConfig().replace(**changes)


def test_config_round_trips_and_counts_env_steps():
    config = ppo.default_config("CartPole-v1")
    assert ppo.PPOConfig.from_toml(config.to_toml()) == config
    assert config.env_steps_per_iteration() == config.num_envs * config.rollout_length
    env, params = jrl.make("FrozenLake-v1")
    with pytest.raises(ValueError, match="normalize_observations=True normalises Box observations"):
        ppo.make_algorithm(ppo.PPOConfig(normalize_observations=True), env, params)


# --- observation statistics -----------------------------------------------------------------------


def test_observation_statistics_match_numpy():
    rng = np.random.default_rng(2)
    batches = [rng.normal(3.0, 2.0, size=(n, 2, 3)).astype(np.float32) for n in (7, 1, 40, 13)]
    stats_ = ppo.ObsStats(jnp.zeros((2, 3)), jnp.ones((2, 3)), jnp.float32(0))
    for batch in batches:
        stats_ = ppo.update_obs_stats(stats_, jnp.asarray(batch))
    everything = np.concatenate(batches).astype(np.float64)
    np.testing.assert_allclose(stats_.mean, everything.mean(axis=0), rtol=1e-5)
    np.testing.assert_allclose(stats_.var, everything.var(axis=0), rtol=1e-4)
    assert float(stats_.count) == len(everything)
    normalized = ppo.normalize_obs(stats_, jnp.asarray(everything[:5]))
    np.testing.assert_allclose(
        normalized, (everything[:5] - everything.mean(0)) / np.sqrt(everything.var(0) + 1e-8), rtol=1e-4, atol=1e-5
    )


# --- a Box-action run: resume, statistics, bounds -------------------------------------------------

BOX_CONFIG = ppo.PPOConfig(
    num_envs=2,
    num_steps=4,
    rollout_length=8,
    num_epochs=2,
    num_minibatches=2,
    hidden_sizes=(8,),
    normalize_observations=True,
    eval_episodes=0,  # the greedy policy is evaluated below (evaluate_episodes); one compilation fewer here
    log_interval=2,
)


@pytest.fixture(scope="module")
def pendulum():
    env, params = jrl.make("Pendulum-v1")
    algorithm = ppo.make_algorithm(BOX_CONFIG, env, params)
    key = jax.random.key(3)
    whole = jax.jit(ppo.make_train(BOX_CONFIG, env, params))(key)
    run = jax.jit(algorithm.run, static_argnums=1)
    state = jax.jit(algorithm.init)(key)
    pieces = []
    for _ in range(BOX_CONFIG.num_logs()):
        state, metrics = run(state, 1)
        pieces.append(metrics)
    chunked = algorithm.result(state, jax.tree_util.tree_map(lambda *xs: jnp.concatenate(xs), *pieces))
    return env, params, whole, chunked


def test_box_run_in_chunks_equals_one_run(pendulum):
    _, _, whole, chunked = pendulum
    assert _differing(whole, chunked) == []
    metrics = whole.metrics
    assert set(metrics) == set(ppo.METRICS)
    assert np.asarray(metrics["finite"]).all() and np.isfinite(np.asarray(metrics["loss"])).all()
    np.testing.assert_array_equal(metrics["env_steps"], [32, 64])
    # Every observation acted on was counted once in the normalisation statistics.
    assert float(whole.obs_stats.count) == BOX_CONFIG.num_steps * BOX_CONFIG.env_steps_per_iteration()
    assert whole.params["log_std"].shape == (1,)


def test_log_std_init_is_the_initial_gaussian_log_std():
    env, params = jrl.make("Pendulum-v1")
    config = BOX_CONFIG.replace(log_std_init=0.7, hidden_sizes=(4,))  # a small network: a cheap init
    algorithm = ppo.make_algorithm(config, env, params)
    state = jax.jit(algorithm.init)(jax.random.key(3))
    np.testing.assert_array_equal(algorithm.result(state, {}).params["log_std"], np.float32([0.7]))


def test_box_greedy_policy_is_the_clipped_mean(pendulum):
    env, params, whole, _ = pendulum
    policy, policy_params = ppo.greedy_policy(BOX_CONFIG, env, params, whole)
    episodes = jrl.evaluate_episodes(jax.random.key(0), policy, policy_params, env, params, num_episodes=4)
    assert int(np.sum(episodes.invalid_actions)) == 0 and np.isfinite(np.asarray(episodes.returns)).all()
    obs = jnp.asarray([1.0, 0.0, 0.5])
    for bias, expected in ((100.0, 2.0), (-100.0, -2.0)):  # a mean far outside [-2, 2]
        actor = jax.tree_util.tree_map(lambda x: x, whole.params["actor"])
        actor["params"]["Dense_1"]["bias"] = jnp.full((1,), bias)
        action = policy(({**whole.params, "actor": actor}, whole.obs_stats), obs, jax.random.key(0))
        assert action.shape == (1,) and float(action[0]) == expected
    # Inside the bounds the greedy action is the actor's mean on the normalised observation.
    mlp = ppo.PolicyMLP(BOX_CONFIG.hidden_sizes, BOX_CONFIG.activation, 1, 0.01)
    mean = mlp.apply(whole.params["actor"], ppo.normalize_obs(whole.obs_stats, obs))
    np.testing.assert_array_equal(policy(policy_params, obs, jax.random.key(0)), jnp.clip(mean, -2.0, 2.0))


# --- learning -------------------------------------------------------------------------------------


def test_learns_the_value_of_a_time_limit():
    # Probe-Truncation-v0: reward 1 each step, truncated after every step, never terminated:
    # V = 1 / (1 - gamma) = 10, reachable only by bootstrapping through the time limit (a
    # learner that treats it as a termination, as PureJaxRL's PPO does, learns V = 1).
    config = ppo.PPOConfig(
        num_envs=4,
        num_steps=60,
        rollout_length=16,
        num_epochs=4,
        num_minibatches=2,
        learning_rate=1e-2,
        anneal_lr=False,
        gamma=0.9,
        clip_value=False,
        hidden_sizes=(16,),
        eval_episodes=0,
        log_interval=60,
    )
    env, params = jrl.make("Probe-Truncation-v0")
    result = jax.jit(ppo.make_train(config, env, params))(jax.random.key(0))
    critic = ppo.PolicyMLP(config.hidden_sizes, config.activation, 1, 1.0)
    value = float(critic.apply(result.params["critic"], jnp.zeros((1,)))[0])
    assert value == pytest.approx(10.0, abs=1.0)
    assert math.isfinite(float(result.metrics["loss"][-1]))


def test_learns_cartpole_on_every_seed():
    # 15,360 environment steps (8 environments, rollouts of 32 steps, 60 iterations) on 4 seeds in
    # one vmapped call. The training episodes (the sampled policy) of the last interval last over
    # twice as long as those of the first: on the 16 seeds split from key 7 (these 4 among them)
    # the last interval's mean was 137-457 steps, at least 2.4 times the first's (53-78).
    config = ppo.PPOConfig(
        num_envs=8,
        num_steps=60,
        rollout_length=32,
        num_epochs=4,
        num_minibatches=4,
        learning_rate=3e-3,
        hidden_sizes=(32, 32),
        eval_episodes=0,
        stop_return=None,
        log_interval=20,
    )
    env, params = jrl.make("CartPole-v1")
    keys = jax.random.split(jax.random.key(7), 16)[:4]
    returns = np.asarray(jax.jit(jax.vmap(ppo.make_train(config, env, params)))(keys).metrics["episode_return"])
    first, last = returns[:, 0], returns[:, -1]
    assert np.all(last > 100) and np.all(last > 2 * first), returns


# --- export ---------------------------------------------------------------------------------------


def test_numpy_export_is_the_greedy_policy_with_its_normalisation(tmp_path):
    from jrl.export import NumpyQPolicy, export_numpy

    env, params = jrl.make("CartPole-v1")
    config = ppo.PPOConfig(hidden_sizes=(16, 8), normalize_observations=True)
    # An actor as training builds it (ppo.PolicyMLP), with logits far from ties (a fresh actor's
    # are near 0) and observation statistics far from the identity.
    mlp = ppo.PolicyMLP(config.hidden_sizes, "tanh", 2, 0.01)
    actor = jax.tree_util.tree_map(lambda x: 50.0 * x, mlp.init(jax.random.key(0), jnp.zeros((1, 4))))
    obs_stats = ppo.ObsStats(jnp.asarray([0.5, -1.0, 0.1, 2.0]), jnp.asarray([4.0, 0.25, 1.0, 9.0]), jnp.float32(10))
    result = ppo.PPOResult(params={"actor": actor, "critic": {}}, obs_stats=obs_stats, metrics={})
    exported = export_numpy(config, env, params, result)
    exported.save(tmp_path / "policy.npz")
    loaded = NumpyQPolicy.load(tmp_path / "policy.npz")
    assert loaded.spec["activation"] == "tanh" and loaded.spec["version"] == 2
    obs = np.random.default_rng(0).normal(0.0, 2.0, size=(64, 4)).astype(np.float32)
    logits = mlp.apply(actor, ppo.normalize_obs(obs_stats, jnp.asarray(obs)))
    np.testing.assert_allclose(loaded.q_values(obs), logits, rtol=1e-4, atol=1e-4)
    policy, policy_params = ppo.greedy_policy(config, env, params, result)
    greedy = jax.jit(jax.vmap(policy, in_axes=(None, 0, None)))(policy_params, jnp.asarray(obs), jax.random.key(0))
    np.testing.assert_array_equal(loaded(obs), greedy)
    assert len(set(np.asarray(greedy).tolist())) == 2  # both actions occur: the comparison can fail


@pytest.fixture(scope="module")
def mountain_car_continuous():
    """MountainCarContinuous-v0 (bounds [-1, 1]) with BOX_CONFIG's actor as training initialises it
    (ppo.PolicyMLP) and observation statistics of MountainCar's scale, far from the identity. Not
    trained: compiling a second Box run would cost about 8 s; the Pendulum case is the trained one."""
    env, params = jrl.make("MountainCarContinuous-v0")
    actor = ppo.PolicyMLP(BOX_CONFIG.hidden_sizes, BOX_CONFIG.activation, 1, 0.01).init(
        jax.random.key(4), jnp.zeros((1, 2))
    )
    obs_stats = ppo.ObsStats(jnp.asarray([-0.5, 0.001]), jnp.asarray([0.04, 1e-4]), jnp.float32(100))
    result = ppo.PPOResult(
        params={"actor": actor, "critic": {}, "log_std": jnp.zeros(1)}, obs_stats=obs_stats, metrics={}
    )
    return env, params, result


def _greedy_actions(env, params, result, obs):
    policy, policy_params = ppo.greedy_policy(BOX_CONFIG, env, params, result)
    return np.asarray(jax.jit(jax.vmap(policy, in_axes=(None, 0, None)))(policy_params, obs, jax.random.key(0)))


@pytest.mark.parametrize("run", ["pendulum", "mountain_car_continuous"])
def test_numpy_export_of_the_gaussian_policy_is_the_clipped_mean(run, request, tmp_path):
    from jrl.export import NumpyQPolicy, export_numpy

    env, params, result = request.getfixturevalue(run)[:3]
    space = env.observation_space(params)
    obs = np.random.default_rng(0).uniform(space.low, space.high, (256, *space.shape)).astype(np.float32)
    high = float(env.action_space(params).high[0])
    exported = export_numpy(BOX_CONFIG, env, params, result)
    exported.save(tmp_path / "policy.npz")
    loaded = NumpyQPolicy.load(tmp_path / "policy.npz")
    assert loaded.continuous and loaded.spec["version"] == 3 and loaded.spec["action_shape"] == [1]
    np.testing.assert_array_equal(loaded.arrays["action/low"], [-high])
    actions = loaded(obs)
    assert actions.shape == (256, 1) and actions.dtype == np.float32
    np.testing.assert_allclose(actions, _greedy_actions(env, params, result, obs), rtol=1e-5, atol=1e-6)

    # The tiny run's means lie near 0 (the actor's output gain is 0.01): scaled up (a linear output
    # layer, so the means scale alike) they spread to 3 times the bound on both sides.
    scale = 3.0 * high / float(np.max(np.abs(loaded.q_values(obs))))
    actor = jax.tree_util.tree_map(lambda x: x, result.params["actor"])
    actor["params"]["Dense_1"] = jax.tree_util.tree_map(lambda x: scale * x, actor["params"]["Dense_1"])
    wide = result.replace(params={**result.params, "actor": actor})
    policy = export_numpy(BOX_CONFIG, env, params, wide)
    means, actions, expected = policy.q_values(obs), policy(obs), _greedy_actions(env, params, wide, obs)
    assert (means > high).any() and (means < -high).any() and (np.abs(means) < 0.9 * high).any()
    np.testing.assert_array_equal(actions[means > high], high)  # clipped to the bounds exactly
    np.testing.assert_array_equal(expected[means > high], high)
    np.testing.assert_array_equal(actions[means < -high], -high)
    np.testing.assert_allclose(actions, expected, rtol=1e-5, atol=1e-5)


def test_tampered_gaussian_policy_files_are_refused(pendulum, tmp_path):
    from jrl.export import NumpyQPolicy, export_numpy

    env, params, result = pendulum[:3]
    policy = export_numpy(BOX_CONFIG, env, params, result)
    obs = np.zeros((2, 3), np.float32)
    with pytest.raises(ValueError, match=r"observations must have shape \[B, 3\]"):
        policy(obs[:, :2])
    spec, arrays = policy.spec, policy.arrays

    def saved(spec, arrays, name="tampered.npz"):
        np.savez(tmp_path / name, spec=np.array(json.dumps(spec)), **arrays)
        return tmp_path / name

    assert NumpyQPolicy.load(saved(spec, arrays, "intact.npz"))(obs).shape == (2, 1)
    tampered = {
        "v3 policy: 'jrl-numpy-q-policy' v2": ({**spec, "version": 2}, arrays),  # what a v2 reader would argmax
        r"arrays missing: \['action/high'\]": (spec, {k: v for k, v in arrays.items() if k != "action/high"}),
        r"action/low \(2,\) \(expected \(1,\)\)": (spec, {**arrays, "action/low": np.full(2, -2.0, np.float32)}),
        "low <= high": (spec, {**arrays, "action/low": arrays["action/high"], "action/high": arrays["action/low"]}),
        "low <= high, got \\[nan\\]": (spec, {**arrays, "action/low": np.full(1, np.nan, np.float32)}),
        r"action_shape \[2\] does not hold the 1 outputs": ({**spec, "action_shape": [2]}, arrays),
        r"non-finite values in \['dense0/kernel'\]": (
            spec,
            {**arrays, "dense0/kernel": arrays["dense0/kernel"] * np.inf},
        ),
        r"head/kernel \(8, 2\)": (spec, {**arrays, "head/kernel": np.zeros((8, 2), np.float32)}),
        r"unknown \['output'\]": ({**spec, "output": "logits"}, arrays),
    }
    for match, (bad_spec, bad_arrays) in tampered.items():
        with pytest.raises(ValueError, match=match) as error:
            NumpyQPolicy.load(saved(bad_spec, bad_arrays))
        assert str(error.value).startswith(f"{tmp_path / 'tampered.npz'}: ")
    np.savez(tmp_path / "garbled.npz", spec=np.array("{not json"), **arrays)
    with pytest.raises(ValueError, match=r"garbled\.npz: Expecting property name"):
        NumpyQPolicy.load(tmp_path / "garbled.npz")


# --- the tuned default and its record -------------------------------------------------------------

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "experiments" / "tune_defaults" / "results" / "ppo"


@pytest.mark.parametrize(
    "env_id, threshold",
    [("CartPole-v1", 475.0), ("Acrobot-v1", -100.0), ("Pendulum-v1", -200.0), ("MountainCarContinuous-v0", 90.0)],
)
def test_each_default_is_its_tuning_sweeps_choice_and_the_docs_report_it(env_id, threshold):
    """The recorded sweep on seeds 0-15 chooses the default by docs/ppo.md's rule (the most seeds
    whose final return reaches the threshold, then the highest mean), and the docs' tables and
    held-out lines are the records'."""
    assert env_id in ppo.tuned_env_ids()
    record = json.loads((RESULTS / env_id / "tuning" / "results.json").read_text())
    finals = {m["index"]: np.asarray(m["final_returns"]) for m in record["members"]}
    rows = record["rows"]
    assert all(len(finals[r["index"]]) == 16 for r in rows)
    chosen = max(rows, key=lambda r: (int(np.sum(finals[r["index"]] >= threshold)), finals[r["index"]].mean()))
    default = ppo.default_config(env_id)
    assert {name: getattr(default, name) for name in record["spec"]["grid"]} == {
        name: chosen[name] for name in record["spec"]["grid"]
    }
    base = tomllib.loads((RESULTS / env_id / "tuning" / "sweep.toml").read_text())["config"]
    assert ppo.PPOConfig.from_dict(base).replace(**{name: chosen[name] for name in record["spec"]["grid"]}) == default
    docs = " ".join((ROOT / "docs" / "ppo.md").read_text().split()).replace("worst seed", "worst")
    for r in rows:
        f = finals[r["index"]]
        assert f"{f.mean():.1f} (worst {f.min():.1f})" in docs, (env_id, r)
    with open(RESULTS / env_id / "heldout.csv") as f:
        heldout = list(csv.DictReader(f))
    assert [int(r["seed"]) for r in heldout] == list(range(1000, 1032))
    jrl_returns = np.array([float(r["jrl_mean_return"]) for r in heldout])
    gym_returns = np.array([float(r["gymnasium_mean_return"]) for r in heldout])
    line = (
        f"{int(np.sum(jrl_returns >= threshold))} of 32 held-out seeds reach {threshold:g} in jrl's environment "
        f"(mean {jrl_returns.mean():.1f}, worst {jrl_returns.min():.1f}) and "
        f"{int(np.sum(gym_returns >= threshold))} of 32 in Gymnasium's (mean {gym_returns.mean():.1f}, "
        f"worst {gym_returns.min():.1f})"
    )
    assert line in docs, line


def test_the_first_mountain_car_continuous_sweep_is_the_docs_table():
    """docs/ppo.md's gamma x budget table is the record of MountainCarContinuous-v0-gamma.toml (with
    the initial log-std 0): every cell's mean, worst seed and seeds at 90."""
    record = json.loads((RESULTS / "MountainCarContinuous-v0" / "tuning-gamma" / "results.json").read_text())
    finals = {m["index"]: np.asarray(m["final_returns"]) for m in record["members"]}
    docs = " ".join((ROOT / "docs" / "ppo.md").read_text().split())
    cells = {(r["num_steps"], r["gamma"]): finals[r["index"]] for r in record["rows"]}
    assert sorted(cells) == [(122, 0.99), (122, 0.999), (244, 0.99), (244, 0.999)]
    for num_steps in (122, 244):
        low, high = cells[num_steps, 0.99], cells[num_steps, 0.999]
        row = (
            f"| {num_steps} ({num_steps * 2048:,}) | {low.mean():.1f} (worst {low.min():.1f}), "
            f"{int(np.sum(low >= 90))}{' of 16 at 90' if num_steps == 122 else ' of 16'} | "
            f"{high.mean():.1f} (worst {high.min():.1f}), {int(np.sum(high >= 90))} of 16 |"
        )
        assert row in docs, row
