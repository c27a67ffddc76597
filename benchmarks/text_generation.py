"""Generated tokens per second: ``jrl.text.generate`` against a plain Python loop over ``model.apply``.

A batch of ``--batch`` (4,096) unprompted WordGen-v0 generations of 8 letters each, with the
default-sized TransformerLM (width 64, 2 layers; random weights: speed does not depend on them),
sampled at temperature 1, timed in the same run three ways:

- ``jrl``: ``generate`` (its time includes encoding the prompts and decoding the 4,096 texts on the host): compiled decoding, one ``lax.scan`` over positions, each model decoding
  one position per step from its key/value cache, with the Q-model too (``logits + beta * Q``);
- ``loop, jit apply``: the founding document's ``generate``: a Python loop that calls ``model.apply``
  on the whole buffer once per token (compiled once, reused) and samples the next token;
- ``loop, eager apply``: the same loop without ``jax.jit`` (every op dispatched from Python).

Compile time is reported apart from run time; ratios are what to compare (shared, noisy machines).

    python3 benchmarks/text_generation.py
"""

from __future__ import annotations

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np

import jrl
from jrl.text import LMConfig, generate, init_model
from jrl.text.model import TransformerLM


def python_loop(model, tokens: jax.Array, key: jax.Array, apply) -> jax.Array:
    """One token at a time from Python: ``apply`` on the whole buffer, sample, write."""
    for i in range(tokens.shape[1] - 1):
        logits = apply(model.params, tokens)[:, i]
        new = jax.random.categorical(jax.random.fold_in(key, i), logits)
        tokens = tokens.at[:, i + 1].set(new)
    return jax.block_until_ready(tokens)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=4096)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    env, _ = jrl.make("WordGen-v0")
    vocab = env.vocabulary
    config = LMConfig("WordGen-v0", vocab.size, vocab.num_actions, 9)
    model, q_model = init_model(config, jax.random.key(0)), init_model(config, jax.random.key(1))
    prompts = [""] * args.batch
    new_tokens = args.batch * (config.context_length - 1)  # every row writes 8 positions (the end pads)

    rows = []
    for label, kwargs in (("jrl generate", {}), ("jrl generate, logits + beta Q", {"beta": 1.0, "q_params": q_model})):
        start = time.perf_counter()
        generate(model, prompts, jax.random.key(0), **kwargs)  # first call: compile + run
        first = time.perf_counter() - start
        best = float("inf")
        for r in range(args.repeats):
            start = time.perf_counter()
            generate(model, prompts, jax.random.key(r + 1), **kwargs)
            best = min(best, time.perf_counter() - start)
        rows.append((label, max(first - best, 0.0), best))

    start_tokens = jnp.full((args.batch, config.context_length), vocab.end_id, jnp.int32).at[:, 0].set(vocab.bos_id)
    network = TransformerLM(config)
    jitted = jax.jit(network.apply)
    start = time.perf_counter()
    jax.block_until_ready(jitted(model.params, start_tokens))
    compile_seconds = time.perf_counter() - start
    best = min(_timed(python_loop, model, start_tokens, jax.random.key(r), jitted) for r in range(args.repeats))
    rows.append(("loop, jit apply", compile_seconds, best))
    eager = _timed(python_loop, model, start_tokens, jax.random.key(0), network.apply)
    rows.append(("loop, eager apply", 0.0, eager))

    jrl_seconds = rows[0][2]
    print(
        f"{args.batch} generations x {config.context_length - 1} tokens = {new_tokens:,} tokens; best of {args.repeats}"
    )
    print(f"{'method':<32} {'compile s':>10} {'run s':>8} {'tokens/s':>12} {'time / jrl':>11}")
    for label, compile_s, run_s in rows:
        print(
            f"{label:<32} {compile_s:>10.2f} {run_s:>8.3f} {new_tokens / run_s:>12,.0f} {run_s / jrl_seconds:>10.1f}x"
        )
    print(f"jax {jax.__version__} on {jax.devices()[0].platform}, numpy {np.__version__}")


def _timed(fn, *args) -> float:
    start = time.perf_counter()
    fn(*args)
    return time.perf_counter() - start


if __name__ == "__main__":
    main()
