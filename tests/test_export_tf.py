"""The TensorFlow SavedModel export (``jrl export --format tf``, ``jrl.export.tensorflow``).

- Read back with ``tf.saved_model.load`` alone, the SavedModel takes the JAX policy's greedy actions
  on 10,000 observations for an MLP, a dueling MLP with one-hot inputs, a CNN and PPO's Gaussian
  actor (outputs within 1e-5 of the NumPy reader's), through ``act`` and ``serving_default``, at
  any batch size; the int8 network runs as the NumPy reader runs it, its kernels int8 in the graph.
- It describes itself (``jrl_format``, ``jrl_policy``); directories that are not a jrl SavedModel,
  another version or a damaged one are refused with one line.
- TensorFlow alone runs it (a Python where importing JAX fails); jrl imports TensorFlow only
  to export or load, and a missing TensorFlow names the extra; ``jrl export POLICY.npz --format tf``.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jrl
from jrl import cli
from jrl.algorithms import dqn, ppo
from jrl.export import NumpyQPolicy, export_numpy, export_policy, jax_policy, load_policy, numpy_policy, quantize
from jrl.export.tensorflow import FORMAT, FORMAT_VERSION, load_tf

tf = pytest.importorskip("tensorflow")

CASES = {
    "dqn-mlp": (dqn, "CartPole-v1", {}),
    "dqn-dueling-one-hot": (dqn, "FrozenLake-v1", {"dueling": True, "hidden_sizes": (32,)}),
    "dqn-cnn": (dqn, "RandomLake-v0", {"network": "cnn", "hidden_sizes": (32,), "conv_features": (4, 8)}),
    "ppo-gaussian": (ppo, "Pendulum-v1", {"hidden_sizes": (32, 32)}),
}
NUM_OBS = 10_000
ROOT = Path(__file__).resolve().parents[1]


def trained_like(module, env_id: str, fields: dict):
    """The exported policy of freshly initialised parameters (the shapes training leaves), NUM_OBS
    observations and the JAX policy's greedy actions on them (as tests/test_export_formats.py)."""
    env, params = jrl.make(env_id)
    config = dqn.DQNConfig(**fields) if module is dqn else module.default_config(env_id).replace(**fields)
    space = env.observation_space(params)
    # Initialised under jax.jit (one compiled program costs less than the operations one by one),
    # on zeros of the observations' shape (a reset of RandomLake draws a lake op by op: 1 s).
    if module is dqn:
        network = dqn.q_network(config, env, params)
        result = dqn.DQNResult(jax.jit(network.init)(jax.random.key(1), jnp.zeros(space.shape, space.dtype)), {})
    else:  # PPO's actor and critic as its init makes them (PPOState.params), without compiling all of PPO's init
        x = jnp.zeros((1, *space.shape), space.dtype)
        (size,) = env.action_space(params).shape
        layers = {
            "actor": ppo.PolicyMLP(config.hidden_sizes, config.activation, size, 0.01).init(jax.random.key(1), x),
            "critic": ppo.PolicyMLP(config.hidden_sizes, config.activation, 1, 1.0).init(jax.random.key(2), x),
            "log_std": jnp.full(size, config.log_std_init),
        }
        stats = ppo.ObsStats(jnp.zeros(space.shape), jnp.ones(space.shape), jnp.float32(0))
        result = ppo.PPOResult(layers, stats, {})
    policy, policy_params = module.greedy_policy(config, env, params, result)
    rng = np.random.default_rng(0)
    if isinstance(space, jrl.Discrete):
        obs = rng.integers(0, space.n, NUM_OBS).astype(np.int32)
    else:
        obs = rng.uniform(np.maximum(space.low, -5), np.minimum(space.high, 5), (NUM_OBS, *space.shape))
        obs = obs.astype(np.float32)
    act = jax.jit(jax.vmap(policy, in_axes=(None, 0, None)))
    expected = np.asarray(act(policy_params, jnp.asarray(obs), jax.random.key(0)))
    return export_numpy(config, env, params, result), obs, expected


@pytest.fixture(scope="module", params=sorted(CASES))
def case(request):
    """``(name, exported policy, observations, JAX's actions, the NumPy reader's outputs)``."""
    exported, obs, expected = trained_like(*CASES[request.param])
    return request.param, exported, obs, expected, exported.q_values(obs)


def test_the_savedmodel_takes_the_jax_policy_s_greedy_actions(case, tmp_path):
    name, exported, obs, expected, reference = case
    path = export_policy(exported, "tf", tmp_path / "policy.savedmodel")
    assert path == tmp_path / "policy.savedmodel" and (path / "saved_model.pb").is_file()
    model = tf.saved_model.load(str(path))  # TensorFlow's own loader, nothing of jrl's
    assert model.jrl_format().numpy() == f"{FORMAT} {FORMAT_VERSION}".encode() == b"jrl-tf-policy 1"
    assert json.loads(model.jrl_policy().numpy()) == exported.spec
    serving = model.signatures["serving_default"](obs=tf.constant(obs))
    assert serving["outputs"].dtype == tf.float32 and serving["outputs"].shape == reference.shape
    np.testing.assert_allclose(serving["outputs"].numpy(), reference, rtol=1e-5, atol=1e-5, err_msg=name)
    actions = serving["actions"].numpy()
    # act is the same function (on a slice: a second pass over 10,000 would check nothing more).
    result = model.act(tf.constant(obs[:100]))
    np.testing.assert_allclose(result["outputs"].numpy(), reference[:100], rtol=1e-5, atol=1e-5, err_msg=name)
    np.testing.assert_array_equal(result["actions"].numpy(), actions[:100])
    if exported.continuous:  # the clipped mean: float32 rounding of the outputs, within the same bound
        np.testing.assert_allclose(actions, expected, rtol=1e-5, atol=1e-5, err_msg=name)
        # Clipped to the bounds in the graph: a head whose means leave them.
        wide = NumpyQPolicy(exported.spec, {**exported.arrays, "head/kernel": exported.arrays["head/kernel"] * 1e4})
        clipped = load_policy(export_policy(wide, "tf", tmp_path / "wide.savedmodel"))(obs)
        # (the head's 1e4 magnifies float32 rounding in the hidden layers to about 1e-4)
        np.testing.assert_allclose(clipped, wide(obs), rtol=1e-5, atol=1e-3)
        assert 0.1 < np.mean(clipped == wide.arrays["action/high"]) and 0.1 < np.mean(
            clipped == wide.arrays["action/low"]
        )
    else:
        assert serving["actions"].dtype == result["actions"].dtype == tf.int32
        assert np.mean(actions == expected) == 1.0, (name, np.mean(actions == expected))
    # The batch size is free: one observation, and 3.
    one, three = model.act(tf.constant(obs[:1]))["actions"].numpy(), load_policy(path)(obs[:3])
    np.testing.assert_allclose(one, actions[:1], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(three, actions[:3], rtol=1e-5, atol=1e-5)


# The one-hot network's int8 layers are the MLP's (tests/test_export_formats.py runs it in every format).
@pytest.mark.parametrize("case", ["dqn-cnn", "dqn-mlp", "ppo-gaussian"], indirect=True)
def test_the_int8_savedmodel_runs_the_int8_network(case, tmp_path):
    name, exported, obs, _, float_outputs = case
    int8 = quantize(exported, "int8")
    reference = int8.q_values(obs)
    assert not np.allclose(reference, float_outputs, atol=1e-6)  # another network than float32's
    loaded = load_policy(export_policy(int8, "tf", tmp_path / "int8.savedmodel"))
    assert loaded.spec == int8.spec
    served = loaded.model.signatures["serving_default"](obs=tf.constant(obs))
    np.testing.assert_allclose(served["outputs"].numpy(), reference, rtol=1e-5, atol=1e-5, err_msg=name)
    if not exported.continuous:  # int8(obs), the argmax of the NumPy reader's outputs
        np.testing.assert_array_equal(served["actions"].numpy(), reference.argmax(axis=-1))
    if name == "dqn-mlp":  # int8 stays int8 in the graph: the program sheds most of the bytes int8 saves
        float_pb = export_policy(exported, "tf", tmp_path / "f32.savedmodel") / "saved_model.pb"
        int8_pb = tmp_path / "int8.savedmodel" / "saved_model.pb"
        saved = float_pb.stat().st_size - int8_pb.stat().st_size
        assert saved > 0.75 * (exported.nbytes - int8.nbytes), (saved, exported.nbytes - int8.nbytes)


def save_module(path: Path, version: str | None, spec: dict | None = None, act: bool = True) -> None:
    """A SavedModel that claims to be ``version`` (none: no ``jrl_format``) with ``spec``, and an
    ``act`` function (if ``act``) but no signatures."""
    module = tf.Module()
    if version is not None:
        module.jrl_format = tf.function(lambda: tf.constant(version), input_signature=[])
    module.jrl_policy = tf.function(lambda: tf.constant(json.dumps(spec or {})), input_signature=[])
    if act:
        module.act = tf.function(lambda obs: {"outputs": obs}, input_signature=[tf.TensorSpec([None], tf.float32)])
    tf.saved_model.save(module, str(path))


@pytest.fixture(scope="module")
def small():
    """A policy file's CartPole network with one hidden layer of 8 (random weights, written as the
    NumPy reader's spec says: no JAX to build it) and 1,000 observations."""
    rng = np.random.default_rng(1)
    spec = {"format": numpy_policy.FORMAT, "version": 1, "kind": "mlp", "dueling": False, "one_hot": None}
    spec |= {"num_convs": 0, "num_hidden": 1, "num_actions": 2, "obs_shape": [4]}
    shapes = {"dense0/kernel": (4, 8), "dense0/bias": (8,), "head/kernel": (8, 2), "head/bias": (2,)}
    policy = NumpyQPolicy(spec, {name: rng.normal(size=shape).astype(np.float32) for name, shape in shapes.items()})
    return policy, rng.normal(size=(1000, 4)).astype(np.float32)


def test_bad_directories_are_refused(small, tmp_path):
    exported, _ = small
    good = export_policy(exported, "tf", tmp_path / "good.savedmodel")
    with pytest.raises(ValueError, match=r"exists and is not an empty directory"):
        export_policy(exported, "tf", good)
    with pytest.raises(ValueError, match=r"a tf export is a directory named \*\.savedmodel"):
        export_policy(exported, "tf", tmp_path / "policy.tf")
    (tmp_path / "empty.savedmodel").mkdir()
    with pytest.raises(ValueError, match=r"empty.savedmodel: not a SavedModel directory \(no saved_model.pb\)$"):
        load_policy(tmp_path / "empty.savedmodel")
    save_module(tmp_path / "foreign.savedmodel", None)
    with pytest.raises(
        ValueError, match=r"foreign.savedmodel: not a jrl-tf-policy or jrl-tf-text SavedModel \(no jrl_"
    ):
        load_tf(tmp_path / "foreign.savedmodel")
    save_module(tmp_path / "actless.savedmodel", "jrl-tf-policy 1", act=False)
    with pytest.raises(ValueError, match=r"actless.savedmodel: not a jrl-tf-policy or jrl-tf-text SavedModel \("):
        load_tf(tmp_path / "actless.savedmodel")
    save_module(tmp_path / "future.savedmodel", "jrl-tf-policy 2")
    with pytest.raises(ValueError, match=r"jrl-tf-policy version '2'; this jrl reads 1$"):
        load_tf(tmp_path / "future.savedmodel")
    save_module(tmp_path / "other.savedmodel", "someone-else 1")
    with pytest.raises(ValueError, match=r"not a jrl-tf-policy or jrl-tf-text SavedModel \('someone-else'\)$"):
        load_tf(tmp_path / "other.savedmodel")
    save_module(tmp_path / "unsigned.savedmodel", "jrl-tf-policy 1", exported.spec)
    with pytest.raises(
        ValueError, match=r"unsigned.savedmodel: a jrl-tf-policy SavedModel without its serving_default"
    ):
        load_tf(tmp_path / "unsigned.savedmodel")
    pb = good / "saved_model.pb"
    pb.write_bytes(pb.read_bytes()[: pb.stat().st_size // 2])  # truncated
    with pytest.raises(ValueError, match=r"good.savedmodel: not a readable SavedModel") as refused:
        load_tf(good)
    assert "\n" not in str(refused.value)


def test_tensorflow_alone_runs_it(small, tmp_path):
    exported, obs = small
    int8 = quantize(exported, "int8")
    path = export_policy(int8, "tf", tmp_path / "policy.savedmodel")
    np.save(tmp_path / "obs.npy", obs)
    script = f"""
import sys
sys.modules["jax"] = sys.modules["jaxlib"] = None  # any import of JAX now raises ImportError
import numpy as np
import tensorflow as tf
model = tf.saved_model.load({str(path)!r})
actions = model.signatures["serving_default"](obs=tf.constant(np.load({str(tmp_path / "obs.npy")!r})))["actions"]
np.save({str(tmp_path / "actions.npy")!r}, actions.numpy())
"""
    ran = subprocess.run([sys.executable, "-c", script], timeout=120, capture_output=True, text=True)
    assert ran.returncode == 0, ran.stderr[-3000:]
    np.testing.assert_array_equal(np.load(tmp_path / "actions.npy"), int8(obs))


def test_jrl_imports_tensorflow_only_to_export_and_names_the_extra(small, tmp_path, monkeypatch):
    # Read from the source: an import of TensorFlow or jax2tf anywhere in jrl/ is indented (in a
    # function's body); at a module's top level it would run when jrl is imported.
    top_level = re.compile(
        r"^(import tensorflow|from tensorflow|from jax\.experimental(\.jax2tf| import jax2tf))", re.M
    )
    sources = {path: path.read_text() for path in (ROOT / "jrl").rglob("*.py")}
    assert any("    import tensorflow as tf" in text for text in sources.values())  # the pattern's indented form
    assert not [path for path, text in sources.items() if top_level.search(text)]
    monkeypatch.setitem(sys.modules, "tensorflow", None)  # as if TensorFlow were not installed
    with pytest.raises(ImportError, match=r"^a TensorFlow SavedModel needs TensorFlow, jrl's 'tf' extra: ") as err:
        export_policy(small[0], "tf", tmp_path / "p.savedmodel")
    assert "pip install 'jrl-jax[tf]'" in str(err.value)


def test_jrl_export_format_tf(small, tmp_path, capsys):
    # The command on a policy file (a run directory's checkpoint goes through the same export_run:
    # tests/test_export_formats.py trains one).
    exported, obs = small
    exported.save(tmp_path / "policy.npz")
    assert cli.main(["export", str(tmp_path / "policy.npz"), "--format", "tf", "--int8"]) == 0
    written = Path(capsys.readouterr().out.strip())
    assert written == tmp_path / "policy-int8.savedmodel" and (written / "saved_model.pb").is_file()
    loaded = load_policy(written)
    assert loaded.spec == quantize(exported, "int8").spec
    np.testing.assert_array_equal(loaded(obs), quantize(exported, "int8")(obs))
    with pytest.raises(TypeError, match=r"jax_policy runs NumPy and StableHLO exports in JAX, not a TFPolicy"):
        jax_policy(loaded)  # jrl.evaluate runs policies in JAX; TensorFlow runs this one
    assert cli.main(["export", str(tmp_path / "policy.npz"), "--format", "tf", "--int8"]) == 2
    assert "exists and is not an empty directory" in capsys.readouterr().err
