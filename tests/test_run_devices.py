"""One training run over several devices (``jrl train --devices N``): the maths of the split, the
command line on forced host devices, and a run of two processes (``jax.distributed``).

- On 2 and 4 devices, a step on per-device batches of B/N is the one-device step on the batch B:
  DQN's gradient step, PPO's loss (advantages normalised over the whole minibatch) and its
  observation statistics, and the tabular update (sums and counts added over devices). Each check
  also shows that the devices, left to their own shares, would differ.
- ``jrl train --devices 2`` (DQN on CartPole, PPO on Pendulum with normalisation, Q-learning on
  FrozenLake): the devices' parameters (and statistics, and tables) stay equal; PPO's run resumed
  after a kill gives the uninterrupted run's bytes (DQN's: the two-process test).
- 2 processes x 1 device, killed after their first checkpoint and resumed, write the run
  directory of 1 process x 2 devices, byte for byte.

JAX fixes its devices when it starts, so these checks run in fresh interpreters with several CPU
host devices (``test_sweep_devices.py`` does the same for sweeps).
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
from test_sweep_devices import finish, free_port, start

import jrl

pytestmark = pytest.mark.slow

SOURCE = str(Path(jrl.__file__).resolve().parents[1])

MATH = textwrap.dedent(
    """
    import json

    import jax
    import jax.numpy as jnp
    import numpy as np
    from jax.flatten_util import ravel_pytree
    from jax.sharding import PartitionSpec as P

    import jrl
    from jrl.algorithms import dqn, ppo, q_learning
    from jrl.parallel import SINGLE, DataParallel, device_mesh

    assert jax.device_count() == 4
    rng = np.random.default_rng(0)
    B = 64
    out = {}

    def split(function, devices, parallel, in_specs, out_specs):
        mesh = device_mesh(devices, axis="devices")
        return jax.jit(jax.shard_map(function, mesh=mesh, in_specs=in_specs, out_specs=out_specs, check_vma=False))

    # DQN: 5 gradient steps on one batch of B transitions.
    env, env_params = jrl.make("CartPole-v1")
    config = dqn.DQNConfig(hidden_sizes=(16, 16), batch_size=B, learning_rate=1e-2)
    network = dqn.build_network(config, 2, env.observation_space(env_params))
    params, unravel = ravel_pytree(network.init(jax.random.key(0), jnp.zeros(4)))
    q_values = lambda p, o: jax.vmap(network.apply, in_axes=(None, 0))(unravel(p), o)
    hp = config.hyperparams()
    batch = {
        "obs": jnp.asarray(rng.normal(size=(B, 4)), jnp.float32),
        "action": jnp.asarray(rng.integers(0, 2, B), jnp.int32),
        "reward": jnp.asarray(rng.normal(size=B), jnp.float32),
        "next_obs": jnp.asarray(rng.normal(size=(B, 4)), jnp.float32),
        "terminated": jnp.asarray(rng.random(B) < 0.2),
    }

    def steps(batch, parallel):
        p, opt = params, dqn._optimizer(config, hp).init(params)
        for _ in range(5):
            p, opt, loss, finite = dqn.gradient_step(config, q_values, p, opt, params, batch, hp, parallel)
        return p

    one = jax.jit(lambda b: steps(b, SINGLE))(batch)
    for devices in (2, 4):
        many = split(lambda b: steps(b, DataParallel(devices))[None], devices, None, (P("devices"),), P("devices"))(batch)
        alone = split(lambda b: steps(b, SINGLE)[None], devices, None, (P("devices"),), P("devices"))(batch)
        out[f"dqn_{devices}"] = float(jnp.max(jnp.abs(many - one[None])))
        out[f"dqn_{devices}_alone"] = float(jnp.max(jnp.abs(alone[0] - one)))
        out[f"dqn_{devices}_equal"] = bool(jnp.all(many == many[0]))

    # PPO: the loss's gradient on one minibatch, advantages normalised; parameters theta [8] drive
    # the log-probabilities, values and entropies through a fixed linear map.
    x = jnp.asarray(rng.normal(size=(B, 8)), jnp.float32)
    data = {
        "x": x,
        "old_log_prob": jnp.asarray(rng.normal(size=B) * 0.1 - 0.7, jnp.float32),
        "old_value": jnp.asarray(rng.normal(size=B), jnp.float32),
        "advantage": jnp.asarray(rng.normal(size=B) * 3 + 1, jnp.float32),
        "target": jnp.asarray(rng.normal(size=B), jnp.float32),
    }
    php = ppo.PPOConfig().hyperparams()
    theta = jnp.asarray(rng.normal(size=8) * 0.3, jnp.float32)

    def ppo_grad(theta, d, parallel):
        def loss(theta):
            log_prob = d["old_log_prob"] + d["x"] @ theta * 0.1
            value = d["old_value"] + d["x"] @ theta
            entropy = jnp.abs(d["x"] @ theta)
            return ppo.ppo_loss(log_prob, entropy, value, d["old_log_prob"], d["old_value"], d["advantage"],
                                d["target"], php, True, True, parallel)[0]
        return parallel.mean(jax.grad(loss)(theta))

    one = jax.jit(lambda d: ppo_grad(theta, d, SINGLE))(data)
    obs = jnp.asarray(rng.normal(size=(B, 3)) * 5 + 2, jnp.float32)
    stats = ppo.ObsStats(mean=jnp.ones(3), var=jnp.full(3, 2.0), count=jnp.float32(100))
    one_stats = ppo.update_obs_stats(stats, obs)
    for devices in (2, 4):
        many = split(lambda d: ppo_grad(theta, d, DataParallel(devices))[None], devices, None,
                     (P("devices"),), P("devices"))(data)
        alone = split(lambda d: ppo_grad(theta, d, SINGLE)[None], devices, None, (P("devices"),), P("devices"))(data)
        out[f"ppo_{devices}"] = float(jnp.max(jnp.abs(many - one[None])) / jnp.max(jnp.abs(one)))
        out[f"ppo_{devices}_alone"] = float(jnp.max(jnp.abs(alone[0] - one)) / jnp.max(jnp.abs(one)))
        shard_stats = split(lambda o: jax.tree_util.tree_map(lambda a: a[None], ppo.update_obs_stats(
            stats, o, DataParallel(devices))), devices, None, (P("devices"),), P("devices"))(obs)
        out[f"obs_stats_{devices}"] = max(
            float(jnp.max(jnp.abs(s - o[None]) / jnp.maximum(jnp.abs(o), 1.0)))
            for s, o in zip(jax.tree_util.tree_leaves(shard_stats), jax.tree_util.tree_leaves(one_stats)))

    # Tabular: one step's mean update of a 16 x 4 table from B environments.
    q = jnp.asarray(rng.normal(size=(16, 4)), jnp.float32)
    index = jnp.asarray(rng.integers(0, 64, B), jnp.int32)
    delta = jnp.asarray(rng.normal(size=B), jnp.float32)
    ones = jnp.ones(B, jnp.float32)
    one = q_learning._mean_update(q, index, delta, ones, 0.5)
    for devices in (2, 4):
        def tab(i, d, w, parallel):
            return q_learning._mean_update(q, i, d, w, 0.5, parallel)[None]
        many = split(lambda i, d, w: tab(i, d, w, DataParallel(devices)), devices, None,
                     (P("devices"),) * 3, P("devices"))(index, delta, ones)
        alone = split(lambda i, d, w: tab(i, d, w, SINGLE), devices, None, (P("devices"),) * 3, P("devices"))(
            index, delta, ones)
        out[f"table_{devices}"] = float(jnp.max(jnp.abs(many - one[None])))
        out[f"table_{devices}_alone"] = float(jnp.max(jnp.abs(alone[0] - one)))
    print(json.dumps(out))
    """
)


def test_n_devices_with_batches_of_b_over_n_take_the_one_device_step_on_b():
    (output,) = finish([start(MATH, 4)])
    diffs = json.loads(output.strip().splitlines()[-1])
    for devices in (2, 4):
        # Five DQN steps (Adam, clipping) on shares of the batch: the one-device parameters.
        assert diffs[f"dqn_{devices}"] < 1e-6 and diffs[f"dqn_{devices}_equal"], diffs
        assert diffs[f"ppo_{devices}"] < 1e-6, diffs
        assert diffs[f"obs_stats_{devices}"] < 1e-6, diffs
        assert diffs[f"table_{devices}"] < 1e-6, diffs
        # Left to its own share, a device would step elsewhere: the checks above can fail.
        for name in ("dqn", "ppo", "table"):
            assert diffs[f"{name}_{devices}_alone"] > 1e-3, (name, diffs)


# -- the command line on 2 host devices ------------------------------------------------------------

RUNS = {
    "dqn": [
        "--env", "CartPole-v1", "--set", "num_envs=4", "--set", "num_steps=120", "--set", "learning_starts=80",
        "--set", "batch_size=16", "--set", "buffer_size=400", "--set", "hidden_sizes=[16]",
        "--set", "eval_episodes=2", "--set", "stop_return=none", "--set", "log_interval=30",
    ],
    "ppo": [
        "--env", "Pendulum-v1", "--set", "num_envs=4", "--set", "rollout_length=16", "--set", "num_steps=8",
        "--set", "num_minibatches=2", "--set", "num_epochs=1", "--set", "hidden_sizes=[8]",
        "--set", "normalize_observations=true", "--set", "eval_episodes=2", "--set", "stop_return=none",
        "--set", "log_interval=2",
    ],
    "q_learning": [
        "--env", "FrozenLake-v1", "--set", "num_envs=4", "--set", "num_steps=400", "--set", "log_interval=100",
        "--set", "eval_episodes=2",
    ],
}  # fmt: skip
COMMON = ["--devices", "2", "--seeds", "2", "--chunk-logs", "1", "--keep", "10", "--eval-episodes", "3", "--quiet"]

CLI = textwrap.dedent(
    """
    import json, shutil, sys
    from pathlib import Path

    from jrl import cli

    out, runs, common = Path(sys.argv[1]), json.loads(sys.argv[2]), json.loads(sys.argv[3])
    for algo, args in runs.items():
        run_dir = out / algo
        assert cli.main(["train", "--algo", algo, *args, *common, "--host-devices", "2", "--out", str(run_dir)]) == 0
        if algo != "ppo":  # DQN's resume: the two-process test below; Q-learning's state holds no more
            continue
        # As if killed after the 2nd of 4 intervals: the later checkpoints and the summary gone.
        resumed = out / f"{algo}-resumed"
        shutil.copytree(run_dir, resumed)
        for path in sorted((resumed / "checkpoints").iterdir())[2:]:
            shutil.rmtree(path)
        (resumed / "summary.json").unlink()
        assert cli.main(["resume", str(resumed), "--quiet", "--host-devices", "2"]) == 0
    print("done")
    """
)


def digests(run_dir: Path) -> dict:
    """What must not change: config.toml, metrics.jsonl, summary.json and every checkpoint leaf."""
    files = ["config.toml", "metrics.jsonl", "summary.json"]
    files += sorted(str(p.relative_to(run_dir)) for p in (run_dir / "checkpoints").glob("*/leaves/*.npy"))
    return {name: hashlib.sha256((run_dir / name).read_bytes()).hexdigest() for name in files}


def leaves(run_dir: Path) -> dict:
    """The last checkpoint's leaves by state path."""
    last = sorted((run_dir / "checkpoints").iterdir())[-1]
    header = json.loads((last / "header.json").read_text())
    return {entry["path"]: np.load(last / entry["file"]) for entry in header["leaves"]}


@pytest.fixture(scope="module")
def two_device_runs(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("devices")
    finish([start(CLI, 1, str(out), json.dumps(RUNS), json.dumps(COMMON))])
    return out


@pytest.mark.parametrize("algo", sorted(RUNS))
def test_a_run_on_two_devices_keeps_them_equal_and_resumes_bit_for_bit(two_device_runs, algo):
    run_dir = two_device_runs / algo
    assert "devices = 2" in (run_dir / "config.toml").read_text()
    if algo == "ppo":  # normalisation statistics and Gaussian parameters through a checkpoint
        assert digests(two_device_runs / f"{algo}-resumed") == digests(run_dir)
    state = leaves(run_dir)
    shared = {"dqn": [".params", ".target"], "ppo": [".params", ".obs_stats.mean", ".obs_stats.var"]}
    shared["q_learning"] = [".q_a"]
    for path in shared[algo]:
        devices = state[path]  # [devices, seeds, ...]
        assert devices.shape[:2] == (2, 2) and np.array_equal(devices[0], devices[1]), path
        assert not np.array_equal(devices[0, 0], devices[0, 1]), path  # the seeds differ
    # The devices' environments are their own: the same seed's differ across devices.
    obs = state[".obs" if algo != "ppo" else ".envs.obs"]
    assert not np.array_equal(obs[0], obs[1])
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["finite"] and summary["env_steps"] == {"dqn": 480, "ppo": 512, "q_learning": 1600}[algo]


# -- 2 processes x 1 device --------------------------------------------------------------------------


def launch(port: int, argv: list[str]) -> list[subprocess.Popen]:
    path = os.pathsep.join([SOURCE, *filter(None, [os.environ.get("PYTHONPATH")])])
    env = os.environ | {"JAX_PLATFORMS": "cpu", "PYTHONPATH": path}
    flags = ["--coordinator", f"127.0.0.1:{port}", "--num-processes", "2"]
    return [
        subprocess.Popen(
            [sys.executable, "-m", "jrl.cli", *argv, *flags, "--process-id", str(i)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        for i in range(2)
    ]


def test_a_killed_two_process_run_resumes_to_the_run_of_one_process_with_two_devices(two_device_runs, tmp_path):
    """Two processes of one device each (``jax.distributed`` on this machine), killed once their
    first checkpoint is written, then resumed by two processes: the directory is, byte for byte,
    the one a single process with two devices wrote."""
    run_dir = tmp_path / "two-processes"
    children = launch(free_port(), ["train", "--algo", "dqn", *RUNS["dqn"], *COMMON, "--out", str(run_dir)])
    deadline = time.monotonic() + 300
    while not (run_dir / "checkpoints" / "ckpt-00000001").is_dir() and time.monotonic() < deadline:
        assert all(child.poll() is None for child in children), [child.communicate() for child in children]
        time.sleep(0.02)
    for child in children:
        os.killpg(child.pid, signal.SIGKILL)
        child.communicate()
    assert not (run_dir / "summary.json").exists()
    finish(launch(free_port(), ["resume", str(run_dir), "--quiet"]))
    assert digests(run_dir) == digests(two_device_runs / "dqn")


# -- what is refused, and the recorded learning check ---------------------------------------------


def test_a_split_that_cannot_be_made_is_refused_before_anything_runs(tmp_path, capsys):
    from jrl import cli

    cases = [
        (["--algo", "ppo", "--env", "CartPole-v1", "--devices", "3"], "num_envs=4 must be a multiple of the number of devices (3)"),
        (["--algo", "dqn", "--env", "CartPole-v1", "--devices", "2", "--set", "batch_size=127"], "batch_size=127 must be a multiple"),
        (["--algo", "dqn", "--env", "CartPole-v1", "--devices", "2"], "the run is split over 2 devices (devices = 2) but JAX sees 1"),
        (["--algo", "dqn", "--env", "CartPole-v1", "--devices", "0"], "devices must be"),
    ]  # fmt: skip
    for argv, message in cases:
        out = tmp_path / "run"
        assert cli.main(["train", *argv, "--quiet", "--out", str(out)]) == 2
        assert message in capsys.readouterr().err, (argv, message)
        assert not out.exists()  # nothing written


def test_an_algorithm_that_cannot_split_a_run_is_named(monkeypatch):
    from jrl import algorithms
    from jrl.parallel import DataParallel

    spec = algorithms.get("dqn")
    monkeypatch.delattr(spec.module, "DATA_PARALLEL")
    env, env_params = jrl.make("CartPole-v1")
    with pytest.raises(
        ValueError, match=r"--algo dqn trains on one device; --devices 2 needs an algorithm that splits"
    ):
        spec.make_algorithm(spec.default_config("CartPole-v1"), env, env_params, DataParallel(2))


def test_the_cartpole_default_on_two_devices_solves_the_held_out_seeds_as_documented():
    """The recorded held-out run on 2 devices (experiments/tune_defaults): the run file is the
    default on the held-out seeds with ``devices = 2``, and docs/devices.md's row is its CSV."""
    import csv
    import re
    import tomllib

    root = Path(SOURCE)
    spec = tomllib.loads((root / "experiments/tune_defaults/dqn/CartPole-v1-heldout-2devices.toml").read_text())
    assert spec["devices"] == 2 and spec["algo"] == "dqn" and "config" not in spec
    assert spec["seeds"] == list(range(1000, 1032))
    with open(root / "experiments/tune_defaults/results/dqn/CartPole-v1/heldout-2devices.csv") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["seed"]) for r in rows] == spec["seeds"]
    ours = sum(float(r["jrl_mean_return"]) >= 475 for r in rows)
    gym = sum(float(r["gymnasium_mean_return"]) >= 475 for r in rows)
    assert gym >= 31 and ours >= 31  # the bar: 95% of the held-out seeds
    mean = np.mean([float(r["gymnasium_mean_return"]) for r in rows])
    line = next(
        line for line in (root / "docs/devices.md").read_text().splitlines() if line.startswith("| 2 devices |")
    )
    assert re.search(rf"\*\*{gym} / 32 and {ours} / 32\*\* \| {mean:.1f} \|", line), line
