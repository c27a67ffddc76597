"""``jrl.export.export_numpy``: a DQN policy as NumPy arrays, run with NumPy alone, takes the same
actions as the JAX policy (issue 11). Checked on 1,000 observations for each network shape: an MLP
(CartPole), a dueling MLP with one-hot inputs (FrozenLake), inputs rescaled to [-1, 1]
(MountainCar) and a CNN (RandomLake); the exported file is run in a Python that cannot import JAX."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jrl
from jrl.algorithms import dqn
from jrl.export import NumpyQPolicy, export_numpy

ROOT = Path(__file__).resolve().parents[1]
CASES = {
    "CartPole-v1": {},
    "FrozenLake-v1": {"dueling": True, "hidden_sizes": (32,)},
    "MountainCar-v0": {"scale_observations": True},
    "RandomLake-v0": {"network": "cnn", "hidden_sizes": (32,), "conv_features": (4, 8)},
}


def observations(env_id, env, params, rng):
    space = env.observation_space(params)
    if isinstance(space, jrl.Discrete):
        return rng.integers(0, space.n, 1000)
    if env_id == "CartPole-v1":
        return (rng.uniform(-1, 1, (1000, 4)) * [2.4, 3.0, 0.21, 3.0]).astype(np.float32)
    low, high = np.maximum(space.low, -5), np.minimum(space.high, 5)
    return rng.uniform(low, high, (1000, *space.shape)).astype(np.float32)


@pytest.mark.parametrize("env_id", list(CASES))
def test_numpy_policy_takes_the_jax_policy_s_actions(env_id, tmp_path):
    env, params = jrl.make(env_id)
    config = dqn.DQNConfig(**CASES[env_id])
    network = dqn.q_network(config, env, params)
    obs0 = env.reset(jax.random.key(0), params)[0]
    result = dqn.DQNResult(params=network.init(jax.random.key(1), obs0), metrics={})  # as training leaves them
    policy, policy_params = dqn.greedy_policy(config, env, params, result)
    obs = observations(env_id, env, params, np.random.default_rng(0))
    expected = np.asarray(
        jax.jit(jax.vmap(policy, in_axes=(None, 0, None)))(policy_params, jnp.asarray(obs), jax.random.key(0))
    )

    exported = export_numpy(config, env, params, result)
    np.testing.assert_array_equal(exported(obs), expected)
    q_jax = np.asarray(jax.vmap(network.apply, in_axes=(None, 0))(result.params, jnp.asarray(obs)))
    np.testing.assert_allclose(exported.q_values(obs), q_jax, rtol=1e-5, atol=1e-5)

    # Saved, then loaded and run by the module file alone in a Python where `import jax` fails.
    exported.save(tmp_path / "policy.npz")
    np.save(tmp_path / "obs.npy", obs)
    script = f"""
import importlib.util, sys
import numpy as np
sys.modules["jax"] = None  # any import of JAX now raises ImportError
spec = importlib.util.spec_from_file_location("numpy_policy", {str(ROOT / "jrl" / "export" / "numpy_policy.py")!r})
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
policy = module.NumpyQPolicy.load({str(tmp_path / "policy.npz")!r})
np.save({str(tmp_path / "actions.npy")!r}, policy(np.load({str(tmp_path / "obs.npy")!r})))
"""
    subprocess.run([sys.executable, "-c", script], check=True, timeout=60)
    np.testing.assert_array_equal(np.load(tmp_path / "actions.npy"), expected)


def test_bad_exports_and_inputs_are_refused(tmp_path):
    env, params = jrl.make("CartPole-v1")
    config = dqn.DQNConfig()
    network = dqn.build_network(config, 2, env.observation_space(params))
    obs0 = env.reset(jax.random.key(0), params)[0]
    two_seeds = jax.vmap(network.init, in_axes=(0, None))(jax.random.split(jax.random.key(0), 2), obs0)
    with pytest.raises(ValueError, match="one seed's result"):
        export_numpy(config, env, params, dqn.DQNResult(params=two_seeds, metrics={}))
    with pytest.raises(TypeError, match="describe_network"):
        export_numpy(jrl.algorithms.q_learning.default_config("Taxi-v4"), env, params, None)
    one_seed = jax.tree_util.tree_map(lambda x: x[0], two_seeds)
    policy = export_numpy(config, env, params, dqn.DQNResult(params=one_seed, metrics={}))
    with pytest.raises(ValueError, match=r"shape \[B, 4\]"):
        policy(np.zeros((3, 5), np.float32))
    np.savez(tmp_path / "other.npz", weights=np.zeros(3))
    with pytest.raises(ValueError, match="not an exported jrl policy"):
        NumpyQPolicy.load(tmp_path / "other.npz")
    for spec in ({**policy.spec, "version": 2}, {**policy.spec, "format": "other"}):  # a later or another format
        with pytest.raises(ValueError, match=r"not a jrl-numpy-q-policy v1 policy"):
            NumpyQPolicy(spec, policy.arrays)
    # Ten hidden layers: Dense_10 comes after Dense_9 (not after Dense_1, as names sort).
    deep_config = dqn.DQNConfig(hidden_sizes=(4,) * 10)
    deep = dqn.q_network(deep_config, env, params)
    deep_result = dqn.DQNResult(params=deep.init(jax.random.key(2), obs0), metrics={})
    probe = np.random.default_rng(1).normal(size=(16, 4)).astype(np.float32)
    np.testing.assert_allclose(
        export_numpy(deep_config, env, params, deep_result).q_values(probe),
        np.asarray(jax.vmap(deep.apply, in_axes=(None, 0))(deep_result.params, jnp.asarray(probe))),
        rtol=1e-5,
        atol=1e-6,
    )
    # One-hot inputs (a Discrete observation space): indices outside [0, n) or non-integers are
    # refused (NumPy would index -1 as the last state).
    lake, lake_params = jrl.make("FrozenLake-v1")
    lake_config = dqn.DQNConfig(hidden_sizes=(8,))
    lake_network = dqn.q_network(lake_config, lake, lake_params)
    lake_obs = lake.reset(jax.random.key(0), lake_params)[0]
    lake_result = dqn.DQNResult(params=lake_network.init(jax.random.key(1), lake_obs), metrics={})
    lake_policy = export_numpy(lake_config, lake, lake_params, lake_result)
    assert lake_policy(np.array([0, 15])).shape == (2,)
    for bad in (np.array([-1, 3]), np.array([16]), np.array([0.0, 1.0])):
        with pytest.raises(ValueError, match=r"integers in \[0, 16\)"):
            lake_policy(bad)
