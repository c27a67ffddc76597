"""Training throughput with ``batched_env_step``: DQN, PQN and PPO on CartPole-v1, the environments
stepped one key each (``False``, every default) or by ``env.step_batch`` (``True``), in one run.

For each algorithm and each number of parallel environments ``N``, both settings train the same
fixed budget (no in-loop evaluation, no early stop) from the same key; compile time is measured
apart (``jit(make_train).lower(key).compile()``) and the run time is the best of ``--repeats``
runs, the two settings alternating (so a noisy spell hits both). Environment steps per second are
``N x iterations x steps per iteration / run seconds``. The two settings draw other random numbers,
so their runs differ (same distribution); what is compared is time.

    python benchmarks/batched_env_step.py            # about 4 minutes on 2 CPU cores
    python benchmarks/batched_env_step.py --quick    # a smoke run, NOT results

Configs (the CartPole defaults otherwise): DQN with ``num_envs=N``, ``buffer_size=64 N``,
``learning_starts=4 N`` and ``max(50, 100000 // N)`` iterations (one gradient step each); PQN and
PPO with ``num_envs=N`` and 4 iterations (PQN: rollouts of 64 steps, 4 epochs of 16 minibatches;
PPO: 128 steps, 4 epochs of 4).
"""

from __future__ import annotations

import argparse
import platform
import time

import jax

import jrl
from jrl.algorithms import dqn, ppo, pqn


def configs(name: str, num_envs: int, quick: bool) -> tuple:
    """``(module, config)`` of ``name`` with ``num_envs`` environments and a fixed budget."""
    if name == "dqn":
        steps = 20 if quick else max(50, 100_000 // num_envs)
        config = dqn.default_config("CartPole-v1").replace(
            num_envs=num_envs,
            num_steps=steps,
            buffer_size=64 * num_envs,
            learning_starts=4 * num_envs,
            eval_episodes=0,
            stop_return=None,
            keep_best=False,
            log_interval=steps,
        )
        return dqn, config
    module = pqn if name == "pqn" else ppo
    config = module.default_config("CartPole-v1").replace(
        num_envs=num_envs, num_steps=1 if quick else 4, eval_episodes=0, stop_return=None, log_interval=None
    )
    return module, config


def time_both(module, config, repeats: int) -> dict:
    """Compile and best run seconds of ``config`` with ``batched_env_step`` False and True."""
    env, params = jrl.make("CartPole-v1")
    key = jax.random.key(0)
    compiled, out = {}, {}
    for batched in (False, True):
        train = jax.jit(module.make_train(config.replace(batched_env_step=batched), env, params))
        start = time.perf_counter()
        compiled[batched] = train.lower(key).compile()
        out[batched] = {"compile": time.perf_counter() - start, "run": float("inf")}
    for _ in range(repeats):
        for batched in (False, True):
            start = time.perf_counter()
            jax.block_until_ready(compiled[batched](key))
            out[batched]["run"] = min(out[batched]["run"], time.perf_counter() - start)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--envs", type=int, nargs="+", default=[16, 256, 1024, 4096])
    parser.add_argument("--algos", nargs="+", default=["dqn", "pqn", "ppo"], choices=["dqn", "pqn", "ppo"])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="tiny budgets: a smoke run, not results")
    args = parser.parse_args()
    print(f"jax {jax.__version__} on {jax.devices()[0].platform} ({platform.processor() or platform.machine()})")
    print(
        "| algorithm | N envs | env steps | one key each: M steps/s | step_batch: M steps/s | ratio | compile s (each, batched) |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name in args.algos:
        for num_envs in args.envs:
            module, config = configs(name, num_envs, args.quick)
            steps = config.num_steps * config.env_steps_per_iteration()
            t = time_both(module, config, args.repeats)
            rate = {b: steps / t[b]["run"] / 1e6 for b in (False, True)}
            print(
                f"| {name} | {num_envs:,} | {steps:,} | {rate[False]:.3f} | {rate[True]:.3f} | "
                f"{rate[True] / rate[False]:.2f}x | {t[False]['compile']:.1f}, {t[True]['compile']:.1f} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
