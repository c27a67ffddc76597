"""Peak memory of the sharded text learners, in the compiler's own figures (issue 24, item 4).

With ``shard_params`` over N devices, each network is kept as one ``jrl.parallel.Sharded`` node per
layer (``jrl.text.model.shard_layers``) and every forward pass gathers one layer at a time. This
script compiles (without running) the programs of one device and prints XLA's
``memory_analysis()`` for them: ``temp`` (the program's temporaries: what it allocates beyond its
arguments and outputs, the peak of everything a step makes and frees) and ``args`` (the state it is
given: each device's pieces), for the layer-by-layer layout and for each network gathered whole (one
``Sharded`` node per network, the layout before layer-by-layer gathering), on forced host devices:

- GRPO's gradient (``grpo.gradient``: the sampling policy's and the reference's log-probabilities,
  the loss, its gradient), its whole step (``grpo.learn``: the gradient, the clip and Adam) and a
  generation (``text_q_learning.rollout``: the decoding loop, one position per step);
- one logging interval of each learner's run (``algorithm.run(state, 1)`` with ``log_interval=1``:
  an iteration's generations, its learning step and the record), GRPO and text Q-learning.

The model is an ``Arithmetic-v0`` ``TransformerLM`` whose weights dwarf its activations (wide,
several blocks, 4 generations per device): the figures show what a device holds, not a training
recipe. ``tests/test_text_devices.py`` checks the gradient's and the generation's figures for the
default size.

    python experiments/fsdp_memory.py                          # 2 devices, d_model 128, 4 blocks: ~40 s
    python experiments/fsdp_memory.py --d-model 256 --layers 8
"""

from __future__ import annotations

import argparse
import os
import sys


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host-devices", type=int, default=2, help="forced CPU devices, the run's devices")
    parser.add_argument("--d-model", type=int, default=128)
    parser.add_argument("--layers", type=int, default=4)
    args = parser.parse_args()
    # Before JAX starts: it fixes its devices then.
    os.environ["XLA_FLAGS"] = (
        f"{os.environ.get('XLA_FLAGS', '')} --xla_force_host_platform_device_count={args.host_devices}"
    )
    os.environ.setdefault("JAX_PLATFORMS", "cpu")
    print(table(args.host_devices, args.d_model, args.layers))  # the rows also go to stderr as they come


def table(count: int, d_model: int, layers: int) -> str:
    import jax
    import jax.numpy as jnp
    from jax.sharding import PartitionSpec as P

    import jrl
    from jrl.parallel import DataParallel, device_mesh, format_bytes, tree_bytes
    from jrl.text import LMConfig, TransformerLM, grpo, init_model
    from jrl.text import q_learning as text_q

    env, env_params = jrl.make("Arithmetic-v0", digits=1, format_reward=0.5)
    vocab, length = env.vocabulary, env.observation_space().shape[0]
    config = LMConfig(
        "Arithmetic-v0", vocab.size, vocab.num_actions, length, d_model=d_model, num_layers=layers, num_heads=2
    )
    lm = init_model(config, jax.random.key(0))
    parallel, mesh, network = DataParallel(count), device_mesh(count, axis="devices"), TransformerLM(config)

    def on_devices(f):  # f of one device's values, over leading device axes
        def per_device(*xs):
            return jax.tree_util.tree_map(lambda y: y[None], f(*jax.tree_util.tree_map(lambda x: x[0], xs)))

        return jax.shard_map(per_device, mesh=mesh, in_specs=P("devices"), out_specs=P("devices"), check_vma=False)

    def memory(program, *abstract):
        analysis = jax.jit(on_devices(program)).lower(*abstract).compile().memory_analysis()
        return analysis.temp_size_in_bytes, analysis.argument_size_in_bytes

    def whole(state, fields, optimizer):  # each network one Sharded node, gathered whole
        nodes = {name: parallel.shard_tree(parallel.gather(getattr(state, name))) for name in fields}
        return state.replace(**nodes, opt_state=optimizer.init(nodes[fields[0]]))

    keys = jax.ShapeDtypeStruct((count,), jax.random.key(0).dtype)
    clip_adam = text_q.text_optimizer(1.0, 1e-3, parallel)
    gcfg = grpo.GRPOConfig(num_prompts=2 * count, group_size=2, num_steps=1, log_interval=1, shard_params=True)
    one_update = gcfg.replace(updates_per_iteration=1)
    gpo = grpo.make_algorithm(gcfg, env, env_params, model=lm, parallel=parallel)
    tcfg = text_q.TextQConfig(num_envs=4 * count, num_steps=1, log_interval=1, shard_params=True)
    tql = text_q.make_algorithm(tcfg, env, env_params, model=lm, parallel=parallel)
    layouts = {
        "grpo": (gpo, lambda s: whole(s, ("params", "reference"), clip_adam)),
        "text_q_learning": (tql, lambda s: whole(s, ("q_params", "target", "reference"), clip_adam)),
    }
    batch = {
        name: jax.ShapeDtypeStruct((count, 4, length - (name != "tokens")), dtype)
        for name, dtype in (("tokens", jnp.int32), ("action", jnp.int32), ("active", bool), ("reward", jnp.float32))
    }
    programs = {
        "GRPO gradient (grpo.gradient)": (
            "grpo",
            lambda s, b: grpo.gradient(gcfg, network, s.reference, s, b, parallel)[1],
            batch,
        ),
        "GRPO step, 1 update (grpo.learn)": (
            "grpo",
            lambda s, b: grpo.learn(one_update, network, s.reference, s, b, parallel)[0],
            batch,
        ),
        "GRPO step, 2 updates (the default)": (
            "grpo",
            lambda s, b: grpo.learn(gcfg, network, s.reference, s, b, parallel)[0],
            batch,
        ),
        "generation (rollout, 4 per device)": (
            "grpo",
            lambda s, k: text_q.rollout(k, env, env_params, config, s.params, None, 0.0, 4, parallel=parallel)[
                "tokens"
            ],
            keys,
        ),
        "GRPO run interval, 2 updates (run(state, 1))": ("grpo", lambda s: gpo.run(s, 1), None),
        "text Q-learning run interval (run(state, 1))": ("text_q_learning", lambda s: tql.run(s, 1), None),
    }
    states = {}
    for name, (algorithm, to_whole) in layouts.items():
        states[name, "layers"] = jax.eval_shape(on_devices(algorithm.init), keys)
        states[name, "whole"] = jax.eval_shape(on_devices(lambda key, a=algorithm, w=to_whole: w(a.init(key))), keys)
    weights = tree_bytes(lm.params)
    block = tree_bytes(lm.params["params"]["blocks_0"])
    lines = [
        f"{count} devices; model: d_model {d_model}, {layers} blocks; weights {weights:,} bytes "
        f"({format_bytes(weights)}), one block {block:,} bytes; jax {jax.__version__}, {jax.devices()[0].platform}",
        "",
        "| program (per device) | temp, layer by layer | temp, gathered whole | args (the state's pieces) |",
        "|---|---:|---:|---:|",
    ]
    for label, (algorithm, program, extra) in programs.items():
        row = []
        for layout in ("layers", "whole"):
            abstract = (states[algorithm, layout],) + (() if extra is None else (extra,))
            row.append(memory(program, *abstract))
        lines.append(f"| {label} | {row[0][0]:,} | {row[1][0]:,} | {row[0][1]:,} |")
        print(lines[-1], file=sys.stderr)
    return "\n".join(lines)


if __name__ == "__main__":
    main()
