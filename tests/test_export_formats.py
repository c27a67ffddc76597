"""Every export format takes the JAX policy's greedy actions, and int8 keeps what it promises.

- NumPy (``.npz``), safetensors, StableHLO (``jax.export``, read back with
  ``jax.export.deserialize``) and ONNX (``jax2onnx``, run by ONNX Runtime) on 10,000 observations
  of each network shape jrl trains: DQN's MLP, a dueling MLP with one-hot inputs, inputs rescaled
  to [-1, 1], a CNN, PQN's LayerNorm MLP, PPO's tanh actor with categorical and Gaussian actions:
  the same greedy actions as the algorithm's ``greedy_policy``, outputs within 1e-5.
- int8 (``jrl.export.quantize``): every weight within half a quantization step, int8 kept int8 in
  the StableHLO and ONNX programs, the array bytes of DQN's CartPole network 3.5x smaller, and
  each format runs the int8 network as the NumPy reader does.
- ``jrl export`` and ``jrl eval POLICY_FILE`` from the command line; bad files refused.
"""

from __future__ import annotations

import json
from pathlib import Path

import gymnasium
import jax
import jax.numpy as jnp
import numpy as np
import onnx
import onnxruntime
import pytest

import jrl
from jrl import cli
from jrl.algorithms import dqn, ppo, pqn
from jrl.experiment.exports import calibration_states
from jrl.export import FORMATS, NumpyQPolicy, export_numpy, export_policy, load_policy, numpy_policy, quantize

#: The formats the per-network checks write; TensorFlow's SavedModel has its own file
#: (tests/test_export_tf.py: four of these networks, int8, a Python without JAX).
FILE_FORMATS = {fmt: suffix for fmt, suffix in FORMATS.items() if fmt != "tf"}

CASES = {
    "dqn-mlp": (dqn, "CartPole-v1", {}),
    "dqn-dueling-one-hot": (dqn, "FrozenLake-v1", {"dueling": True, "hidden_sizes": (32,)}),
    "dqn-scaled": (dqn, "MountainCar-v0", {"scale_observations": True}),
    "dqn-cnn": (dqn, "RandomLake-v0", {"network": "cnn", "hidden_sizes": (32,), "conv_features": (4, 8)}),
    "pqn-layer-norm": (pqn, "Acrobot-v1", {"hidden_sizes": (32, 32)}),
    "ppo-categorical": (ppo, "CartPole-v1", {"hidden_sizes": (32, 32)}),
    "ppo-gaussian": (ppo, "Pendulum-v1", {"hidden_sizes": (32, 32)}),
}
NUM_OBS = 10_000


def observations(env, params, rng: np.random.Generator) -> np.ndarray:
    space = env.observation_space(params)
    if isinstance(space, jrl.Discrete):
        return rng.integers(0, space.n, NUM_OBS)
    low, high = np.maximum(space.low, -5), np.minimum(space.high, 5)
    return rng.uniform(low, high, (NUM_OBS, *space.shape)).astype(np.float32)


def trained_like(module, env_id: str, fields: dict):
    """A config, the environment and a result holding freshly initialised parameters (the shapes
    training leaves), with the JAX policy's actions on NUM_OBS observations."""
    env, params = jrl.make(env_id)
    config = dqn.DQNConfig(**fields) if module is dqn else module.default_config(env_id).replace(**fields)
    if module is dqn:
        network = dqn.q_network(config, env, params)
        result = dqn.DQNResult(network.init(jax.random.key(1), env.reset(jax.random.key(0), params)[0]), {})
    else:  # the parameters init makes, through the algorithm's own init
        state = module.make_algorithm(config, env, params).init(jax.random.key(1))
        result = module.make_algorithm(config, env, params).result(state, {})
    policy, policy_params = module.greedy_policy(config, env, params, result)
    obs = observations(env, params, np.random.default_rng(0))
    act = jax.jit(jax.vmap(policy, in_axes=(None, 0, None)))
    expected = np.asarray(act(policy_params, jnp.asarray(obs), jax.random.key(0)))
    return config, env, params, result, obs, expected


@pytest.fixture(scope="module", params=sorted(CASES))
def case(request):
    module, env_id, fields = CASES[request.param]
    return (request.param, *trained_like(module, env_id, fields))


def run_onnx(path: Path, obs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    session = onnxruntime.InferenceSession(str(path))
    dtype = np.int32 if np.issubdtype(obs.dtype, np.integer) else np.float32
    outputs, actions = session.run(None, {"obs": obs.astype(dtype)})
    return outputs, actions


def test_every_format_takes_the_jax_policy_s_greedy_actions(case, tmp_path):
    name, config, env, params, result, obs, expected = case
    exported = export_numpy(config, env, params, result)
    reference = exported.q_values(obs)
    for fmt, suffix in FILE_FORMATS.items():
        path = export_policy(exported, fmt, tmp_path / f"policy{suffix}")
        if fmt == "onnx":
            outputs, actions = run_onnx(path, obs)
            model = onnx.load(str(path))
            meta = {p.key: p.value for p in model.metadata_props}
            assert json.loads(meta["jrl_policy"]) == exported.spec and meta["jrl_format"] == "jrl-onnx-policy 1"
        else:
            loaded = load_policy(path)
            outputs, actions = loaded.q_values(obs), loaded(obs)
        np.testing.assert_allclose(outputs, reference, rtol=1e-5, atol=1e-5, err_msg=f"{name} {fmt}")
        if exported.continuous:  # clipped means: float32 rounding of the outputs, within the same bound
            np.testing.assert_allclose(actions, expected, rtol=1e-5, atol=1e-5, err_msg=f"{name} {fmt}")
        else:
            assert np.mean(actions == expected) == 1.0, (name, fmt, np.mean(actions == expected))


def test_int8_weights_are_within_half_a_step_and_every_format_runs_them(case, tmp_path):
    name, config, env, params, result, obs, _ = case
    exported = export_numpy(config, env, params, result)
    int8 = quantize(exported, "int8")
    assert int8.spec["version"] == 4 and int8.spec["weights"] == "int8"
    for key, original in exported.arrays.items():
        if key.endswith("/kernel"):
            layer = key[: -len("/kernel")]
            stored, scale = int8.arrays[key], int8.arrays[f"{key}_scale"].astype(np.float32)
            assert stored.dtype == np.int8 and int8.arrays[f"{key}_scale"].dtype == np.float16
            # Within half a step; an argmax layer is centered, its float16 mean over the actions
            # rounded to float16's 2**-11 relative step.
            mean = np.abs(int8.arrays.get(f"{layer}/kernel_mean", np.zeros(1))).astype(np.float32)[..., None]
            error = np.abs(numpy_policy.kernel(int8.arrays, layer) - original)
            assert np.all(error <= scale / 2 + mean * 2**-11 + 1e-7), key
    assert int8.spec.get("centered", False) == (not exported.continuous)
    reference = int8.q_values(obs)
    assert not np.allclose(reference, exported.q_values(obs), atol=1e-6)  # the int8 network is another one
    for fmt, suffix in FILE_FORMATS.items():
        path = export_policy(int8, fmt, tmp_path / f"int8{suffix}")
        outputs = run_onnx(path, obs)[0] if fmt == "onnx" else load_policy(path).q_values(obs)
        np.testing.assert_allclose(outputs, reference, rtol=1e-5, atol=1e-5, err_msg=f"{name} {fmt}")
    if name == "dqn-mlp":  # the CartPole default's network: (64, 64)
        assert exported.nbytes / int8.nbytes >= 3.5, exported.nbytes / int8.nbytes
        assert exported.nbytes / quantize(exported, "float16").nbytes == pytest.approx(2.0, rel=0.05)
        # int8 stays int8 inside the programs: their files shrink with the weights.
        for fmt in ("stablehlo", "onnx"):
            float_file = export_policy(exported, fmt, tmp_path / f"f{FORMATS[fmt]}").stat().st_size
            assert float_file / (tmp_path / f"int8{FORMATS[fmt]}").stat().st_size > 2.0, fmt


def test_bad_quantized_files_are_refused(tmp_path):
    _, config, env, params, result, *_ = ("dqn-mlp", *trained_like(dqn, "CartPole-v1", {"hidden_sizes": (8,)}))
    int8 = quantize(export_numpy(config, env, params, result))
    arrays = dict(int8.arrays)
    with pytest.raises(ValueError, match=r"dense0/kernel_scale"):
        NumpyQPolicy(int8.spec, {k: v for k, v in arrays.items() if k != "dense0/kernel_scale"})
    with pytest.raises(ValueError, match=r"wrong dtype: dense0/kernel \(float32\)"):
        NumpyQPolicy(int8.spec, {**arrays, "dense0/kernel": arrays["dense0/kernel"].astype(np.float32)})
    with pytest.raises(ValueError, match=r"v4"):
        NumpyQPolicy({**int8.spec, "version": 3}, arrays)
    with pytest.raises(ValueError, match=r"quantized already"):
        quantize(int8)
    with pytest.raises(ValueError, match=r"weights must be one of"):
        quantize(export_numpy(config, env, params, result), "int4")
    (tmp_path / "bad.stablehlo").write_bytes(b"not a program")
    (tmp_path / "bad.stablehlo.json").write_text(json.dumps({"format": "jrl-stablehlo-policy", "version": 1}))
    with pytest.raises(ValueError, match=r"not a serialized jax.export program"):
        load_policy(tmp_path / "bad.stablehlo")
    (tmp_path / "bad.safetensors").write_bytes(b"\x00" * 16)
    with pytest.raises(ValueError, match=r"bad.safetensors: not a safetensors file"):
        load_policy(tmp_path / "bad.safetensors")


def test_bfloat16_weights_are_ml_dtypes_rounding_and_every_format_runs_them(tmp_path):
    """bfloat16 stores each layer array as the bits of ml_dtypes' (JAX's own) round-to-nearest-even
    cast; every format runs that network as the NumPy reader does; a bfloat16 spec over other
    arrays is refused."""
    import ml_dtypes

    _, config, env, params, result, obs, _ = ("dqn-mlp", *trained_like(dqn, "CartPole-v1", {"hidden_sizes": (8,)}))
    exported = export_numpy(config, env, params, result)
    kernel = exported.arrays["dense0/kernel"].copy()
    kernel[0, :4] = [1 + 2**-8, 1 + 3 * 2**-8, -(1 + 2**-8), 2**-126 * (1 + 2**-8)]  # halfway: ties go to even
    exported = NumpyQPolicy(exported.spec, {**exported.arrays, "dense0/kernel": kernel})
    brain = quantize(exported, "bfloat16")
    assert brain.spec["weights"] == "bfloat16" and brain.spec["centered"]
    head_mean = exported.arrays["head/kernel"].mean(axis=1)
    expected = {
        "dense0/kernel": exported.arrays["dense0/kernel"],
        "head/kernel_mean": head_mean,
        "head/kernel": exported.arrays["head/kernel"] - head_mean[:, None],
    }
    for name, value in expected.items():
        bits = np.asarray(value, np.float32).astype(ml_dtypes.bfloat16).view(np.uint16)
        np.testing.assert_array_equal(brain.arrays[name], bits, err_msg=name)
    reference = brain.q_values(obs)
    full = exported.q_values(obs)  # 8 bits of precision per weight: close, not equal
    assert 0 < np.abs(reference - full).max() <= 2**-6 * np.abs(full).max()
    for fmt, suffix in FORMATS.items():
        path = export_policy(brain, fmt, tmp_path / f"bf16{suffix}")
        outputs = run_onnx(path, obs)[0] if fmt == "onnx" else load_policy(path).q_values(obs)
        np.testing.assert_allclose(outputs, reference, rtol=1e-5, atol=1e-5, err_msg=fmt)
    float16 = quantize(exported, "float16").arrays
    with pytest.raises(ValueError, match=r"wrong dtype: .*\(kernels uint16 \(weights='bfloat16'\)"):
        NumpyQPolicy(brain.spec, float16)


def test_jrl_export_and_jrl_eval_of_the_exported_file(tmp_path, capsys):
    run_dir = tmp_path / "run"
    train = ["train", "--env", "CartPole-v1", "--algo", "dqn", "--set", "num_steps=60", "--set", "learning_starts=10"]
    train += ["--set", "log_interval=30"]
    train += ["--set", "hidden_sizes=[8]", "--set", "eval_episodes=1", "--seeds", "2", "--quiet", "--out", str(run_dir)]
    assert cli.main(train) == 0
    capsys.readouterr()
    assert cli.main(["export", str(run_dir), "--format", "onnx", "--int8", "--seed", "1"]) == 0
    written = Path(capsys.readouterr().out.strip())
    assert written == run_dir / "export" / "policy-seed1-int8.onnx" and written.is_file()
    out = tmp_path / "p.safetensors"
    assert (
        cli.main(["export", str(run_dir), "--format", "safetensors", "--int8", "--seed", "1", "--out", str(out)]) == 0
    )
    capsys.readouterr()
    assert cli.main(["eval", str(out), "--env", "CartPole-v1", "--episodes", "5"]) == 0
    line = capsys.readouterr().out
    assert line.startswith(f"{out} (int8 weights) on CartPole-v1: mean return ") and "over 5 episodes" in line
    # The int8 policy run by jrl eval is the one the ONNX file and the run's SavedModel hold.
    obs = np.random.default_rng(0).normal(size=(1000, 4)).astype(np.float32)
    np.testing.assert_array_equal(run_onnx(written, obs)[1], load_policy(out)(obs))
    assert cli.main(["export", str(run_dir), "--format", "tf", "--int8", "--seed", "1"]) == 0
    saved = Path(capsys.readouterr().out.strip())
    assert saved == run_dir / "export" / "policy-seed1-int8.savedmodel"
    np.testing.assert_array_equal(load_policy(saved)(obs), load_policy(out)(obs))
    # The evaluation's seed is the user's: another seed draws other episodes.
    assert cli.main(["eval", str(out), "--env", "CartPole-v1", "--episodes", "5", "--seed", "7"]) == 0
    assert capsys.readouterr().out != line
    assert cli.main(["eval", str(run_dir), "--seed", "7"]) == 2
    assert "--seed is for an exported policy file" in capsys.readouterr().err
    assert cli.main(["eval", str(out), "--env", "Acrobot-v1"]) == 2
    assert "takes observations of shape (4,); Acrobot-v1's are (6,)" in capsys.readouterr().err
    assert cli.main(["eval", str(out)]) == 2
    assert "give its environment with --env" in capsys.readouterr().err
    assert cli.main(["export", str(run_dir), "--format", "numpy", "--seed", "7"]) == 2
    assert "the run's seeds are [0, 1]" in capsys.readouterr().err


# --- Calibrated int8: quantize(policy, "int8", calibration=obs), GPTQ on states the policy visits ---

CALIBRATION = 512  # calibration observations (of each case's 10,000); the rest judge the result


def random_policy(obs_shape: tuple, convs: tuple, hidden: tuple, actions: int) -> NumpyQPolicy:
    """A float policy of random weights (He-scaled kernels, small biases), built from arrays with
    the reader's constructor (no JAX): 3x3 convolutions of ``convs`` features, dense ``hidden``."""
    rng = np.random.default_rng(0)
    shapes, width = {}, obs_shape[-1]
    for i, features in enumerate(convs):
        shapes[f"conv{i}"], width = (3, 3, width, features), features
    width = width * obs_shape[0] * obs_shape[1] if convs else obs_shape[0]
    for i, features in enumerate(hidden):
        shapes[f"dense{i}"], width = (width, features), features
    shapes["head"] = (width, actions)
    arrays = {}
    for name, shape in shapes.items():
        arrays[f"{name}/kernel"] = (rng.normal(size=shape) * np.sqrt(2 / np.prod(shape[:-1]))).astype(np.float32)
        arrays[f"{name}/bias"] = rng.normal(scale=0.1, size=shape[-1]).astype(np.float32)
    spec = {"format": numpy_policy.FORMAT, "version": 1, "kind": "cnn" if convs else "mlp", "dueling": False}
    spec |= {"one_hot": None, "num_convs": len(convs), "num_hidden": len(hidden), "num_actions": actions}
    return NumpyQPolicy({**spec, "obs_shape": list(obs_shape)}, arrays)


def centered_error(policy, quantized, obs: np.ndarray) -> float:
    """Mean squared error of ``quantized``'s outputs against ``policy``'s, each centered over the
    actions for a discrete policy (the greedy action depends on the differences alone)."""
    out, ref = quantized.q_values(obs), policy.q_values(obs)
    if not policy.continuous:
        out, ref = out - out.mean(axis=1, keepdims=True), ref - ref.mean(axis=1, keepdims=True)
    return float(np.mean((out - ref) ** 2))


def test_calibrated_int8_fits_the_float_network_better_than_rounding(case):
    name, config, env, params, result, obs, _ = case
    exported = export_numpy(config, env, params, result)
    if name == "dqn-cnn":  # its dense layer's 512 inputs need 2,048 states (seconds): a narrower CNN
        exported, obs = random_policy((8, 8, 3), (2,), (8,), 4), obs.astype(np.float32)
    naive = quantize(exported, "int8")
    calibrated = quantize(exported, "int8", calibration=obs[:CALIBRATION])
    held_out = obs[-2000:]
    # On states like the calibration states (the same distribution, other draws): a fraction of
    # rounding's error (measured 0.002x-0.12x), the float policy's actions at least as often.
    assert centered_error(exported, calibrated, held_out) < 0.5 * centered_error(exported, naive, held_out), name
    if not exported.continuous:
        agreement = {q: np.mean(q(held_out) == exported(held_out)) for q in (naive, calibrated)}
        assert agreement[calibrated] >= agreement[naive], (name, agreement)
    # The int8 grid and the file as rounding writes it: same arrays, dtypes and spec (version 4).
    assert calibrated.spec == naive.spec
    assert {k: (a.dtype, a.shape) for k, a in calibrated.arrays.items()} == {
        k: (a.dtype, a.shape) for k, a in naive.arrays.items()
    }
    for key, array in calibrated.arrays.items():
        if key.endswith("/kernel"):
            assert array.dtype == np.int8 and np.abs(array.astype(np.int16)).max() <= 127, key
            assert calibrated.arrays[f"{key}_scale"].dtype == np.float16, key
        elif key.startswith(numpy_policy.LAYERS):
            assert array.dtype == np.float16, key


def test_calibrated_int8_is_deterministic_and_refuses_bad_states(tmp_path):
    exported = random_policy((4,), (), (16,), 2)
    states = np.random.default_rng(1).normal(size=(CALIBRATION, 4)).astype(np.float32)
    for i in range(2):
        quantize(exported, "int8", calibration=states.copy()).save(tmp_path / f"{i}.safetensors")
    assert (tmp_path / "0.safetensors").read_bytes() == (tmp_path / "1.safetensors").read_bytes()
    shape = r"calibration observations must have shape \[N, 4\]"
    with pytest.raises(ValueError, match=shape + r", got \(512, 5\)"):
        quantize(exported, "int8", calibration=np.zeros((CALIBRATION, 5), np.float32))
    with pytest.raises(ValueError, match=shape + r", got \(4,\)"):
        quantize(exported, "int8", calibration=states[0])
    with pytest.raises(ValueError, match=r"at least 256 observations, got 255"):
        quantize(exported, "int8", calibration=states[:255])
    bad = states.copy()
    bad[7, 2] = np.inf
    with pytest.raises(ValueError, match=r"must be finite; 1 are not"):
        quantize(exported, "int8", calibration=bad)
    with pytest.raises(TypeError, match=r"real numbers, got dtype <U"):
        quantize(exported, "int8", calibration=states.astype(str))
    with pytest.raises(ValueError, match=r"calibration applies to int8 weights"):
        quantize(exported, "float16", calibration=states)
    # Networks built from arrays (the reader's constructor): a one-hot input, a wide head.
    rng = np.random.default_rng(0)
    one_hot = NumpyQPolicy(
        {**exported.spec, "one_hot": 16, "obs_shape": []},
        {**exported.arrays, "dense0/kernel": rng.normal(size=(16, 16)).astype(np.float32)},
    )
    with pytest.raises(TypeError, match=r"integer indices \(one-hot input\), got float32"):
        quantize(one_hot, "int8", calibration=np.zeros(CALIBRATION, np.float32))
    with pytest.raises(ValueError, match=r"integers in \[0, 16\)"):
        quantize(one_hot, "int8", calibration=np.arange(CALIBRATION))
    assert quantize(one_hot, "int8", calibration=np.arange(CALIBRATION) % 16).spec["weights"] == "int8"
    # A layer's refit needs 4 rows per input: 300 states are too few for a 128-wide head.
    widths = {"dense0/kernel": (4, 128), "dense0/bias": (128,), "head/kernel": (128, 2), "head/bias": (2,)}
    wide = NumpyQPolicy(exported.spec, {k: rng.normal(size=w).astype(np.float32) for k, w in widths.items()})
    with pytest.raises(ValueError, match=r"at least 512 observations for this network \(head has 128 inputs"):
        quantize(wide, "int8", calibration=states[:300])


def test_calibration_states_are_the_policy_s_visits_and_jrl_export_calibrates_on_them(tmp_path, capsys):
    policy = random_policy((4,), (), (16,), 2)
    env, params = jrl.make("CartPole-v1")
    states = calibration_states(policy, env, params)  # 64 episodes x 256 steps, step-major
    assert states.shape == (64 * 256, 4)
    # Episode i's state at step t is row 64 t + i. Each next state is Gymnasium's own CartPole step
    # from it under the policy's greedy action, or a fresh start where the episode ended.
    rollout, gym, ends = states.reshape(256, 64, 4), gymnasium.make("CartPole-v1").unwrapped, 0
    gym.reset(seed=0)
    for t in range(40):
        for i in range(4):
            gym.state, gym.steps_beyond_terminated = rollout[t, i].astype(np.float64), None
            expected, _, terminated, _, _ = gym.step(int(policy(rollout[t, i][None])[0]))
            if terminated:
                ends += 1
                assert np.all(np.abs(rollout[t + 1, i]) <= 0.05), (t, i)
            else:
                np.testing.assert_allclose(rollout[t + 1, i], expected, atol=1e-5, err_msg=f"{t} {i}")
    assert ends >= 4  # a random policy drops the pole: resets were checked too
    # jrl export of a policy file: --env calibrates on calibration_states there; without, rounding.
    policy.save(tmp_path / "p.npz")
    out = tmp_path / "q.npz"
    command = ["export", str(tmp_path / "p.npz"), "--format", "numpy", "--int8", "--out", str(out)]
    assert cli.main([*command, "--env", "CartPole-v1"]) == 0
    expected = quantize(policy, "int8", calibration=states)
    assert all(np.array_equal(NumpyQPolicy.load(out).arrays[k], a) for k, a in expected.arrays.items())
    capsys.readouterr()
    assert cli.main(command) == 0
    assert "quantized uncalibrated (round to nearest); --env ID calibrates it" in capsys.readouterr().err
    naive = quantize(policy, "int8")
    assert all(np.array_equal(NumpyQPolicy.load(out).arrays[k], a) for k, a in naive.arrays.items())
    assert cli.main(["export", str(tmp_path), "--format", "numpy", "--int8", "--env", "CartPole-v1"]) == 2
    assert "a run directory knows its environment" in capsys.readouterr().err
