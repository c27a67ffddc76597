"""How DQN's training time grows with the number of seeds in one compiled call, and why.

Part 1, training: jrl's ``dqn.default_config("CartPole-v1")`` without early stopping
(``stop_return=None``: every seed does the same work), timed as compile and run apart:

- 1 seed: ``jax.jit(train)(key)``;
- N seeds vmapped on one device: ``jax.jit(jax.vmap(train))(keys)``;
- N seeds vmapped and sharded over all local devices: the same function, with the seed axis of
  ``keys`` split over a one-axis ``jax.sharding.Mesh`` (``jax.jit(..., in_shardings=...)``); each
  device trains N / devices seeds and nothing is communicated.

Part 2, why: the network's gradient step alone (a batch of 128 from a fixed buffer, the config's
MLP, double-DQN targets, Adam), 1 vs N vmapped, with the matmul arithmetic it does per second.
When N seeds cost N times one at the same GFLOP/s, the step is compute-bound on this hardware and
vmap cannot make N seeds cheaper than N times the arithmetic.

On a CPU, JAX sees one device however many cores there are; this script asks XLA for
``--host-devices`` host devices (default 2, the cores of the machine this was written for; each
runs its computations on its own thread) by setting ``--xla_force_host_platform_device_count``
before importing JAX, unless ``XLA_FLAGS`` already sets it. The 1-seed and 1-device runs use the
first device only. On a GPU the flag changes nothing and the sharded run uses the GPUs.

    python3 benchmarks/dqn_seeds.py              # about 3 minutes on 2 CPU cores
    python3 benchmarks/dqn_seeds.py --quick      # a smoke run: short training, NOT results
"""

from __future__ import annotations

import argparse
import itertools
import os
import sys
import time


def _host_devices_from_argv(default: int = 2) -> int:
    """``--host-devices`` read before argparse, which runs after JAX must already be configured."""
    for i, arg in enumerate(sys.argv):
        if arg == "--host-devices" and i + 1 < len(sys.argv):
            return int(sys.argv[i + 1])
        if arg.startswith("--host-devices="):
            return int(arg.split("=", 1)[1])
    return default


if "xla_force_host_platform_device_count" not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = (
        os.environ.get("XLA_FLAGS", "") + f" --xla_force_host_platform_device_count={_host_devices_from_argv()}"
    ).strip()

import jax  # noqa: E402  (XLA_FLAGS must be set first)
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402
from jax.sharding import Mesh, NamedSharding, PartitionSpec  # noqa: E402

import jrl  # noqa: E402
from jrl.algorithms import dqn  # noqa: E402
from jrl.experiment import timed, train_key  # noqa: E402

ENV_ID = "CartPole-v1"
TARGET_SEEDS = 2.5  # issue 3: N = 8 vmapped seeds at most 2.5x the run time of one
REJAX_SEEDS_MEASURED = 5.8  # docs/benchmarks.md, "Reference figures for the baselines": rejax, 8 seeds vmapped vs 1
GRAD_BATCH = 128
GRAD_STEPS = 2_000


def seed_sharding(num_seeds: int) -> NamedSharding | None:
    """A sharding that splits a leading seed axis over the local devices, or None if there is one."""
    devices = jax.local_devices()
    if len(devices) < 2:
        return None
    if num_seeds % len(devices):
        raise ValueError(f"--seeds {num_seeds} must be a multiple of the {len(devices)} local devices")
    return NamedSharding(Mesh(np.array(devices), ("seeds",)), PartitionSpec("seeds"))


# --- part 1: training -----------------------------------------------------------------------------
def bench_training(config: dqn.DQNConfig, num_seeds: int) -> list[dict]:
    env, env_params = jrl.make(ENV_ID)
    train = dqn.make_train(config, env, env_params)
    device = jax.local_devices()[0]
    key = jax.device_put(train_key(0), device)
    # Not train_keys(range(num_seeds)): docs/benchmarks.md's per-seed returns (and dqn_cartpole.py's
    # 8 seeds, the same keys) were recorded with split(key(0), N), and re-recording them means
    # re-measuring the whole timing table, which needs a quiet machine.
    keys = jax.device_put(jax.random.split(jax.random.key(0), num_seeds), device)
    rows = []
    _, compile_s, run_s = timed(train, key)
    rows.append({"run": "1 seed", "compile_s": compile_s, "run_s": run_s, "best_eval": None})
    out, compile_s, run_s = timed(jax.vmap(train), keys)
    rows.append(
        {
            "run": f"{num_seeds} seeds, vmap, 1 device",
            "compile_s": compile_s,
            "run_s": run_s,
            "best_eval": np.max(np.asarray(out.metrics["eval_return"]), axis=1),
            "params": out.params,
        }
    )
    sharding = seed_sharding(num_seeds)
    if sharding is not None:
        sharded_keys = jax.device_put(keys, sharding)
        out, compile_s, run_s = timed(jax.vmap(train), sharded_keys, in_shardings=sharding)
        rows.append(
            {
                "run": f"{num_seeds} seeds, vmap, sharded over {len(jax.local_devices())} devices",
                "compile_s": compile_s,
                "run_s": run_s,
                "best_eval": np.max(np.asarray(out.metrics["eval_return"]), axis=1),
                "params": out.params,
            }
        )
    return rows


# --- part 2: the gradient step alone --------------------------------------------------------------
def mlp_init(key: jax.Array, sizes: tuple[int, ...]) -> list[tuple[jax.Array, jax.Array]]:
    keys = jax.random.split(key, len(sizes) - 1)
    return [
        (jax.random.normal(k, (m, n)) / np.sqrt(m), jnp.zeros(n))
        for k, (m, n) in zip(keys, itertools.pairwise(sizes), strict=True)
    ]


def mlp_apply(params, x: jax.Array) -> jax.Array:
    """``x`` ``[B, in]`` -> Q-values ``[B, out]``: ReLU between layers, as jrl's MLP."""
    for i, (w, b) in enumerate(params):
        x = x @ w + b
        if i < len(params) - 1:
            x = jax.nn.relu(x)
    return x


def gradient_steps(key: jax.Array, sizes: tuple[int, ...], num_steps: int) -> jax.Array:
    """``num_steps`` double-DQN Adam steps on batches of ``GRAD_BATCH`` drawn from a fixed random buffer."""
    k_init, k_obs, k_next, k_act, k_loop = jax.random.split(key, 5)
    capacity = 10_000
    buffer = {
        "obs": jax.random.normal(k_obs, (capacity, sizes[0])),
        "next_obs": jax.random.normal(k_next, (capacity, sizes[0])),
        "action": jax.random.randint(k_act, (capacity,), 0, sizes[-1]),
        "reward": jnp.ones(capacity),
    }
    params = mlp_init(k_init, sizes)
    target = params  # a fixed target network: its forward pass is not the online one's (no CSE)
    optimizer = optax.adam(1e-4)

    def loss_fn(params, batch):
        q = jnp.take_along_axis(mlp_apply(params, batch["obs"]), batch["action"][:, None], axis=1)[:, 0]
        best = jnp.argmax(mlp_apply(params, batch["next_obs"]), axis=1)
        boot = jnp.take_along_axis(mlp_apply(target, batch["next_obs"]), best[:, None], axis=1)[:, 0]
        y = jax.lax.stop_gradient(batch["reward"] + 0.99 * boot)
        return 0.5 * jnp.mean(jnp.square(q - y))

    def step(state, key):
        params, opt_state = state
        index = jax.random.randint(key, (GRAD_BATCH,), 0, capacity)
        loss, grads = jax.value_and_grad(loss_fn)(params, jax.tree.map(lambda x: x[index], buffer))
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return (optax.apply_updates(params, updates), opt_state), loss

    _, losses = jax.lax.scan(step, (params, optimizer.init(params)), jax.random.split(k_loop, num_steps))
    return losses.sum()


def gradient_step_flops(sizes: tuple[int, ...]) -> float:
    """Matmul FLOPs of one step: 3 forward passes (s, s' twice) + the backward of one (2 forwards' worth)."""
    forward = 2 * GRAD_BATCH * sum(m * n for m, n in itertools.pairwise(sizes))
    return 5 * forward


def bench_gradient_step(sizes: tuple[int, ...], num_seeds: int, num_steps: int) -> list[dict]:
    device = jax.local_devices()[0]
    keys = jax.device_put(jax.random.split(jax.random.key(1), num_seeds), device)

    def one(key):
        return gradient_steps(key, sizes, num_steps)

    rows = []
    flops = gradient_step_flops(sizes) * num_steps
    run_s = timed(one, keys[0], repeats=3).run_seconds
    rows.append({"run": "1 seed", "us_per_step": run_s / num_steps * 1e6, "gflops": flops / run_s / 1e9})
    run_s = timed(jax.vmap(one), keys, repeats=3).run_seconds
    rows.append(
        {
            "run": f"{num_seeds} seeds, vmap, 1 device",
            "us_per_step": run_s / num_steps * 1e6,
            "gflops": num_seeds * flops / run_s / 1e9,
        }
    )
    sharding = seed_sharding(num_seeds)
    if sharding is not None:
        run_s = timed(jax.vmap(one), jax.device_put(keys, sharding), in_shardings=sharding, repeats=3).run_seconds
        rows.append(
            {
                "run": f"{num_seeds} seeds, vmap, sharded over {len(jax.local_devices())} devices",
                "us_per_step": run_s / num_steps * 1e6,
                "gflops": num_seeds * flops / run_s / 1e9,
            }
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=8, help="seeds trained in one call (default 8)")
    parser.add_argument(
        "--host-devices", type=int, default=2, help="CPU host devices to ask XLA for (read before JAX starts)"
    )
    parser.add_argument("--quick", action="store_true", help="much shorter runs: a smoke test, NOT results")
    args = parser.parse_args()
    if args.seeds < 1:
        parser.error(f"--seeds must be >= 1, got {args.seeds}")
    wall_start = time.perf_counter()
    print(f"jax {jax.__version__}, {jax.local_device_count()} local {jax.devices()[0].platform} device(s)")
    print(f"XLA_FLAGS={os.environ.get('XLA_FLAGS', '')!r}")

    config = dqn.default_config(ENV_ID).replace(stop_return=None)
    num_grad_steps = GRAD_STEPS
    if args.quick:
        config = config.replace(num_steps=1_000, learning_starts=5_000, log_interval=500)
        num_grad_steps = 100
    # XLA's one-time start-up is not charged to the first run timed.
    jax.block_until_ready(jax.jit(lambda x: x + 1.0)(jnp.float32(1.0)))

    print(f"\n[1] training: dqn.default_config({ENV_ID!r}), stop_return=None, {config.num_steps} iterations")
    rows = bench_training(config, args.seeds)
    base = rows[0]["run_s"]
    print(f"{'run':45s} {'compile s':>10s} {'run s':>8s} {'run / 1 seed':>13s}")
    for row in rows:
        print(f"{row['run']:45s} {row['compile_s']:10.1f} {row['run_s']:8.2f} {row['run_s'] / base:12.2f}x")
    for row in rows[1:]:
        print(f"  {row['run']}: best in-loop greedy return per seed {', '.join(f'{x:.1f}' for x in row['best_eval'])}")
    if len(rows) == 3:
        diffs = jax.tree.leaves(
            jax.tree.map(
                lambda a, b: float(np.max(np.abs(np.asarray(a) - np.asarray(b)))), rows[1]["params"], rows[2]["params"]
            )
        )
        # 4-seed and 8-seed batched matmuls may round differently, as a single run and a vmapped one do.
        print(f"  sharded vs 1-device final parameters: max abs difference {max(diffs):.3g}")
    best = min(row["run_s"] for row in rows[1:]) / base
    print(
        f"  best {args.seeds} seeds / 1 seed: {best:.2f}x (target <= {TARGET_SEEDS}x: "
        f"{'met' if best <= TARGET_SEEDS else 'not met'}; rejax measured {REJAX_SEEDS_MEASURED}x)"
    )

    sizes = (4, *config.hidden_sizes, 2)
    print(f"\n[2] the gradient step alone: MLP {sizes}, batch {GRAD_BATCH}, Adam, {num_grad_steps} steps")
    print(f"{'run':45s} {'us / step':>10s} {'matmul GFLOP/s':>15s} {'time / 1 seed':>14s}")
    grad_rows = bench_gradient_step(sizes, args.seeds, num_grad_steps)
    for row in grad_rows:
        ratio = row["us_per_step"] / grad_rows[0]["us_per_step"]
        print(f"{row['run']:45s} {row['us_per_step']:10.1f} {row['gflops']:15.1f} {ratio:13.2f}x")
    if args.quick:
        print("\n*** --quick: NOT results (shortened runs) ***")
    print(f"\nbenchmark wall time: {time.perf_counter() - wall_start:.0f} s")


if __name__ == "__main__":
    main()
