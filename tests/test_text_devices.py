"""The text learners over several devices (issue 24, items 1 and 4): GRPO's data-parallel split and
fully sharded parameters (``shard_params``) for GRPO and text Q-learning, on 2 forced host devices.

- GRPO on a fixed batch of 8 prompts x 4 completions: 2 devices of 4 prompts each (whole groups),
  with whole and with sharded parameters, take the one-device step on the 8 prompts: the gradient
  within 1e-6 of its largest entry, the losses of 3 clipped Adam steps, the clip fractions and the
  KL within 1e-6, and the parameters within 1e-6 but for the attention's key bias (below).
- ``jrl train --devices 2`` of text Q-learning with ``shard_params=true`` against the same run
  without: the Q-network, target and Adam moments within 1e-6 (but for the key bias); each
  device holds about half of the parameters, moments, target and reference, under a budget
  that the whole state exceeds; the run killed after its first checkpoint resumes to the
  uninterrupted run's bytes; ``jrl eval``'s readers see whole parameters.

The attention's key bias is left out of the parameter comparisons: softmax ignores a shift common
to every key, so its exact gradient is 0 and its computed gradient is rounding noise, which Adam
(dividing each entry by its own magnitude) turns into steps of about the step size that differ
with the program's reduction order. No output depends on it: the losses agree within 1e-6.

JAX fixes its devices when it starts: the checks run in one fresh interpreter with 2 CPU host
devices (``test_sweep_devices.child_env``).
"""

from __future__ import annotations

import json
import textwrap

import pytest
from test_sweep_devices import finish, start

import jrl

pytestmark = pytest.mark.slow

CHILD = textwrap.dedent(
    """
    import hashlib, json, os, shutil, sys, tempfile
    from pathlib import Path

    import jax
    import jax.numpy as jnp
    import numpy as np
    from jax.sharding import PartitionSpec as P

    # The resumed run compiles what the first compiled: from this process's own cache.
    jax.config.update("jax_compilation_cache_dir", tempfile.mkdtemp(prefix="jrl-text-devices-"))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)

    import jrl
    from jrl import cli, parallel
    from jrl.experiment import load_run
    from jrl.parallel import SINGLE, DataParallel, Sharded, device_mesh
    from jrl.text import LanguageModel, LMConfig, TransformerLM, grpo, init_model, save_model
    from jrl.text import q_learning as text_q

    assert jax.device_count() == 2
    out, report = Path(sys.argv[1]), {}
    env, env_params = jrl.make("Arithmetic-v0", digits=1, format_reward=0.5)
    vocab = env.vocabulary

    def model_of(d_model):
        config = LMConfig("Arithmetic-v0", vocab.size, vocab.num_actions, env.observation_space().shape[0],
                          d_model=d_model, num_layers=1, num_heads=2, mlp_ratio=2)
        shapes = jax.eval_shape(lambda: init_model(config, jax.random.key(0)).params)
        rng = np.random.default_rng(0)
        draw = lambda path, leaf: jnp.asarray(np.ones(leaf.shape, leaf.dtype) if jax.tree_util.keystr(path).endswith(
            "['scale']") else rng.normal(0.0, 0.2, leaf.shape).astype(leaf.dtype))
        return LanguageModel(config, jax.tree_util.tree_map_with_path(draw, shapes))

    def max_diff(a, b):
        # Every entry but the key bias (the middle third of qkv's bias: queries, keys, values).
        worst = 0.0
        for (path, x), y in zip(jax.tree_util.tree_leaves_with_path(a), jax.tree_util.tree_leaves(b), strict=True):
            d = np.abs(np.asarray(x, np.float64) - np.asarray(y, np.float64))
            if jax.tree_util.keystr(path).endswith("['qkv']['bias']"):
                d = d.reshape(*d.shape[:-1], 3, -1)[..., [0, 2], :]
            worst = max(worst, float(d.max()))
        return worst

    # 1. GRPO: one device on 8 prompts against 2 devices on 4 each, in one program.
    tiny = model_of(16)
    network = TransformerLM(tiny.config)
    reference = jax.tree_util.tree_map(lambda x: 0.8 * x, tiny.params)  # away from the policy: KL > 0
    config = grpo.GRPOConfig(num_prompts=8, group_size=4, updates_per_iteration=3, learning_rate=1e-2, beta_kl=0.1,
                             max_grad_norm=0.05)
    # A fixed batch of 32 completions: random tokens after a 4-token prompt, each completion ending
    # at its own length with a reward.
    rng = np.random.default_rng(1)
    tokens = rng.integers(0, env.num_actions, (32, 8))
    positions = np.arange(1, 8)[None, :]
    ends = rng.integers(4, 8, (32, 1))
    active = (positions >= 4) & (positions <= ends)
    batch = {"tokens": jnp.asarray(tokens, jnp.int32), "action": jnp.asarray(tokens[:, 1:], jnp.int32),
             "active": jnp.asarray(active),
             "reward": jnp.asarray(np.where(positions == ends, rng.normal(size=(32, 1)), 0.0), jnp.float32)}

    def step(batch, parallel=SINGLE, shard=False):
        algorithm = grpo.make_algorithm(config.replace(shard_params=shard), env, env_params, model=tiny,
                                        parallel=parallel)
        state = algorithm.init(jax.random.key(0))
        _, grads = grpo.gradient(config, network, reference, state, batch, parallel)
        state, losses, _, clip, kl = grpo.learn(config, network, reference, state, batch, parallel)
        out = {"grads": parallel.gather(grads), "params": parallel.gather(state.params), "losses": losses,
               "clip": clip, "kl": parallel.sum(jnp.sum(kl))}
        return jax.tree_util.tree_map(lambda x: x[None], out)

    def all_layouts(share, whole):
        return step(whole), step(share, DataParallel(2)), step(share, DataParallel(2), shard=True)

    one, dp, fsdp = jax.jit(jax.shard_map(all_layouts, mesh=device_mesh(2, axis="devices"),
                                          in_specs=(P("devices"), P()), out_specs=P("devices"),
                                          check_vma=False))(batch, batch)
    one = jax.tree_util.tree_map(lambda x: x[0], one)
    scale = max(float(jnp.max(jnp.abs(g))) for g in jax.tree_util.tree_leaves(one["grads"]))
    for name, many in (("dp", dp), ("fsdp", fsdp)):
        first = jax.tree_util.tree_map(lambda x: x[0], many)
        report[f"grpo_{name}"] = {
            "grads": max(float(jnp.max(jnp.abs(a - b))) for a, b in zip(jax.tree_util.tree_leaves(first["grads"]),
                                                                       jax.tree_util.tree_leaves(one["grads"]))) / scale,
            "params": max_diff(first["params"], one["params"]),
            "losses": float(jnp.max(jnp.abs(first["losses"] - one["losses"]))),
            "clip": float(jnp.max(jnp.abs(first["clip"] - one["clip"]))),
            "kl": abs(float(first["kl"]) / float(one["kl"]) - 1.0),
            "devices_equal": all(bool(jnp.all(x[0] == x[1])) for x in jax.tree_util.tree_leaves(many["params"])),
        }
    report["grpo_fsdp_dp_params"] = max_diff(jax.tree_util.tree_map(lambda x: x[0], fsdp["params"]),
                                             jax.tree_util.tree_map(lambda x: x[0], dp["params"]))
    report["grpo_moved"] = max_diff(one["params"], tiny.params)
    report["grpo_clip_used"] = float(jnp.max(one["clip"]))
    report["grpo_kl"] = float(one["kl"])

    # 2. Text Q-learning on 2 devices, 2 iterations, with and without shard_params, in one program.
    lm = model_of(32)
    tq_config = text_q.TextQConfig(num_envs=8, num_steps=2, log_interval=1, learning_rate=1e-2)

    def text_q_run(shard):
        two = DataParallel(2)
        algorithm = text_q.make_algorithm(tq_config.replace(shard_params=shard), env, env_params, model=lm,
                                          parallel=two)
        state, _ = algorithm.run(algorithm.init(jax.random.key(0)), 2)
        moments = state.opt_state[1][0]
        out = [two.gather(x) for x in (state.q_params, state.target, moments.mu, moments.nu)]
        return jax.tree_util.tree_map(lambda x: x[None], out)

    unsharded, sharded = jax.jit(jax.shard_map(lambda _: (text_q_run(False), text_q_run(True)),
                                               mesh=device_mesh(2, axis="devices"), in_specs=P("devices"),
                                               out_specs=P("devices"), check_vma=False))(jnp.zeros(2))
    names = ("q_params", "target", "adam_mu", "adam_nu")
    report["tq"] = {n: max_diff(a, b) for n, a, b in zip(names, sharded, unsharded)}
    report["tq_moved"] = max_diff(sharded[0], jax.tree_util.tree_map(lambda x: x[None], lm.params))

    # 3. jrl train of it, sharded: memory per device; killed after its first checkpoint and resumed.
    save_model(out / "lm", lm)
    argv = ["train", "--algo", "text_q_learning", "--env", "Arithmetic-v0", "--env-kwarg", "digits=1",
            "--env-kwarg", "format_reward=0.5", "--set", f"pretrained={out / 'lm'}", "--devices", "2",
            "--set", "num_envs=8", "--set", "num_steps=2", "--set", "log_interval=1", "--set", "learning_rate=1e-2",
            "--set", "shard_params=true", "--chunk-logs", "1", "--eval-episodes", "2", "--quiet"]
    assert cli.main([*argv, "--out", str(out / "run")]) == 0
    resumed = out / "resumed"
    shutil.copytree(out / "run", resumed)  # as if killed after its first of two checkpoints
    shutil.rmtree(sorted((resumed / "checkpoints").iterdir())[-1])
    (resumed / "summary.json").unlink()
    assert cli.main(["resume", str(resumed), "--quiet"]) == 0

    def digests(run_dir):
        files = ["config.toml", "metrics.jsonl", "summary.json"]
        files += sorted(str(p.relative_to(run_dir)) for p in (run_dir / "checkpoints").glob("*/leaves/*.npy"))
        return {name: hashlib.sha256((run_dir / name).read_bytes()).hexdigest() for name in files}

    report["resumed_equal"] = digests(resumed) == digests(out / "run")
    run = load_run(out / "run")
    state, _ = run.load_checkpoint()
    whole = run.device_state(state)  # what jrl eval, generate and export read
    held = {}
    for leaf in jax.tree_util.tree_leaves((state.q_params, state.target, state.opt_state, state.reference)):
        for piece in leaf.addressable_shards:
            held[piece.device.id] = held.get(piece.device.id, 0) + piece.data.nbytes
    report["tq_shapes"] = [list(state.q_params.shards["params"]["head"]["kernel"].shape),
                           list(whole.q_params["params"]["head"]["kernel"].shape)]
    report["memory"] = {"per_device": sorted(held.values()),
                        "whole": parallel.tree_bytes((whole.q_params, whole.target, whole.opt_state, whole.reference))}
    report["summary_finite"] = json.loads((out / "run" / "summary.json").read_text())["finite"]
    print(json.dumps(report))
    """
)

#: Bytes a device may hold of the text Q-learner's state (Q-network, target, Adam's two moments and the
#: pretrained reference): the run's model (d_model 32) takes more, so only a sharded run fits.
BUDGET = 150_000


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> dict:
    (output,) = finish([start(CHILD, 2, str(tmp_path_factory.mktemp("text-devices")))])
    return json.loads(output.strip().splitlines()[-1])


@pytest.mark.parametrize("layout", ["dp", "fsdp"])
def test_grpo_on_two_devices_takes_the_one_device_step(report, layout):
    got = report[f"grpo_{layout}"]
    # The gradient, relative to its largest entry; the losses of the 3 steps, their clip fractions
    # and the KL (relative): the whole batch's, on every device.
    assert got["grads"] < 1e-6 and got["losses"] < 1e-6 and got["clip"] < 1e-6 and got["kl"] < 1e-6, got
    assert got["params"] < 1e-6 and got["devices_equal"], got
    # The steps moved the parameters, clipped ratios and weighed a KL: the checks above could fail.
    assert report["grpo_moved"] > 1e-2 and report["grpo_clip_used"] > 0.05 and report["grpo_kl"] > 0.1, report


def test_sharded_text_q_learning_steps_as_the_unsharded_split(report):
    for name, diff in report["tq"].items():
        assert diff < 1e-6, (name, report["tq"])
    assert report["tq_moved"] > 1e-2


def test_a_model_over_the_budget_trains_sharded_and_resumes_bit_for_bit(report):
    # What jrl eval, generate and export read is whole: the output layer [32, 15], whose 480
    # entries the checkpoint keeps as [devices, seeds, 240].
    assert report["tq_shapes"] == [[2, 1, 240], [1, 32, 15]]
    memory = report["memory"]
    assert memory["whole"] > BUDGET > max(memory["per_device"]), memory
    assert all(abs(held - memory["whole"] / 2) < 0.01 * memory["whole"] for held in memory["per_device"]), memory
    assert report["summary_finite"] and report["resumed_equal"]


def test_bad_splits_and_settings_are_refused():
    from jrl.parallel import DataParallel
    from jrl.text import grpo
    from jrl.text import q_learning as text_q

    env, env_params = jrl.make("Arithmetic-v0", digits=1)
    with pytest.raises(ValueError, match=r"num_prompts=6 must be a multiple of the number of devices \(4\)"):
        grpo.make_algorithm(grpo.GRPOConfig(num_prompts=6), env, env_params, model=None, parallel=DataParallel(4))
    for config in (grpo.GRPOConfig, text_q.TextQConfig):
        with pytest.raises(TypeError, match="shard_params must be a bool"):
            config(shard_params=1)
        # Off, the field is not written: a run's config.toml and digest are what they were before it.
        assert "shard_params" not in config().to_dict() and config(shard_params=True).to_dict()["shard_params"]
