"""The text learners over several devices (issue 24, items 1 and 4): GRPO's data-parallel split and
fully sharded parameters (``shard_params``) for GRPO and text Q-learning, on 2 forced host devices.

- GRPO on a fixed batch of 8 prompts x 4 completions: 2 devices of 4 prompts each (whole groups),
  with whole and with sharded parameters, take the one-device step on the 8 prompts: the gradient
  within 1e-6 of its largest entry, the losses of 3 clipped Adam steps, the clip fractions and the
  KL within 1e-6, and the parameters within 1e-6 but for the attention's key bias (below).
- Text Q-learning through a run's own programs (``Run``: those of ``jrl train --devices 2``), with
  ``shard_params`` and without: the Q-network, target and Adam moments within 1e-6 (but for the
  key bias) after 2 iterations; each device holds half of the parameters, moments, target and
  reference, under a stated budget that the whole state exceeds; resumed from a checkpoint, the
  run gives the uninterrupted run's bits; the run's one-device view (what ``jrl eval``,
  ``generate`` and ``export`` read) is whole.

The attention's key bias is left out of the parameter comparisons: softmax ignores a shift common
to every key, so its exact gradient is 0 and its computed gradient is rounding noise, which Adam
(dividing each entry by its own magnitude) turns into steps of about the step size that differ
with the program's reduction order. No output depends on it: the losses agree within 1e-6.

JAX fixes its devices when it starts: the checks run in one fresh interpreter with 2 CPU host
devices (``test_sweep_devices.child_env``); ``jrl train ... --set shard_params=true`` itself (the
command line around ``Run``) is what test_run_devices.py checks for the other algorithms.
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
    import json, sys
    from pathlib import Path

    import jax
    import jax.numpy as jnp
    import numpy as np
    from jax.sharding import PartitionSpec as P

    import jrl
    from jrl import parallel
    from jrl.experiment import RunSettings, RunSpec, checkpoint
    from jrl.experiment.runner import Run
    from jrl.parallel import SINGLE, DataParallel, Sharded, device_mesh
    from jrl.text import LanguageModel, LMConfig, TransformerLM, grpo, init_model, save_model
    from jrl.envs.tokens import positions as answer_positions
    from jrl.text.model import apply_model, decode_step, empty_cache, shard_layers
    from jrl.text import q_learning as text_q

    assert jax.device_count() == 2
    out, report = Path(sys.argv[1]).resolve(), {}
    env, env_params = jrl.make("Arithmetic-v0", digits=1, format_reward=0.5)
    vocab = env.vocabulary

    def model_of(d_model, num_layers=1):
        config = LMConfig("Arithmetic-v0", vocab.size, vocab.num_actions, env.observation_space().shape[0],
                          d_model=d_model, num_layers=num_layers, num_heads=2, mlp_ratio=2)
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

    # 2. Text Q-learning on 2 devices through a run's own programs (those of jrl train --devices 2),
    # with and without shard_params: 2 iterations in 2 chunks, a checkpoint after the first.
    lm = model_of(32)
    save_model(out / "lm", lm)

    def run_of(shard):
        fields = {"pretrained": str(out / "lm"), "num_envs": 8, "num_steps": 2, "log_interval": 1,
                  "learning_rate": 1e-2, "shard_params": shard}
        spec = RunSpec.resolve("text_q_learning", "Arithmetic-v0", seeds=1, config=fields,
                               env_kwargs={"digits": 1, "format_reward": 0.5}, devices=2)
        run = Run(out / str(shard), spec, RunSettings())
        chunk = jax.jit(run.vmap_run(1))
        state = run.init(run.keys)
        state, _ = chunk(state)
        checkpoint.save(run.checkpoint_dir, state, log_index=1, meta=run.checkpoint_meta())
        state, _ = chunk(state)
        return run, chunk, state

    (dp_run, _, dp), (run, chunk, sharded) = run_of(False), run_of(True)
    whole, dp = run.device_state(sharded), dp_run.device_state(dp)  # what jrl eval, generate and export read
    moments = lambda s: s.opt_state[1][0]
    report["tq"] = {name: max_diff(get(whole), get(dp)) for name, get in (
        ("q_params", lambda s: s.q_params), ("target", lambda s: s.target),
        ("adam_mu", lambda s: moments(s).mu), ("adam_nu", lambda s: moments(s).nu))}
    report["tq_moved"] = max_diff(whole.q_params, whole.target)
    # Resumed from the checkpoint (as jrl resume loads it): the uninterrupted run's bits.
    loaded, log_index = run.load_checkpoint()
    resumed, _ = chunk(loaded)
    bits = lambda tree: [np.asarray(jax.random.key_data(x) if jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key)
                                    else x) for x in jax.tree_util.tree_leaves(tree)]
    report["resumed_equal"] = log_index == 1 and all(
        np.array_equal(a, b) for a, b in zip(bits(resumed), bits(sharded), strict=True))
    held = {}
    for leaf in jax.tree_util.tree_leaves((sharded.q_params, sharded.target, sharded.opt_state, sharded.reference)):
        for piece in leaf.addressable_shards:
            held[piece.device.id] = held.get(piece.device.id, 0) + piece.data.nbytes
    report["tq_shapes"] = [list(sharded.q_params["params"]["head"].shards["kernel"].shape),
                           list(whole.q_params["params"]["head"]["kernel"].shape)]
    report["memory"] = {"per_device": sorted(held.values()),
                        "whole": parallel.tree_bytes((whole.q_params, whole.target, whole.opt_state, whole.reference))}

    # 3. Peak memory, in the compiler's own figures (memory_analysis, per device; compiled, not run), for a
    # model whose weights dwarf its activations (4 blocks of d_model 128, 2 completions per device): the
    # gradient of the policy's log-probabilities (one forward and one backward pass, what every step of
    # both learners takes) with the parameters sharded layer by layer (the run's layout) and as one node
    # gathered whole, and a generation (the decoding loop) with the layer-by-layer layout. Then the
    # layer-by-layer forward and decoding step of a model of 2 blocks against the whole model's, run.
    wide = LMConfig("Arithmetic-v0", vocab.size, vocab.num_actions, env.observation_space().shape[0], d_model=128,
                    num_layers=4, num_heads=2, mlp_ratio=4)
    wide_lm, length, two = init_model(wide, jax.random.key(0)), env.observation_space().shape[0], DataParallel(2)
    mesh = device_mesh(2, axis="devices")

    def on_devices(f):  # f of one device's values, over leading device axes
        per_device = lambda *xs: jax.tree_util.tree_map(lambda y: y[None], f(*jax.tree_util.tree_map(lambda x: x[0], xs)))
        return jax.shard_map(per_device, mesh=mesh, in_specs=P("devices"), out_specs=P("devices"), check_vma=False)

    layouts = {"layers": lambda params: shard_layers(params, two), "whole": two.shard_tree}
    pieces = {name: jax.eval_shape(on_devices(layout), jax.tree_util.tree_map(
        lambda x: jax.ShapeDtypeStruct((2, *x.shape), x.dtype), wide_lm.params)) for name, layout in layouts.items()}
    tokens = jax.ShapeDtypeStruct((2, 2, length), jnp.int32)
    temp_bytes = lambda program, *args: jax.jit(on_devices(program)).lower(*args).compile().memory_analysis(
        ).temp_size_in_bytes
    grads = lambda params, tokens: two.value_and_grad(
        lambda p: jnp.mean(grpo.token_log_probs(TransformerLM(wide), p, tokens, 1.0, two)[..., 0]), params)[1]
    memory = {"params": parallel.tree_bytes(wide_lm.params),
              "block": parallel.tree_bytes(wide_lm.params["params"]["blocks_0"]),
              "step_layers": temp_bytes(grads, pieces["layers"], tokens),
              "step_whole": temp_bytes(grads, pieces["whole"], tokens),
              "generation_layers": temp_bytes(lambda params, key: text_q.rollout(
                  key, env, env_params, wide, params, None, 0.0, 2, parallel=two)["tokens"], pieces["layers"],
                  jax.ShapeDtypeStruct((2,), jax.random.key(0).dtype))}
    # The in-loop evaluation's kind of program: jrl.evaluate vmaps a greedy policy over 8 episodes; each
    # layer is gathered once per step for all of them (not once per episode, nor all layers at once).
    greedy = lambda config: lambda params, obs, key: jnp.argmax(
        apply_model(config, params, obs, two)[answer_positions(obs, vocab.end_id) - 1])
    memory["evaluation_layers"] = temp_bytes(
        lambda params, key: jrl.evaluate(key, greedy(wide), params, env, env_params, num_episodes=8),
        pieces["layers"], jax.ShapeDtypeStruct((2,), jax.random.key(0).dtype))
    report["memory_step"] = memory
    two_blocks = model_of(16, num_layers=2)

    def forward_gap(whole, tokens):
        config, pieces = two_blocks.config, shard_layers(whole, two)
        cache = jax.tree_util.tree_map(lambda x: x + 0.5, empty_cache(config, tokens.shape[0]))
        gaps = [apply_model(config, pieces, tokens, two) - TransformerLM(config).apply(whole, tokens)]
        for a, b in zip(jax.tree_util.tree_leaves(decode_step(config, pieces, tokens[:, 3], jnp.int32(3), cache, two)),
                        jax.tree_util.tree_leaves(decode_step(config, whole, tokens[:, 3], jnp.int32(3), cache)),
                        strict=True):
            gaps.append(a - b)
        # Under vmap (as jrl.evaluate calls a policy), one buffer per example.
        gaps.append(jax.vmap(lambda t: apply_model(config, pieces, t, two))(tokens)
                    - jax.vmap(lambda t: TransformerLM(config).apply(whole, t))(tokens))
        return jnp.stack([jnp.max(jnp.abs(g)) for g in gaps])[None]

    gaps = jax.jit(jax.shard_map(forward_gap, mesh=mesh, in_specs=(P(), P()), out_specs=P("devices"), check_vma=False))(
        two_blocks.params, jnp.asarray(np.random.default_rng(2).integers(0, vocab.size, (3, length)), jnp.int32))
    report["layered_forward_gap"] = float(jnp.max(gaps))
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
    assert report["tq_moved"] > 1e-3  # the Q-network moved away from its target


def test_a_model_over_the_budget_trains_sharded_and_resumes_bit_for_bit(report):
    # What jrl eval, generate and export read is whole: the output layer [32, 15], whose 480
    # entries the state (and its checkpoint) keeps as [devices, seeds, 240].
    assert report["tq_shapes"] == [[2, 1, 240], [1, 32, 15]]
    memory = report["memory"]
    assert memory["whole"] > BUDGET > max(memory["per_device"]), memory
    assert all(abs(held - memory["whole"] / 2) < 0.01 * memory["whole"] for held in memory["per_device"]), memory
    assert report["resumed_equal"]


def test_a_sharded_step_gathers_one_layer_at_a_time(report):
    # The compiler's own figures (memory_analysis, per device) for a model of 4 blocks (d_model 128):
    # sharded layer by layer, a forward and backward pass keeps about one block gathered (and its
    # whole gradient) besides the pieces, well below the model's weights; gathered whole, above them.
    # A decoding loop whose gathers XLA hoisted out of the loop would hold every block: it holds about
    # one. (docs/devices.md has the figures of whole steps and run intervals: experiments/fsdp_memory.py.)
    memory = report["memory_step"]
    print("per-device temporary bytes:", memory)
    assert memory["step_layers"] < 2 * memory["block"] < memory["params"] / 2, memory
    assert memory["step_whole"] > memory["params"], memory
    assert memory["generation_layers"] < 2 * memory["block"], memory
    assert memory["evaluation_layers"] < 2 * memory["block"], memory
    # The layer-by-layer forward (also under vmap) and decoding step compute the whole model's (2 blocks).
    assert report["layered_forward_gap"] < 1e-5, report["layered_forward_gap"]


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
