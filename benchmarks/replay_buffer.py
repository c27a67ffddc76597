"""Replay-buffer sampling cost does not grow with capacity (jrl's buffer is O(batch_size)).

Times one compiled call that draws ``--samples`` batches of 128 CartPole-sized transitions (every
field read) from a full buffer of capacity 10,000, 100,000, 1,000,000 and 10,000,000, in the same
run, and prints the ratios. For comparison it also times ``jax.random.choice(replace=False, p=...)``
index sampling at 10,000 and 1,000,000, whose cost grows with capacity (the method
docs/benchmarks.md's reference figures report rejax using). The work per batch is the same at every capacity;
what can change is memory: a small buffer sits in the CPU's caches, a large one does not, so the
random rows of a batch become cache misses. Past the caches (1M and 10M) the cost is flat.

    python3 benchmarks/replay_buffer.py
"""

from __future__ import annotations

import argparse

import jax
import jax.numpy as jnp

from jrl.algorithms.replay import replay_add, replay_init, replay_sample
from jrl.experiment import timed

BATCH = 128
CHOICE_SAMPLES = 10  # the capacity-dependent method is slow at 1M: fewer batches suffice to time it


def full_buffer(capacity: int):
    example = {
        "obs": jnp.zeros(4),
        "action": jnp.int32(0),
        "reward": jnp.float32(0),
        "next_obs": jnp.zeros(4),
        "terminated": jnp.bool_(False),
    }
    buffer = replay_init(example, capacity)
    block = {k: jnp.broadcast_to(v, (capacity, *jnp.shape(v))) for k, v in example.items()}
    return replay_add(buffer, block)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samples", type=int, default=5000, help="batches drawn per timed call")
    args = parser.parse_args()

    def jrl_sampling(buffer, key):
        def body(total, k):
            batch = replay_sample(buffer, k, BATCH)  # every field is summed: none of the gathers is dead code
            return total + sum(jnp.sum(x.astype(jnp.float32)) for x in jax.tree.leaves(batch)), None

        return jax.lax.scan(body, jnp.float32(0), jax.random.split(key, args.samples))[0]

    def choice_sampling(buffer, key):
        capacity = buffer.capacity

        def body(total, k):
            index = jax.random.choice(k, capacity, (BATCH,), replace=False, p=jnp.full(capacity, 1.0 / capacity))
            return total + buffer.data["reward"][index].sum() + buffer.data["obs"][index].sum(), None

        return jax.lax.scan(body, jnp.float32(0), jax.random.split(key, CHOICE_SAMPLES))[0]

    print(f"{'capacity':>10} | {'jrl us/batch':>12} | {'choice(replace=False, p) us/batch':>34}")
    results = {}
    for capacity in (10_000, 100_000, 1_000_000, 10_000_000):
        buffer = full_buffer(capacity)
        key = jax.random.key(0)
        # A warm-up call first: the first run of a call this short pays for page faults and caches.
        ours = timed(jrl_sampling, buffer, key, repeats=7, warmup=True).run_seconds / args.samples * 1e6
        theirs = (
            timed(choice_sampling, buffer, key, warmup=True).run_seconds / CHOICE_SAMPLES * 1e6
            if capacity in (10_000, 1_000_000)
            else float("nan")
        )
        results[capacity] = (ours, theirs)
        print(f"{capacity:>10,} | {ours:>12.2f} | {theirs:>34.1f}", flush=True)
        del buffer
    ratio = results[1_000_000][0] / results[10_000][0]
    ratio_choice = results[1_000_000][1] / results[10_000][1]
    ratio_past_cache = results[10_000_000][0] / results[1_000_000][0]
    print(
        f"\ncapacity 1,000,000 vs 10,000: jrl {ratio:.2f}x the time per batch; choice(replace=False, p) {ratio_choice:.0f}x"
    )
    print(f"capacity 10,000,000 vs 1,000,000 (both past the caches): jrl {ratio_past_cache:.2f}x")


if __name__ == "__main__":
    main()
